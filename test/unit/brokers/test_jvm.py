"""The JVM pause log as the fleet bench reads it, and the collector a Kafka broker is started with."""

from __future__ import annotations

from pathlib import Path

from swarm_bridge.brokers import Kafka, free_port
from swarm_bridge.brokers.jvm import pauses_in

# Lines as OpenJDK 17 writes them with -Xlog:safepoint:file=...:timemillis (one G1, two ZGC, one of another shape).
LOG = """\
[1000ms] Safepoint "G1CollectForAllocation", Time since last: 20320338 ns, Reaching safepoint: 3465 ns, Cleanup: 7361 ns, At safepoint: 20156644 ns, Total: 20167470 ns
[1500ms] Safepoint "ZMarkStart", Time since last: 94559849 ns, Reaching safepoint: 4867 ns, Cleanup: 26860 ns, At safepoint: 16805 ns, Total: 48532 ns
[2000ms] Safepoint "G1CollectForAllocation", Time since last: 1420398 ns, Reaching safepoint: 3435 ns, Cleanup: 5438 ns, At safepoint: 64700832 ns, Total: 64709705 ns
[2100ms] Safepoint "Cleanup", garbled
[3000ms] Safepoint "ZRelocateStart", Time since last: 4728262 ns, Reaching safepoint: 98096 ns, Cleanup: 3125 ns, At safepoint: 14071 ns, Total: 115292 ns
"""  # noqa: E501


def test_pauses_in_a_window_are_counted_summed_and_the_longest_named() -> None:
    pauses = pauses_in(LOG, 1000, 2500)
    assert (pauses.count, pauses.long, pauses.longest) == (3, 2, "G1CollectForAllocation")
    assert abs(pauses.total_ms - (20.16747 + 0.048532 + 64.709705)) < 1e-6
    assert abs(pauses.max_ms - 64.709705) < 1e-6
    assert pauses.as_dict()["over_20_ms"] == 2


def test_pauses_outside_the_window_and_other_lines_are_left_out() -> None:
    assert pauses_in(LOG, 2500, 4000).count == 1
    assert pauses_in(LOG, 5000, 6000).as_dict() == {"count": 0, "total_ms": 0.0, "max_ms": 0.0, "over_20_ms": 0,
                                                    "longest": ""}


def test_kafka_starts_with_g1_unless_told_another_collector_and_logs_its_pauses(tmp_path: Path) -> None:
    def flags(*options: str) -> list[str]:
        return Kafka(run_dir=tmp_path, port=free_port(), jvm_options=options).jvm_flags()

    assert "-XX:+UseG1GC" in flags()
    zgc = flags("-XX:+UseZGC", "-Xmn64m")
    assert "-XX:+UseG1GC" not in zgc and zgc[-2:] == ["-XX:+UseZGC", "-Xmn64m"]
    assert any(f.startswith("-Xlog:safepoint:file=") and "jvm-pauses.log" in f for f in zgc)
