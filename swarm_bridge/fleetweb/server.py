"""The fleet page's web server (aiohttp, server-sent events by aiohttp-sse), read-only: the page, its script and
plotly.js served by the process (nothing fetched from the internet), `/api/fleet` (the snapshot as JSON) and
`/events` (a snapshot per period). It runs its own event loop in a thread, so any process can serve the page.

Memory stays bounded however long pages stay open: one snapshot text is made per period and shared by every
client; a client is sent the latest one only (a slow one skips the ones it missed), a client that cannot take a
send within `send_timeout_s` is dropped, and at most `max_clients` streams are open at once.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import secrets
import ssl
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from aiohttp import web
from aiohttp_sse import EventSourceResponse

from swarm_bridge.fleetweb.errors import FleetWebSettingError
from swarm_bridge.fleetweb.feed import PageFeed

__all__ = ["FleetWebServer", "WebSettings", "exposed", "plotly_js", "tls_server_context"]

log = logging.getLogger(__name__)

TOKEN_HEADER = "X-Fleet-Token"
# The page and its scripts come from this process only: no other origin can be loaded, framed or posted to.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "connect-src 'self'; frame-ancestors 'none'; form-action 'none'; base-uri 'none'")
STATIC = {"page.js": "text/javascript", "page.css": "text/css"}


@dataclass(frozen=True)
class WebSettings:
    """Where and how the page is served: address, token (required off loopback), TLS, pace and limits."""

    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    period_s: float = 1.0
    max_clients: int = 200
    send_timeout_s: float = 10.0

    def checked(self) -> WebSettings:
        """These settings made safe to serve: a token made up when the page is exposed beyond loopback without one;
        FleetWebSettingError for a value that cannot work."""
        problems = [f"{name} must be > 0 (got {value})" for name, value in (
            ("period_s", self.period_s), ("max_clients", self.max_clients), ("send_timeout_s", self.send_timeout_s))
            if value <= 0]
        if not 0 <= self.port <= 65535:
            problems.append(f"the page's port must be 0..65535 (got {self.port})")
        if (self.tls_cert is None) != (self.tls_key is None):
            problems.append("give --tls-cert and --tls-key together (the server's certificate chain and its key)")
        if self.token is not None and len(self.token) < 16:
            problems.append("--token must have at least 16 characters (or leave it out: one is made up when the "
                            "page is exposed)")
        if problems:
            raise FleetWebSettingError("fleet page: " + "; ".join(problems))
        if self.token is None and exposed(self.host):
            return WebSettings(**{**self.__dict__, "token": secrets.token_urlsafe(24)})
        return self


def exposed(host: str) -> bool:
    """Whether `host` serves beyond this machine (anything but a loopback address or `localhost`)."""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # a name: it may resolve to anything


def tls_server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server TLS context from a certificate chain and its key; FleetWebSettingError naming the files."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise FleetWebSettingError(f"fleet page: --tls-cert {cert_file} / --tls-key {key_file}: {exc}; give a PEM "
                                   "certificate chain and its private key") from None
    return context


@cache
def plotly_js() -> bytes:
    """plotly.js as the plotly wheel ships it (read once)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().encode("utf-8")


def _static(name: str) -> bytes:
    return resources.files("swarm_bridge.fleetweb").joinpath("static", name).read_bytes()


class FleetWebServer:
    """Serves the page of `feed` on `settings`; `start()` returns once it listens (`url`), `stop()` ends it."""

    def __init__(self, feed: PageFeed, settings: WebSettings | None = None, *,
                 refresh: Callable[[], None] | None = None) -> None:
        self.feed, self.settings = feed, (settings or WebSettings()).checked()
        self.refresh = refresh
        self.port = 0
        self.clients = 0
        self.closed: Counter[str] = Counter()  # streams that ended, by why
        self.sent = 0
        self._tls = (None if self.settings.tls_cert is None or self.settings.tls_key is None
                     else tls_server_context(self.settings.tls_cert, self.settings.tls_key))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failed: BaseException | None = None
        self._runner: web.AppRunner | None = None
        self._tick: asyncio.Event | None = None
        self._stopping: asyncio.Event | None = None

    @property
    def url(self) -> str:
        """The page's address, with its token when it has one."""
        scheme = "https" if self._tls else "http"
        host = f"[{self.settings.host}]" if ":" in self.settings.host else self.settings.host
        query = f"?token={self.settings.token}" if self.settings.token else ""
        return f"{scheme}://{host}:{self.port}/{query}"

    def start(self, timeout_s: float = 30.0) -> FleetWebServer:
        """Listen and serve in a thread; FleetWebSettingError when the address cannot be bound."""
        self._thread = threading.Thread(target=self._serve, name="fleet-web", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise FleetWebSettingError(f"fleet page: did not start listening on {self.settings.host}:"
                                       f"{self.settings.port} within {timeout_s:g} s")
        if self._failed is not None:
            raise FleetWebSettingError(f"fleet page: cannot listen on {self.settings.host}:{self.settings.port}: "
                                       f"{self._failed}; choose another port (--port of fleet web, --web PORT "
                                       "elsewhere; 0: any free one) or --web-host")
        log.info("fleet page on %s", self.url)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Close every stream and stop listening; safe to call twice."""
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stopping.set)
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def stats(self) -> dict[str, Any]:
        """Open streams, snapshots sent, streams closed by why."""
        return {"clients": self.clients, "sent": self.sent, "closed": dict(self.closed), "version": self.feed.version}

    # -- the event loop thread -------------------------------------------------------------------------

    def _serve(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # reported by start(); the thread ends
            self._failed = exc
            self._ready.set()
        finally:
            loop.close()

    async def _main(self) -> None:
        self._tick, self._stopping = asyncio.Event(), asyncio.Event()
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/", self._index)
        app.router.add_get("/static/plotly.min.js", self._plotly)
        app.router.add_get("/static/{name}", self._asset)
        app.router.add_get("/api/fleet", self._fleet)
        app.router.add_get("/events", self._events)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port, ssl_context=self._tls)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self.settings.port
        self.feed.render()
        self._ready.set()
        ticker = asyncio.create_task(self._ticker())
        try:
            await self._stopping.wait()
        finally:
            ticker.cancel()
            self._tick.set()  # wake every stream, which then sees the stop
            await self._runner.cleanup()

    async def _ticker(self) -> None:
        """One snapshot per period, then every stream is woken to send it."""
        assert self._tick is not None
        while True:
            await asyncio.sleep(self.settings.period_s)
            try:
                if self.refresh is not None:
                    self.refresh()
                await asyncio.to_thread(self.feed.render)
            except Exception:  # a bad snapshot is logged; the page keeps the last one
                log.exception("fleet page: snapshot failed")
                continue
            tick, self._tick = self._tick, asyncio.Event()
            tick.set()

    # -- handlers --------------------------------------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        """The token (query `token` or header X-Fleet-Token) for the fleet's data when the page has one; the
        security headers on every answer."""
        token = self.settings.token
        if token is not None and request.path in ("/api/fleet", "/events"):
            given = request.query.get("token") or request.headers.get(TOKEN_HEADER) or ""
            if not hmac.compare_digest(given.encode(), token.encode()):
                raise web.HTTPUnauthorized(text="fleet page: give the page's token (?token=... or the "
                                                f"{TOKEN_HEADER} header), as printed when it started\n")
        response = await handler(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    async def _index(self, _request: web.Request) -> web.Response:
        return web.Response(body=_static("index.html"), content_type="text/html", charset="utf-8")

    async def _plotly(self, _request: web.Request) -> web.Response:
        return web.Response(body=plotly_js(), content_type="text/javascript", charset="utf-8",
                            headers={"Cache-Control": "max-age=86400"})

    async def _asset(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC:
            raise web.HTTPNotFound()
        return web.Response(body=_static(name), content_type=STATIC[name], charset="utf-8")

    async def _fleet(self, _request: web.Request) -> web.Response:
        return web.Response(text=self.feed.text, content_type="application/json")

    async def _events(self, request: web.Request) -> web.StreamResponse:
        """A stream of snapshots: the latest at once, then one per period; ends for a vanished or slow client."""
        assert self._stopping is not None
        if self.clients >= self.settings.max_clients:
            self.closed["refused: too many pages open"] += 1
            raise web.HTTPServiceUnavailable(text=f"fleet page: {self.clients} pages open, the most this server "
                                                  "serves (max_clients); close one and reload\n")
        self.clients += 1
        why = "client left"
        stream = EventSourceResponse(send_timeout=self.settings.send_timeout_s, ping_interval=15.0)
        try:
            await stream.prepare(request)
            async with stream:
                seen = -1
                while not self._stopping.is_set() and stream.is_connected():
                    if self.feed.version != seen:
                        seen = self.feed.version
                        await stream.send(self.feed.text, event="fleet")
                        self.sent += 1
                    assert self._tick is not None
                    await self._tick.wait()
                if self._stopping.is_set():
                    why = "server stopped"
        except TimeoutError:
            why = "too slow: a send timed out"
        except (ConnectionError, RuntimeError):
            why = "connection lost"  # the client left, or took nothing for send_timeout_s (TCP_USER_TIMEOUT)
        finally:
            self.clients -= 1
            self.closed[why] += 1
        return stream
