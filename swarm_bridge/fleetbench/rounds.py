"""The coordinator's round settings as both benchmarks take them: the same flags, the same config keys."""

from __future__ import annotations

import argparse
from typing import Any, get_args

from swarm_bridge.config.coordinator import RoundPacing

__all__ = ["add_round_options", "round_settings"]


def add_round_options(parser: argparse.ArgumentParser) -> None:
    """`--round-window-ms` and `--round-pacing`: the coordinator's `kafka.round_window_ms` and `kafka.round_pacing`."""
    parser.add_argument("--round-window-ms", type=float, default=None,
                        help="the coordinator's kafka.round_window_ms (default: its own, 10): how long a round reads "
                             "before it decides; each round is one Kafka transaction")
    parser.add_argument("--round-pacing", choices=get_args(RoundPacing), default=None,
                        help="the coordinator's kafka.round_pacing (default: its own, window): commit reads while "
                             "the round before commits and begins an idle round at the first request (lower "
                             "latency, more transactions)")


def round_settings(window_ms: float | None, pacing: str | None) -> dict[str, Any]:
    """The coordinator's `kafka` keys for the options given (none: its own defaults)."""
    chosen = {"round_window_ms": window_ms, "round_pacing": pacing}
    return {key: value for key, value in chosen.items() if value is not None}
