"""The robot side's MQTT 5 properties read by an independent client (paho), and nothing of paho's private modules
is needed (the gateway's patched reader of paho's `_packet` is gone: the gateway runs on the mqtt5 client).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from swarm_bridge.brokers import Mosquitto

# Run where paho's private `_packet` cannot be imported (another paho 2.x): the robot side and the gateway import,
# the robot side talks MQTT 5, and paho's own decoder reads received properties.
_WITHOUT_PACKET = """
import sys, threading
import paho.mqtt.client as paho  # paho 2.2 loads its _packet itself; from here on, importing it fails
sys.modules["paho.mqtt._packet"] = None
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
import swarm_bridge.ros.robot_bridge, swarm_bridge.gateway.mqtt_session  # the robot bridge and the gateway
from swarm_bridge.transport import MqttLink

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
