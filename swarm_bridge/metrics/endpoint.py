"""The /metrics endpoint every swarm_bridge process serves its own registry on."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

from swarm_bridge.errors import SwarmBridgeError

__all__ = ["MetricsEndpoint", "MetricsPortError"]


class MetricsPortError(SwarmBridgeError, OSError):
    """The /metrics endpoint cannot listen on the address and port asked for; names them and the fix."""


class MetricsEndpoint:
    """A registry of one process's metrics (never the global one) and, once `serve`d, its HTTP endpoint."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._server: Any = None

    def serve(self, port: int, *, address: str = "127.0.0.1") -> int:
        """Expose /metrics on `address:port` (0 = a free port) in a daemon thread; returns the port."""
        try:
            server, _thread = start_http_server(port, addr=address, registry=self.registry)
        except OSError as exc:
            raise MetricsPortError(f"metrics: cannot listen on {address}:{port} ({exc.strerror}). "
                                   "Fix: choose another metrics_port, or stop what holds that port") from None
        self._server = server
        bound: int = server.server_address[1]
        return bound

    def close(self) -> None:
        """Stop the endpoint, if serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None
