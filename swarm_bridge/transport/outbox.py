"""Between a robot's routes and its uplink: send live when the link can take it, spool when it cannot,
drain the spool in order when it can again. Nothing is acknowledged or forgotten before the broker has it.

Threads: routes call `submit` (the ROS thread); link callbacks only enqueue events (never take the
outbox lock, so no lock order with the client library's own locks); the pump thread handles events,
drains the spool and services the link. Order holds because a link delivers in the order it was handed
records and fails a suffix of them (a dropped connection, a timed-out queue): failed records go back
to the spool under their original order numbers and drain before anything newer.

Batching (when given `pack`): a record goes out alone while the link is idle (lowest latency); while
`eager` sends are unacknowledged, new records wait in memory and leave together, consecutive records of one
destination packed into one send, as soon as an acknowledgement frees the link. So batches grow with load
and one publish, and one acknowledgement, carries many records. A chunk's send (`alone`) does not count: its
acknowledgement comes after its whole transmission, and a small record must not wait behind a large one; nor does a
send made while a chunk (or a send behind one) was in flight, whose acknowledgement comes after that chunk's.

Overflow (when given `overflow_bytes`): while the link is up and only slow to acknowledge (the window is full),
up to `overflow_bytes` of records wait in memory, in order, and leave as acknowledgements free the window,
instead of a round trip through SQLite; beyond that, and whenever the link is down, records go to the spool.

Bursts (`submit_many`): a route hands over every record it took from its reader at once; the route's thread first
settles the acknowledgements that came meanwhile (live sends only: no SQLite on it), then sends what waits if the
link may take it, so under load the pump thread is not woken per send. An MQTT acknowledgement wakes the pump only
when the send failed; records left waiting leave with the next burst or at the pump's next look (every
`PENDING_WAIT_S` while any wait).

Pacing (when given a `DrainPace`, the robot's bandwidth budget): the drain takes from the spool, highest priority
first, only what the budget's tokens allow (records of kept priorities always, spending tokens), so a drain
after an outage stays within the budget instead of sending the backlog at the link's speed. A live record (charged
by the budget when it was handed over) that goes to the spool without having left is given back to the budget, so
it is charged once, when it leaves from the spool.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from swarm_bridge.spool import Spool, SpooledRecord
from swarm_bridge.transport.link import LinkBusy, LinkSettingError, Uplink

__all__ = ["DrainPace", "Outbox", "OutboxStats", "Outgoing"]

log = logging.getLogger(__name__)

# How long the pump sleeps between looks while there is work it must poll for (records in flight: a Kafka link
# reports deliveries only when served; MQTT acknowledgements to settle; spooled records to drain), and while there
# is none: then every change (a submit, a failed delivery, a lost connection, flush, close) wakes it, and the long
# wait only serves a link's own errors. Measured: a 10 ms look while idle cost an idle robot bridge about 1 % of a core.
BUSY_WAIT_S = 0.01
IDLE_WAIT_S = 1.0
PENDING_WAIT_S = 0.001  # the pump's look while live records wait in memory for an acknowledgement


@dataclass(slots=True)
class Outgoing:
    """One encoded record on its way up; `order` is its place in the robot's submission order.
    Not frozen: one is made per record, and a frozen dataclass costs four times as much to build."""

    stream: str
    destination: str
    key: bytes
    payload: bytes
    priority: int
    qos: int
    retain: bool | None  # None: as the link describes the destination (records of an older spool)
    order: int
    received_ns: int  # time.monotonic_ns() when the route got it; 0 when it came back from the spool


class DrainPace(Protocol):
    """A bandwidth budget as the drain sees it; both are called with the outbox's lock held, so they must not
    call into the outbox."""

    def allowance(self) -> tuple[float, int, int]:
        """Tokens (bytes) now, the bucket's depth, and the priority from which records pass at once."""

    def spend_drained(self, size: int) -> None:
        """Bytes taken from the spool to be sent."""

    def refund(self, size: int) -> None:
        """Bytes of live records, charged when they were handed over, that went to the spool without leaving: they
        are charged again when drained."""


@dataclass
class OutboxStats:
    """Counts since start: submitted, sent directly, spooled, acknowledged, failed deliveries (re-spooled),
    and sends that carried several records (batches)."""

    submitted: int = 0
    sent_live: int = 0
    spooled: int = 0
    sent_from_spool: int = 0
    acked: int = 0
    failed: int = 0
    batches: int = 0
    paced: int = 0  # drains the budget cut short (the rest waited for tokens)


# One send in flight: its records and, for each, its spool id (None when it was sent live).
_Send = list[tuple[Outgoing, int | None]]


class Outbox:
    """At-least-once, in order per stream, bounded in memory (`window` in flight), durable beyond it."""

    def __init__(self, link: Uplink, spool: Spool, *, window: int = 1000, batch: int = 200,
                 on_acked: Callable[[Outgoing, int], None] | None = None,
                 pack: Callable[[str, list[bytes]], bytes] | None = None, max_batch: int = 1, eager: int = 1,
                 retry_s: float = 1.0, overflow_bytes: int = 0, alone: Callable[[bytes], bool] | None = None,
                 max_batch_bytes: int = 0) -> None:
        """`window`: records in flight at most; `batch`: records taken from the spool at a time; `pack`: how
        several records of one destination become one payload, `pack(destination, payloads)` (each route's
        format decides; None: one record per send), at most
        `max_batch` per send; `eager`: sends in flight below which a record goes out at once; `retry_s`: after
        the broker refused a delivery on a live connection, records go to the spool and wait this long;
        `overflow_bytes`: payload bytes that may wait in memory while the window is full (0: none, spool at once);
        `alone(payload)`: True for a record never packed with others (a chunk of a larger record);
        `max_batch_bytes`: payload bytes one packed send carries at most (0: no limit; a record alone may be larger)."""
        if window <= 0 or batch <= 0 or max_batch <= 0 or eager <= 0:
            raise LinkSettingError("outbox", f"window, batch, max_batch and eager must be > 0 (got window={window}, "
                                   f"batch={batch}, max_batch={max_batch}, eager={eager})",
                                   "give each a positive count (the window is the config's uplink.max_inflight)")
        if overflow_bytes < 0:
            raise LinkSettingError("outbox", f"overflow_bytes must be >= 0 (got {overflow_bytes})",
                                   "give 0 (records go to the spool as soon as the window is full) or more")
        self.link, self.spool = link, spool
        self.window, self.batch = window, batch
        self.max_batch = max_batch if pack is not None else 1
        self.eager = eager
        self.overflow_bytes = overflow_bytes
        self.retry_s = retry_s
        self._hold_until = 0.0  # monotonic time before which nothing is sent (a refused delivery waits)
        self._pace: DrainPace | None = None
        self.stats = OutboxStats()
        self._on_acked = on_acked
        self._pack = pack
        self._alone = alone or (lambda _payload: False)
        self._max_batch_bytes = max_batch_bytes or 1 << 62
        self._order = spool.next_order
        self._lock = threading.Lock()
        self._inflight: dict[int, _Send] = {}  # token -> the records of one send
        # The tokens of sends batching does not wait for: a chunk's, and any made while such a send was in flight.
        self._unawaited: set[int] = set()
        self._inflight_records = 0
        self._pending: list[Outgoing] = []  # live records waiting for the link to free up, to leave together
        self._pending_bytes = 0  # their payload bytes
        self._staged: list[Outgoing] = []  # on their way to the spool; the ROS thread never waits on SQLite
        self._token = 0
        self._drops_reported, self._drops_next_report = 0, 0.0
        # (kind, token, ok, when_ns) from the link's thread; appended without the lock, taken with it
        self._events: deque[tuple[str, int, bool, int]] = deque()
        self._stop = threading.Event()
        self._wake = threading.Event()
        link.on_inflight_lost = self._lost
        self._served = link.served  # an MQTT link's acknowledgements wake the pump themselves
        self._thread = threading.Thread(target=self._pump_loop, name="outbox-pump", daemon=True)
        self._thread.start()

    def submit(self, stream: str, destination: str, key: bytes, payload: bytes, *, priority: int, qos: int,
               received_ns: int, retain: bool = False) -> None:
        """Take one record: straight to the link when nothing is queued before it, else to the spool.
        `qos` and `retain` (MQTT) go with it, through the spool too."""
        with self._lock:
            self._settle_live()
            record = Outgoing(stream, destination, key, payload, priority, qos, retain, self._order, received_ns)
            self._order += 1
            self.stats.submitted += 1
            if (self.link.connected and not self._staged and self.spool.depth() == 0
                    and time.monotonic() >= self._hold_until):
                room = self._inflight_records + len(self._pending) < self.window
                if self._pending or not room or (self._pack is not None and self._awaited() >= self.eager):
                    if room or self._pending_bytes + len(payload) <= self.overflow_bytes:
                        self._pending.append(record)
                        self._pending_bytes += len(payload)
                        if len(self._pending) >= self.max_batch and self._inflight_records < self.window:
                            self._send_pending()
                        elif len(self._pending) == 1:
                            self._wake.set()  # later ones need no wake-up: an acknowledgement will come
                        return
                else:
                    try:
                        self._send([(record, None)])
                        self.stats.sent_live += 1
                        if self._served and len(self._inflight) == 1:
                            self._wake.set()  # the pump may sleep idle, and only it serves this link's reports
                        return
                    except LinkBusy:
                        pass
            self._staged.append(record)  # the pump writes it to the spool with others, in one transaction
        self._wake.set()

    def submit_many(self, stream: str, destination: str, key: bytes, payloads: list[bytes], received: list[int], *,
                    priority: int, qos: int, retain: bool = False) -> None:
        """Take the records of one burst of one stream (`received`: each one's `received_ns`), in order, under one
        lock: acknowledgements that came meanwhile are settled first, then the records leave at once while fewer than
        `eager` sends are unacknowledged (packed by `pack`), else they wait in memory for an acknowledgement, or go to
        the spool as `submit` would send them there."""
        with self._lock:
            self._settle_live()
            order = self._order
            self._order += len(payloads)
            self.stats.submitted += len(payloads)
            records = [Outgoing(stream, destination, key, payload, priority, qos, retain, order + index, received_ns)
                       for index, (payload, received_ns) in enumerate(zip(payloads, received, strict=True))]
            size, waiting = sum(map(len, payloads)), bool(self._pending)
            if (self.link.connected and not self._staged and self.spool.depth() == 0
                    and time.monotonic() >= self._hold_until
                    and (self._inflight_records + len(self._pending) + len(records) <= self.window
                         or self._pending_bytes + size <= self.overflow_bytes)):
                self._pending.extend(records)
                self._pending_bytes += size
                if (self._awaited() < self.eager or len(self._pending) >= self.max_batch) \
                        and self._inflight_records < self.window:
                    self._send_pending()
                if waiting or not self._pending:
                    return  # the pump looks every PENDING_WAIT_S while records wait: no need to wake it
            else:
                self._staged.extend(records)
        self._wake.set()

    def _settle_live(self) -> None:
        """With the lock, on a route's thread: the acknowledgements of live sends that came so far; the first event
        that needs the spool (a failure, a lost connection, a send from the spool) and all after it are the pump's."""
        events, inflight = self._events, self._inflight
        while events:
            kind, token, ok, when_ns = events[0]
            entries = inflight.get(token) if kind == "done" and ok else ()
            if entries is None:
                events.popleft()  # given back to the spool already (a lost connection): it goes again from there
                continue
            if not entries or any(spool_id is not None for _record, spool_id in entries):
                self._wake.set()
                return
            events.popleft()
            self._done(token, ok, when_ns, [])

    def pace_drain(self, pace: DrainPace | None) -> None:
        """From now on the spool drains within `pace` (the robot's bandwidth budget); None: at the link's speed."""
        with self._lock:
            self._pace = pace

    @property
    def inflight(self) -> int:
        """Records sent and not yet acknowledged."""
        return self._inflight_records

    def backlog(self) -> int:
        """Records not yet acknowledged: in flight, waiting to be sent, staged and spooled."""
        return self._inflight_records + len(self._pending) + len(self._staged) + self.spool.depth()

    def flush(self, timeout_s: float) -> int:
        """Wait until everything submitted is acknowledged or `timeout_s` passes; returns what remains."""
        deadline = time.monotonic() + timeout_s
        while self.backlog() and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.005)
        return self.backlog()

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the pump; what is still in flight goes back to the spool for the next start."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout_s)
        with self._lock:
            self._stage_pending()
            self._write_staged()
            self._respool_inflight()

    def _awaited(self) -> int:
        """Sends in flight that new records wait behind to leave together (`eager`): not a chunk's, whose
        acknowledgement comes only after its whole transmission, nor one made behind it, whose acknowledgement comes
        after the chunk's: a small record of another stream would wait for a large record's transmission."""
        return len(self._inflight) - len(self._unawaited)

    def _send(self, entries: _Send) -> None:
        """One send of one record, or of several records of one destination packed together."""
        self._token += 1
        token = self._token
        self._inflight[token] = entries
        self._inflight_records += len(entries)
        if self._unawaited or (len(entries) == 1 and self._alone(entries[0][0].payload)):
            self._unawaited.add(token)
        events, wake = self._events, self._wake

        def done(ok: bool) -> None:
            events.append(("done", token, ok, time.monotonic_ns()))
            if not ok or self._served:
                wake.set()  # a failure to handle; acks are settled by the next burst or the pump's next look

        first = entries[0][0]
        if len(entries) == 1:
            payload = first.payload
        else:
            assert self._pack is not None
            payload = self._pack(first.destination, [record.payload for record, _id in entries])
        try:
            self.link.send(first.destination, first.key, payload, qos=first.qos, retain=first.retain, on_done=done)
        except BaseException:
            del self._inflight[token]
            self._unawaited.discard(token)
            self._inflight_records -= len(entries)
            raise
        if len(entries) > 1:
            self.stats.batches += 1

    def _runs(self, entries: Iterable[tuple[Outgoing, int | None]]) -> Iterator[_Send]:
        """Consecutive records of one destination, QoS and retain flag, at most `max_batch` each: what one send
        may carry; made as they are taken, so a caller that stops early pays only for what it took."""
        run: _Send = []
        alone, size, max_bytes, max_batch = self._alone, 0, self._max_batch_bytes, self.max_batch
        first: Outgoing | None = None
        joins = False  # whether the run's first record may be packed with others (asked once per run)
        for entry in entries:
            record = entry[0]
            if (joins and first is not None and len(run) < max_batch and first.destination == record.destination
                    and first.qos == record.qos and first.retain == record.retain
                    and size + len(record.payload) <= max_bytes and not alone(record.payload)):
                run.append(entry)
                size += len(record.payload)
            else:
                if run:
                    yield run
                run, size, first = [entry], len(record.payload), record
                joins = max_batch > 1 and not alone(record.payload)
        if run:
            yield run

    def _send_pending(self) -> None:
        """Send the records waiting in memory, in order, packed by destination, while the window has room; what
        does not fit waits on; what the link refuses goes to the spool."""
        pending, sent, count = self._pending, 0, len(self._pending)
        for whole in self._runs((record, None) for record in pending):
            run = whole[:max(0, self.window - self._inflight_records)]  # the window's room cuts the last run short
            if not run:
                break
            try:
                self._send(run)
            except LinkBusy:
                break
            self.stats.sent_live += len(run)
            self._pending_bytes -= sum(len(record.payload) for record, _id in run)
            sent += len(run)
            if len(run) < len(whole):
                break
        if sent == count:
            self._pending, self._pending_bytes = [], 0
        elif self._inflight_records < self.window and self._pending_bytes > self.overflow_bytes:
            self._staged.extend(pending[sent:])  # refused (LinkBusy), more than may wait in memory: spool way
            self._pending, self._pending_bytes = [], 0
        elif sent:
            self._pending = pending[sent:]

    def _stage_pending(self) -> None:
        """Records waiting in memory go the spool way (the link is gone or the outbox is closing)."""
        if self._pending:
            self._staged[:0] = self._pending
            self._pending, self._pending_bytes = [], 0

    def _spool(self, record: Outgoing) -> None:
        if self.spool.put(record.stream, record.destination, record.key, record.payload,
                          priority=record.priority, order=record.order, qos=record.qos, retain=record.retain):
            self.stats.spooled += 1

    def _write_staged(self) -> None:
        if self._staged:
            if self._pace is not None:  # live records that never left: charged again when they are drained
                self._pace.refund(sum(len(r.payload) for r in self._staged))
            self.stats.spooled += self.spool.put_many(
                (r.stream, r.destination, r.key, r.payload, r.priority, r.order, r.qos, r.retain) for r in self._staged)
            self._staged.clear()

    def _lost(self) -> None:
        """Link callback: the connection dropped with records in flight (handled by the pump, woken for it)."""
        self._events.append(("lost", 0, False, 0))
        self._wake.set()

    def _idle(self) -> bool:
        """Nothing in flight, waiting, staged or spooled: the pump may sleep until something wakes it."""
        return not (self._inflight or self._pending or self._staged or self.spool.depth())

    def _pump_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(PENDING_WAIT_S if self._pending else IDLE_WAIT_S if self._idle() else BUSY_WAIT_S)
            self._wake.clear()
            try:
                busy = self.pump()
            except Exception:  # a pump that dies silently would lose the robot's data: log and go on
                log.exception("outbox pump failed; retrying")
                time.sleep(0.1)
                busy = False
            if busy:
                time.sleep(0.0005)  # let routes take the lock and the GIL between batches while draining

    def pump(self) -> bool:
        """Handle acknowledgements and lost connections, then move one batch of spooled records to the link;
        True if more is waiting. Under the lock, so events are handled one at a time, in arrival order."""
        with self._lock:
            self.link.service()
            acked: list[int] = []
            events = self._events
            while events:
                kind, token, ok, when_ns = events.popleft()
                if kind == "lost":
                    self._forget(acked)
                    self._respool_inflight()
                else:
                    self._done(token, ok, when_ns, acked)
            self._forget(acked)
            holding = time.monotonic() < self._hold_until
            if self._pending:
                if not self.link.connected or holding:
                    self._stage_pending()
                elif self._awaited() < self.eager or len(self._pending) >= self.max_batch:
                    self._send_pending()
            self._write_staged()
            self._report_drops()
            if self._pending:
                return False  # older than anything spooled: they leave first, when an acknowledgement comes
            room = self.window - self._inflight_records
            if not self.link.connected or room <= 0 or holding or not self.spool.depth():
                return False  # an empty spool costs no SQLite transaction (the pump looks up to 1,000 times a second)
            wanted = min(self.batch, room)
            spooled = self.spool.take(wanted) if self._pace is None else self._take_paced(wanted, self._pace)
            entries: _Send = [(Outgoing(s.stream, s.destination, s.key, s.payload, s.priority, s.qos, s.retain,
                                        s.order, 0), s.id) for s in spooled]
            runs = list(self._runs(entries))
            for index, run in enumerate(runs):
                try:
                    self._send(run)
                    self.stats.sent_from_spool += len(run)
                except LinkBusy:
                    self.spool.release([spool_id for later in runs[index:] for _r, spool_id in later
                                        if spool_id is not None])
                    return False
            return len(spooled) == wanted

    def _take_paced(self, wanted: int, pace: DrainPace) -> list[SpooledRecord]:
        """Up to `wanted` spooled records, in drain order, as far as the budget's tokens go: one of a kept priority
        always, another while the tokens cover it (or fill the bucket, for one larger than the bucket)."""
        tokens, burst, keep = pace.allowance()
        held = False

        def fits(size: int, priority: int) -> bool:
            nonlocal tokens, held
            if priority < keep and tokens < min(size, burst):
                held = True
                return False
            tokens -= size
            return True

        spooled = self.spool.take(wanted, fits=fits)
        if spooled:
            pace.spend_drained(sum(len(s.payload) + len(s.key) for s in spooled))
        self.stats.paced += held
        return spooled

    def _report_drops(self) -> None:
        """A full spool drops records (lowest priority, oldest first): say so, at most once a second."""
        dropped = self.spool.dropped
        now = time.monotonic()
        if dropped != self._drops_reported and now >= self._drops_next_report:
            log.warning("spool %s full: %d records dropped since start (lowest priority, oldest first); "
                        "spool.max_mb limits it", self.spool.path, dropped)
            self._drops_reported, self._drops_next_report = dropped, now + 1.0

    def _forget(self, spool_ids: list[int]) -> None:
        """Acknowledged spooled records leave the spool, in one transaction per batch."""
        if spool_ids:
            self.spool.ack(spool_ids)
            spool_ids.clear()

    def _done(self, token: int, ok: bool, when_ns: int, acked: list[int]) -> None:
        entries = self._inflight.pop(token, None)
        if entries is None:
            return  # already given back to the spool after a lost connection: it will be sent again
        self._unawaited.discard(token)
        self._inflight_records -= len(entries)
        if ok:
            self.stats.acked += len(entries)
            for record, spool_id in entries:
                if spool_id is not None:
                    acked.append(spool_id)
                if self._on_acked is not None and record.received_ns:
                    self._on_acked(record, when_ns)
            return
        self.stats.failed += len(entries)
        if self.link.connected:  # refused on a live connection (no subscriber, not authorized): not again at once
            self._hold_until = time.monotonic() + self.retry_s
        self.spool.release([spool_id for _r, spool_id in entries if spool_id is not None])
        for record, spool_id in entries:
            if spool_id is None:
                self._spool(record)

    def _respool_inflight(self) -> None:
        """Everything in flight is the outbox's again: spooled ones are released, live ones spooled."""
        if not self._inflight:
            return
        entries = [entry for send in self._inflight.values() for entry in send]
        self.spool.release([spool_id for _r, spool_id in entries if spool_id is not None])
        for record, spool_id in entries:
            if spool_id is None:
                self._spool(record)
        log.info("%s: connection lost with %d records in flight; they go out again from the spool",
                 getattr(self.link, "endpoint", "uplink"), len(entries))
        self._inflight.clear()
        self._unawaited.clear()
        self._inflight_records = 0
