"""The fleet simulator, harness not product: simulated robots for tests, benchmarks and the demo.

- `robots`: what a robot bridge publishes (telemetry streams, pure); `records`: the same records built fast,
  RobotState/TaskStatus records and the reader of a record's head.
- `task_robots`: a robot that takes tasks (`TaskRobot`) and the commands it got (`Received`).
- `mqtt_fleet` (telemetry, one `MqttClient` per robot), `session_fleet` (hundreds of robots per process on
  `MqttSessions`), `site_fleet` (task robots on a site's MQTT broker), `kafka_fleet` (task robots on Kafka).
- `taps`: read back what reached a broker (`MqttTap`, `KafkaTap`).
- `vda_fleet`: plain VDA 5050 vehicles (no ROS) on the project's order book, for the demo (`VdaFleet`).
- `navigation`: a simulated base driving toward a goal (the navigator's and the VDA 5050 vehicles' motion).
"""

from swarm_bridge.sim.robots import DEFAULT_MIX, Publish, SimRobot, StreamSpec

__all__ = ["DEFAULT_MIX", "Publish", "SimRobot", "StreamSpec"]
