"""TCP port helpers for loopback services: pick a free port, test one, wait for a listener."""

from __future__ import annotations

import errno
import socket
import subprocess
import time

__all__ = ["free_port", "port_in_use", "wait_for_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS considers free on `host` right now (another process may still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_in_use(host: str, port: int) -> bool:
    """True if a server could not bind `host:port` because something else holds it.

    Binds with SO_REUSEADDR like Mosquitto and Java do, so sockets in TIME_WAIT do not count;
    other bind errors (e.g. an address that is not local) return False and surface at start.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if a TCP connection to `host:port` is accepted within `timeout` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> bool:
    """Poll until `host:port` accepts a connection; False on timeout or if `proc` has exited."""
    deadline = time.monotonic() + timeout
    while True:
        if accepts(host, port, timeout=min(0.5, max(0.05, deadline - time.monotonic()))):
            return True
        if (proc is not None and proc.poll() is not None) or time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
