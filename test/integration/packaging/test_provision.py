"""provision/setup: a second run redoes nothing; an unreachable Maven repository is named, no hang."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from swarm_bridge.brokers import free_port
from swarm_bridge.brokers.kafka import KAFKA_VERSION

REPO = Path(__file__).resolve().parents[3]
SETUP = REPO / "provision/setup"


def _provision(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SETUP)], env=env, capture_output=True, text=True, timeout=600)


def test_second_run_redoes_nothing() -> None:
    result = _provision({**os.environ, "SWARM_BRIDGE_VENV": sys.prefix})
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stdout.splitlines() if "ready:" not in line] == [], result.stdout


@pytest.mark.slow
def test_unreachable_maven_is_named(tmp_path: Path) -> None:
    settings = tmp_path / "settings.xml"
    settings.write_text(f"""<settings>
  <localRepository>{tmp_path / "m2"}</localRepository>
  <mirrors><mirror><id>nowhere</id><mirrorOf>*</mirrorOf>
    <url>http://127.0.0.1:{free_port()}/maven2</url></mirror></mirrors>
</settings>""")
    env = {**os.environ, "SWARM_BRIDGE_VENV": sys.prefix, "SWARM_BRIDGE_CACHE": str(tmp_path / "cache"),
           "SWARM_BRIDGE_MAVEN_SETTINGS": str(settings)}
    result = _provision(env)
    assert result.returncode != 0
    assert "ERROR: mvn could not fetch the Kafka jars" in result.stderr
    assert "is Maven Central (or your mirror) reachable?" in result.stderr
    assert not (tmp_path / f"cache/kafka-{KAFKA_VERSION}/libs/.complete").exists()
