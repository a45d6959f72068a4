"""Bag replay without ROS: open rosbag2/.mcap/ROS 1 bags, messages as ROS 2 CDR in time order, timing, counts.

The rclpy side that publishes them is swarm_bridge.ros.replay; the command is `swarm-bridge replay`.
"""

from swarm_bridge.replay.bag import FORMATS, Bag, BagMessage, BagTopic, bag_format, find_bags, open_bags
from swarm_bridge.replay.errors import ReplayError
from swarm_bridge.replay.plan import Due, check_rate, merged, schedule, select_topics
from swarm_bridge.replay.tally import ReplayTally, TopicTally
from swarm_bridge.replay.types import ReplayTypes

__all__ = [
    "FORMATS", "Bag", "BagMessage", "BagTopic", "Due", "ReplayError", "ReplayTally", "ReplayTypes", "TopicTally",
    "bag_format", "check_rate", "find_bags", "merged", "open_bags", "schedule", "select_topics",
]
