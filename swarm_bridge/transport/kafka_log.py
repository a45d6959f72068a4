"""librdkafka's log and error callbacks, summarised: each message once, then how often it came again.

While a broker is away librdkafka reports the same failure on every reconnect (every 50-100 ms), which buried
the one line that says what to do under hundreds of identical ones. Every Kafka client of the package passes
`kafka_log(log).settings()` (or `kafka_log(log)` as its `logger`): a message is logged the first time, its
repeats are counted and reported as one line every `every_s` while they continue, and once at `flush()`
(called when a start-up check fails, and at exit).
"""

from __future__ import annotations

import atexit
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError

__all__ = ["KafkaLog", "flush_kafka_logs", "kafka_log"]

_DIGITS = re.compile(r"\d+")
_THREAD = re.compile(r"^\[thrd:[^\]]*\]: ")  # which librdkafka thread: not part of what happened
_SUPPRESSED = re.compile(r", (\d+) identical error\(s\) suppressed")  # librdkafka's own, shorter count
_MAX_KEYS = 256  # distinct messages remembered per logger; the oldest is forgotten (its next copy logs again)
_REPORT_EVERY_S = 60.0


class _Seen:
    __slots__ = ("level", "repeats", "reported", "text")

    def __init__(self, level: int, text: str, now: float) -> None:
        self.level, self.text, self.reported, self.repeats = level, text, now, 0


class KafkaLog:
    """librdkafka's callbacks for one Python logger: `log` is its `logger`, `error` its `error_cb`.

    Messages that differ only in numbers (timestamps, ms, counts) count as the same message, and an error
    that repeats a log line (librdkafka reports a failed connect both ways) as a repeat of it."""

    def __init__(self, logger: logging.Logger, *, every_s: float = _REPORT_EVERY_S) -> None:
        self.logger, self.every_s = logger, every_s
        self._seen: OrderedDict[str, _Seen] = OrderedDict()
        self._lock = threading.Lock()

    def settings(self, on_error: Callable[[KafkaError], None] | None = None) -> dict[str, Any]:
        """librdkafka settings routing its log lines and errors here; `on_error` also gets every error."""
        if on_error is None:
            return {"logger": self, "error_cb": self.error}

        def error_cb(err: KafkaError) -> None:
            self.error(err)
            on_error(err)
        return {"logger": self, "error_cb": error_cb}

    def log(self, level: int, fmt: str, *args: Any) -> None:
        """What confluent-kafka calls for each librdkafka log line: `fmt % (facility, client, message)`."""
        if len(args) == 3:  # the client's name (rdkafka#producer-2) is left out: one message for all clients
            facility, _client, message = args
            self._note(level, f"{facility}: ", _THREAD.sub("", str(message)))
        else:
            self._note(level, "", fmt % args if args else fmt)

    def error(self, err: KafkaError) -> None:
        """librdkafka's error callback: a client-level error (broker down, transport, authentication)."""
        self._note(logging.WARNING, f"{err.name()}: ", err.str())

    def _note(self, level: int, label: str, message: str) -> None:
        suppressed = _SUPPRESSED.search(message)
        if suppressed is not None:
            message = message[:suppressed.start()] + message[suppressed.end():]
        key = _DIGITS.sub("#", message)
        text = label + message
        now = time.monotonic()
        report: tuple[int, str, int, float] | None = None
        with self._lock:
            seen = self._seen.get(key)
            if seen is None:
                self._seen[key] = _Seen(level, text, now)
                if len(self._seen) > _MAX_KEYS:
                    self._seen.popitem(last=False)
            else:
                self._seen.move_to_end(key)
                seen.repeats += 1 + (int(suppressed.group(1)) if suppressed is not None else 0)
                if now - seen.reported >= self.every_s:
                    report = (seen.level, seen.text, seen.repeats, now - seen.reported)
                    seen.repeats, seen.reported = 0, now
        if seen is None:
            self.logger.log(level, "%s", text)
        elif report is not None:
            self.logger.log(report[0], "%s (repeated %d times in the last %.0f s)", report[1], report[2], report[3])

    def flush_at_exit(self) -> None:
        """`flush`, unless logging is no longer set up (a test runner that removed its handlers)."""
        if self.logger.hasHandlers():
            self.flush()

    def flush(self) -> None:
        """Report the repeats not reported yet, one line per message."""
        now = time.monotonic()
        with self._lock:
            pending = [(s.level, s.text, s.repeats, now - s.reported) for s in self._seen.values() if s.repeats]
            for seen in self._seen.values():
                seen.repeats, seen.reported = 0, now
        for level, text, repeats, span in pending:
            self.logger.log(level, "%s (repeated %d times in the last %.0f s)", text, repeats, span)


_LOGS: dict[str, KafkaLog] = {}
_LOGS_LOCK = threading.Lock()


def kafka_log(logger: logging.Logger) -> KafkaLog:
    """The one KafkaLog of `logger` in this process (all its clients share the counts); flushed at exit."""
    with _LOGS_LOCK:
        found = _LOGS.get(logger.name)
        if found is None:
            found = _LOGS[logger.name] = KafkaLog(logger)
            atexit.register(found.flush_at_exit)
        return found


def flush_kafka_logs() -> None:
    """Report every logger's repeats now (before a start-up check prints why it failed)."""
    with _LOGS_LOCK:
        logs = list(_LOGS.values())
    for found in logs:
        found.flush()
