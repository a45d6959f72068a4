"""The single-site coordinator's task snapshot: the task book as JSON lines of `snapshot` events, read back at
start and rewritten (atomically) when the book changed, at most every `period_s` unless forced (at stop)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from swarm_bridge.coordinator.core.events import TaskBook, TaskEvent, decode_event, encode_event
from swarm_bridge.spool.files import replace_file

__all__ = ["StateFile"]


class StateFile:
    """`path` None: no snapshot (state only in memory)."""

    def __init__(self, path: str | Path | None, *, period_s: float) -> None:
        self.path = None if path is None else Path(path).expanduser()
        self.period_ns = period_s * 1e9
        self._last = (0, 0)  # (book changes, monotonic ns) of the last snapshot written or read

    def load(self, book: TaskBook, drop: Callable[[str, str], None]) -> int | None:
        """Fold the file's tasks into `book`; how many changed it (None when there is no file). A damaged line is
        dropped (`drop(reason, detail)`), the rest still loads."""
        if self.path is None or not self.path.is_file():
            return None
        loaded = 0
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                loaded += book.apply(decode_event(line.encode()).task)
            except Exception as exc:  # a damaged line is counted, the rest still loads
                drop("malformed snapshot line", f"{self.path}:{number}: {exc}")
        self._last = (book.changes, time.monotonic_ns())
        return loaded

    def save(self, book: TaskBook, *, force: bool = False) -> None:
        """Rewrite the file if the book changed since the last one and `period_s` has passed (or `force`)."""
        if self.path is None:
            return
        changes, at = self._last
        now = time.monotonic_ns()
        if book.changes == changes or (not force and now - at < self.period_ns):
            return
        replace_file(self.path, lambda out: out.writelines(
            encode_event(TaskEvent("snapshot", task)) + b"\n" for task in book))
        self._last = (book.changes, now)
