"""The live fleet page: a pure model of what an operator looks at (`model`), fed from the coordinator's own
sources (`kafka_source`, `mqtt_source`; chosen by mode in `live.SOURCES`), served read-only with server-sent
events and plotly.js from the process (`server`). `FleetWeb(config, WebSettings(...)).start()` runs it all."""

from swarm_bridge.fleetweb.errors import FleetWebError, FleetWebSettingError
from swarm_bridge.fleetweb.live import SOURCES, FleetWeb
from swarm_bridge.fleetweb.model import FleetPage, PageLimits
from swarm_bridge.fleetweb.server import FleetWebServer, WebSettings

__all__ = ["SOURCES", "FleetPage", "FleetWeb", "FleetWebError", "FleetWebServer", "FleetWebSettingError",
           "PageLimits", "WebSettings"]
