"""The coordinator's config: the example file loads; mistakes are named by file, key and fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from swarm_bridge.cli import main as cli_main
from swarm_bridge.config import ConfigError, CoordinatorConfig, load_config

REPO = Path(__file__).resolve().parents[3]


def test_example_config_loads_with_every_section() -> None:
    config = load_config(REPO / "config" / "coordinator.yaml", CoordinatorConfig)
    assert config.shards == 12 and config.kafka.group == "swarm-coordinator"
    assert config.kinds == {"navigate", "pick", "charge", "fly", "inspect", "place"}
    assert config.topics.commands == "fleet.command.task_command" and config.policy.name == "cost"
    assert config.kafka.round_window_ms == 10.0  # each round is one transaction: Kafka's cost against latency
    assert config.kafka.round_pacing == "window"  # fewest transactions: the 2-core hub's choice


def write(tmp_path: Path, **changes: object) -> Path:
    data = yaml.safe_load((REPO / "config" / "coordinator.yaml").read_text())
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = data
        for key in parents:
            node = node[key]
        node[leaf] = value
    path = tmp_path / "coordinator.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(("changes", "message"), [
    ({"shards": 0}, "shards: Input should be greater than or equal to 1 (got 0)"),
    ({"policy__max_queu": 3}, "policy: unknown key 'max_queu' (did you mean 'max_queue'?)"),
    ({"policy__name": "cheapest"}, "policy.name: Input should be 'cost' or 'nearest'"),
    ({"topics__status": "fleet.tasks.submit"}, "each topic needs its own name; used twice: fleet.tasks.submit"),
    ({"capabilities__drone": []}, "capabilities.drone: list at least one capability"),
    ({"kafka__bootstrap": "10.0.0.1:9092,10.0.0.2:9092"}, "give kafka.port (with kafka.host) for one broker, or "
                                                          "kafka.bootstrap (host:port,host:port)"),
    ({"kafka__round_window_ms": 0}, "kafka.round_window_ms: Input should be greater than 0 (got 0)"),
    ({"kafka__round_pacing": "commits"}, "kafka.round_pacing: Input should be 'window' or 'commit'"),
    ({"kafka__port": None}, "give kafka.port (with kafka.host) for one broker, or kafka.bootstrap"),
    ({"kafka__port": None, "kafka__bootstrap": "10.0.0.1:9092, 10.0.0.2:9092"},
     "kafka.bootstrap: must be host:port, or several separated by commas, with no spaces"),
])
def test_mistakes_name_file_key_and_fix(tmp_path: Path, changes: dict[str, object], message: str) -> None:
    path = write(tmp_path, **changes)
    with pytest.raises(ConfigError) as info:
        load_config(path, CoordinatorConfig)
    assert f"{path}: " in str(info.value) and message in str(info.value)


def test_a_cluster_is_named_by_its_brokers(tmp_path: Path) -> None:
    """kafka.bootstrap in place of host/port: every Kafka client of the coordinator gets all the brokers."""
    config = load_config(write(tmp_path, kafka__port=None, kafka__bootstrap="10.0.0.1:9092,10.0.0.2:9093"),
                         CoordinatorConfig)
    assert config.kafka.servers == "10.0.0.1:9092,10.0.0.2:9093"
    assert config.kafka.client_settings()["bootstrap.servers"] == "10.0.0.1:9092,10.0.0.2:9093"
    one = load_config(write(tmp_path, kafka__host="kafka.local", kafka__port=19092), CoordinatorConfig)
    assert one.kafka.servers == "kafka.local:19092"


def test_cli_exits_2_on_a_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, kafka__prot=9092)
    assert cli_main(["coordinator", "--config", str(path)]) == 2
    assert "kafka: unknown key 'prot' (did you mean 'port'?)" in capsys.readouterr().err
