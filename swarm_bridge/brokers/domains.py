"""A ROS_DOMAIN_ID no other process on this machine holds, for test sessions and benchmarks side by side.

ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST still joins every local process of one domain: two sessions that pick
the same id (e.g. `1 + pid % 100`, one in a hundred) hear each other's topics. A lease is an exclusive `flock`
on one file per domain id; the kernel drops it when the holder exits, even by SIGKILL, so no lock goes stale.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path
from typing import IO

from swarm_bridge.errors import SwarmBridgeError

__all__ = ["FIRST_DOMAIN", "LAST_DOMAIN", "DomainLease", "DomainsExhausted", "lease_domain"]

FIRST_DOMAIN, LAST_DOMAIN = 1, 101  # 0 is everyone's default; Fast DDS on Linux: above 101 meets ephemeral ports
LOCK_DIR = Path(tempfile.gettempdir()) / "swarm_bridge-ros-domains"


class DomainsExhausted(SwarmBridgeError, RuntimeError):
    """Every domain id of the range is leased by a live process on this machine."""


class DomainLease:
    """One domain id held by this process until `release` (or exit)."""

    def __init__(self, domain: int, lock: IO[str]) -> None:
        self.domain = domain
        self._lock: IO[str] | None = lock

    def release(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file drops the flock
            self._lock = None

    def __enter__(self) -> DomainLease:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


def lease_domain(preferred: int | None = None, *, lock_dir: Path = LOCK_DIR) -> DomainLease:
    """The first free domain id from `preferred` on (default: from this pid), wrapping around the range;
    `DomainsExhausted` names the lock folder when every id is held."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    count = LAST_DOMAIN - FIRST_DOMAIN + 1
    start = (os.getpid() if preferred is None else preferred - FIRST_DOMAIN) % count
    for step in range(count):
        domain = FIRST_DOMAIN + (start + step) % count
        lock = open(lock_dir / f"{domain}.lock", "a")  # noqa: SIM115 -- held open for the lease's lifetime
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        return DomainLease(domain, lock)
    raise DomainsExhausted(f"every ROS domain id {FIRST_DOMAIN}..{LAST_DOMAIN} is leased by a running process "
                           f"(locks in {lock_dir}); stop some test sessions or benchmarks and try again")
