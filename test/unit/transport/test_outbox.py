"""The outbox's logic with a scripted link: live when possible, spooled otherwise, in order, nothing lost."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from swarm_bridge.spool import Spool
from swarm_bridge.transport import outbox as outbox_module
from swarm_bridge.transport.link import Done, Inbound, LinkBusy, LinkStats
from swarm_bridge.transport.outbox import Outbox


class ScriptedLink:
    """A link whose acknowledgements, failures and connection losses the test decides (pure logic only)."""

    endpoint = "scripted://"
    served = True  # acknowledgements come when the test says (as from a Kafka link's service())

    def __init__(self) -> None:
        self.stats = LinkStats()
        self.on_inflight_lost: Callable[[], None] | None = None
        self.connected = True
        self.busy = False
        self.sent: list[tuple[bytes, Done]] = []
        self.options: list[tuple[bytes, int, bool | None]] = []  # (payload, qos, retain) of every send

    def connect(self, *, require: bool = True) -> None: ...

    def send(self, destination: str, key: bytes, payload: bytes, *, qos: int = 1, retain: bool | None = None,
             on_done: Done | None = None) -> None:
        if self.busy:
            raise LinkBusy("busy")
        assert on_done is not None
        self.sent.append((payload, on_done))
        self.options.append((payload, qos, retain))

    def describe(self, destination: str, *, content_type: str, user_properties: tuple[tuple[str, str], ...] = (),
                 retain: bool = False) -> None: ...

    def subscribe(self, destination: str, on_record: Inbound, *, with_properties: bool = False) -> None: ...

    def service(self) -> None: ...

    def flush(self, timeout: float) -> int:
        return 0

    def close(self) -> None: ...

    def ack_all(self, ok: bool = True) -> list[bytes]:
        sent, self.sent = self.sent, []
        for _payload, done in sent:
            done(ok)
        return [payload for payload, _ in sent]

    def lose(self) -> None:
        self.connected = False
        self.sent = []
        assert self.on_inflight_lost is not None
        self.on_inflight_lost()


def _settle(outbox: Outbox) -> None:
    """Pump until nothing more can move now. `pump` holds the outbox lock, so the pump thread's own cycles run
    before or after these, never inside: when one returns False, every event so far is handled."""
    while outbox.pump():
        pass


class _Clock:
    """The outbox module's `time`, whose monotonic clock stands still until the test moves it (the rest is `time`)."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def monotonic(self) -> float:
        return self.now

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@pytest.fixture()
def parts(tmp_path: Path) -> Iterator[tuple[ScriptedLink, Outbox]]:
    link = ScriptedLink()
    outbox = Outbox(link, Spool(tmp_path / "spool.db", max_bytes=1 << 20), window=3, batch=2)
    yield link, outbox
    outbox.close()


def _submit(outbox: Outbox, *payloads: bytes, stream: str = "odometry", priority: int = 1,
            destination: str = "dest") -> None:
    for payload in payloads:
        outbox.submit(stream, destination, b"amr", payload, priority=priority, qos=1,
                      received_ns=time.monotonic_ns())


def _pack(_destination: str, payloads: list[bytes]) -> bytes:
    """A readable stand-in for the MQTT record batch frame."""
    return b"[" + b",".join(payloads) + b"]"


def _unpack(payload: bytes) -> list[bytes]:
    """The records of one send: a `_pack` frame's, or the one record sent alone."""
    return payload[1:-1].split(b",") if payload.startswith(b"[") else [payload]


@pytest.fixture()
def batching(tmp_path: Path) -> Iterator[tuple[ScriptedLink, Outbox]]:
    link = ScriptedLink()
    outbox = Outbox(link, Spool(tmp_path / "spool.db", max_bytes=1 << 20), window=100, batch=50, pack=_pack,
                    max_batch=5)
    yield link, outbox
    outbox.close()


def test_live_while_the_window_has_room_then_spooled_then_drained_in_order(
        parts: tuple[ScriptedLink, Outbox]) -> None:
    link, outbox = parts
    _submit(outbox, b"0", b"1", b"2", b"3", b"4")
    assert [p for p, _ in link.sent] == [b"0", b"1", b"2"]  # window 3: the rest waits on disk
    outbox.pump()  # staged records reach the spool on the pump's turn
    assert outbox.spool.depth() == 2
    assert link.ack_all() == [b"0", b"1", b"2"]
    _settle(outbox)
    assert link.ack_all() == [b"3", b"4"]
    _settle(outbox)
    _submit(outbox, b"5")  # spool is empty again: live
    assert [p for p, _ in link.sent] == [b"5"]
    link.ack_all()
    _settle(outbox)
    assert outbox.backlog() == 0
    assert (outbox.stats.sent_live, outbox.stats.spooled, outbox.stats.acked) == (4, 2, 6)


def test_a_lost_connection_sends_unconfirmed_records_again_before_newer_ones(
        parts: tuple[ScriptedLink, Outbox]) -> None:
    link, outbox = parts
    _submit(outbox, b"0", b"1", b"2")
    link.sent[0][1](True)  # only 0 confirmed
    link.lose()
    _submit(outbox, b"3", b"4")  # while down
    _settle(outbox)
    assert link.sent == [] and outbox.backlog() == 4
    link.connected = True
    _settle(outbox)
    delivered = link.ack_all()
    _settle(outbox)
    delivered += link.ack_all()
    assert delivered == [b"1", b"2", b"3", b"4"]
    _settle(outbox)
    assert outbox.backlog() == 0


def test_failed_deliveries_go_back_to_the_spool_in_place(parts: tuple[ScriptedLink, Outbox]) -> None:
    link, outbox = parts
    _submit(outbox, b"0", b"1")
    link.ack_all(ok=False)  # a link fails the whole suffix it holds, and says it is down for a while
    link.connected = False
    _submit(outbox, b"2")
    _settle(outbox)
    link.connected = True
    _settle(outbox)
    assert link.ack_all() == [b"0", b"1", b"2"]
    assert outbox.stats.failed == 2


def test_a_busy_link_spools_instead_of_blocking(parts: tuple[ScriptedLink, Outbox]) -> None:
    link, outbox = parts
    link.busy = True
    _submit(outbox, b"0", b"1")
    assert outbox.backlog() == 2 and link.sent == []
    link.busy = False
    _settle(outbox)
    assert link.ack_all() == [b"0", b"1"]


def test_higher_priority_drains_first_and_close_keeps_inflight(tmp_path: Path) -> None:
    link = ScriptedLink()
    link.connected = False
    spool = Spool(tmp_path / "spool.db", max_bytes=1 << 20)
    outbox = Outbox(link, spool, window=10, batch=10)
    _submit(outbox, b"odo0", b"odo1", stream="odometry", priority=1)
    _submit(outbox, b"st0", stream="task_status", priority=5)
    link.connected = True
    _settle(outbox)
    assert [p for p, _ in link.sent] == [b"st0", b"odo0", b"odo1"]
    outbox.close()  # nothing confirmed: all three stay spooled for the next start
    assert spool.depth() == 3
    reopened = Outbox(ScriptedLink(), spool, window=10)
    _submit(reopened, b"odo2", stream="odometry", priority=1)
    _settle(reopened)
    assert [p for p, _ in reopened.link.sent] == [b"st0", b"odo0", b"odo1", b"odo2"]  # type: ignore[attr-defined]
    reopened.close()


def test_bad_limits_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"must be > 0 \(got window=0, batch=1,"):
        Outbox(ScriptedLink(), Spool(tmp_path / "s.db", max_bytes=10), window=0, batch=1)


def test_an_idle_link_sends_at_once_and_a_busy_one_gathers_records_per_destination(
        batching: tuple[ScriptedLink, Outbox]) -> None:
    link, outbox = batching
    _submit(outbox, b"a0")
    assert [p for p, _ in link.sent] == [b"a0"]  # nothing in flight: no waiting for company
    _submit(outbox, b"a1", b"a2")
    _submit(outbox, b"b0", destination="other")
    _submit(outbox, b"a3")
    assert [p for p, _ in link.sent] == [b"a0"]  # one send in flight (eager=1): the others wait in memory
    assert outbox.backlog() == 5
    link.ack_all()
    _settle(outbox)
    # in submission order, consecutive records of one destination together
    assert [p for p, _ in link.sent] == [b"[a1,a2]", b"b0", b"a3"]
    link.ack_all()
    _settle(outbox)
    assert outbox.backlog() == 0
    assert (outbox.stats.acked, outbox.stats.batches, outbox.stats.sent_live) == (5, 1, 5)


def test_a_full_batch_leaves_without_waiting_for_the_link(batching: tuple[ScriptedLink, Outbox]) -> None:
    link, outbox = batching
    _submit(outbox, b"0", b"1", b"2", b"3", b"4", b"5")
    assert [p for p, _ in link.sent] == [b"0", b"[1,2,3,4,5]"]  # max_batch 5 reached


def test_a_lost_connection_returns_batched_and_waiting_records_in_order(
        batching: tuple[ScriptedLink, Outbox]) -> None:
    link, outbox = batching
    _submit(outbox, b"0", b"1", b"2", b"3", b"4")
    assert [p for p, _ in link.sent] == [b"0"]
    link.lose()  # 0 in flight, 1..4 waiting in memory
    _submit(outbox, b"5")
    _settle(outbox)
    assert outbox.backlog() == 6 and link.sent == []
    link.connected = True
    _settle(outbox)
    delivered = link.ack_all()
    _settle(outbox)
    delivered += link.ack_all()
    assert delivered == [b"[0,1,2,3,4]", b"5"]  # from the spool, packed the same way
    _settle(outbox)
    assert outbox.backlog() == 0 and outbox.stats.acked == 6


def test_a_failed_batch_goes_back_whole(batching: tuple[ScriptedLink, Outbox]) -> None:
    link, outbox = batching
    _submit(outbox, b"0", b"1", b"2", b"3", b"4", b"5")
    link.connected = False
    link.ack_all(ok=False)
    _settle(outbox)
    assert outbox.stats.failed == 6 and outbox.spool.depth() == 6
    link.connected = True
    _settle(outbox)
    assert link.ack_all() == [b"[0,1,2,3,4]", b"5"]


def test_chunks_are_never_packed_and_batches_stay_under_max_batch_bytes(tmp_path: Path) -> None:
    link = ScriptedLink()
    outbox = Outbox(link, Spool(tmp_path / "spool.db", max_bytes=1 << 20), window=100, batch=50, pack=_pack,
                    max_batch=10, alone=lambda payload: payload.startswith(b"C"), max_batch_bytes=4)
    try:
        _submit(outbox, b"0", b"11", b"22", b"C3", b"C4", b"5", b"6")  # 0 leaves alone, the rest wait for its ack
        for _ in range(5):
            link.ack_all()
            _settle(outbox)
    finally:
        outbox.close()
    sent = [payload for payload, _qos, _retain in link.options]
    assert sent == [b"0", b"[11,22]", b"C3", b"C4", b"[5,6]"]  # 11 and 22 fill the 4 bytes; a chunk goes alone


@pytest.fixture()
def overflowing(tmp_path: Path) -> Iterator[tuple[ScriptedLink, Outbox]]:
    link = ScriptedLink()
    outbox = Outbox(link, Spool(tmp_path / "spool.db", max_bytes=1 << 20), window=3, batch=10, pack=_pack,
                    max_batch=2, overflow_bytes=4)
    yield link, outbox
    outbox.close()


def test_a_full_window_keeps_records_in_memory_up_to_overflow_bytes_then_spools(
        overflowing: tuple[ScriptedLink, Outbox]) -> None:
    link, outbox = overflowing
    _submit(outbox, b"0", b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"8")
    assert [p for p, _ in link.sent] == [b"0", b"[1,2]"]  # window 3 full
    _settle(outbox)
    assert outbox.spool.depth() == 2  # 3..6 wait in memory (4 bytes), 7 and 8 went the spool way
    assert outbox.backlog() == 9
    delivered: list[bytes] = []
    while outbox.backlog():
        delivered += link.ack_all()
        _settle(outbox)
    assert delivered == [b"0", b"[1,2]", b"[3,4]", b"5", b"6", b"[7,8]"]  # in order: memory first, then the spool
    assert (outbox.stats.sent_live, outbox.stats.sent_from_spool, outbox.stats.acked) == (7, 2, 9)


def test_records_waiting_in_memory_go_to_the_spool_when_the_link_drops(
        overflowing: tuple[ScriptedLink, Outbox]) -> None:
    link, outbox = overflowing
    _submit(outbox, b"0", b"1", b"2", b"3", b"4")
    link.lose()  # 0, [1,2] in flight; 3, 4 in memory
    _settle(outbox)
    assert outbox.spool.depth() == 5 and link.sent == []
    link.connected = True
    delivered: list[bytes] = []
    while outbox.backlog():
        _settle(outbox)
        delivered += link.ack_all()
    assert delivered == [b"[0,1]", b"2", b"[3,4]"]  # from the spool (window 3 at a time), in order, none lost


def test_a_busy_link_keeps_overflow_in_memory_and_sends_it_when_free(
        overflowing: tuple[ScriptedLink, Outbox]) -> None:
    link, outbox = overflowing
    _submit(outbox, b"0")
    link.busy = True
    _submit(outbox, b"1", b"2")  # the link refuses the batch: it waits in memory (2 bytes <= 4)
    _settle(outbox)
    assert outbox.spool.depth() == 0 and outbox.backlog() == 3
    link.busy = False
    link.ack_all()
    _settle(outbox)
    assert link.ack_all() == [b"[1,2]"]


def test_a_refusal_on_a_live_link_holds_records_until_retry_s(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(outbox_module, "time", clock)
    link = ScriptedLink()
    outbox = Outbox(link, Spool(tmp_path / "spool.db", max_bytes=1 << 20), window=10, batch=10, retry_s=0.3)
    try:
        _submit(outbox, b"0")
        link.ack_all(ok=False)  # e.g. the broker had no subscriber; the connection stays up
        _settle(outbox)
        _submit(outbox, b"1")  # during the hold: to the spool, behind the refused one
        _settle(outbox)
        assert link.sent == [] and outbox.spool.depth() == 2 and outbox.stats.failed == 1
        clock.now += 0.35  # past retry_s
        _settle(outbox)
        assert link.ack_all() == [b"0", b"1"]
        _settle(outbox)
        assert outbox.backlog() == 0 and outbox.stats.acked == 2
    finally:
        outbox.close()


def test_records_drained_from_the_spool_keep_their_mqtt_qos_and_retain(parts: tuple[ScriptedLink, Outbox]) -> None:
    link, outbox = parts
    link.connected = False  # an outage: everything goes to the spool
    for payload, qos, retain in [(b"q0", 0, False), (b"q2", 2, False), (b"q1r", 1, True), (b"q0r", 0, True)]:
        outbox.submit("state", "dest", b"amr", payload, priority=1, qos=qos, retain=retain,
                      received_ns=time.monotonic_ns())
    _settle(outbox)
    assert link.sent == [] and outbox.spool.depth() == 4
    link.connected = True
    deadline = time.monotonic() + 30
    while len(link.options) < 4 and time.monotonic() < deadline:
        _settle(outbox)
        link.ack_all()
    assert link.options == [(b"q0", 0, False), (b"q2", 2, False), (b"q1r", 1, True), (b"q0r", 0, True)]


def test_a_batch_holds_records_of_one_qos_and_retain_only(batching: tuple[ScriptedLink, Outbox]) -> None:
    link, outbox = parts = batching
    link.connected = False
    for i, (qos, retain) in enumerate([(1, False), (1, False), (1, True), (0, True), (0, True)]):
        outbox.submit("s", "dest", b"amr", b"%d" % i, priority=1, qos=qos, retain=retain,
                      received_ns=time.monotonic_ns())
    _settle(outbox)
    link.connected = True
    deadline = time.monotonic() + 30
    while sum(len(p.split(b",")) for p, _q, _r in link.options) < 5 and time.monotonic() < deadline:
        _settle(outbox)
        link.ack_all()
    assert parts and link.options == [(b"[0,1]", 1, False), (b"2", 1, True), (b"[3,4]", 0, True)]


def test_a_spool_written_by_an_older_version_still_drains(tmp_path: Path) -> None:
    """Spools of swarm_bridge before the qos/retain columns: records drain at MQTT QoS 1 (what that version sent)
    and retained as their destination is described, and new records keep their own."""
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(_OLD_SPOOL_SCHEMA)
    db.executemany("INSERT INTO records (ord, stream, destination, key, payload, priority, size, enqueued_ns)"
                   " VALUES (?, 'odometry', 'dest', x'616d72', ?, 1, 5, 0)", [(0, b"old0"), (1, b"old1")])
    db.commit()
    db.close()
    link = ScriptedLink()
    link.connected = False
    outbox = Outbox(link, Spool(path, max_bytes=1 << 20), window=10, batch=10)
    try:
        outbox.submit("odometry", "dest", b"amr", b"new", priority=1, qos=0, retain=True,
                      received_ns=time.monotonic_ns())
        _settle(outbox)
        link.connected = True
        deadline = time.monotonic() + 30
        while (len(link.options) < 3 or outbox.backlog()) and time.monotonic() < deadline:
            _settle(outbox)
            link.ack_all()
        assert link.options == [(b"old0", 1, None), (b"old1", 1, None), (b"new", 0, True)]
        assert outbox.backlog() == 0
    finally:
        outbox.close()


# The records table as swarm_bridge wrote it before spools kept each record's MQTT QoS and retain flag.
_OLD_SPOOL_SCHEMA = """
CREATE TABLE records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ord INTEGER NOT NULL,
    stream TEXT NOT NULL,
    destination TEXT NOT NULL,
    key BLOB NOT NULL,
    payload BLOB NOT NULL,
    priority INTEGER NOT NULL,
    size INTEGER NOT NULL,
    enqueued_ns INTEGER NOT NULL,
    taken INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX records_drain ON records (taken, priority DESC, ord);
CREATE INDEX records_evict ON records (priority, ord);
CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE drops (stream TEXT NOT NULL, reason TEXT NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (stream, reason));
"""


def test_what_a_killed_run_left_spooled_or_in_flight_leaves_before_the_next_runs_live_records(tmp_path: Path) -> None:
    """The SIGKILL test's order across restarts, as the outbox promises it: records the killed run had spooled,
    taken by its drain and in flight unacknowledged included, go out before anything the next run receives."""
    path = tmp_path / "spool.db"
    link = ScriptedLink()
    killed = Outbox(link, Spool(path, max_bytes=1 << 20), window=10, batch=2)
    link.busy = True
    _submit(killed, b"0", b"1", b"2", b"3")  # the window is full: staged, then spooled
    link.busy = False
    killed.pump()
    assert [p for p, _ in link.sent] == [b"0", b"1"]  # taken by the drain, in flight, never acknowledged
    assert killed.spool.depth() == 4  # taken records still count: nothing newer may go live past them
    killed._stop.set()  # SIGKILL: the pump stops where it is, nothing is given back, the file stays as written
    killed._thread.join(5)
    _submit(killed, b"4")  # staged in memory when the process dies
    killed.spool.close()

    link = ScriptedLink()
    restarted = Outbox(link, Spool(path, max_bytes=1 << 20), window=10, batch=2)
    try:
        _submit(restarted, b"5")  # the next run's first record, while the last one's wait in the spool
        delivered: list[bytes] = []
        for _ in range(10):
            _settle(restarted)
            delivered += link.ack_all()
        assert delivered == [b"0", b"1", b"2", b"3", b"5"]  # b"4" was staged in memory: lost with the process
        _submit(restarted, b"6")
        assert link.ack_all() == [b"6"]  # the spool is empty: live again
    finally:
        restarted.close()


class _Tokens:
    """A budget as the drain sees it (`DrainPace`): tokens the test gives, spent as the drain takes records; what
    the outbox gives back is only noted (the test sets the tokens)."""

    def __init__(self, tokens: float, *, burst: int = 1000, keep: int = 5) -> None:
        self.tokens, self.burst, self.keep = tokens, burst, keep
        self.spent = self.refunded = 0

    def allowance(self) -> tuple[float, int, int]:
        return self.tokens, self.burst, self.keep

    def spend_drained(self, size: int) -> None:
        self.tokens -= size
        self.spent += size

    def refund(self, size: int) -> None:
        self.refunded += size


def test_live_records_spooled_without_leaving_are_given_back_to_the_budget_and_sent_ones_are_not(
        tmp_path: Path) -> None:
    link = ScriptedLink()
    outbox = Outbox(link, Spool(tmp_path / "spool.db", max_bytes=1 << 20), window=100, batch=50)
    pace = _Tokens(1000.0)
    outbox.pace_drain(pace)
    _submit(outbox, b"live")  # left at once: charged once, nothing given back
    _settle(outbox)
    assert pace.refunded == 0
    link.connected = False
    _submit(outbox, b"held1", b"held22")  # to the spool: given back, charged when drained
    _settle(outbox)
    assert pace.refunded == 11 and pace.spent == 0
    link.connected = True
    _settle(outbox)
    assert [p for p, _ in link.sent] == [b"live", b"held1", b"held22"] and pace.spent == 11 + 2 * 3  # and keys
    outbox.close()


def test_a_paced_drain_takes_what_the_budget_allows_highest_priority_first_and_kept_ones_always(
        tmp_path: Path) -> None:
    link = ScriptedLink()
    link.connected = False
    outbox = Outbox(link, Spool(tmp_path / "spool.db", max_bytes=1 << 20), window=100, batch=50)
    pace = _Tokens(0.0)
    outbox.pace_drain(pace)
    _submit(outbox, *[b"i%03d" % n for n in range(6)], stream="camera", priority=1)  # 4 + 3 (key) bytes each
    _submit(outbox, b"s0", b"s1", stream="task_status", priority=5)
    link.connected = True
    _settle(outbox)
    assert [p for p, _ in link.sent] == [b"s0", b"s1"]  # no tokens: only the kept priority, into debt
    assert pace.tokens == -10 and outbox.stats.paced >= 1
    pace.tokens = 14.0  # two camera records' worth
    _settle(outbox)
    assert [p for p, _ in link.sent][2:] == [b"i000", b"i001"]
    pace.tokens = 1000.0
    _settle(outbox)
    assert [p for p, _ in link.sent][4:] == [b"i002", b"i003", b"i004", b"i005"]  # the rest, in order
    assert pace.spent == 2 * 5 + 6 * 7
    assert pace.refunded == 2 * 2 + 6 * 4  # their payloads, charged when handed over: given back, charged once drained
    link.ack_all()
    _settle(outbox)
    assert outbox.backlog() == 0
    outbox.close()


class MqttLikeLink(ScriptedLink):
    """Acknowledgements from the link's own thread (as MQTT's): they wake nobody unless a send failed."""

    served = False


def _without_pump(outbox: Outbox) -> None:
    """Stop the pump thread (the outbox stays usable): what happens next is the submitting thread's doing alone."""
    outbox._stop.set()
    outbox._wake.set()
    outbox._thread.join(5)
    assert not outbox._thread.is_alive()


def _burst(outbox: Outbox, *payloads: bytes) -> None:
    outbox.submit_many("odometry", "dest", b"amr", list(payloads), [time.monotonic_ns()] * len(payloads),
                       priority=1, qos=1)


def test_a_burst_leaves_packed_at_once_and_the_next_burst_settles_the_acknowledgement(tmp_path: Path) -> None:
    link = MqttLikeLink()
    outbox = Outbox(link, Spool(tmp_path / "spool.db", max_bytes=1 << 20), window=100, pack=_pack, max_batch=64)
    _without_pump(outbox)
    _burst(outbox, b"a", b"b", b"c")
    assert [p for p, _ in link.sent] == [b"[a,b,c]"]  # idle link: out at once, one send
    _burst(outbox, b"d", b"e")  # one send unacknowledged (eager 1): they wait in memory
    assert [p for p, _ in link.sent] == [b"[a,b,c]"]
    assert link.ack_all() == [b"[a,b,c]"]  # the ack only queues an event: no pump to handle it
    assert outbox.inflight == 3
    _burst(outbox, b"f")  # settles the ack first, then everything waiting leaves together, in order
    assert [p for p, _ in link.sent] == [b"[d,e,f]"]
    link.ack_all()
    _burst(outbox)  # an empty burst settles too
    assert outbox.inflight == 0 and outbox.backlog() == 0
    assert (outbox.stats.submitted, outbox.stats.acked, outbox.stats.spooled) == (6, 6, 0)
    outbox.close()


def test_a_burst_goes_to_the_spool_while_the_link_is_down_and_drains_in_order_after_earlier_records(
        tmp_path: Path) -> None:
    link = MqttLikeLink()
    outbox = Outbox(link, Spool(tmp_path / "spool.db", max_bytes=1 << 20), window=100, batch=50, pack=_pack,
                    max_batch=64)
    link.connected = False
    _submit(outbox, b"0")
    _burst(outbox, b"1", b"2", b"3")
    _settle(outbox)
    assert outbox.spool.depth() == 4 and not link.sent
    link.connected = True
    _burst(outbox, b"4")  # spooled records are older: this one waits behind them, through the spool
    _settle(outbox)
    # in one send, or the spool's first if the pump drained it before the burst came (a busy machine): in order
    assert [r for p, _ in link.sent for r in _unpack(p)] == [b"0", b"1", b"2", b"3", b"4"]
    link.ack_all()
    _settle(outbox)
    assert outbox.backlog() == 0 and outbox.stats.acked == 5
    outbox.close()


def test_a_failed_send_of_a_burst_is_left_to_the_pump_and_goes_again_in_order(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(outbox_module, "time", clock)
    link = MqttLikeLink()
    outbox = Outbox(link, Spool(tmp_path / "spool.db", max_bytes=1 << 20), window=100, batch=50, pack=_pack,
                    max_batch=64, retry_s=0.5)
    _without_pump(outbox)
    _burst(outbox, b"a", b"b")
    assert link.ack_all(ok=False) == [b"[a,b]"]  # refused by the broker: to the spool (SQLite: the pump's work)
    _burst(outbox, b"c")  # the submitting thread leaves the failure alone: c waits behind a and b
    assert not link.sent and outbox.inflight == 2
    _settle(outbox)  # the pump's turn: a and b spooled, c behind them; a refusal holds sending for retry_s
    assert not link.sent and outbox.spool.depth() == 3
    clock.now += 0.6
    _settle(outbox)
    assert [p for p, _ in link.sent] == [b"[a,b,c]"]
    link.ack_all()
    _settle(outbox)
    assert outbox.backlog() == 0 and outbox.stats.failed == 2 and outbox.stats.acked == 3
    outbox.close()


def test_a_chunk_in_flight_does_not_hold_back_a_small_record_behind_it(tmp_path: Path) -> None:
    """Issue 19: a large record never blocks a small one of another stream that arrives after it. Batching waits
    for the acknowledgement of a send in flight; a chunk's comes only after its whole transmission (a 256 KiB chunk
    on a 50 Mbit/s link: 42 ms), and so does that of a small send made behind it: records wait for neither. Once
    the chunks are acknowledged, small records wait for each other's acknowledgements again, to leave together."""
    link = ScriptedLink()
    outbox = Outbox(link, Spool(tmp_path / "spool.db", max_bytes=1 << 20), window=100, batch=50, pack=_pack,
                    max_batch=10, alone=lambda payload: payload.startswith(b"C"))
    try:
        _submit(outbox, b"C0", b"C1", stream="camera", destination="camera")
        _submit(outbox, b"o0", stream="odometry")
        assert [p for p, _ in link.sent] == [b"C0", b"C1", b"o0"]  # chunks in flight, unacknowledged: o0 left
        _submit(outbox, b"o1", b"o2", stream="odometry")
        assert [p for p, _ in link.sent] == [b"C0", b"C1", b"o0", b"o1", b"o2"]  # o0 is behind the chunks: no wait
        link.ack_all()
        _settle(outbox)
        _submit(outbox, b"o3", stream="odometry")
        _submit(outbox, b"o4", b"o5", stream="odometry")
        assert [p for p, _ in link.sent] == [b"o3"]  # no chunk in flight: o4 and o5 wait for o3's acknowledgement
        link.ack_all()
        _settle(outbox)
        assert [p for p, _ in link.sent] == [b"[o4,o5]"]
        link.ack_all()
        _settle(outbox)
        assert outbox.backlog() == 0
    finally:
        outbox.close()


def test_the_pump_asks_an_empty_spool_nothing(tmp_path: Path) -> None:
    """The pump looks up to 1,000 times a second while records wait for an acknowledgement; each look used to run a
    SQLite transaction on an empty spool, holding the outbox's lock (and the GIL between statements) that the robot's
    reader thread needs for its next record. Records that went to the spool are still taken from it."""
    link = ScriptedLink()
    spool = Spool(tmp_path / "spool.db", max_bytes=1 << 20)
    takes: list[int] = []
    take = spool.take

    def counted(limit: int, **kwargs: Any) -> list[Any]:
        takes.append(limit)
        return take(limit, **kwargs)

    spool.take = counted  # type: ignore[method-assign]
    outbox = Outbox(link, spool, window=100, batch=50)
    try:
        _submit(outbox, b"r0", b"r1")
        _settle(outbox)
        link.ack_all()
        _settle(outbox)
        assert outbox.backlog() == 0 and takes == []
        link.connected = False
        _submit(outbox, b"r2")
        _settle(outbox)  # to the spool while the link is down
        assert spool.depth() == 1
        link.connected = True
        _settle(outbox)
        assert takes and [p for p, _ in link.sent] == [b"r2"]
        link.ack_all()
        _settle(outbox)
        assert outbox.backlog() == 0
    finally:
        outbox.close()
