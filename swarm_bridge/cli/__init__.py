"""The `swarm-bridge` command: one subcommand per job, each registered by its module."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from swarm_bridge import __version__
from swarm_bridge.cli import bench, broker, coordinator, demo, gateway, keys, replay, schema, smoke
from swarm_bridge.signals import exit_with_parent_if_asked

__all__ = ["main"]

_COMMANDS = (demo, smoke, broker, schema, gateway, replay, coordinator, keys, bench)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line, one subparser per registered command module."""
    parser = argparse.ArgumentParser(
        prog="swarm-bridge",
        description="ROS 2 fleet bridge: ROS topics <-> MQTT <-> Kafka, with the brokers to run it.",
    )
    parser.add_argument("--version", action="version", version=f"swarm-bridge {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; its return value is the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    exit_with_parent_if_asked()
    status: int = args.run(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
