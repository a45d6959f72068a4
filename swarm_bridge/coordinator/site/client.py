"""Talk to a single-site coordinator over its MQTT broker: submit or cancel a task, pause or resume a VDA 5050
vehicle, and get its answer; read the fleet status it keeps retained (for `swarm-bridge task submit`, `task
cancel`, `fleet pause`/`resume` and `fleet status` in mode mqtt)."""

from __future__ import annotations

import json
import ssl
import threading
import uuid
from collections.abc import Callable
from typing import Any

from swarm_bridge.config.coordinator import CoordinatorConfig
from swarm_bridge.coordinator.core.errors import CoordinatorError, CoordinatorSettingError
from swarm_bridge.coordinator.core.pause import pause_doc
from swarm_bridge.coordinator.site.wire import SiteTopics
from swarm_bridge.transport.link import LinkBusy, LinkError
from swarm_bridge.transport.mqtt_client import Message, MqttClient, MqttOptions, tls_context
from swarm_bridge.transport.mqtt_errors import MqttRefused, reason_text

__all__ = ["SiteUnreachable", "cancel_at_site", "pause_at_site", "read_site_status", "site_client", "submit_to_site"]


class SiteUnreachable(CoordinatorError, ConnectionError):
    """The broker did not answer, or the coordinator did not within the timeout; says which and how to fix."""


def submit_to_site(config: CoordinatorConfig, doc: dict[str, Any], *, timeout_s: float = 10.0) -> dict[str, Any]:
    """Publish one task request and wait for the coordinator's answer {task_id, accepted, state, reason,
    duplicate} on the task's result topic."""
    topics = _topics(config)
    return _ask(config, topics.submit, topics.result(str(doc.get("task_id", ""))), doc, timeout_s)


def cancel_at_site(config: CoordinatorConfig, task_id: str, reason: str = "", *,
                   timeout_s: float = 10.0) -> dict[str, Any]:
    """Ask the coordinator to cancel a task and wait for its answer {task_id, accepted, state, reason}: accepted
    when it was cancelled now, else why not (no such task, already ended)."""
    topics = _topics(config)
    return _ask(config, topics.cancel, topics.result(task_id), {"task_id": task_id, "reason": reason or None},
                timeout_s)


def pause_at_site(config: CoordinatorConfig, robot_id: str, paused: bool, reason: str = "", *,
                  timeout_s: float = 10.0) -> dict[str, Any]:
    """Ask the coordinator to pause (or, `paused` false, resume) a VDA 5050 vehicle and wait for its answer
    {robot_id, accepted, action, reason}: accepted when startPause/stopPause went out, else why not."""
    topics = _topics(config)
    reply = uuid.uuid4().hex
    return _ask(config, topics.pause, topics.pause_result(reply), pause_doc(robot_id, paused, reason, reply),
                timeout_s)


def _ask(config: CoordinatorConfig, topic: str, answer: str, doc: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Publish `doc` on `topic` and wait for the answer on topic `answer`."""
    answers = _Answers()
    client = _client(config, answers.on_message)
    try:
        try:
            client.subscribe([answer], qos=1, timeout_s=timeout_s)
            client.publish(topic, json.dumps(doc).encode(), qos=1, content_type="application/json",
                           timeout_s=timeout_s)
        except (LinkError, LinkBusy) as exc:
            raise SiteUnreachable(str(exc)) from None
        if not answers.got.wait(timeout_s):
            raise SiteUnreachable(f"{client.endpoint}: no answer on {answer} within {timeout_s:g} "
                                  f"s; is `swarm-bridge coordinator` running with mode mqtt for fleet {config.fleet}?")
        return answers.docs[0]
    finally:
        client.close()


def read_site_status(config: CoordinatorConfig, *, timeout_s: float = 5.0) -> dict[str, Any]:
    """The retained fleet status the coordinator publishes: summary, robots, open tasks."""
    topics = _topics(config)
    answers = _Answers()
    client = _client(config, answers.on_message)
    try:
        try:
            client.subscribe([topics.status], qos=1, timeout_s=timeout_s)
        except LinkError as exc:
            raise SiteUnreachable(str(exc)) from None
        if not answers.got.wait(timeout_s):
            raise SiteUnreachable(f"{client.endpoint}: nothing retained on {topics.status} after {timeout_s:g} s; "
                                  f"has a coordinator in mode mqtt run for fleet {config.fleet}?")
        return answers.docs[-1]
    finally:
        client.close()


class _Answers:
    """JSON documents received on the client's subscription (anything else is skipped); `got` once one came."""

    def __init__(self) -> None:
        self.docs: list[dict[str, Any]] = []
        self.got = threading.Event()

    def on_message(self, message: Message) -> None:
        try:
            doc = json.loads(message.payload)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return
        if isinstance(doc, dict):
            self.docs.append(doc)
            self.got.set()


def _topics(config: CoordinatorConfig) -> SiteTopics:
    if config.mqtt is None:
        raise CoordinatorSettingError("mode mqtt needs the config's mqtt: section (broker, topic_prefix); add it or "
                                      "use mode kafka")
    return SiteTopics(config.mqtt.topic_prefix, config.fleet)


def site_client(config: CoordinatorConfig, on_message: Callable[[Message], None], *,
                client_id: str) -> MqttClient:
    """A connected client of the site's broker for another reader (the fleet page), its id
    `{fleet}-{client_id}-<random>`; SiteUnreachable naming the broker and the fix."""
    return _client(config, on_message, client_id=client_id)


def _client(config: CoordinatorConfig, on_message: Callable[[Message], None], *,
            client_id: str = "cli") -> MqttClient:
    """A connected client with a clean session of its own, or SiteUnreachable naming the broker and the fix."""
    mqtt = config.mqtt
    assert mqtt is not None
    endpoint = f"mqtt{'s' if mqtt.tls else ''}://{mqtt.host}:{mqtt.port}"
    context = None
    if mqtt.tls is not None:
        try:
            context = tls_context(mqtt.tls.ca_file, mqtt.tls.cert_file, mqtt.tls.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise SiteUnreachable(f"{endpoint}: TLS files unusable ({exc}); check mqtt.tls ca_file/cert_file/"
                                  "key_file paths and formats") from None
    client_id = f"{config.fleet}-{client_id}-{uuid.uuid4().hex[:8]}"
    options = MqttOptions(host=mqtt.host, port=mqtt.port, client_id=client_id,
                          keepalive_s=30, username=mqtt.username, password=mqtt.password, tls=context,
                          connect_timeout_s=mqtt.connect_timeout_s)
    client = MqttClient(options, on_message=on_message, auto_ack=True)
    client.start(wait=False)
    problem = client.first_attempt(mqtt.connect_timeout_s + 1.0)
    if problem is None:
        return client
    client.close(disconnect=False)
    if isinstance(problem, MqttRefused):
        raise SiteUnreachable(f"{endpoint}: broker refused the connection: "
                              f"{reason_text(problem.code, problem.reason_str)}; {problem.fix}")
    text = problem.problem if isinstance(problem, LinkError) else str(problem)
    raise SiteUnreachable(f"{endpoint}: {text}; start the broker or fix mqtt host/port (and mqtt.tls)")
