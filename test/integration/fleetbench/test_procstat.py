"""The fleet bench's CPU sampler on a real process: /proc, a child process, its JVM-only JIT split."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from swarm_bridge.brokers import Kafka
from swarm_bridge.fleetbench.procstat import JIT, ProcSampler


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.integration
def test_cpu_sampler_splits_off_only_a_jvms_jit_threads(kafka: Kafka) -> None:
    # a child of its own (this process may have a JVM child: a Kafka started by another test's fixture)
    child = subprocess.Popen([sys.executable, "-c", "while True: sum(i * i for i in range(10_000))"])
    try:
        sampler = ProcSampler(lambda: {"child": [child.pid]}, period_s=0.05)
        sampler.start()
        before, deadline = _cpu_seconds(child.pid), time.monotonic() + 60
        while time.monotonic() < deadline and _cpu_seconds(child.pid) < before + 0.05:
            time.sleep(0.05)
        usage = sampler.stop()
    finally:
        child.kill()
        child.wait(30)
    assert set(usage) == {"child"}  # not a JVM: no "child" + JIT entry
    assert usage["child"].cpu_percent > 0 and usage["child"].rss_mb > 0
    assert JIT == " JIT"
    sampler = ProcSampler(lambda: {"kafka": [kafka.pid or 0]})
    sampler.start()
    usage = sampler.stop()
    assert set(usage) == {"kafka", "kafka" + JIT}  # a started JVM has compiled: its JIT is split off
