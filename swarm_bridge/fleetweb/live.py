"""The fleet page of one coordinator config: its source (by the config's mode, from `SOURCES`) feeding the page,
and the web server showing it; what `fleet web`, `coordinator --web` and `demo --web` start."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from swarm_bridge.config.coordinator import CoordinatorConfig
from swarm_bridge.fleetweb.feed import PageFeed
from swarm_bridge.fleetweb.kafka_source import KafkaSource
from swarm_bridge.fleetweb.model import FleetPage, PageLimits
from swarm_bridge.fleetweb.mqtt_source import MqttSource
from swarm_bridge.fleetweb.server import FleetWebServer, WebSettings

__all__ = ["SOURCES", "FleetWeb", "Source"]

log = logging.getLogger(__name__)


class Source(Protocol):
    """Where the page's records come from: `start()` (FleetWebError when unreachable), `refresh()`, `close()`."""

    def start(self) -> Source: ...

    def refresh(self) -> None: ...

    def close(self) -> None: ...


SOURCES: dict[str, Callable[[CoordinatorConfig, PageFeed], Source]] = {
    "kafka": KafkaSource,
    "mqtt": MqttSource,
}
"""Coordinator mode -> the page's source in that mode (the same topics the coordinator reads); a mode adds a row."""


class FleetWeb:
    """The page of the fleet a coordinator config names: `start()` reads its source and serves; `stop()`."""

    def __init__(self, config: CoordinatorConfig, settings: WebSettings | None = None, *,
                 limits: PageLimits | None = None) -> None:
        self.config = config
        page = FleetPage(fleet=config.fleet, stale_after_ns=int(config.tasks.robot_offline_after_s * 1e9),
                         limits=limits)
        self.feed = PageFeed(page)
        self.source = SOURCES[config.mode](config, self.feed)
        self.server = FleetWebServer(self.feed, settings, refresh=self.source.refresh)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> FleetWeb:
        """Read the source, then listen; the source is closed again if the server cannot listen."""
        self.source.start()
        try:
            self.server.start()
        except BaseException:
            self.source.close()
            raise
        return self

    def stop(self) -> None:
        self.server.stop()
        self.source.close()

    def __enter__(self) -> FleetWeb:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
