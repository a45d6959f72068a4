"""Locate a service's executable: an explicit choice must exist, otherwise search in order."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from swarm_bridge.brokers.errors import BrokerError

__all__ = ["find_executable", "find_java"]


def _runnable(candidate: str) -> str | None:
    if os.sep in candidate:
        return candidate if os.path.isfile(candidate) and os.access(candidate, os.X_OK) else None
    return shutil.which(candidate)


def find_executable(
    *, service: str, explicit: str | None, explicit_source: str, search: Sequence[str], fix: str
) -> str:
    """The path to run for `service`.

    `explicit` (from an argument or environment variable named by `explicit_source`) is used as
    is and must be runnable; without it, the first runnable of `search` (names on PATH or paths).
    """
    if explicit:
        found = _runnable(explicit)
        if found is None:
            raise BrokerError(service, f"executable {explicit!r} (from {explicit_source}) not found", fix)
        return found
    for candidate in search:
        found = _runnable(candidate)
        if found is not None:
            return found
    looked = ", ".join(search)
    raise BrokerError(service, f"executable not found (looked for: {looked})", fix)


def find_java(service: str, explicit: str | None) -> str:
    """The java for a JVM broker: `explicit`, else $JAVA_HOME/bin/java, else `java` on PATH."""
    home = os.environ.get("JAVA_HOME")
    return find_executable(
        service=service,
        explicit=explicit,
        explicit_source="the java argument",
        search=([str(Path(home) / "bin" / "java")] if home else []) + ["java"],
        fix="install a JDK 17+ (provision/setup does), or set JAVA_HOME",
    )
