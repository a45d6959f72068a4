"""The lifecycle every local broker shares: check ports, write config, spawn, wait ready, stop."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import ClassVar, TypeVar

from swarm_bridge.brokers.errors import BrokerError
from swarm_bridge.brokers.ports import port_in_use
from swarm_bridge.brokers.process import ServiceProcess, refuse_if_running

__all__ = ["BrokerService"]

_S = TypeVar("_S", bound="BrokerService")


class BrokerService(ABC):
    """A broker on loopback ports with its config, data and log under `run_dir`.

    Subclasses say which ports they listen on, how to prepare their command line and how
    to probe readiness; this class runs the rest. Use as a context manager or start()/stop().
    """

    name: ClassVar[str]
    ready_timeout: float
    stop_timeout: float

    def __init__(self, *, run_dir: Path, host: str) -> None:
        self.run_dir = Path(run_dir).resolve()
        self.host = host
        self.ready_seconds: float | None = None
        self._process: ServiceProcess | None = None

    @property
    @abstractmethod
    def address(self) -> str:
        """Where clients connect (an MQTT URL, a Kafka bootstrap string)."""

    @abstractmethod
    def _ports(self) -> Mapping[str, int]:
        """The ports to listen on, keyed by what chooses each: its `swarm-bridge broker start` option, else the
        constructor argument (named in the fix of a taken port)."""

    @abstractmethod
    def _prepare(self) -> list[str]:
        """Find executables, write config files, initialise storage; return the command line."""

    @abstractmethod
    def _ready(self) -> bool:
        """One quick readiness probe (returns within a few seconds)."""

    @property
    def log_path(self) -> Path:
        """The service log: everything the broker writes, one marker line per start."""
        return self.run_dir / f"{self.name}.log"

    @property
    def pid(self) -> int | None:
        """The pid of the process started by this object, or None before `start()`."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        """True while the process started by this object is alive."""
        return self._process is not None and self._process.running

    def log_tail(self, lines: int = 40) -> str:
        """The last lines logged by the current (or last) run."""
        return self._process.log_tail(lines) if self._process is not None else ""

    def start(self) -> None:
        """Start the broker and return once it is ready; a no-op if already running."""
        if self.running:
            return
        refuse_if_running(self.run_dir, self.name)  # before the port check: the better message
        self.check_ports()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        process = ServiceProcess(name=self.name, run_dir=self.run_dir, argv=self._prepare())
        process.start()
        self._process = process
        try:
            self.ready_seconds = process.wait_ready(self._ready, self.ready_timeout)
        except BaseException:
            process.stop(self.stop_timeout)
            raise

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after `stop_timeout`); idempotent."""
        if self._process is not None:
            self._process.stop(self.stop_timeout)

    def kill(self) -> None:
        """SIGKILL the broker, as a crash or a power cut would end it (fault tests); `start()` again on the same
        `run_dir` brings it back with the data it had written. Idempotent."""
        if self._process is not None:
            self._process.kill()

    def check_ports(self) -> None:
        """BrokerError naming the port and the option that chooses it when a port is taken (or two are the same)."""
        ports = self._ports()
        if len(set(ports.values())) != len(ports):
            raise BrokerError(
                self.name, f"cannot start: ports must differ (got {dict(ports)})", "choose distinct ports"
            )
        for option, port in ports.items():
            if port_in_use(self.host, port):
                raise BrokerError(
                    self.name,
                    f"cannot start: port {port} on {self.host} is already in use",
                    f"stop what uses it or choose another port ({option})",
                )

    def __enter__(self: _S) -> _S:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.address}, run_dir={str(self.run_dir)!r})"
