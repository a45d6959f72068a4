"""Store-and-forward against a real Mosquitto that goes away mid-stream and comes back."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from swarm_bridge.brokers import Mosquitto, free_port
from swarm_bridge.sim.taps import MqttTap, TappedRecord
from swarm_bridge.spool import Spool
from swarm_bridge.transport import MqttLink
from swarm_bridge.transport.mqtt import PresenceTopic
from swarm_bridge.transport.outbox import Outbox

pytestmark = pytest.mark.integration

RATE_HZ = 500
TOPIC = "swarm/test/amr_9/telemetry/odometry"


def test_broker_outage_loses_nothing_and_keeps_order(tmp_path: Path) -> None:
    broker = Mosquitto(run_dir=tmp_path / "mosquitto", port=free_port())
    broker.start()
    tap = MqttTap(host="127.0.0.1", port=broker.port, patterns=["swarm/test/#"], client_id="outage-tap",
                  session_expiry_s=600)
    link = MqttLink(host="127.0.0.1", port=broker.port, client_id="amr_9", reconnect_min_s=0.5,
                    reconnect_max_s=1, presence=PresenceTopic("swarm/test/amr_9/presence", "amr_9"))
    link.connect()
    outbox = Outbox(link, Spool(tmp_path / "spool.db", max_bytes=64 << 20), window=100)
    sent = 0
    try:
        start = time.monotonic()
        for phase_end, action in ((1.0, broker.stop), (3.0, broker.start), (4.0, None)):
            while time.monotonic() - start < phase_end:
                payload = json.dumps({"seq": sent}).encode()
                outbox.submit("odometry", TOPIC, b"amr_9", payload, priority=1, qos=1, received_ns=time.monotonic_ns())
                sent += 1
                time.sleep(1 / RATE_HZ)
            if action is not None:
                action()
        assert outbox.flush(60) == 0, outbox.stats
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len({_seq(r.payload) for r in _records(tap)}) < sent:
            time.sleep(0.1)
    finally:
        outbox.close()
        link.close()
        tap.close()
        broker.stop()
    seqs = [_seq(r.payload) for r in _records(tap)]
    first_seen = list(dict.fromkeys(seqs))
    assert first_seen == list(range(sent))  # everything, in order (duplicates only from resends)
    assert outbox.stats.spooled > 0 and outbox.stats.sent_from_spool > 0  # the outage did happen
    presence = [json.loads(r.payload)["state"] for r in tap.snapshot() if r.topic.endswith("/presence")]
    assert presence[0] == "online" and "online" in presence[1:]  # announced again after reconnecting


def _records(tap: MqttTap) -> list[TappedRecord]:
    return [r for r in tap.snapshot() if r.topic == TOPIC]


def _seq(payload: bytes) -> int:
    seq: int = json.loads(payload)["seq"]
    return seq
