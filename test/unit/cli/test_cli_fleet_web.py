"""`fleet web`, `coordinator --web` and `demo --web` take the same page options; every coordinator mode has a
source for the page; options that cannot work stop the command before anything starts (exit 2)."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest

from swarm_bridge.cli import build_parser, main
from swarm_bridge.config import CoordinatorConfig
from swarm_bridge.fleetweb import SOURCES


def test_every_mode_the_config_takes_has_a_page_source() -> None:
    assert set(SOURCES) == set(get_args(CoordinatorConfig.model_fields["mode"].annotation))


def test_the_page_options_of_the_three_commands() -> None:
    parser = build_parser()
    web = parser.parse_args(["fleet", "web", "--config", "c.yaml"])
    assert (web.port, web.web_host, web.token, web.tls_cert) == (8080, "127.0.0.1", None, None)
    run = parser.parse_args(["coordinator", "--config", "c.yaml", "--web", "0", "--web-host", "0.0.0.0",
                             "--token", "t" * 16])
    assert (run.web, run.web_host, run.token) == (0, "0.0.0.0", "t" * 16)
    assert parser.parse_args(["coordinator", "--config", "c.yaml"]).web is None
    demo = parser.parse_args(["demo", "--web", "8081", "--tls-cert", "c.pem", "--tls-key", "k.pem"])
    assert (demo.web, demo.tls_cert, demo.tls_key) == (8081, "c.pem", "k.pem")


def test_options_that_cannot_work_exit_2_with_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "site.yaml"
    config.write_text("fleet: f\nmode: mqtt\nmqtt: {port: 1}\ncapabilities: {amr: [navigate]}\n")
    assert main(["fleet", "web", "--config", str(config), "--token", "short"]) == 2
    assert "--token must have at least 16 characters" in capsys.readouterr().err
    assert main(["coordinator", "--config", str(config), "--web", "0", "--tls-cert", "c.pem"]) == 2
    assert "give --tls-cert and --tls-key together" in capsys.readouterr().err
