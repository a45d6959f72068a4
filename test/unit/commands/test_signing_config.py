"""Signed commands, config and CLI: commands.* keys of the robot bridge config, `swarm-bridge keys`."""

from __future__ import annotations

import io
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from swarm_bridge.cli import main
from swarm_bridge.codec.signing import open_signed
from swarm_bridge.commands import CommandVerifier, Keyring, generate_key_pair
from swarm_bridge.config import ConfigError, RobotBridgeConfig, validate_config

REPO = Path(__file__).resolve().parents[3]


def _config(**commands: Any) -> dict[str, Any]:
    data = yaml.safe_load((REPO / "config" / "robot_bridge.yaml").read_text())
    data["commands"] = commands
    return data


def _problems(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        validate_config(data, RobotBridgeConfig, source="robot.yaml")
    return str(caught.value)


def test_example_config_documents_every_commands_key() -> None:
    text = (REPO / "config" / "robot_bridge.yaml").read_text()
    commands = yaml.safe_load(text)["commands"]
    assert set(commands) == set(RobotBridgeConfig.model_fields["commands"].annotation.model_fields)  # type: ignore[union-attr]
    assert "require_signed: false    # recommended: true" in text


def test_commands_default_allows_unsigned_for_old_configs() -> None:
    data = _config()
    del data["commands"]
    config = validate_config(data, RobotBridgeConfig)
    assert config.commands.require_signed is False and config.commands.key_files() == []
    assert (config.commands.max_age_s, config.commands.max_clock_skew_s) == (300.0, 30.0)
    assert (config.commands.hold_s, config.commands.hold_max) == (10.0, 1000)


def test_trusted_keys_dir_and_list(tmp_path: Path) -> None:
    _, first = generate_key_pair("coord-a", tmp_path / "keys")
    _, second = generate_key_pair("coord-b", tmp_path / "keys")
    by_dir = validate_config(_config(trusted_keys=str(tmp_path / "keys"), require_signed=True), RobotBridgeConfig)
    assert by_dir.commands.key_files() == [first, second]  # private <id>.pem files are not keys to trust
    by_list = validate_config(_config(trusted_keys=[str(second)], require_signed=True), RobotBridgeConfig)
    assert list(Keyring.from_files(by_list.commands.key_files()).keys) == ["coord-b"]


@pytest.mark.parametrize(("commands", "expected"), [
    ({"require_signed": True}, "commands: require_signed needs trusted_keys"),
    ({"trusted_keys": "/nonexistent/keys"}, "commands.trusted_keys: no such directory: /nonexistent/keys"),
    ({"trusted_keys": ["/nonexistent/k.pub.pem"]}, "commands.trusted_keys: no such file: /nonexistent/k.pub.pem"),
    ({"trusted_keys": []}, "commands.trusted_keys: empty list"),
    ({"max_age_s": 0}, "commands.max_age_s: Input should be greater than 0"),
    ({"max_clock_skew_s": -1}, "commands.max_clock_skew_s: Input should be greater than or equal to 0"),
    ({"hold_s": -1}, "commands.hold_s: Input should be greater than or equal to 0"),
    ({"hold_max": 0}, "commands.hold_max: Input should be greater than or equal to 1"),
    ({"require_signd": True}, "unknown key 'require_signd' (did you mean 'require_signed'?)"),
])
def test_bad_commands_config_is_named(commands: dict[str, Any], expected: str) -> None:
    assert expected in _problems(_config(**commands))


def test_empty_key_dir_and_misnamed_file(tmp_path: Path) -> None:
    assert "no <key_id>.pub.pem files in" in _problems(_config(trusted_keys=str(tmp_path)))
    private, _ = generate_key_pair("coord-a", tmp_path / "keys")
    assert "is named <key_id>.pub.pem" in _problems(_config(trusted_keys=[str(private)]))


def test_cli_generate_sign_verify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "generate", "--key-id", "coord-2026a", "--out", str(tmp_path / "keys")]) == 0
    private, public = tmp_path / "keys" / "coord-2026a.pem", tmp_path / "keys" / "coord-2026a.pub.pem"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600 and public.is_file()
    out = capsys.readouterr().out
    assert str(public) in out and "BEGIN" not in out
    assert main(["keys", "generate", "--key-id", "coord-2026a", "--out", str(tmp_path / "keys")]) == 2
    assert "already exists" in capsys.readouterr().err

    stdout = io.BytesIO()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b'{"robot_id": "amr_042"}')))
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(stdout))
    assert main(["keys", "sign", "--key", str(private)]) == 0
    signed = stdout.getvalue()
    assert open_signed(signed).key_id == "coord-2026a"
    assert CommandVerifier(Keyring.from_files([public]), required=True).verify(signed) == (
        None, b'{"robot_id": "amr_042"}')

    for payload, status in ((signed, 0), (signed[:-1] + b"!", 1)):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(payload)))
        monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.BytesIO()))
        assert main(["keys", "verify", "--trusted-keys", str(tmp_path / "keys")]) == status
    assert "refused (bad signature)" in capsys.readouterr().err


def test_cli_sign_with_a_bad_key_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "coord.pem"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nTOPSECRETMATERIAL\n-----END PRIVATE KEY-----\n")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"{}")))
    assert main(["keys", "sign", "--key", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "Fix:" in err and "TOPSECRETMATERIAL" not in err
