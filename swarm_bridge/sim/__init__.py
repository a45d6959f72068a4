"""Simulated robots at the MQTT level, for the gateway's tests and benchmarks: `robots` is the pure
encoding (what a robot bridge publishes), `mqtt_fleet` puts it on a real broker (one `MqttClient` per robot)."""

from swarm_bridge.sim.robots import DEFAULT_MIX, Publish, SimRobot, StreamSpec, presence_payload

__all__ = ["DEFAULT_MIX", "Publish", "SimRobot", "StreamSpec", "presence_payload"]
