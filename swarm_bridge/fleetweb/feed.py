"""The live page state shared by a source's thread and the web server: the pure `FleetPage` behind a lock, and its
latest snapshot as JSON text, made once per period however many pages are open."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from swarm_bridge.fleetweb.model import FleetPage

__all__ = ["PageFeed"]

T = TypeVar("T")


class PageFeed:
    """`apply(fn)` folds input into the page under the lock (any thread); `render()` makes the snapshot text."""

    def __init__(self, page: FleetPage) -> None:
        self.page = page
        self._lock = threading.Lock()
        self.version = 0
        self.text = "{}"

    def apply(self, change: Callable[..., T], *args: Any) -> T:
        """Run `change(page, *args)` while no one else reads or writes the page."""
        with self._lock:
            return change(self.page, *args)

    def render(self, now_ns: int | None = None) -> str:
        """Take a new snapshot (JSON text, kept in `text`) and count it in `version`."""
        with self._lock:
            doc = self.page.snapshot(time.time_ns() if now_ns is None else now_ns)
        self.text = json.dumps(doc, separators=(",", ":"), allow_nan=False)
        self.version += 1
        return self.text
