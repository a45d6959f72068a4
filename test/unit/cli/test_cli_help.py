"""`--help` that helps: every option of every `swarm-bridge` command says what it is for."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from swarm_bridge.cli import build_parser


def _commands(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:  # argparse keeps subparsers only here
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, f"{path} {name}")


def test_every_option_of_every_command_has_help() -> None:
    silent = [f"{path} {action.option_strings[-1]}"
              for path, parser in _commands(build_parser(), "swarm-bridge")
              for action in parser._actions
              if action.option_strings and not action.help]
    assert silent == []


def test_the_coordinator_s_and_gateway_s_set_examples_are_their_own_keys() -> None:
    helps = {path: {a.option_strings[-1]: a.help for a in parser._actions if a.option_strings}
             for path, parser in _commands(build_parser(), "swarm-bridge")}
    assert "kafka.bootstrap" in str(helps["swarm-bridge task cancel"]["--set"])
    assert "uplink" not in str(helps["swarm-bridge gateway"]["--set"])
