"""CPU and memory of the benchmark's processes, from /proc: each name stands for its processes and their
descendants (a broker's wrapper and its JVM, a CLI and what it execs), except those another name claims. A JVM's
JIT compiling (its C1/C2 compiler threads: a fresh Kafka compiles for minutes) is split off as `<name> JIT`."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["JIT", "ProcSampler", "Usage"]

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Usage:
    """Over a window: CPU in % of one core, and the largest resident memory seen (MB)."""

    cpu_percent: float
    rss_mb: float


def _stat(pid: int) -> tuple[int, float, int] | None:
    """(parent pid, CPU seconds, RSS bytes) of `pid`, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK, int(fields[21]) * _PAGE


_JIT_THREADS = ("C1 CompilerThre", "C2 CompilerThre")  # HotSpot's JIT compiler threads (names cut to 15 chars)
JIT = " JIT"  # suffix of the pseudo-process that holds a JVM's JIT compiling, taken out of its process's CPU


def _jit_seconds(pid: int) -> float:
    """CPU seconds of a JVM's live JIT compiler threads (0 for any other process); a compiler thread that
    exited is no longer counted here, so its time stays with the process."""
    try:
        if Path(f"/proc/{pid}/comm").read_text().strip() != "java":
            return 0.0
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    total = 0.0
    for tid in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        if text[text.index("(") + 1:text.rindex(")")].startswith(_JIT_THREADS):
            fields = text[text.rindex(")") + 2:].split()
            total += (int(fields[11]) + int(fields[12])) / _TICK
    return total


def _tree() -> dict[int, tuple[int, float, int]]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            found = _stat(int(entry))
            if found is not None:
                out[int(entry)] = found
    return out


def _totals(roots: Mapping[str, list[int]]) -> dict[str, tuple[float, int]]:
    """Per name: (CPU seconds, RSS bytes) summed over its pids and their descendants."""
    table = _tree()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _cpu, _rss) in table.items():
        children.setdefault(ppid, []).append(pid)
    claimed = {p for pids in roots.values() for p in pids}
    out = {}
    for name, pids in roots.items():
        seen: set[int] = set()
        todo = [p for p in pids if p in table]
        while todo:
            pid = todo.pop()
            if pid not in seen:
                seen.add(pid)
                todo += [c for c in children.get(pid, []) if c not in claimed]  # another name's process
        jit = sum(_jit_seconds(p) for p in seen)
        out[name] = (sum(table[p][1] for p in seen) - jit, sum(table[p][2] for p in seen))
        if jit:
            out[name + JIT] = (jit, 0)
    return out


class ProcSampler:
    """Samples the named processes every `period_s` in a thread between `start` and `stop`."""

    def __init__(self, roots: Callable[[], Mapping[str, list[int]]], period_s: float = 1.0) -> None:
        self.roots, self.period_s = roots, period_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._first: dict[str, tuple[float, int]] = {}
        self._last: dict[str, tuple[float, int]] = {}
        self._peak: dict[str, int] = {}
        self._t0 = self._t1 = 0.0

    def start(self) -> None:
        import time

        self._stop.clear()
        self._t0 = time.monotonic()
        self._first = _totals(self.roots())
        self._peak = {k: v[1] for k, v in self._first.items()}
        self._thread = threading.Thread(target=self._run, name="procstat", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        import time

        self._last = _totals(self.roots())
        self._t1 = time.monotonic()
        for name, (_cpu, rss) in self._last.items():
            self._peak[name] = max(self._peak.get(name, 0), rss)

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self._sample()

    def stop(self) -> dict[str, Usage]:
        """Stop sampling; per name, the CPU used over the window and the peak RSS."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        wall = max(1e-6, self._t1 - self._t0)
        out = {}
        for name, (cpu, _rss) in self._last.items():
            before = self._first.get(name, (cpu, 0))[0]
            out[name] = Usage(round(100.0 * max(0.0, cpu - before) / wall, 1), round(self._peak[name] / 1e6, 1))
        return out
