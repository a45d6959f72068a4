"""A detached service process with a log file and a pidfile in a run directory: the one way the project
starts a child (broker, gateway, coordinator) and waits until its log says it is ready.

`ServiceProcess` spawns and stops a process this Python process owns; `service_status` and
`stop_service` work from the pidfile alone, so another process (the CLI) can stop it later.
Files: `<run_dir>/<name>.log` (appended, one marker line per start) and `<run_dir>/<name>.pid`.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from swarm_bridge.brokers.errors import BrokerError

__all__ = ["ServiceProcess", "ServiceStatus", "at_once", "service_status", "stop_service"]

_Item = TypeVar("_Item")

_TAIL_LINES = 40
_KILL_WAIT_S = 5.0


@dataclass(frozen=True)
class ServiceStatus:
    """Whether the service recorded in a run directory is running, and its pid if so."""

    name: str
    pid: int | None

    @property
    def running(self) -> bool:
        """True if the pidfile names a live process started from this run directory."""
        return self.pid is not None

    def __str__(self) -> str:
        return f"{self.name}: running (pid {self.pid})" if self.running else f"{self.name}: stopped"


def _pid_path(run_dir: Path, name: str) -> Path:
    return run_dir / f"{name}.pid"


def _alive(pid: int) -> bool:
    """True if `pid` exists and is not a zombie (reaps it first if it is our child)."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


_EMPTY_ARGV_TRIES = 50  # x 10 ms: how long an empty /proc/<pid>/cmdline is read again


def _started_from(pid: int, run_dir: Path) -> bool:
    """True unless /proc shows `pid` is some other program (pid reuse): its argv must name run_dir. An empty argv is
    read again for a moment: a process just spawned has none until its exec has laid out the new one (Popen returns
    before that; seen on a busy machine)."""
    for _ in range(_EMPTY_ARGV_TRIES):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return True
        if cmdline:
            return os.fsencode(str(run_dir)) in cmdline
        time.sleep(0.01)
    return False


def _signal(pid: int, sig: int) -> None:
    """Send `sig` to the process group `pid` leads (its own session), or to `pid` alone."""
    with contextlib.suppress(ProcessLookupError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def refuse_if_running(run_dir: Path, name: str) -> None:
    """Raise BrokerError when the pidfile in `run_dir` names a live `name` process."""
    status = service_status(run_dir, name)
    if status.running:
        raise BrokerError(
            name,
            f"cannot start: already running (pid {status.pid}) from {run_dir}",
            f"stop it first (swarm-bridge broker stop {name} --run-dir {run_dir}) or use another run directory",
        )


def service_status(run_dir: Path, name: str) -> ServiceStatus:
    """The status of service `name` from `<run_dir>/<name>.pid`."""
    run_dir = Path(run_dir).resolve()
    pid = _read_pid(_pid_path(run_dir, name))
    if pid is not None and _alive(pid) and _started_from(pid, run_dir):
        return ServiceStatus(name, pid)
    return ServiceStatus(name, None)


def stop_service(run_dir: Path, name: str, timeout: float = 30.0) -> ServiceStatus:
    """Stop service `name` from its pidfile (SIGTERM, then SIGKILL after `timeout` s).

    Returns the status it had before; the pidfile is removed, stale or not.
    """
    run_dir = Path(run_dir).resolve()
    before = service_status(run_dir, name)
    if before.pid is not None:
        _signal(before.pid, signal.SIGTERM)
        if not _wait_gone(before.pid, timeout):
            _signal(before.pid, signal.SIGKILL)
            if not _wait_gone(before.pid, _KILL_WAIT_S):
                raise BrokerError(
                    name, f"pid {before.pid} survived SIGKILL", "check for a stuck process (ps -p PID)"
                )
    _pid_path(run_dir, name).unlink(missing_ok=True)
    return before


class ServiceProcess:
    """One run of a service: spawn detached (own session), log to a file, probe, stop."""

    def __init__(
        self, *, name: str, run_dir: Path, argv: Sequence[str], env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        """`cwd`: where the process runs (default `run_dir`; pass `Path.cwd()` for argv with relative paths)."""
        self.name = name
        self.run_dir = Path(run_dir).resolve()
        self.cwd = Path(cwd) if cwd is not None else self.run_dir
        self.argv = tuple(argv)
        self.env = dict(env) if env is not None else None
        self.log_path = self.run_dir / f"{name}.log"
        self.pid_path = _pid_path(self.run_dir, name)
        self._popen: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @property
    def pid(self) -> int | None:
        """The pid of the spawned process, or None before `start()`."""
        return self._popen.pid if self._popen is not None else None

    @property
    def running(self) -> bool:
        """True while the spawned process has not exited."""
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit status once the process has ended, else None."""
        return self._popen.poll() if self._popen is not None else None

    def start(self) -> None:
        """Spawn the process; refuse if the pidfile names one still running."""
        refuse_if_running(self.run_dir, self.name)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._log_offset = log.tell()
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"=== swarm_bridge {stamp}: {shlex.join(self.argv)}\n".encode())
            log.flush()
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                env=self.env,
                start_new_session=True,
            )
        self.pid_path.write_text(f"{self._popen.pid}\n")

    def log_text(self) -> str:
        """What this run has written to the log so far."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_offset)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = _TAIL_LINES) -> str:
        """The last `lines` lines this run has logged."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    def wait_ready(self, check: Callable[[], bool], timeout: float, *, poll_s: float = 0.1) -> float:
        """Poll `check` until it returns True; return the seconds it took.

        Raises BrokerError (with the log tail) if the process exits first or `timeout` passes;
        `check` should itself return within a second or so.
        """
        if self._popen is None:
            raise BrokerError(self.name, "wait_ready() called before start()", "call start() first")
        started = time.monotonic()
        while True:
            code = self._popen.poll()
            if code is not None:
                how = f"with status {code}" if code >= 0 else f"on signal {-code}"
                raise BrokerError(
                    self.name,
                    f"exited during startup {how}",
                    f"read the log tail below (full log: {self.log_path})",
                    self.log_tail(),
                )
            if check():
                return time.monotonic() - started
            if time.monotonic() - started >= timeout:
                raise BrokerError(
                    self.name,
                    f"not ready after {timeout:.0f} s",
                    f"read the log tail below (full log: {self.log_path}); on a slow machine "
                    "allow a longer ready timeout",
                    self.log_tail(),
                )
            time.sleep(poll_s)

    def wait_for_line(self, text: str, timeout: float) -> float:
        """Wait until this run's log, after the marker line naming argv, contains `text` (its ready line); as
        `wait_ready`."""
        return self.wait_ready(lambda: text in self.log_text().partition("\n")[2], timeout, poll_s=0.2)

    def kill(self) -> None:
        """SIGKILL at once, as a crash (nothing flushed, no clean shutdown); reap it and remove the pidfile.
        Idempotent; `start()` may follow (same argv, same files)."""
        popen = self._popen
        if popen is None:
            return
        if popen.poll() is None:
            _signal(popen.pid, signal.SIGKILL)
            popen.wait(_KILL_WAIT_S)
        if _read_pid(self.pid_path) == popen.pid:
            self.pid_path.unlink(missing_ok=True)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `timeout` s; reap it and remove the pidfile. Idempotent."""
        popen = self._popen
        if popen is None:
            return
        if popen.poll() is None:
            _signal(popen.pid, signal.SIGTERM)
            try:
                popen.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal(popen.pid, signal.SIGKILL)
                popen.wait(_KILL_WAIT_S)
        if _read_pid(self.pid_path) == popen.pid:
            self.pid_path.unlink(missing_ok=True)


def at_once(items: Sequence[_Item], action: Callable[[_Item], None]) -> list[BaseException]:
    """`action(item)` for every item in a thread of its own, all at once (a cluster's nodes start and stop
    together: one by one, the last would wait for a quorum already gone); the errors raised."""
    errors: list[BaseException] = []

    def run(item: _Item) -> None:
        try:
            action(item)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(item,), name="broker-at-once", daemon=True) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors
