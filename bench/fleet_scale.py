"""Benchmark: how many robots one hub holds (issue #9), measured side by side with the raw limits.

Simulated robots at the MQTT level (no ROS; each one MQTT connection, a worker process's all on one
`MqttSessions` loop, sending exactly what a robot bridge sends: topics, Avro single-object records, seq,
presence) with the mix odometry 20 Hz, imu 50 Hz, battery 1 Hz, state 1 Hz -> Mosquitto -> one
`swarm-bridge gateway` -> Kafka -> one `swarm-bridge coordinator`; tasks are submitted, go down to the
robots as TaskCommands and the robots answer ACCEPTED, RUNNING, DONE. A
warm-up (--warmup S at --warmup-robots, default 25 s at the largest step, at most 300; not a step) warms
Kafka's JIT first. Steps of
10, 50, 100, 200, 300, 500, 1,000 robots (--quick: 10, 50, 100), stopping when a step fails badly. Per step: offered
and delivered msgs/s, robot send -> Kafka latency p50/p99, loss and duplicates per (robot, stream) seq,
CPU and RSS per process, tasks and their round trip. Baselines in the same run: Mosquitto's own QoS 1
delivery rate, a bare subscriber on the project's MQTT client (`MqttClient`, the gateway's) taking the same
fleet's traffic, a bare confluent-kafka producer.
Headline: the largest fleet held with zero loss and p99 <= 50 ms. Writes report.md, figures.json and PNG
plots to --out (default fleet_scale_report/); the last line printed is one JSON object.

  python bench/fleet_scale.py [--quick] [--steps 10,100] [--duration S] [--warmup S] [--workers N] [--out DIR]
  swarm-bridge bench fleet ...   (the same)
"""

from __future__ import annotations

import sys

from swarm_bridge.fleetbench.run import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
