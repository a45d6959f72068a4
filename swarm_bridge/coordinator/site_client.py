"""Talk to a single-site coordinator over its MQTT broker: submit a task and get its answer, read the fleet
status it keeps retained (for `swarm-bridge task submit` and `fleet status` in mode mqtt)."""

from __future__ import annotations

import json
import ssl
import threading
import uuid
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from swarm_bridge.config.coordinator import CoordinatorConfig
from swarm_bridge.coordinator.site_wire import SiteTopics

__all__ = ["SiteUnreachable", "read_site_status", "submit_to_site"]


class SiteUnreachable(ConnectionError):
    """The broker did not answer, or the coordinator did not within the timeout; says which and how to fix."""


def submit_to_site(config: CoordinatorConfig, doc: dict[str, Any], *, timeout_s: float = 10.0) -> dict[str, Any]:
    """Publish one task request and wait for the coordinator's answer {task_id, accepted, state, reason,
    duplicate} on the task's result topic."""
    topics = _topics(config)
    task_id = str(doc.get("task_id", ""))
    answer: list[dict[str, Any]] = []
    got = threading.Event()

    def on_message(_c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        try:
            answer.append(json.loads(message.payload))
        except json.JSONDecodeError:
            return
        got.set()

    client = _client(config, on_message)
    try:
        subscribed = threading.Event()
        client.on_subscribe = lambda *_args: subscribed.set()
        client.subscribe(topics.result(task_id), qos=1)
        if not subscribed.wait(timeout_s):
            raise SiteUnreachable(f"{_url(config)}: no SUBACK within {timeout_s:g} s")
        client.publish(topics.submit, json.dumps(doc), qos=1)
        if not got.wait(timeout_s):
            raise SiteUnreachable(f"{_url(config)}: no answer on {topics.result(task_id)} within {timeout_s:g} s; "
                                  f"is `swarm-bridge coordinator` running with mode mqtt for fleet {config.fleet}?")
        return answer[0]
    finally:
        client.loop_stop()
        client.disconnect()


def read_site_status(config: CoordinatorConfig, *, timeout_s: float = 5.0) -> dict[str, Any]:
    """The retained fleet status the coordinator publishes: summary, robots, open tasks."""
    topics = _topics(config)
    status: list[dict[str, Any]] = []
    got = threading.Event()

    def on_message(_c: paho.Client, _u: object, message: paho.MQTTMessage) -> None:
        try:
            status.append(json.loads(message.payload))
        except json.JSONDecodeError:
            return
        got.set()

    client = _client(config, on_message)
    try:
        client.subscribe(topics.status, qos=1)
        if not got.wait(timeout_s):
            raise SiteUnreachable(f"{_url(config)}: nothing retained on {topics.status} after {timeout_s:g} s; "
                                  f"has a coordinator in mode mqtt run for fleet {config.fleet}?")
        return status[-1]
    finally:
        client.loop_stop()
        client.disconnect()


def _topics(config: CoordinatorConfig) -> SiteTopics:
    if config.mqtt is None:
        raise ValueError("mode mqtt needs the config's mqtt: section")
    return SiteTopics(config.mqtt.topic_prefix, config.fleet)


def _url(config: CoordinatorConfig) -> str:
    assert config.mqtt is not None
    return f"mqtt://{config.mqtt.host}:{config.mqtt.port}"


def _client(config: CoordinatorConfig, on_message: Any) -> paho.Client:
    mqtt = config.mqtt
    assert mqtt is not None
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{config.fleet}-cli-{uuid.uuid4().hex[:8]}",
                         protocol=paho.MQTTv5)
    if mqtt.username is not None:
        client.username_pw_set(mqtt.username, mqtt.password)
    if mqtt.tls is not None:
        client.tls_set(ca_certs=mqtt.tls.ca_file, certfile=mqtt.tls.cert_file, keyfile=mqtt.tls.key_file,
                       cert_reqs=ssl.CERT_REQUIRED)
    client.on_message = on_message
    connected = threading.Event()
    refused: list[str] = []

    def on_connect(_c: paho.Client, _u: object, _f: object, reason: Any, _p: object) -> None:
        if reason.is_failure:
            refused.append(str(reason))
        connected.set()

    client.on_connect = on_connect
    try:
        client.connect(mqtt.host, mqtt.port, keepalive=30)
    except (OSError, ssl.SSLError) as exc:
        raise SiteUnreachable(f"{_url(config)}: cannot connect ({exc}); start the broker or fix mqtt host/port") \
            from None
    client.loop_start()
    if not connected.wait(mqtt.connect_timeout_s) or refused:
        client.loop_stop()
        problem = f"broker refused the connection: {refused[0]}" if refused else \
            f"no CONNACK within {mqtt.connect_timeout_s:g} s"
        raise SiteUnreachable(f"{_url(config)}: {problem}; check mqtt host, port and credentials")
    return client
