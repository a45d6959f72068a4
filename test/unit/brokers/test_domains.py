"""ROS domain leases: two sessions on one machine never share a domain id (they would hear each other's topics)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from swarm_bridge.brokers.domains import FIRST_DOMAIN, LAST_DOMAIN, DomainsExhausted, lease_domain


def test_two_sessions_that_prefer_the_same_domain_get_different_ones(tmp_path: Path) -> None:
    """What `1 + pid % 100` gave two sessions whose pids differ by 100: the same domain, so one session's
    bridge heard the other's /robot/odom publisher (a foreign x=899 before x=768 in the SIGKILL test)."""
    with lease_domain(7, lock_dir=tmp_path) as first, lease_domain(7, lock_dir=tmp_path) as second:
        assert first.domain == 7 and second.domain == 8
    with lease_domain(7, lock_dir=tmp_path) as again:
        assert again.domain == 7  # released with the first session


def test_a_domain_held_by_another_process_is_skipped_and_freed_when_it_is_killed(tmp_path: Path) -> None:
    holder = subprocess.Popen(  # holds its lease until killed: it blocks reading a stdin nobody writes to
        [sys.executable, "-c", "import sys\nfrom pathlib import Path\n"
         "from swarm_bridge.brokers.domains import lease_domain\n"
         f"lease = lease_domain(42, lock_dir=Path({str(tmp_path)!r}))\nprint(lease.domain, flush=True)\n"
         "sys.stdin.read()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "42"
        with lease_domain(42, lock_dir=tmp_path) as lease:
            assert lease.domain == 43
    finally:
        holder.kill()
        holder.wait(30)
    with lease_domain(42, lock_dir=tmp_path) as lease:
        assert lease.domain == 42  # a SIGKILLed holder leaves no stale lock


def test_every_domain_held_is_a_clear_error(tmp_path: Path) -> None:
    leases = [lease_domain(lock_dir=tmp_path) for _ in range(FIRST_DOMAIN, LAST_DOMAIN + 1)]
    try:
        assert sorted(lease.domain for lease in leases) == list(range(FIRST_DOMAIN, LAST_DOMAIN + 1))
        with pytest.raises(DomainsExhausted, match=str(tmp_path)):
            lease_domain(lock_dir=tmp_path)
    finally:
        for lease in leases:
            lease.release()
