"""swarm_bridge: a ROS 2 fleet bridge.

Robots turn ROS topics into versioned records on an MQTT or Kafka uplink; edge
gateways translate MQTT <-> Kafka; a fleet coordinator sends sharded task commands
back. Lifecycle of a process: load and validate config -> build routes -> open
links -> run until signalled -> drain and close.
"""

__version__ = "0.1.0"
