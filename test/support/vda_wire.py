"""A tap on every VDA 5050 topic of a broker (its own paho client, subscribed to `uagv/#`) and a check of each
message against the official JSON Schemas with jsonschema itself, not through swarm_bridge."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from jsonschema import Draft202012Validator
from paho.mqtt.enums import CallbackAPIVersion


class WireTap:
    """Everything published under `interface/` while it runs: (topic, payload, qos, retain), in arrival order."""

    def __init__(self, host: str, port: int, interface: str = "uagv") -> None:
        self.messages: list[tuple[str, bytes, int, bool]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"vda-tap-{id(self)}",
                                   protocol=paho.MQTTv5)
        self._client.on_connect = lambda c, *_: c.subscribe(f"{interface}/#", qos=1)
        self._client.on_subscribe = lambda *_: self._ready.set()
        self._client.on_message = self._on_message
        self._client.connect(host, port)
        self._client.loop_start()
        if not self._ready.wait(10):
            raise AssertionError(f"tap on {host}:{port} did not subscribe")

    def _on_message(self, _client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload), message.qos, bool(message.retain)))

    def snapshot(self) -> list[tuple[str, bytes, int, bool]]:
        with self._lock:
            return list(self.messages)

    def on(self, topic_name: str) -> list[tuple[str, dict[str, Any]]]:
        """(topic, JSON) of every message on a topic called `topic_name` (the last level), empty payloads left out."""
        return [(t, json.loads(p)) for t, p, _q, _r in self.snapshot() if t.rsplit("/", 1)[-1] == topic_name and p]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class SchemaCheck:
    """The official schemas of a folder; `problems(topic_name, doc)` lists each violation as `path: message`."""

    def __init__(self, folder: Path) -> None:
        self._validators = {path.stem: Draft202012Validator(json.loads(path.read_text(encoding="utf-8")))
                            for path in folder.glob("*.schema")}

    def problems(self, topic_name: str, doc: Any) -> list[str]:
        validator = self._validators[topic_name]
        return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]

    def wire_problems(self, messages: list[tuple[str, bytes, int, bool]]) -> list[str]:
        """Every message on the wire that is not JSON or breaks its topic's schema, named by topic."""
        found = []
        for topic, payload, _qos, _retain in messages:
            if not payload:
                continue
            try:
                doc = json.loads(payload)
            except ValueError as exc:
                found.append(f"{topic}: not JSON ({exc})")
                continue
            found += [f"{topic}: {p}" for p in self.problems(topic.rsplit("/", 1)[-1], doc)]
        return found
