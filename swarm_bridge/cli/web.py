"""The fleet page's options, shared by `fleet web`, `coordinator --web` and `demo --web`, and the page started
beside a running coordinator."""

from __future__ import annotations

import argparse
import logging
import os
import threading
import time
from typing import Any

__all__ = ["TOKEN_ENV", "add_web_options", "page_beside", "web_settings"]

log = logging.getLogger(__name__)

TOKEN_ENV = "SWARM_BRIDGE_WEB_TOKEN"


def add_web_options(parser: argparse.ArgumentParser, *, port_flag: str, default_port: int | None) -> None:
    """`port_flag` (the page's port; 0: any free one), --web-host, --token, --tls-cert, --tls-key."""
    parser.add_argument(port_flag, type=int, default=default_port, metavar="PORT",
                        help="serve the live fleet page (read-only) on this port; 0: any free port"
                        + (f" (default {default_port})" if default_port is not None else ""))
    parser.add_argument("--web-host", default="127.0.0.1",
                        help="address the page listens on (default 127.0.0.1; any other needs a token, made up "
                        "and printed when not given)")
    parser.add_argument("--token", default=None,
                        help=f"the page's token (?token=... or the X-Fleet-Token header); default ${TOKEN_ENV}")
    parser.add_argument("--tls-cert", default=None, help="serve https with this PEM certificate chain")
    parser.add_argument("--tls-key", default=None, help="the private key of --tls-cert")


def web_settings(args: argparse.Namespace, port: int) -> Any:
    """The page's settings from the options (FleetWebSettingError for a combination that cannot work)."""
    from swarm_bridge.fleetweb import WebSettings

    return WebSettings(host=args.web_host, port=port, token=args.token or os.environ.get(TOKEN_ENV) or None,
                       tls_cert=args.tls_cert, tls_key=args.tls_key).checked()


def page_beside(config: Any, settings: Any, stop: threading.Event, *, wait_s: float = 120.0) -> threading.Thread:
    """Serve the page of the coordinator `config` in a thread until `stop`: its source is tried again until
    `wait_s` (a Kafka coordinator creates its topics as it starts); a page that cannot start is logged."""
    from swarm_bridge.fleetweb import FleetWeb, FleetWebError, FleetWebSettingError

    def serve() -> None:
        deadline = time.monotonic() + wait_s
        while not stop.is_set():
            web = FleetWeb(config, settings)
            try:
                web.start()
            except FleetWebSettingError as exc:
                log.error("%s", exc)
                return
            except FleetWebError as exc:
                if time.monotonic() > deadline:
                    log.error("%s; the coordinator runs on without its page", exc)
                    return
                stop.wait(1.0)
                continue
            print(f"fleet page: {web.url}", flush=True)
            try:
                stop.wait()
            finally:
                web.stop()
            return

    thread = threading.Thread(target=serve, name="fleet-page", daemon=True)
    thread.start()
    return thread
