"""A durable, bounded, ordered store-and-forward queue on SQLite (WAL), for records an uplink could not take.

Records keep their order per stream; draining takes higher priority first, then the lowest order number
(the order of submission, which a caller may give explicitly to put a record back where it was). When the
spool is full, the oldest records of the lowest priority make room, never ones more important than the
newcomer (then the newcomer is dropped). Every drop is counted per stream and reason, durably.
Delivery is at-least-once: records handed out by `take` stay until `ack`; after a crash they come again.
Each record keeps how it is to be sent (MQTT QoS, retain), so a drain sends it as its route said.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from swarm_bridge.errors import SwarmBridgeError

__all__ = ["FORMAT", "RUN_EPOCH", "Entry", "Spool", "SpoolError", "SpoolLimitError", "SpooledRecord"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ord INTEGER NOT NULL,
    stream TEXT NOT NULL,
    destination TEXT NOT NULL,
    key BLOB NOT NULL,
    payload BLOB NOT NULL,
    priority INTEGER NOT NULL,
    size INTEGER NOT NULL,
    enqueued_ns INTEGER NOT NULL,
    taken INTEGER NOT NULL DEFAULT 0,
    qos INTEGER NOT NULL DEFAULT 1,
    retain INTEGER
);
CREATE INDEX IF NOT EXISTS records_drain ON records (taken, priority DESC, ord);
CREATE INDEX IF NOT EXISTS records_evict ON records (priority, ord);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS drops (
    stream TEXT NOT NULL,
    reason TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (stream, reason)
);
"""

FULL = "spool full"

# Runs count seconds from here (2024-01-01 UTC) at the least; a run must stay below 2**31 (seq is a signed
# 64-bit long holding run << 32), which seconds from this epoch do until 2092.
RUN_EPOCH = 1_704_067_200
MAX_RUN = 1 << 31

# Spool file format (SQLite user_version). 0: before qos/retain were kept per record; such files gain the two
# columns on open, their records draining at QoS 1 (what that version sent) and retained as the destination
# is described (retain NULL). Version 1 files stay readable by the older version (it names its columns).
FORMAT = 1
_ADDED_COLUMNS = (("qos", "INTEGER NOT NULL DEFAULT 1"), ("retain", "INTEGER"))

Entry = tuple[str, str, bytes, bytes, int, int | None, int, bool | None]
"""What `put_many` stores: (stream, destination, key, payload, priority, order or None = next, MQTT QoS,
retain or None = as the destination is described)."""


class SpoolError(SwarmBridgeError, RuntimeError):
    """The spool file cannot be opened or written; names the file and the fix."""

    def __init__(self, path: Path, problem: str, fix: str) -> None:
        self.path, self.problem, self.fix = path, problem, fix
        super().__init__(f"spool {path}: {problem}. Fix: {fix}")


class SpoolLimitError(SpoolError, ValueError):
    """Spool limits that cannot hold a record (<= 0); a ValueError too, as it is a bad setting."""


@dataclass(frozen=True)
class SpooledRecord:
    """One record waiting for its uplink: where it goes, its bytes, and how important it is."""

    id: int
    order: int
    stream: str
    destination: str
    key: bytes
    payload: bytes
    priority: int
    enqueued_ns: int
    qos: int = 1
    retain: bool | None = None  # None: as the uplink describes the destination (records of a format 0 spool)


class Spool:
    """The queue; safe to share between the ROS thread and a link's network thread."""

    def __init__(self, path: Path, *, max_bytes: int, max_records: int | None = None) -> None:
        if max_bytes <= 0 or (max_records is not None and max_records <= 0):
            raise SpoolLimitError(Path(path), f"limits must be > 0 (got max_bytes={max_bytes}, "
                                  f"max_records={max_records})", "give a spool size > 0 (config: spool.max_mb)")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.max_records = max_records
        self.dropped = 0  # drops since this process opened the spool (drops() has them all, by stream and reason)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # survives a process crash; WAL keeps order
            self._db.executescript(_SCHEMA)
            self._upgrade()
            self._db.execute("UPDATE records SET taken = 0 WHERE taken = 1")  # a crash left them in flight
        except (OSError, sqlite3.Error) as exc:
            raise SpoolError(self.path, f"cannot open ({exc})", "check the directory exists and is writable, "
                             "or point spool.path elsewhere") from None
        self._bytes, self._count, last = self._db.execute(
            "SELECT COALESCE(SUM(size), 0), COUNT(*), COALESCE(MAX(ord), -1) FROM records").fetchone()
        self._next_order = last + 1

    def _upgrade(self) -> None:
        """Bring a spool file written by an older version to FORMAT; refuse one from a newer version."""
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        if version > FORMAT:
            raise SpoolError(self.path, f"written by a newer swarm_bridge (spool format {version}, this one reads "
                             f"up to {FORMAT})", "upgrade swarm_bridge, or point spool.path elsewhere")
        if version == FORMAT:
            return
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(records)")}
        with self._transaction():
            for name, kind in _ADDED_COLUMNS:
                if name not in columns:
                    self._db.execute(f"ALTER TABLE records ADD COLUMN {name} {kind}")
            self._db.execute(f"PRAGMA user_version = {FORMAT}")

    def put(self, stream: str, destination: str, key: bytes, payload: bytes, *, priority: int,
            order: int | None = None, qos: int = 1, retain: bool | None = None) -> bool:
        """Append one record; returns False when it was dropped itself because the spool is full."""
        return self.put_many([(stream, destination, key, payload, priority, order, qos, retain)]) == 1

    def put_many(self, records: Iterable[Entry]) -> int:
        """Store records (`Entry` tuples) in one transaction; returns how many were kept."""
        kept = 0
        now = time.time_ns()
        with self._lock, self._transaction():
            for stream, destination, key, payload, priority, given_order, qos, retain in records:
                order = self._next_order if given_order is None else given_order
                self._next_order = max(self._next_order, order + 1)
                size = len(payload) + len(key)
                if not self._make_room(size, priority, order):
                    self._count_drop(stream, FULL, 1)
                    continue
                self._db.execute(
                    "INSERT INTO records (ord, stream, destination, key, payload, priority, size, enqueued_ns, qos,"
                    " retain) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (order, stream, destination, key, payload, priority, size, now, qos, retain))
                self._bytes += size
                self._count += 1
                kept += 1
        return kept

    def take(self, limit: int, *, stream: str | None = None,
             fits: Callable[[int, int], bool] | None = None) -> list[SpooledRecord]:
        """Up to `limit` records not yet handed out, highest priority first, then oldest; marks them taken.
        `fits(size, priority)`, asked of each in that order before its payload is read, stops the take at the first
        False (a bandwidth budget pacing the drain)."""
        where, args = ("AND stream = ?", (stream,)) if stream is not None else ("", ())
        columns = "id, ord, stream, destination, key, payload, priority, enqueued_ns, qos, retain"
        with self._lock, self._transaction():
            if fits is None:
                rows = self._db.execute(f"SELECT {columns} FROM records WHERE taken = 0 {where} ORDER BY priority "
                                        "DESC, ord LIMIT ?", (*args, limit)).fetchall()
            else:
                chosen = []
                for record_id, size, priority in self._db.execute(
                        f"SELECT id, size, priority FROM records WHERE taken = 0 {where} ORDER BY priority DESC, ord "
                        "LIMIT ?", (*args, limit)):
                    if not fits(size, priority):
                        break
                    chosen.append(record_id)
                rows = [row for part in _chunks(chosen, 500) for row in self._db.execute(
                    f"SELECT {columns} FROM records WHERE id IN ({','.join('?' * len(part))}) ORDER BY priority "
                    "DESC, ord", part)]
            self._db.executemany("UPDATE records SET taken = 1 WHERE id = ?", [(r[0],) for r in rows])
        return [SpooledRecord(i, o, s, d, k, p, pr, e, q, None if r is None else bool(r))
                for i, o, s, d, k, p, pr, e, q, r in rows]

    def ack(self, ids: Sequence[int]) -> None:
        """Forget records the uplink confirmed."""
        if not ids:
            return
        with self._lock, self._transaction():
            for chunk in _chunks(ids, 500):
                marks = ",".join("?" * len(chunk))
                size, count = self._db.execute(
                    f"SELECT COALESCE(SUM(size), 0), COUNT(*) FROM records WHERE id IN ({marks})", chunk).fetchone()
                self._db.execute(f"DELETE FROM records WHERE id IN ({marks})", chunk)
                self._bytes -= size
                self._count -= count

    def release(self, ids: Sequence[int] | None = None) -> None:
        """Hand taken records out again (the link failed before confirming them); all of them if `ids` is None."""
        with self._lock, self._transaction():
            if ids is None:
                self._db.execute("UPDATE records SET taken = 0 WHERE taken = 1")
            else:
                self._db.executemany("UPDATE records SET taken = 0 WHERE id = ?", [(i,) for i in ids])

    def depth(self, stream: str | None = None) -> int:
        """Records waiting (taken or not), in all or one stream."""
        if stream is None:
            return self._count
        with self._lock:
            (count,) = self._db.execute("SELECT COUNT(*) FROM records WHERE stream = ?", (stream,)).fetchone()
        return int(count)

    def start_run(self, now_s: float | None = None) -> int:
        """Count one more start of the process that owns this spool; returns its run number.

        The run is above every earlier one in this spool and at least the clock's seconds since RUN_EPOCH, so
        `seq = run << 32 | n` stays unique and increasing across restarts (even after a SIGKILL) and also when the
        spool itself is lost (a re-imaged robot): a fresh spool does not start again at a run already in Kafka."""
        clock = int((time.time() if now_s is None else now_s) - RUN_EPOCH)
        with self._lock, self._transaction():
            row = self._db.execute("SELECT value FROM meta WHERE name = 'runs'").fetchone()
            run = max(int(row[0]) if row else 0, clock if 0 <= clock < MAX_RUN else 0)
            # 'runs' holds one above the last run: what format 1 counted, so an older version continues above too
            self._db.execute("INSERT INTO meta (name, value) VALUES ('runs', ?) ON CONFLICT (name)"
                             " DO UPDATE SET value = excluded.value", (run + 1,))
        return run

    @property
    def next_order(self) -> int:
        """One above the highest order number ever stored here: where a new submitter continues."""
        return self._next_order

    @property
    def bytes_used(self) -> int:
        return self._bytes

    def drops(self) -> dict[tuple[str, str], int]:
        """Every drop so far, by (stream, reason); kept across restarts."""
        with self._lock:
            return {(s, r): c for s, r, c in self._db.execute("SELECT stream, reason, count FROM drops")}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _make_room(self, size: int, priority: int, order: int) -> bool:
        """Evict the oldest records of the lowest priority (never above `priority`, nor of its priority
        and newer than `order`) until `size` fits."""
        if size > self.max_bytes:
            return False
        while self._bytes + size > self.max_bytes or (self.max_records is not None
                                                        and self._count + 1 > self.max_records):
            victim = self._db.execute(
                "SELECT id, stream, size FROM records WHERE taken = 0 AND (priority < ? OR"
                " (priority = ? AND ord < ?)) ORDER BY priority, ord LIMIT 1", (priority, priority, order)).fetchone()
            if victim is None:
                return False
            self._db.execute("DELETE FROM records WHERE id = ?", (victim[0],))
            self._bytes -= victim[2]
            self._count -= 1
            self._count_drop(victim[1], FULL, 1)
        return True

    def _count_drop(self, stream: str, reason: str, count: int) -> None:
        self.dropped += count
        self._db.execute("INSERT INTO drops (stream, reason, count) VALUES (?, ?, ?) ON CONFLICT (stream, reason)"
                         " DO UPDATE SET count = count + excluded.count", (stream, reason, count))

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on error."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_rest: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")


def _chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
