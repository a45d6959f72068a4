"""The fleet page's server on real sockets: a hundred open event streams, a slow client and vanished ones, with its
memory (RSS) printed and bounded; read-only, the token enforced, plotly.js served by the process itself."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from fleet_page import chromium, updates, wait_until
from pki import issue, write_pem

from swarm_bridge.fleetweb import FleetPage, FleetWebServer, WebSettings
from swarm_bridge.fleetweb.feed import PageFeed
from swarm_bridge.sim.records import robot_state_body

LOAD = Path(__file__).resolve().parents[2] / "support" / "web_load.py"
CLIENTS = 100


class LoadServer:
    """test/support/web_load.py in its own process; its stats lines read in a thread."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen([sys.executable, str(LOAD), "--seconds", "240", *args],
                                        stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        first = self.process.stdout.readline()
        assert first.startswith("listening "), f"web_load.py said {first!r}"
        self.port = int(first.split()[1])
        self.stats: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("stats "):
                self.stats.append(json.loads(line[6:]))

    @property
    def last(self) -> dict[str, Any]:
        return self.stats[-1] if self.stats else {}

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


@pytest.fixture()
def load_server() -> Iterator[LoadServer]:
    server = LoadServer("--robots", "200", "--period", "0.5", "--send-timeout", "2", "--max-clients", "150")
    yield server
    server.close()


async def _readers(port: int, count: int, seconds: float, events: list[int], latest: list[float]) -> None:
    """`count` event streams read for `seconds`; per stream, the snapshots received and when the last came."""
    timeout = aiohttp.ClientTimeout(total=None, sock_read=30)

    async def one(index: int, session: aiohttp.ClientSession) -> None:
        async with session.get(f"http://127.0.0.1:{port}/events") as response:
            assert response.status == 200
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                line = await asyncio.wait_for(response.content.readline(), 30)
                if line.startswith(b"event: fleet"):
                    events[index] += 1
                    latest[index] = time.monotonic()

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        await asyncio.gather(*(one(i, session) for i in range(count)))


def _slow_client(port: int) -> socket.socket:
    """A client that asks for the event stream and never reads it (a tiny receive buffer fills at once)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    return sock


def _vanishing_client(port: int) -> None:
    """A client that opens the stream, reads its first bytes, and is gone (RST, no goodbye)."""
    sock = socket.socket()
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    sock.recv(1024)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


@pytest.mark.integration
def test_a_hundred_pages_a_slow_and_vanished_clients_in_bounded_memory(load_server: LoadServer) -> None:
    wait_until(lambda: len(load_server.stats) >= 4, 60, "the load server's first stats")
    idle_kb = load_server.last["rss_kb"]
    events, latest = [0] * CLIENTS, [0.0] * CLIENTS
    seconds = 40.0
    readers = threading.Thread(target=lambda: asyncio.run(_readers(load_server.port, CLIENTS, seconds, events,
                                                                   latest)), daemon=True)
    readers.start()
    wait_until(lambda: load_server.last.get("clients", 0) >= CLIENTS, 60, f"{CLIENTS} streams open")
    slow = _slow_client(load_server.port)
    for _ in range(5):
        _vanishing_client(load_server.port)
    try:
        # The slow one (still connected, reading nothing) and the vanished ones are let go; the hundred stay.
        wait_until(lambda: sum(load_server.last["closed"].values()) >= 6 and load_server.last["clients"] == CLIENTS,
                   90, "the slow and the vanished clients to be let go")
        open_kb = load_server.last["rss_kb"]
        samples_from = len(load_server.stats)
        readers.join(seconds + 90)
        assert not readers.is_alive(), "the readers did not finish"
    finally:
        slow.close()
    rss = [s["rss_kb"] for s in load_server.stats[samples_from:]]
    end_kb, peak_kb = rss[-1], max(rss)
    snapshot_kb = len(urllib.request.urlopen(f"http://127.0.0.1:{load_server.port}/api/fleet").read()) / 1024
    print(f"fleet page server, 200 robots, {CLIENTS} streams for {seconds:g} s, a {snapshot_kb:.0f} KiB snapshot "
          f"every 0.5 s: RSS idle {idle_kb / 1024:.1f} MiB, with every stream open {open_kb / 1024:.1f} MiB, "
          f"at the end {end_kb / 1024:.1f} MiB (peak {peak_kb / 1024:.1f} MiB); snapshots sent "
          f"{load_server.last['sent']}, closed {load_server.last['closed']}; per stream received "
          f"min {min(events)} max {max(events)}")
    # Every page stayed current: each received snapshots to the end, none fell minutes behind.
    assert min(events) >= 10, events
    assert max(latest) - min(latest) < 30, "a stream stopped getting snapshots long before the others"
    # Memory does not grow with time: what the open streams hold is one shared snapshot and the sockets' buffers.
    assert peak_kb - open_kb < 64 * 1024, (open_kb, peak_kb)
    wait_until(lambda: load_server.last["clients"] == 0, 60, "every stream closed")


@pytest.fixture()
def small_server() -> Iterator[FleetWebServer]:
    feed = PageFeed(FleetPage(fleet="small", stale_after_ns=10_000_000_000))
    feed.apply(FleetPage.on_state, robot_state_body("amr_000", "amr", ["navigate"], x=1.0, y=2.0, battery=50.0,
                                                    now_ns=time.time_ns()), time.time_ns())
    server = FleetWebServer(feed, WebSettings(port=0, period_s=0.2, token="a-token-of-sixteen-chars",
                                              max_clients=2)).start()
    yield server
    server.stop()


def _get(url: str, *, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, bytes, Any]:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers


@pytest.mark.integration
def test_read_only_with_its_token_and_plotly_from_the_process(small_server: FleetWebServer) -> None:
    base = f"http://127.0.0.1:{small_server.port}"
    status, body, headers = _get(f"{base}/")
    assert status == 200 and b"/static/plotly.min.js" in body
    assert "default-src 'self'" in headers["Content-Security-Policy"]  # nothing from another origin
    status, body, _ = _get(f"{base}/static/plotly.min.js")
    assert status == 200 and len(body) > 1_000_000 and b"plotly" in body[:2000].lower()
    assert _get(f"{base}/api/fleet")[0] == 401  # the data needs the token
    status, body, _ = _get(f"{base}/api/fleet?token=a-token-of-sixteen-chars")
    assert status == 200 and json.loads(body)["summary"]["robots"] == 1
    assert _get(f"{base}/api/fleet", headers={"X-Fleet-Token": "a-token-of-sixteen-chars"})[0] == 200
    assert _get(f"{base}/api/fleet?token=wrong-token-of-sixteen")[0] == 401
    for method in ("POST", "PUT", "DELETE"):
        assert _get(f"{base}/api/fleet?token=a-token-of-sixteen-chars", method=method)[0] == 405
    assert _get(f"{base}/static/../../etc/passwd")[0] == 404
    assert "token=a-token-of-sixteen-chars" in small_server.url


@pytest.mark.integration
def test_more_pages_than_the_limit_are_refused_with_a_reason(small_server: FleetWebServer) -> None:
    base = f"http://127.0.0.1:{small_server.port}/events?token=a-token-of-sixteen-chars"
    held = [urllib.request.urlopen(base, timeout=30) for _ in range(2)]
    try:
        wait_until(lambda: small_server.stats()["clients"] == 2, 30, "two streams open")
        status, body, _ = _get(base)
        assert status == 503 and b"max_clients" in body
    finally:
        for response in held:
            response.close()
    wait_until(lambda: small_server.stats()["clients"] == 0, 60, "the streams closed")


@pytest.mark.integration
def test_https_with_the_given_certificate(tmp_path: Path) -> None:
    ca_key, ca_cert = issue("fleet-ca", None, ca=True)
    key, cert = issue("fleet-page", (ca_key, ca_cert.subject), ip="127.0.0.1")
    cert_path, key_path = write_pem(tmp_path, "page", key, cert)
    ca_path, _ = write_pem(tmp_path, "ca", ca_key, ca_cert)
    feed = PageFeed(FleetPage(fleet="tls", stale_after_ns=10_000_000_000))
    server = FleetWebServer(feed, WebSettings(port=0, tls_cert=str(cert_path), tls_key=str(key_path))).start()
    try:
        assert server.url.startswith("https://127.0.0.1:")
        context = ssl.create_default_context(cafile=str(ca_path))
        with urllib.request.urlopen(f"{server.url}api/fleet", context=context, timeout=30) as response:
            assert json.loads(response.read())["fleet"] == "tls"
        with pytest.raises(urllib.error.URLError):  # a client that does not trust the page's CA is refused
            urllib.request.urlopen(f"{server.url}api/fleet", timeout=30)
    finally:
        server.stop()


@pytest.mark.integration
def test_a_page_left_open_stays_current_in_bounded_browser_memory(load_server: LoadServer, tmp_path: Path) -> None:
    """The page redraws every snapshot in place: the browser's JS heap after many updates is what it was after a
    few (figures printed)."""
    browser = chromium(tmp_path / "chromium", extra=("--enable-precise-memory-info", "--js-flags=--expose-gc"))
    heap = "window.gc(); return performance.memory.usedJSHeapSize;"
    try:
        browser.get(f"http://127.0.0.1:{load_server.port}/")
        wait_until(lambda: updates(browser) >= 10, 120, "ten snapshots drawn")
        early = int(browser.execute_script(heap))
        wait_until(lambda: updates(browser) >= 130, 240, "130 snapshots drawn", every_s=1.0)
        late = int(browser.execute_script(heap))
        nodes = int(browser.execute_script("return document.getElementsByTagName('*').length;"))
    finally:
        browser.quit()
    print(f"fleet page in chromium, 200 moving robots, a snapshot every 0.5 s: JS heap after 10 snapshots "
          f"{early / 2**20:.1f} MiB, after 130 {late / 2**20:.1f} MiB; {nodes} elements")
    assert late - early < 16 * 2**20, (early, late)
