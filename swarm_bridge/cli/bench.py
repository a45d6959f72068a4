"""`swarm-bridge bench fleet`: the fleet-scale benchmark (the same as `python bench/fleet_scale.py`)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the `bench` command and its `fleet` benchmark."""
    bench = sub.add_parser("bench", help="benchmarks that start their own brokers")
    kinds = bench.add_subparsers(dest="bench_command", metavar="BENCH", required=True)
    fleet = kinds.add_parser("fleet", help="how many simulated robots one hub holds (gateway + coordinator)",
                             description="Simulated robots -> Mosquitto -> gateway -> Kafka -> coordinator, with "
                             "tasks back down, in steps of fleet size; report, plots and a last JSON line.")
    from swarm_bridge.fleetbench.run import add_arguments

    add_arguments(fleet)
    fleet.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from swarm_bridge.fleetbench.run import run_from_args

    return run_from_args(args)
