"""The robot's MQTT uplink on MqttClient: subscription matching, subscribe before connect (granted when connect
returns), presence on a clean stop."""

from __future__ import annotations

import json
import logging
import time

import pytest

from swarm_bridge.brokers import Mosquitto
from swarm_bridge.sim.taps import MqttTap
from swarm_bridge.transport.mqtt import MqttLink, PresenceTopic


@pytest.mark.integration
def test_subscribed_before_connect_receives_and_a_clean_stop_says_offline(mosquitto: Mosquitto) -> None:
    presence = PresenceTopic("swarm/uplink5/amr_1/presence", "amr_1")
    tap = MqttTap(host="127.0.0.1", port=mosquitto.port, patterns=[presence.topic], client_id="uplink5-tap")
    hub = MqttLink(host="127.0.0.1", port=mosquitto.port, client_id="uplink5-hub")
    robot = MqttLink(host="127.0.0.1", port=mosquitto.port, client_id="uplink5-robot", presence=presence)
    got: list[tuple[str, bytes]] = []
    robot.subscribe("swarm/uplink5/amr_1/command/+", lambda topic, _key, payload: got.append((topic, payload)))
    try:
        robot.connect()  # the subscription asked for while offline is made once connected
        hub.connect()
        deadline = time.monotonic() + 20
        while not got and time.monotonic() < deadline:
            hub.send("swarm/uplink5/amr_1/command/task", b"", b"go", qos=1)
            time.sleep(0.2)
        assert hub.flush(10) == 0
    finally:
        robot.close()
        hub.close()
    deadline = time.monotonic() + 10
    while len(tap.snapshot()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    tap.close()
    assert got and got[0] == ("swarm/uplink5/amr_1/command/task", b"go")
    states = [json.loads(r.payload)["state"] for r in tap.snapshot()]
    assert states[:1] == ["online"] and states[-1] == "offline", states
    assert json.loads(tap.snapshot()[-1].payload)["reason"] == "stopped"


@pytest.mark.integration
def test_connect_returns_once_the_subscriptions_asked_before_it_are_granted(mosquitto: Mosquitto) -> None:
    """A message sent right after connect() returns is delivered: no retry, no "no matching subscribers"."""
    got: list[bytes] = []
    site = MqttLink(host="127.0.0.1", port=mosquitto.port, client_id="uplink5-early-site", session_expiry_s=0)
    site.subscribe("swarm/uplink5early/coordinator/tasks/submit", lambda _t, _k, payload: got.append(payload))
    sender = MqttLink(host="127.0.0.1", port=mosquitto.port, client_id="uplink5-early-sender", session_expiry_s=0)
    try:
        sender.connect()
        site.connect()
        sender.send("swarm/uplink5early/coordinator/tasks/submit", b"", b"first", qos=1)
        assert sender.flush(20) == 0
        assert sender.unsubscribed == 0  # the broker had the subscription when the message came
        deadline = time.monotonic() + 20
        while not got and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        sender.close()
        site.close()
    assert got == [b"first"]


@pytest.mark.integration
def test_a_full_window_is_link_busy_logged_once_and_what_was_in_flight_is_delivered(
        mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture) -> None:
    from fault_proxy import FaultProxy

    from swarm_bridge.transport import LinkBusy

    caplog.set_level(logging.INFO, logger="swarm_bridge.transport.mqtt")
    proxy = FaultProxy(mosquitto.port)
    tap = MqttTap(host="127.0.0.1", port=mosquitto.port, patterns=["swarm/uplink5/busy"], client_id="uplink5-busy")
    link = MqttLink(host="127.0.0.1", port=proxy.port, client_id="uplink5-busy-robot", max_inflight=2,
                    keepalive_s=60)
    outcomes: list[bool] = []
    try:
        link.connect()
        proxy.blackhole(True)  # no PUBACK comes back: the window of 2 fills
        link.send("swarm/uplink5/busy", b"", b"1", on_done=outcomes.append)
        link.send("swarm/uplink5/busy", b"", b"2", on_done=outcomes.append)
        for _ in range(3):
            with pytest.raises(LinkBusy):
                link.send("swarm/uplink5/busy", b"", b"3", on_done=outcomes.append)
        proxy.blackhole(False)
        assert link.flush(20) == 0
        link.send("swarm/uplink5/busy", b"", b"3", on_done=outcomes.append)
        assert link.flush(20) == 0
    finally:
        link.close()
        proxy.close()
    deadline = time.monotonic() + 10
    while len(tap.snapshot()) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    tap.close()
    assert outcomes == [True, True, True]
    assert [r.payload for r in tap.snapshot()] == [b"1", b"2", b"3"]
    assert link.stats.sent == 3 and link.stats.acked == 3 and link.backpressure_episodes == 1
    assert sum("backpressure:" in r.getMessage() for r in caplog.records) == 1
    assert sum("backpressure over" in r.getMessage() for r in caplog.records) == 1
