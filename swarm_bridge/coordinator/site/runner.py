"""The single-site coordinator: one instance straight on the site's MQTT broker, no Kafka.

The same pure core as the sharded coordinator (fleet view, task lifecycle, assignment policy, timeouts,
retries, idempotent submissions), fed from the robots' MQTT topics (`wire`). State lives in memory
(one process owns the site; optionally snapshotted to a JSON-lines file and read back at start), so a
second instance would assign twice: run exactly one per site, or use mode kafka.

Threads: the MQTT client's network thread queues what arrives (acked once queued); one worker folds it in,
ticks the clock and sends commands (QoS 1). `submit` and `summary` may be called from any thread.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from swarm_bridge.config.coordinator import CoordinatorConfig
from swarm_bridge.coordinator.core.dispatch import ASSIGN, Command, Dispatch, EventRecord, Output
from swarm_bridge.coordinator.core.drops import DropLog
from swarm_bridge.coordinator.core.errors import CoordinatorSettingError
from swarm_bridge.coordinator.core.pause import (
    PAUSE_KEY,
    MalformedPause,
    PauseRefusal,
    PauseRequest,
    parse_pause,
    pause_refusal,
)
from swarm_bridge.coordinator.core.tasks import TERMINAL, Task, TaskRequest, TaskState
from swarm_bridge.coordinator.core.vda import Outgoing, UnknownVehicle, VdaVehicles
from swarm_bridge.coordinator.metrics import CoordinatorMetrics
from swarm_bridge.coordinator.site.state_file import StateFile
from swarm_bridge.coordinator.site.wire import (
    SiteRecords,
    SiteTopics,
    pause_payload,
    result_payload,
    result_topic_level,
)
from swarm_bridge.coordinator.wiring import build_dispatch, command_signer
from swarm_bridge.routing.presence import parse_presence
from swarm_bridge.transport.link import LinkBusy
from swarm_bridge.transport.mqtt import MqttLink, MqttTls
from swarm_bridge.vda5050 import MessageInvalid

__all__ = ["SiteCoordinator", "Submission"]

log = logging.getLogger(__name__)

_CHECK_EVERY_NS = 500_000_000
_BATCH = 2000
_WAKE = ("wake", "", b"", 0)


@dataclass(frozen=True)
class Submission:
    """The answer to one task request: queued (accepted) or rejected with the reason; a task id seen before
    is a duplicate, answered with the state that task is in."""

    task_id: str
    accepted: bool
    state: str
    reason: str = ""
    duplicate: bool = False


class SiteCoordinator:
    """One coordinator for one site's MQTT broker; `start()`, `submit()`, `summary()`, `stop()`."""

    def __init__(self, config: CoordinatorConfig, *, metrics: CoordinatorMetrics | None = None,
                 dispatch: Dispatch | None = None) -> None:
        if config.mqtt is None:
            raise CoordinatorSettingError("the single-site coordinator needs the config's mqtt: section; add it "
                                          "(with mode: mqtt) or run the Kafka coordinator (mode: kafka)")
        self.config, self.mqtt = config, config.mqtt
        self.dispatch = dispatch or build_dispatch(config)
        self.dispatch.owned = frozenset(range(config.shards))  # one instance owns every shard
        self.metrics = metrics or CoordinatorMetrics()
        self.topics = SiteTopics(self.mqtt.topic_prefix, config.fleet)
        self.records = SiteRecords(self.topics, fmt=config.robot_format, signer=command_signer(config))
        self.client_id = self.mqtt.client_id or f"{config.fleet}-coordinator"
        self.drops = DropLog(f"site coordinator {self.client_id}", self.dispatch.counts, self.metrics.dropped, log)
        tls = None if self.mqtt.tls is None else MqttTls(self.mqtt.tls.ca_file, self.mqtt.tls.cert_file,
                                                         self.mqtt.tls.key_file)
        self.link = MqttLink(host=self.mqtt.host, port=self.mqtt.port, client_id=self.client_id,
                             connect_timeout_s=self.mqtt.connect_timeout_s, session_expiry_s=self.mqtt.session_expiry_s,
                             keepalive_s=self.mqtt.keepalive_s, username=self.mqtt.username,
                             password=self.mqtt.password, tls=tls, settings="mqtt")
        self.link.describe(self.topics.status, content_type="application/json", retain=True)
        self.endpoint = self.link.endpoint
        self._lock = threading.RLock()  # the core: the worker, submit() and summary() take turns
        self._inbox: queue.SimpleQueue[tuple[str, str, bytes, int]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._started = False
        self._described: set[str] = set()
        self._backlog: deque[tuple[str, bytes, Command, int]] = deque()  # commands the link could not take yet
        self._requested: dict[str, int] = {}  # task id -> when its request arrived (ns), until first assigned
        self._latencies: deque[float] = deque(maxlen=10_000)  # seconds, request -> command acknowledged
        self._last_check = 0
        self._checks_from = 0  # no lost-robot checks before this (ns): robots of a loaded snapshot report first
        self._last_status = 0
        self.state_file = StateFile(self.mqtt.state_file, period_s=self.mqtt.snapshot_period_s)
        self.events: Counter[str] = Counter()  # task events by name (submitted, assigned, done, ...)
        self.assigned = 0
        self.received: Counter[str] = Counter()  # inputs by kind
        # Robot protocols: plain VDA 5050 vehicles (config vda5050) beside the swarm_bridge robots. Each protocol
        # has its inputs (kind -> fold) and its way to send a command; a robot's protocol is the one it spoke.
        self.vda = None if config.vda5050 is None else VdaVehicles(
            config.vda5050, config.capabilities, offline_grace_ns=self.dispatch.stale_after_ns)
        self._inputs: dict[str, Callable[[str, bytes, int], list[Output]]] = {
            "vda_state": self._vda_state, "vda_connection": self._vda_connection,
            "vda_factsheet": self._vda_factsheet, "cancel": self._cancel_request, "pause": self._pause_request}
        self._senders: dict[str, Callable[[Command, int], None]] = {
            "swarm_bridge": self._swarm_command, "vda5050": self._vda_command}

    # -- lifecycle --------------------------------------------------------------------------------------

    def start(self) -> SiteCoordinator:
        """Load the snapshot (if any), connect (LinkError when the broker is unreachable), subscribe, work."""
        with self._lock:
            if self._started:
                return self
            self._load()
            subscriptions: dict[str, str] = {**self.topics.subscriptions,
                                             **(self.vda.subscriptions if self.vda is not None else {})}
            for topic_filter, kind in subscriptions.items():
                self.link.subscribe(topic_filter, self._receiver(kind))
            self.link.connect(require=True)
            self._started = True
            self._worker = threading.Thread(target=self._run, name=f"site-coordinator-{self.config.fleet}",
                                            daemon=True)
            self._worker.start()
        log.info("site coordinator %s: fleet %s on %s (%s), state in memory%s", self.client_id, self.config.fleet,
                 self.endpoint, self.topics.submit,
                 f", snapshot {self.mqtt.state_file}" if self.mqtt.state_file else "")
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop working, write the snapshot, flush the commands in flight and disconnect; safe to call twice."""
        with self._lock:
            if not self._started or self._stop.is_set():
                return
            self._stop.set()
        self._inbox.put(_WAKE)
        if self._worker is not None:
            self._worker.join(timeout_s)
        with self._lock:
            self._save(force=True)
            self._publish_status(time.time_ns())
        pending = self.link.flush(min(timeout_s, 5.0))
        if pending:
            log.warning("site coordinator %s: %d commands not acknowledged at stop", self.client_id, pending)
        self.link.close()

    def __enter__(self) -> SiteCoordinator:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- the API ----------------------------------------------------------------------------------------

    def submit(self, request: TaskRequest | Mapping[str, Any] | bytes | str) -> Submission:
        """Queue one task request (a TaskRequest, its JSON document, or JSON bytes); the task id is the
        idempotency key. Returns at once: accepted (queued, or a duplicate of a known task) or rejected."""
        payload = _request_bytes(request)
        with self._lock:
            answer = self._submit(payload, f"api:{time.time_ns()}", time.time_ns())
        self._inbox.put(_WAKE)  # assign now, not at the next tick
        return answer

    def submit_payload(self, payload: bytes) -> None:
        """Queue a raw task request from another source (the ROS topic), as if it came over MQTT."""
        self._inbox.put(("submit", "ros:tasks/submit", bytes(payload), time.time_ns()))

    def cancel(self, task_id: str, reason: str = "cancelled by request") -> bool:
        """Cancel a task: it ends `cancelled` and its robot (if any) is told (a VDA 5050 vehicle by cancelOrder);
        False when the task is unknown or has already ended."""
        with self._lock:
            now = time.time_ns()
            out = self.dispatch.cancel(task_id, now, reason)
            if not out:
                return False
            self._emit(out, now)
            return True

    def pause(self, robot_id: str, paused: bool = True) -> None:
        """Pause (startPause) or resume (stopPause) a VDA 5050 vehicle; UnknownVehicle naming the robot and why when
        it is none (a swarm_bridge robot, no vehicle of that id seen, no vda5050 section)."""
        with self._lock:
            why = self._pause(PauseRequest(robot_id, paused), time.time_ns())
        if why is not None:
            raise UnknownVehicle(why.detail)

    def task(self, task_id: str) -> Task | None:
        with self._lock:
            return self.dispatch.book.get(task_id)

    def tasks(self) -> list[Task]:
        """Every task as it is now (a copy)."""
        with self._lock:
            return list(self.dispatch.book)

    def summary(self) -> dict[str, Any]:
        """Tasks per state, commands and assignments, robots known and online, assignment latency, drops."""
        with self._lock:
            now = time.time_ns()
            stale = self.dispatch.stale_after_ns
            latencies = sorted(self._latencies)
            return {
                "mode": "mqtt", "fleet": self.config.fleet, "broker": self.endpoint,
                "tasks": self.dispatch.book.counts(), "assigned": self.assigned,
                "robots": len(self.dispatch.fleet),
                "robots_online": self.dispatch.fleet.reachable_count(now, stale),
                "assignment_latency_s": {"count": len(latencies), "p50": _quantile(latencies, 0.5),
                                         "p99": _quantile(latencies, 0.99)},
                "events": dict(self.events), "received": dict(self.received),
                "dropped": dict(self.dispatch.counts), "commands_waiting": len(self._backlog),
            }

    # -- inputs -----------------------------------------------------------------------------------------

    def _receiver(self, kind: str) -> Any:
        inbox = self._inbox

        def receive(topic: str, _key: bytes | None, payload: bytes) -> None:
            inbox.put((kind, topic, payload, time.time_ns()))

        return receive

    def _run(self) -> None:
        while not self._stop.is_set():
            batch: list[tuple[str, str, bytes, int]] = []
            try:
                batch.append(self._inbox.get(timeout=0.05))
                while len(batch) < _BATCH:
                    batch.append(self._inbox.get_nowait())
            except queue.Empty:
                pass
            try:
                self._round(batch)
            except Exception:  # a bug in one round must not stop the site's coordination
                self.dispatch.counts["round failed"] += 1
                self.metrics.dropped.labels("round failed").inc()
                log.exception("site coordinator %s: a round failed; going on", self.client_id)

    def _round(self, batch: list[tuple[str, str, bytes, int]]) -> None:
        with self._lock:
            now = time.time_ns()
            out: list[Output] = []
            for kind, topic, payload, received_ns in batch:
                if kind != "wake":
                    out += self._input(kind, topic, payload, received_ns)
            check = now - self._last_check >= _CHECK_EVERY_NS
            if check:
                self._last_check = now
                self._gauges(now)
                if self.vda is not None:
                    for message in self.vda.quiet(self.dispatch.fleet, now, self.dispatch.stale_after_ns):
                        self._publish(message)
            out += self.dispatch.tick(now, check=check and now >= self._checks_from)
            self._emit(out, now)
            self._retry_backlog()
            if now - self._last_status >= int(self.mqtt.status_period_s * 1e9):
                self._publish_status(now)
            self._save()

    def _input(self, kind: str, topic: str, payload: bytes, now_ns: int) -> list[Output]:
        self.received[kind] += 1
        fold = self._inputs.get(kind)
        if fold is not None:
            try:
                return fold(topic, payload, now_ns)
            except UnknownVehicle as exc:
                self.drops("vda5050 vehicle of an unknown manufacturer", str(exc))
            except MessageInvalid as exc:
                self.drops(f"malformed {kind}", f"mqtt:{topic}: {exc}")
            except Exception as exc:  # a message no check foresaw is counted and skipped, never fatal
                self.drops(f"unreadable {kind}", f"mqtt:{topic}: {type(exc).__name__}: {exc}")
            return []
        mismatch = self.records.mismatch(kind, payload, f"mqtt:{topic}")
        if mismatch is not None:
            self.received[f"{kind} not in robot_format"] += 1
            if mismatch.first:
                log.warning("site coordinator %s: %s; these records are read all the same, but commands go out as "
                            "%s, which that robot's task_command route must read", self.client_id, mismatch,
                            self.config.robot_format)
        try:
            if kind == "submit":
                answer = self._submit(payload, f"{topic}#{self.received[kind]}", now_ns)
                if result_topic_level(answer.task_id):
                    self._send(self.topics.result(answer.task_id), result_payload(
                        answer.task_id, accepted=answer.accepted, state=answer.state, reason=answer.reason,
                        duplicate=answer.duplicate))
                return []
            if kind == "state":
                for body in self.records.states(payload):
                    if not self._from_its_robot(topic, str(body["robot_id"]), kind):
                        continue
                    self.dispatch.fleet.on_state(body, now_ns)
                return []
            if kind == "presence":
                if not payload:
                    return []  # a retained presence cleared: nothing to fold
                presence = parse_presence(payload)
                if self._from_its_robot(topic, presence.robot_id, kind):
                    self.dispatch.fleet.on_presence(presence.robot_id, presence.state, presence.reason, now_ns)
                return []
            out: list[Output] = []
            for report in self.records.statuses(payload):
                if not self._from_its_robot(topic, report.robot_id, kind):
                    continue
                result = self.dispatch.status(robot_id=report.robot_id, task_id=report.task_id, state=report.state,
                                              reason=report.reason, progress=report.progress, now_ns=now_ns)
                if result is None:
                    self.drops("status for an unknown task", f"{topic}: task {report.task_id}")
                else:
                    out += result
            return out
        except Exception as exc:  # a malformed message is counted and skipped, never fatal
            self.drops(f"malformed {kind}", f"mqtt:{topic}: {exc}")
            return []

    def _from_its_robot(self, topic: str, robot_id: str, kind: str) -> bool:
        if self.topics.robot_of(topic) == robot_id:
            return True
        self.drops(f"{kind} of another robot", f"mqtt:{topic}: record says robot_id {robot_id!r}")
        return False

    def _submit(self, payload: bytes, key: str, now_ns: int) -> Submission:
        """Hand a request to the core and send what it decided; `key` names a request without a task id."""
        out = self.dispatch.submit(payload, key, now_ns)
        first = next((r.event.task for r in out if isinstance(r, EventRecord) and r.event is not None), None)
        if first is None:  # a task id seen before
            task_id = _task_id_of(payload)
            known = self.dispatch.book.get(task_id)
            state = known.state.value if known is not None else "unknown"
            answer = Submission(task_id, known is not None and known.state is not TaskState.REJECTED, state,
                                known.reason if known is not None else "", duplicate=True)
        else:
            answer = Submission(first.task_id, first.state is TaskState.QUEUED, first.state.value, first.reason)
            if first.state is TaskState.QUEUED:
                self._requested[first.task_id] = now_ns
            else:
                log.info("site coordinator %s: %s", self.client_id, first.reason)
        self._emit(out, now_ns)
        return answer

    # -- outputs ----------------------------------------------------------------------------------------

    def _emit(self, out: list[Output], now_ns: int) -> None:
        for record in out:
            if isinstance(record, EventRecord):
                if record.event is not None:
                    self.events[record.event.event] += 1
                    if record.event.task.state in TERMINAL:
                        self._requested.pop(record.task_id, None)
                continue
            if not isinstance(record, Command):
                continue  # a cancel passed on between Kafka instances: a site has one instance, owning every shard
            protocol = "vda5050" if self.vda is not None and self.vda.knows(record.robot_id) else "swarm_bridge"
            self._senders[protocol](record, now_ns)

    def _swarm_command(self, record: Command, now_ns: int) -> None:
        """A TaskCommand record on the robot's command topic."""
        topic = self.topics.command(record.robot_id)
        if topic not in self._described:
            self.link.describe(topic, content_type=self.records.command_content_type)
            self._described.add(topic)
        self._command(topic, self.records.command(record, now_ns), record)

    def _vda_command(self, record: Command, now_ns: int) -> None:
        """An order (assign) or cancelOrder (cancel) to a VDA 5050 vehicle, at the spec's QoS."""
        assert self.vda is not None
        try:
            outgoing = self.vda.command(record, now_ns)
        except MessageInvalid as exc:  # a bug: what we built breaks the official schema; never sent
            self.drops("vda5050 message breaks its schema", f"{record.robot_id}: {exc}")
            return
        if not outgoing and record.action != ASSIGN:
            self.drops("cancel for an order not sent", f"{record.robot_id}: task {record.task.task_id}")
        for message in outgoing:
            self._command(message.topic, message.payload, record, qos=message.qos)

    def _vda_state(self, topic: str, payload: bytes, now_ns: int) -> list[Output]:
        assert self.vda is not None
        out: list[Output] = []
        for report in self.vda.on_state(topic, payload, self.dispatch.fleet, now_ns, self._order_of):
            result = self.dispatch.status(robot_id=report.robot_id, task_id=report.task_id, state=report.state,
                                          reason=report.reason, progress=report.progress, now_ns=now_ns)
            out += result or []
        return out

    def _cancel_request(self, topic: str, payload: bytes, now_ns: int) -> list[Output]:
        """A cancel request {task_id, reason} from MQTT: the task cancelled (its robot told) and the answer sent
        on its result topic; a request that is no such JSON is counted."""
        try:
            doc = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self.drops("malformed cancel", f"mqtt:{topic}: not JSON: {exc}")
            return []
        task_id = doc.get("task_id") if isinstance(doc, dict) else None
        reason = doc.get("reason") if isinstance(doc, dict) else None
        if not isinstance(task_id, str) or not result_topic_level(task_id) or not isinstance(reason, (str, type(None))):
            self.drops("malformed cancel", f"mqtt:{topic}: expected {{task_id: str, reason: str}}, got {doc!r:.200}")
            return []
        out = self.dispatch.cancel(task_id, now_ns, reason or "cancelled by request")
        task = self.dispatch.book.get(task_id)
        state = task.state.value if task is not None else "unknown"
        why = "" if out else ("no such task" if task is None else f"already {state}")
        self._send(self.topics.result(task_id), result_payload(task_id, accepted=bool(out), state=state, reason=why,
                                                               duplicate=False))
        return out or []

    def _pause_request(self, topic: str, payload: bytes, now_ns: int) -> list[Output]:
        """A pause or resume request from MQTT: startPause/stopPause published to the vehicle, or refused (counted);
        the answer goes on the request's result topic. A request that is no such JSON is counted."""
        try:
            request = parse_pause(payload)
            if request is None:
                raise MalformedPause(PAUSE_KEY, f"missing; expected {{{PAUSE_KEY}: robot_id, paused: bool, ...}}")
            if request.reply and not result_topic_level(request.reply):
                raise MalformedPause("reply", f"{request.reply!r:.80} cannot be a topic level (no / + # or NUL)")
        except MalformedPause as exc:
            self.drops("malformed pause", f"mqtt:{topic}: {exc}")
            return []
        why = self._pause(request, now_ns)
        if request.reply:
            self._send(self.topics.pause_result(request.reply), pause_payload(
                request.robot_id, accepted=why is None, action=request.action, reason="" if why is None else str(why)))
        return []

    def _pause(self, request: PauseRequest, now_ns: int) -> PauseRefusal | None:
        """startPause/stopPause published to a vehicle whose state was seen; else the refusal, counted."""
        vda = self.vda
        manufacturers = None if self.config.vda5050 is None else self.config.vda5050.manufacturers
        why = pause_refusal(request.robot_id, manufacturers, vda.states if vda is not None else (),
                            self.dispatch.fleet)
        if why is not None or vda is None:
            self.drops(f"pause refused: {why.kind if why else 'no vda5050 section'}", str(why))
            return why
        self._publish(vda.pause(request.robot_id, request.paused, now_ns))
        log.info("site coordinator %s: %s to %s%s", self.client_id, request.action, request.robot_id,
                 f" ({request.reason})" if request.reason else "")
        return None

    def _order_of(self, robot_id: str, order_id: str) -> str | None:
        """The active task of `robot_id` whose command (attempt) is `order_id` (orderId = command id)."""
        task_id = order_id.rpartition("#")[0]
        task = self.dispatch.book.get(task_id) if task_id else None
        if task is None or task.terminal or task.robot_id != robot_id or task.command_id != order_id:
            return None
        return task_id

    def _vda_factsheet(self, topic: str, payload: bytes, _now_ns: int) -> list[Output]:
        assert self.vda is not None
        self.vda.on_factsheet(topic, payload, self.dispatch.fleet)
        return []

    def _vda_connection(self, topic: str, payload: bytes, now_ns: int) -> list[Output]:
        assert self.vda is not None
        self.vda.on_connection(topic, payload, self.dispatch.fleet, now_ns)
        return []

    def _publish(self, message: Outgoing) -> None:
        if message.topic not in self._described:
            self.link.describe(message.topic, content_type="application/json")
            self._described.add(message.topic)
        try:
            self.link.send(message.topic, b"", message.payload, qos=message.qos, retain=message.retain)
        except LinkBusy:
            self.drops("link busy", f"mqtt:{message.topic}: not sent")

    def _command(self, topic: str, payload: bytes, record: Command, *, qos: int = 1) -> None:
        requested = self._requested.pop(record.task.task_id, None) if record.action == ASSIGN else None
        if topic not in self._described:
            self.link.describe(topic, content_type="application/json")
            self._described.add(topic)
        try:
            self.link.send(topic, b"", payload, qos=qos, on_done=self._acked(requested))
        except LinkBusy:
            if requested is not None:
                self._requested[record.task.task_id] = requested
            self._backlog.append((topic, payload, record, qos))
            return
        self.metrics.commands.labels("assign" if record.action == ASSIGN else "cancel").inc()
        if record.action == ASSIGN:
            self.assigned += 1

    def _retry_backlog(self) -> None:
        for _ in range(len(self._backlog)):
            topic, payload, record, qos = self._backlog.popleft()
            before = len(self._backlog)
            self._command(topic, payload, record, qos=qos)
            if len(self._backlog) > before:
                return  # still busy; the rest waits for the next round

    def _acked(self, requested_ns: int | None) -> Any:
        latencies, histogram = self._latencies, self.metrics.latency

        def done(ok: bool) -> None:  # the MQTT client's network thread: no locks
            if ok and requested_ns is not None:
                seconds = (time.time_ns() - requested_ns) / 1e9
                latencies.append(seconds)
                histogram.observe(seconds)

        return done

    def _send(self, topic: str, payload: bytes) -> None:
        try:
            self.link.send(topic, b"", payload, qos=1)
        except LinkBusy:
            self.drops("link busy", f"mqtt:{topic}: answer not sent")

    def _gauges(self, now_ns: int) -> None:
        for state, count in self.dispatch.book.counts().items():
            self.metrics.tasks.labels(state).set(count)
        stale = self.dispatch.stale_after_ns
        self.metrics.robots_online.set(sum(r.reachable(now_ns, stale) for r in self.dispatch.fleet))
        self.metrics.shards_owned.set(len(self.dispatch.owned))

    def _publish_status(self, now_ns: int) -> None:
        """The retained fleet status: summary, robots, and the open tasks (for `swarm-bridge fleet status`)."""
        self._last_status = now_ns
        stale = self.dispatch.stale_after_ns
        robots = [{"robot_id": r.robot_id, "kind": r.kind, "online": r.reachable(now_ns, stale), "mode": r.mode.name,
                   "battery_percent": None if r.battery_percent != r.battery_percent else r.battery_percent,
                   "x": r.x, "y": r.y, "tasks": self.dispatch.book.loads.get(r.robot_id, 0),
                   "current_task_id": r.current_task_id, "capabilities": sorted(r.capabilities), "paused": r.paused}
                  for r in self.dispatch.fleet]
        open_tasks = [{"task_id": t.task_id, "kind": t.request.kind, "state": t.state.value, "robot_id": t.robot_id,
                       "priority": t.request.priority, "attempts": t.attempts, "reason": t.reason}
                      for t in self.dispatch.book if t.state not in TERMINAL][:200]
        doc = {"at_ns": now_ns, "summary": self.summary(), "robots": robots, "open_tasks": open_tasks}
        self._send(self.topics.status, json.dumps(doc).encode())

    # -- the snapshot -----------------------------------------------------------------------------------

    def _load(self) -> None:
        loaded = self.state_file.load(self.dispatch.book, self.drops)
        if loaded is None:
            return
        self._checks_from = time.time_ns() + self.dispatch.stale_after_ns
        log.info("site coordinator %s: %d tasks from %s; robots have %.0f s to report before their tasks move",
                 self.client_id, loaded, self.mqtt.state_file, self.dispatch.stale_after_ns / 1e9)

    def _save(self, *, force: bool = False) -> None:
        self.state_file.save(self.dispatch.book, force=force)


def _request_bytes(request: TaskRequest | Mapping[str, Any] | bytes | str) -> bytes:
    if isinstance(request, TaskRequest):
        doc = asdict(request)
        doc["parameters"] = dict(request.parameters)
        return json.dumps(doc).encode()
    if isinstance(request, Mapping):
        return json.dumps(dict(request)).encode()
    return request.encode() if isinstance(request, str) else bytes(request)


def _task_id_of(payload: bytes) -> str:
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return ""
    task_id = doc.get("task_id") if isinstance(doc, dict) else None
    return task_id if isinstance(task_id, str) else ""


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, int(q * len(values)))]
