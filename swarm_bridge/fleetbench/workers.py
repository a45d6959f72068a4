"""The simulator's worker processes: each runs a `SimWorker` over its share of the robots, told over a pipe
when to start sending and when to stop; the parent learns what each robot sent."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import time
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any

from swarm_bridge.fleetbench.errors import BenchError, BenchTimeout
from swarm_bridge.sim.session_fleet import RobotPlan, SimWorker

__all__ = ["WorkerPool"]


def _worker_main(plan: RobotPlan, conn: Connection) -> None:
    logging.basicConfig(level=logging.WARNING)
    try:
        worker = SimWorker(plan)
    except Exception as exc:  # reported to the parent, which fails the step with it
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", len(plan.robots)))
    _go, start, duration = conn.recv()
    sent = worker.run_sends(start, duration)
    conn.send(("sent", sent, worker.summary()))
    while not conn.poll(0):
        worker.serve(0.1)
    conn.recv()
    worker.close()
    conn.send(("closed", worker.summary()))


class WorkerPool:
    """`len(plans)` worker processes (spawned: a clean interpreter each), robots connected when built."""

    def __init__(self, plans: list[RobotPlan], *, timeout_s: float = 120.0) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conns: list[Connection] = []
        self.procs: list[Any] = []
        for plan in plans:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker_main, args=(plan, child), daemon=True)
            proc.start()
            self._conns.append(parent)
            self.procs.append(proc)
        for conn in self._conns:
            reply = self._recv(conn, timeout_s)
            if reply[0] != "ready":
                self.kill()
                raise BenchError("simulated robots", f"a worker failed to start: {reply[1]}",
                                 "fix what the worker reports (its broker port, its robot plan)")

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]

    def _recv(self, conn: Connection, timeout_s: float) -> Any:
        if not conn.poll(timeout_s):
            self.kill()
            raise BenchTimeout("simulated robots", f"a worker did not answer within {timeout_s:g} s",
                               "spread the robots over more workers (--workers) or use a quieter machine")
        return conn.recv()

    def go(self, start: float, duration_s: float) -> None:
        """Every worker starts sending at wall time `start`."""
        for conn in self._conns:
            conn.send(("go", start, duration_s))

    def sent(self, timeout_s: float) -> tuple[Counter[tuple[str, str]], list[dict[str, Any]]]:
        """Wait until every worker stopped sending: records sent per (robot, stream), and each one's stats."""
        total: Counter[tuple[str, str]] = Counter()
        summaries = []
        for conn in self._conns:
            _sent, counts, summary = self._recv(conn, timeout_s)
            total.update(counts)
            summaries.append(summary)
        return total, summaries

    def close(self, timeout_s: float = 30.0) -> list[dict[str, Any]]:
        """Robots say offline and disconnect; each worker's final stats (commands answered after sending)."""
        summaries = []
        for conn in self._conns:
            conn.send(("stop",))
        for conn in self._conns:
            with contextlib.suppress(TimeoutError, EOFError):
                summaries.append(self._recv(conn, timeout_s)[1])
        deadline = time.monotonic() + 10
        for proc in self.procs:
            proc.join(max(0.1, deadline - time.monotonic()))
        self.kill()
        return summaries

    def kill(self) -> None:
        for proc in self.procs:
            if proc.is_alive():
                proc.kill()
                proc.join(5)
