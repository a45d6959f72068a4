"""The gateway's faster MQTT 5 property reader gives what paho's own gives, for good bytes and for bad ones.

Properties are packed by paho itself, read by both readers and compared attribute by attribute; random and
mutated bytes must be refused by both (with one of the errors paho's packet decoder turns into MalformedPacket)
or read alike by both.
"""

from __future__ import annotations

import subprocess
import sys

import paho.mqtt._packet as paho_packet
import paho.mqtt.client as paho
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from swarm_bridge.brokers import Mosquitto
from swarm_bridge.transport.mqtt_properties import PackedProperties, ReceivedProperties, install_received_properties

PACKETS = [PacketTypes.PUBLISH, PacketTypes.PUBACK, PacketTypes.CONNACK, PacketTypes.SUBACK,
           PacketTypes.DISCONNECT]
TEXT = st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00\ufeff"),
               max_size=40)


def _attrs(props: Properties) -> dict[str, object]:
    return {name.replace(" ", ""): getattr(props, name.replace(" ", ""))
            for name in Properties(PacketTypes.PUBLISH).names if hasattr(props, name.replace(" ", ""))}


def _read(cls: type[Properties], packet: int, data: bytes) -> tuple[dict[str, object], int] | str:
    try:
        props, used = cls(packet).unpack(data)
    except paho_packet.DECODE_ERRORS as exc:
        return f"{type(exc).__name__}: {exc}"
    return _attrs(props), used


@st.composite
def publish_properties(draw: st.DrawFn) -> bytes:
    props = Properties(PacketTypes.PUBLISH)
    if draw(st.booleans()):
        props.ContentType = draw(TEXT)
    if draw(st.booleans()):
        props.PayloadFormatIndicator = draw(st.integers(0, 1))
    if draw(st.booleans()):
        props.MessageExpiryInterval = draw(st.integers(0, 2**32 - 1))
    if draw(st.booleans()):
        props.CorrelationData = draw(st.binary(max_size=30))
    if draw(st.booleans()):
        props.ResponseTopic = draw(TEXT)
    if draw(st.booleans()):
        props.TopicAlias = draw(st.integers(1, 65535))
    for pair in draw(st.lists(st.tuples(TEXT, TEXT), max_size=4)):
        props.UserProperty = pair
    for ident in draw(st.lists(st.integers(1, 268_435_455), max_size=2)):
        props.SubscriptionIdentifier = ident
    return bytes(props.pack())


@settings(max_examples=400, deadline=None)
@given(publish_properties(), st.binary(max_size=20))
def test_well_formed_properties_read_alike(packed: bytes, payload: bytes) -> None:
    ours = _read(ReceivedProperties, PacketTypes.PUBLISH, packed + payload)
    theirs = _read(Properties, PacketTypes.PUBLISH, packed + payload)
    assert isinstance(ours, tuple), ours
    assert ours == theirs
    assert ours[1] == len(packed)


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(PACKETS), publish_properties(), st.integers(0, 200), st.integers(0, 255))
def test_mutated_properties_are_refused_or_read_alike(packet: int, packed: bytes, where: int, byte: int) -> None:
    data = bytearray(packed)
    if data:
        data[where % len(data)] = byte
    ours = _read(ReceivedProperties, packet, bytes(data))
    theirs = _read(Properties, packet, bytes(data))
    if isinstance(theirs, tuple) and isinstance(ours, tuple):
        assert ours == theirs
    elif isinstance(theirs, tuple):
        # ours is stricter in one place only: a value running past the properties' length into the payload
        assert isinstance(ours, str) and "runs past the properties' length" in ours, ours
    else:
        assert isinstance(ours, str), f"paho refused ({theirs}) what we read: {ours}"


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(PACKETS), st.binary(max_size=60))
def test_random_bytes_never_escape_as_another_error(packet: int, data: bytes) -> None:
    ours = _read(ReceivedProperties, packet, data)
    theirs = _read(Properties, packet, data)
    if isinstance(ours, tuple):
        assert ours == theirs
    elif isinstance(theirs, tuple):
        assert "runs past the properties' length" in ours, ours


@pytest.mark.parametrize("text, problem", [("a\x00b", "Null"), ("\ufeffa", "FEFF")])
def test_forbidden_characters_are_refused(text: str, problem: str) -> None:
    raw = text.encode()
    body = bytes([3]) + len(raw).to_bytes(2, "big") + raw
    with pytest.raises(paho_packet.MalformedPacket, match=problem):
        ReceivedProperties(PacketTypes.PUBLISH).unpack(bytes([len(body)]) + body)


def test_installed_paho_decodes_publish_with_it() -> None:
    assert install_received_properties()
    assert paho_packet.Properties is ReceivedProperties
    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = "avro/binary"
    props.UserProperty = ("ros_type", "nav_msgs/msg/Odometry")
    topic = b"swarm/f/amr_1/telemetry/odometry"
    body = len(topic).to_bytes(2, "big") + topic + (7).to_bytes(2, "big") + props.pack() + b"payload"
    packet = paho_packet.decode_publish(0x32, body, paho.MQTTv5)
    assert isinstance(packet.properties, ReceivedProperties)
    assert _attrs(packet.properties) == {"ContentType": "avro/binary",
                                         "UserProperty": [("ros_type", "nav_msgs/msg/Odometry")]}
    assert (packet.mid, packet.payload, packet.topic) == (7, b"payload", topic)
    # paho's own clients still build their outgoing properties with the tables
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    assert client.protocol == paho.MQTTv5


@settings(max_examples=100, deadline=None)
@given(TEXT, st.lists(st.tuples(TEXT, TEXT), max_size=3))
def test_packed_properties_are_paho_s_own_bytes(content_type: str, pairs: list[tuple[str, str]]) -> None:
    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = content_type
    if pairs:
        props.UserProperty = pairs
    packed = PackedProperties(content_type, pairs)
    assert packed.pack() == bytes(props.pack())
    assert _read(Properties, PacketTypes.PUBLISH, packed.pack()) == _read(Properties, PacketTypes.PUBLISH,
                                                                          bytes(props.pack()))


# Run where paho's private `_packet` cannot be imported (another paho 2.x): the robot side imports and talks
# MQTT 5, and paho's own decoder reads received properties.
_WITHOUT_PACKET = """
import sys, threading
import paho.mqtt.client as paho  # paho 2.2 loads its _packet itself; from here on, importing it fails
sys.modules["paho.mqtt._packet"] = None
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
import swarm_bridge.ros.robot_bridge, swarm_bridge.gateway.mqtt_session  # the robot bridge and the gateway
from swarm_bridge.transport import MqttLink
from swarm_bridge.transport.mqtt_properties import install_received_properties

assert install_received_properties() is False
port = int(sys.argv[1])
got, done = [], threading.Event()
reader = paho.Client(CallbackAPIVersion.VERSION2, client_id="reader", protocol=paho.MQTTv5)
reader.on_message = lambda _c, _u, m: (got.append((m.payload, type(m.properties), m.properties.ContentType,
                                                   m.properties.UserProperty)), done.set())
reader.on_connect = lambda c, *_a: c.subscribe("robot/x", qos=1)
reader.connect("127.0.0.1", port)
reader.loop_start()
link = MqttLink(host="127.0.0.1", port=port, client_id="robot")
link.connect()
link.describe("robot/x", content_type="avro/binary", user_properties=(("ros_type", "std_msgs/msg/String"),))
for _ in range(100):  # until the reader's subscription is in place
    link.send("robot/x", b"", b"record")
    if done.wait(0.1):
        break
link.close(); reader.loop_stop(); reader.disconnect()
payload, cls, content_type, user = got[0]
expected = (b"record", Properties, "avro/binary", [("ros_type", "std_msgs/msg/String")])
assert (payload, cls, content_type, user) == expected, got[0]
print("ok")
"""


@pytest.mark.integration
def test_robot_side_works_with_a_paho_without_its_private_packet_module(mosquitto: Mosquitto) -> None:
    result = subprocess.run([sys.executable, "-c", _WITHOUT_PACKET, str(mosquitto.port)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stdout + result.stderr
