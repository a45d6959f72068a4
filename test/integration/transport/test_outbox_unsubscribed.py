"""A robot's records that the broker had no subscriber for are held and sent again once a hub subscribes.

Mosquitto acknowledges a QoS 1 publish nobody is subscribed to with reason 0x10 (no matching subscribers) and
drops it; with `hold_unsubscribed` the robot keeps such records in its spool. This closes the gap of shared
subscriptions, which Mosquitto 2.0 does not restore after its own restart. A retained message answered 0x10 is
kept by the broker all the same: neither held nor counted.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from swarm_bridge.brokers import Mosquitto
from swarm_bridge.config import RobotBridgeConfig
from swarm_bridge.config.loader import validate_config
from swarm_bridge.sim.taps import MqttTap
from swarm_bridge.spool import Spool
from swarm_bridge.transport import MqttLink
from swarm_bridge.transport.outbox import Outbox
from swarm_bridge.transport.uplinks import open_uplink

pytestmark = pytest.mark.integration

TOPIC = "swarm/test/amr_7/telemetry/odometry"


@pytest.mark.parametrize("hold", [True, False])
def test_records_nobody_subscribed_to_wait_for_the_hub_when_held(tmp_path: Path, mosquitto: Mosquitto,
                                                                  hold: bool) -> None:
    topic = TOPIC.replace("amr_7", f"amr_7_{hold}")
    link = MqttLink(host="127.0.0.1", port=mosquitto.port, client_id=f"amr_7_{hold}", hold_unsubscribed=hold)
    link.connect()
    outbox = Outbox(link, Spool(tmp_path / "spool.db", max_bytes=16 << 20), window=50, retry_s=0.2)
    tap = None
    try:
        for seq in range(40):  # no hub yet
            outbox.submit("odometry", topic, b"amr_7", json.dumps({"seq": seq}).encode(), priority=1, qos=1,
                          received_ns=time.monotonic_ns())
        deadline = time.monotonic() + 10
        while link.unsubscribed < 40 and time.monotonic() < deadline:  # each refused once at least
            time.sleep(0.01)
        tap = MqttTap(host="127.0.0.1", port=mosquitto.port, patterns=[f"$share/hub/{topic}"])
        for seq in range(40, 60):
            outbox.submit("odometry", topic, b"amr_7", json.dumps({"seq": seq}).encode(), priority=1, qos=1,
                          received_ns=time.monotonic_ns())
        assert outbox.flush(30) == 0, outbox.stats
        deadline = time.monotonic() + 10
        while len(tap.snapshot()) < (60 if hold else 20) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        seqs = [json.loads(r.payload)["seq"] for r in tap.snapshot()]
    finally:
        outbox.close()
        link.close()
        if tap is not None:
            tap.close()
    assert link.unsubscribed > 0  # the broker did have nobody for the first records
    if hold:
        assert list(dict.fromkeys(seqs)) == list(range(60))  # all of them, in order, once the hub is there
        assert outbox.stats.failed > 0
    else:
        assert seqs == list(range(40, 60))  # without holding, what nobody took is gone


@pytest.mark.parametrize("hold", [True, False])
def test_the_robot_config_key_decides_whether_unsubscribed_records_count_as_delivered(
        mosquitto: Mosquitto, hold: bool, caplog: pytest.LogCaptureFixture) -> None:
    config = validate_config({
        "robot_id": f"amr_8_{hold}", "fleet": "unsub",
        "uplink": {"kind": "mqtt", "port": mosquitto.port, "hold_unsubscribed": hold},
        "routes": [{"topic": "/x", "type": "std_msgs/msg/String", "channel": "event", "stream": "x",
                    "qos": "reliable", "format": "json"}],
    }, RobotBridgeConfig)
    link = open_uplink(config)
    outcomes: list[bool] = []
    try:
        link.send(f"swarm/unsub/amr_8_{hold}/event/x", b"", b"{}", qos=1, on_done=outcomes.append)
        deadline = time.monotonic() + 10
        while not outcomes and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        link.close()
    assert outcomes == [not hold]
    assert isinstance(link, MqttLink) and link.unsubscribed == 1
    # the warning names the topic nobody subscribed to, and what became of the record
    assert f"no subscriber for 1 of this robot's records so far (this one on swarm/unsub/amr_8_{hold}/event/x" \
        in caplog.text
    assert ("holding them in the spool" if hold else "the broker dropped them") in caplog.text


def test_a_retained_message_nobody_subscribed_to_is_kept_by_the_broker_not_counted_as_dropped(
        mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture) -> None:
    """0x10 on a retained publish (e.g. the site coordinator's fleet status) is no loss: the broker
    keeps it for the next subscriber, so it is not held, counted or warned about as dropped."""
    topic = "swarm/unsub/coordinator/status"
    link = MqttLink(host="127.0.0.1", port=mosquitto.port, client_id="retained_9", hold_unsubscribed=True)
    link.connect()
    outcomes: list[bool] = []
    try:
        link.send(topic, b"", b'{"open": 0}', qos=1, retain=True, on_done=outcomes.append)
        deadline = time.monotonic() + 10
        while not outcomes and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        link.close()
    assert outcomes == [True] and link.unsubscribed == 0
    assert "no subscriber" not in caplog.text
    tap = MqttTap(host="127.0.0.1", port=mosquitto.port, patterns=[topic])  # subscribes after: gets it retained
    try:
        deadline = time.monotonic() + 10
        while not tap.snapshot() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [r.payload for r in tap.snapshot()] == [b'{"open": 0}']
    finally:
        tap.close()
