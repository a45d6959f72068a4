"""Benchmark: large records beside control topics under a bandwidth budget, one robot, one run, private Mosquitto.

Streams (one publisher process): Odometry at 1 kHz (priority 5: never held back), 2 MB sensor_msgs/Image of a real
photograph at 30 Hz (lz4) and 1 MB PointCloud2 of a lidar sweep at 10 Hz (zstd), through a robot_bridge process
with a 50 Mbit/s budget and 256 KiB chunks. Measures:
  odometry   loss, and added p99 latency: header.stamp -> at the broker via the bridge (a tap in a process of its
             own), minus header.stamp -> a bare rclpy subscriber of the same streams, both in the same minutes
             (the publisher serves both at once); and the bridge's own share (taken -> PUBACK, its /metrics);
  hops       where the bridge's Odometry spends that time, per record: header.stamp -> its DDS reader had it
             (rmw's received_timestamp) -> the bridge took it -> its outbox handed it to the MQTT client -> its
             PUBLISH was on the socket -> at the tap (p50, p99, and the mean of each hop over the slowest 1 % end to
             end: which hop the late ones were late in); the bridge runs with hooks that stamp these (bench only), and
             its garbage collector's passes are counted
  large      images and clouds delivered whole (put together by the tap) and dropped (counted by the bridge), and
             the bytes/s they took on the wire against the budget (odometry shares it and is never held back)
  codecs     compression ratio and CPU ms per MB for zstd and lz4 on the same image and cloud
  raw        a bare paho client moving the same 2 MB payloads (MB/s): the link's own limit on this machine
  kafka      bare confluent-kafka moving the same bytes (2 MB images, 1 MiB clouds) producer -> consumer on a private
             Kafka, once with raised limits (whole records) and once chunked under the default 1 MB limit (the
             project's chunk layout, put together by the consumer): MB/s each and their ratio
  memory     the bridge's RSS sampled every 5 s, and the bare subscriber's the same way (what rclpy and DDS hold by
             themselves with the same QoS); flat: the line through the second half's samples rises <= 5 MB
The JSON's `goals` says whether each of issue 19's goals was met in this run (zero Odometry loss, added p99 <= 5 ms,
bridge RSS flat). `--skip-links` leaves out raw and kafka (repeated soaks).
The camera and cloud routes read with the `sensor_data` QoS (best effort, keep 5), the bare subscriber too: a reliable
reader of 2 MB samples holds every sample behind a lost fragment until the writer repairs it, and on a busy machine
that is seconds of images (hundreds of MB that its pools keep) and the odometry behind them (late, then lost).
`--large-qos reliable` reads them with the `reliable` preset on both sides instead, to see that.
`--bridge-odometry-only` gives the bridge the Odometry route alone (the images and clouds are still published, and read
by bare rclpy): what the large routes cost the bridge's Odometry, the machine's load otherwise the same.
The camera publisher runs with a 64 MB Fast DDS shared-memory segment (`--publisher-shm-mb`, 0: Fast DDS's default
512 KB, with which every local reader loses samples at these rates). `SWARM_BRIDGE_HOPS_OUT=FILE.npz` keeps every
Odometry record's stamps (a timeline of the late ones).
Prints the figures (with the load average, the machine being shared) and ends with one JSON line.

  python bench/large_messages.py [--quick] [--soak-s S] [--large-qos sensor_data|reliable] [--skip-links]
                                 [--bridge-odometry-only] [--publisher-shm-mb MB]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as paho
import yaml
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from matplotlib import cbook
from paho.mqtt.enums import CallbackAPIVersion
from PIL import Image

from swarm_bridge.brokers import Kafka, Mosquitto, free_port, lease_domain
from swarm_bridge.codec.chunks import Reassembler, joined, split_record
from swarm_bridge.codec.compression import COMPRESSIONS
from swarm_bridge.signals import terminate_as_interrupt
from swarm_bridge.sim.taps import MqttTap

BUDGET = 50e6 / 8  # 50 Mbit/s in bytes/s
ROBOT = "amr_l"
PREFIX = f"swarm/bench/{ROBOT}/telemetry"

PUBLISHER = textwrap.dedent('''
    import sys, time, rclpy, numpy as np
    from nav_msgs.msg import Odometry
    from sensor_msgs.msg import Image, PointCloud2, PointField
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    seconds, expect, photo_file, expect_large = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    rclpy.init()
    node = rclpy.create_node("bench_large_source")
    qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    deep = QoSProfile(depth=10000, reliability=ReliabilityPolicy.RELIABLE)
    odom = node.create_publisher(Odometry, "/amr_l/odom", deep)
    cam = node.create_publisher(Image, "/amr_l/camera", qos)
    lidar = node.create_publisher(PointCloud2, "/amr_l/cloud", qos)
    wanted = ((odom, expect), (cam, expect_large), (lidar, expect_large))
    while any(p.get_subscription_count() < n for p, n in wanted):
        rclpy.spin_once(node, timeout_sec=0.05)
    time.sleep(1.0)
    image = Image(height=816, width=816, encoding="rgb8", step=816 * 3)
    image.data = open(photo_file, "rb").read()
    rng = np.random.default_rng(0)
    cloud = PointCloud2(height=32, width=2048, point_step=16, row_step=16 * 2048, is_dense=True)
    names = ("x", "y", "z", "intensity")
    cloud.fields = [PointField(name=n, offset=4 * i, datatype=7, count=1) for i, n in enumerate(names)]
    ring = np.linspace(0, 2 * np.pi, 2048)
    points = np.stack([np.cos(ring) * 8, np.sin(ring) * 8, np.zeros_like(ring), np.full_like(ring, 40)], -1)
    base = np.repeat(points[None], 32, 0).astype(np.float32)
    msg = Odometry()
    start = time.monotonic()
    n = 0
    next_image = next_cloud = start
    while time.monotonic() - start < seconds:
        now = time.monotonic()
        if now >= next_image:
            image.header.stamp.sec, image.header.stamp.nanosec = divmod(time.time_ns(), 10**9)
            cam.publish(image)
            next_image += 1 / 30
        if now >= next_cloud:
            cloud.data = (base + rng.normal(0, 0.01, base.shape).astype(np.float32)).tobytes()
            lidar.publish(cloud)
            next_cloud += 1 / 10
        while n < (time.monotonic() - start) * 1000:
            msg.pose.pose.position.x = float(n)
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(time.time_ns(), 10**9)
            odom.publish(msg)
            n += 1
        time.sleep(0.0005)
    print(n, flush=True)
    time.sleep(3.0)
''')

BARE = textwrap.dedent('''
    import array, json, sys, threading, time, rclpy
    from nav_msgs.msg import Odometry
    from sensor_msgs.msg import Image, PointCloud2
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from rclpy.experimental import EventsExecutor
    large_qos = sys.argv[1]
    rclpy.init()
    node = rclpy.create_node("bench_large_bare")
    lat, counts = array.array("q"), {"odom": 0, "camera": 0, "cloud": 0}  # an array: its RSS stays rclpy's own
    def on_odom(raw):
        counts["odom"] += 1
        sec, nsec = int.from_bytes(raw[4:8], "little"), int.from_bytes(raw[8:12], "little")
        lat.append(time.time_ns() - (sec * 10**9 + nsec))
    def counter(name):
        def on(raw):
            counts[name] += 1
        return on
    deep = QoSProfile(depth=10000, reliability=ReliabilityPolicy.RELIABLE)  # the bridge's presets, as its routes
    large = qos_profile_sensor_data if large_qos == "sensor_data" else deep
    node.create_subscription(Odometry, "/amr_l/odom", on_odom, deep, raw=True)
    node.create_subscription(Image, "/amr_l/camera", counter("camera"), large, raw=True)
    node.create_subscription(PointCloud2, "/amr_l/cloud", counter("cloud"), large, raw=True)
    ex = EventsExecutor(); ex.add_node(node)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()  # until stdin closes
    while not stop.is_set():
        ex.spin_once(timeout_sec=0.05)
    print(json.dumps({"counts": counts, "latency_ns": lat.tolist()}))
''')

# The bridge's Odometry as it reaches the broker, in a process of its own: the bench's process puts the images together
# and decodes, and that work (its GIL) must not make the bridge's Odometry look late, as none of it burdens the bare
# subscriber. Records are only stamped on arrival by the network thread; decoded in batches once a second.
ODOMETRY_TAP = textwrap.dedent('''
    import array, json, sys, threading, time
    from swarm_bridge.codec.wire import wire_decoder
    from swarm_bridge.sim.taps import MqttTap
    sys.setswitchinterval(0.0005)  # the network thread gets the GIL back at once from the decoding
    port, topic, progress = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    odom = wire_decoder("nav_msgs/msg/Odometry", "avro", "mqtt", subject="-")
    tap = MqttTap(host="127.0.0.1", port=port, patterns=[topic])
    seqs, lat = set(), array.array("q")
    numbers, stamps, arrivals = array.array("q"), array.array("q"), array.array("q")  # per record, for the hops
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()  # until stdin closes
    print("ready", flush=True)
    while True:
        done = stop.wait(1.0)
        for record in tap.drain():
            envelope = odom.decode(record.payload)
            seqs.add(envelope.seq)
            lat.append(record.arrived_ns - envelope.stamp_ns)
            numbers.append(envelope.seq & 0xFFFFFFFF)
            stamps.append(envelope.stamp_ns)
            arrivals.append(record.arrived_ns)
        with open(progress, "w") as out:
            out.write(str(len(seqs)))
        if done:
            break
    tap.close()
    print(json.dumps({"received": len(seqs), "latency_ns": lat.tolist(), "numbers": numbers.tolist(),
                      "stamps_ns": stamps.tolist(), "arrivals_ns": arrivals.tolist()}))
''')


# The robot bridge as `python -m swarm_bridge.nodes robot_bridge` runs it, with hop stamps for the bench's Odometry
# (bench only; the product has no such code): for each Odometry record the outbox hands to the link, its take from
# ROS (`Outgoing.received_ns`), when the outbox handed it to the link, and when its PUBLISH was on the socket (at
# once when the client wrote it from the handing thread, else when the client's network thread had written all it
# held), and DDS's reception time of it (rmw's received_timestamp: when the bridge's DDS reader had it). Written to a
# file in blocks (what is kept in memory would count in the bridge's RSS), as (received, take, handed, socket) int64
# rows in sending order, received in time.time_ns(), the others in time.monotonic_ns(); the first line of the file is
# the offset of time.time_ns() from time.monotonic_ns().
BRIDGE_WITH_HOPS = textwrap.dedent('''
    import array, collections, gc, json, sys, time
    from swarm_bridge import nodes
    from swarm_bridge.ros import ros_to_uplink
    from swarm_bridge.transport import mqtt_client, outbox
    path, stream, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
    out = open(path, "wb")
    out.write(b"%d\\n" % (time.time_ns() - time.monotonic_ns()))
    rows, waiting = array.array("q"), []  # waiting: indices into rows whose PUBLISH waits in the client's queue
    received = collections.deque()  # DDS's reception time of each message taken, in the order taken
    send, write, init = outbox.Outbox._send, mqtt_client.MqttClient._write, ros_to_uplink.UplinkRoute.__init__
    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        if self.route.stream == stream:
            take = self._take
            def taken(msg_type, raw):
                got = take(msg_type, raw)
                if got is not None:
                    received.append(got[1]["received_timestamp"])
                return got
            self._take = taken
    def _send(self, entries):
        handed = time.monotonic_ns()
        send(self, entries)
        takes = [record.received_ns for record, _id in entries if record.stream == stream and record.received_ns]
        if not takes:
            return
        client = self.link._client
        with client._lock:
            queued = bool(client._out or client._unsent)
            now = time.monotonic_ns()
            for take in takes:
                if queued:
                    waiting.append(len(rows) + 3)
                rows.extend((received.popleft() if received else 0, take, handed, 0 if queued else now))
            if not waiting and len(rows) >= 4 * 1024:
                rows.tofile(out)
                del rows[:]
    def _write(self, sock, data):
        rest = write(self, sock, data)
        if not rest and waiting:  # under the client's lock: everything queued before is on the socket now
            now = time.monotonic_ns()
            for index in waiting:
                rows[index] = now
            waiting.clear()
        return rest
    pauses = {}  # the garbage collector's passes by generation: [count, total ns, max ns, over 5 ms]
    began = [0]
    def collected(phase, info):
        if phase == "start":
            began[0] = time.perf_counter_ns()
            return
        took, kept = time.perf_counter_ns() - began[0], pauses.setdefault(info["generation"], [0, 0, 0, 0])
        kept[0], kept[1], kept[2], kept[3] = kept[0] + 1, kept[1] + took, max(kept[2], took), kept[3] + (took > 5e6)
    gc.callbacks.append(collected)
    drains = collections.Counter()  # the reader thread's drains per stream, and those that took nothing
    drain = ros_to_uplink.UplinkRoute.drain
    def _drain(self):
        taken = drain(self)
        drains[self.route.stream] += 1
        drains[self.route.stream + " (took nothing)"] += not taken
        return taken
    ros_to_uplink.UplinkRoute.drain = _drain
    outbox.Outbox._send, mqtt_client.MqttClient._write = _send, _write
    ros_to_uplink.UplinkRoute.__init__ = __init__
    try:
        code = nodes.main(["robot_bridge", *argv])
    finally:
        rows.tofile(out)
        out.close()
        with open(path + ".gc.json", "w") as gc_out:
            json.dump({"drains": dict(drains), **{
                f"gen{gen}": {"passes": n, "total_ms": round(total / 1e6, 1), "max_ms": round(most / 1e6, 2),
                              "over_5_ms": over} for gen, (n, total, most, over) in sorted(pauses.items())}}, gc_out)
    sys.exit(code)
''')


def photo(width: int, height: int) -> bytes:
    """A real photograph (the portrait matplotlib ships) scaled to width x height, RGB8."""
    path = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    image = Image.open(io.BytesIO(path.read_bytes())).convert("RGB")
    return np.asarray(image.resize((width, height), Image.Resampling.BICUBIC)).tobytes()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) the process used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def codecs(image: bytes) -> dict[str, Any]:
    """Ratio and CPU ms per MB of each compression on the photograph and on a lidar-like float cloud."""
    rng = np.random.default_rng(1)
    ring = np.linspace(0, 2 * np.pi, 2048)
    cloud = (np.stack([np.cos(ring) * 8, np.sin(ring) * 8, np.zeros_like(ring), np.full_like(ring, 40)], -1)[None]
             .repeat(32, 0) + rng.normal(0, 0.01, (32, 2048, 4))).astype(np.float32).tobytes()
    out: dict[str, Any] = {}
    for name, codec in COMPRESSIONS.items():
        for what, data in (("image", image), ("cloud", cloud)):
            start = time.process_time()
            packed = codec.compress(data, codec.default_level)
            packing = time.process_time() - start
            start = time.process_time()
            codec.decompress(packed, len(data))
            unpacking = time.process_time() - start
            mb = len(data) / 1e6
            out[f"{name}_{what}"] = {"ratio": round(len(packed) / len(data), 3),
                                     "compress_ms_per_mb": round(packing * 1e3 / mb, 2),
                                     "decompress_ms_per_mb": round(unpacking * 1e3 / mb, 2)}
    return out


def raw_paho(port: int, payload: bytes, count: int) -> float:
    """MB/s of a bare paho client publishing `count` payloads at QoS 1 and waiting for their PUBACKs."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-large-raw", protocol=paho.MQTTv5)
    acked = 0

    def on_publish(*_args: object) -> None:
        nonlocal acked
        acked += 1

    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    start = time.perf_counter()
    for _ in range(count):
        client.publish("bench/raw_large", payload, qos=1)
    deadline = time.monotonic() + 60
    while acked < count and time.monotonic() < deadline:
        time.sleep(0.001)
    seconds = time.perf_counter() - start
    client.disconnect()
    client.loop_stop()
    return len(payload) * acked / seconds / 1e6


def lidar_bytes() -> bytes:
    """1 MiB of a lidar-like float32 cloud (32 x 2048 points, x y z intensity, range noise)."""
    rng = np.random.default_rng(2)
    ring = np.linspace(0, 2 * np.pi, 2048)
    points = np.stack([np.cos(ring) * 8, np.sin(ring) * 8, np.zeros_like(ring), np.full_like(ring, 40)], -1)
    return (points[None].repeat(32, 0) + rng.normal(0, 0.01, (32, 2048, 4))).astype(np.float32).tobytes()


def bare_kafka(bootstrap: str, payloads: list[bytes], *, chunk_bytes: int | None) -> float:
    """MB/s of `payloads` from a bare producer (acks=all, idempotent) to a bare consumer, end to end: whole records
    on a topic with raised limits (`chunk_bytes` None), or chunks of `chunk_bytes` under Kafka's default limits,
    put together by the consumer."""
    raised = chunk_bytes is None
    topic = f"bench.large.{'raised' if raised else 'chunked'}.{time.time_ns()}"
    limit = 16 << 20
    config = {"max.message.bytes": str(limit)} if raised else {}
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1, config=config)])[topic].result(30)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5,
                         "compression.type": "none", **({"message.max.bytes": limit} if raised else {})})
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-large-{time.time_ns()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "fetch.max.bytes": 64 << 20, "max.partition.fetch.bytes": limit if raised else 1 << 20})
    consumer.subscribe([topic])
    producer.produce(topic, b"warm-up")
    producer.flush(30)
    while (warm := consumer.poll(1.0)) is None or warm.error():  # assigned and fetching before the clock starts
        pass
    reassembler: Reassembler[None] = Reassembler(max_bytes=1 << 30)
    whole = 0
    start = time.perf_counter()
    for seq, payload in enumerate(payloads):
        parts = [payload] if raised else split_record(payload, robot_id=ROBOT, stream="bench", seq=seq,
                                                      chunk_bytes=chunk_bytes or 0)
        for part in parts:
            while True:
                try:
                    producer.produce(topic, part, key=ROBOT.encode())
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.poll(0)
    producer.flush(120)
    deadline = time.monotonic() + 120
    while whole < len(payloads) and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None or message.error():
            continue
        value = message.value() or b""
        whole += 1 if raised else len(joined(reassembler.add(topic, value, None, time.monotonic())))
    seconds = time.perf_counter() - start
    consumer.close()
    return sum(map(len, payloads[:whole])) / seconds / 1e6


def bridge_config(tmp: Path, port: int, large_qos: str = "sensor_data", *, metrics_port: int | None = None,
                  odometry_only: bool = False) -> Path:
    path = tmp / "bridge.yaml"
    path.write_text(yaml.safe_dump({
        "robot_id": ROBOT, "fleet": "bench", "metrics_port": metrics_port,
        "uplink": {"kind": "mqtt", "port": port, "chunk_bytes": 256 * 1024},
        "spool": {"path": str(tmp / "spool.db"), "max_mb": 512},
        "budget": {"bytes_per_s": BUDGET, "keep_priority": 5, "max_wait_s": 1.0},
        "routes": [
            {"topic": f"/{ROBOT}/odom", "type": "nav_msgs/msg/Odometry", "channel": "telemetry",
             "stream": "odometry", "qos": "reliable", "format": "avro", "priority": 5},
            {"topic": f"/{ROBOT}/camera", "type": "sensor_msgs/msg/Image", "channel": "telemetry",
             "stream": "camera", "qos": large_qos, "format": "avro", "priority": 1, "compression": "lz4"},
            {"topic": f"/{ROBOT}/cloud", "type": "sensor_msgs/msg/PointCloud2", "channel": "telemetry",
             "stream": "cloud", "qos": large_qos, "format": "avro", "priority": 0, "compression": "zstd"},
        ][:1 if odometry_only else 3],
    }))
    return path


# "Flat": the least-squares line through the RSS samples of the second half of the run (the first half holds the
# start: pools, caches, the spool's pages) rises by at most this much over that half. 5 MB is two and a half of the
# run's 2 MB images: a process that kept one image a minute would fail it in a 10-minute soak, while the noise of a
# flat process (DDS pools refilled, SQLite pages, a last burst of chunks in flight) stays well under it.
RSS_FLAT_KB = 5 * 1024
ADDED_P99_GOAL_MS = 5.0
# The camera's own Fast DDS shared-memory segment (MB). Fast DDS's default, 512 KB, holds a quarter of one image: the
# publisher's later sends fail while readers still hold its fragments, and every local reader loses samples (the bare
# subscriber ~90 % of the images) and waits ~150 ms for each lost Odometry sample's repair, holding the ones behind it.
PUBLISHER_SHM_MB = 64
_SHM_PROFILE = """<?xml version="1.0" encoding="UTF-8"?>
<dds xmlns="http://www.eprosima.com"><profiles>
  <transport_descriptors>
    <transport_descriptor><transport_id>shm</transport_id><type>SHM</type>
      <segment_size>{segment}</segment_size></transport_descriptor>
    <transport_descriptor><transport_id>udp</transport_id><type>UDPv4</type></transport_descriptor>
  </transport_descriptors>
  <participant profile_name="camera_publisher" is_default_profile="true"><rtps>
    <userTransports><transport_id>shm</transport_id><transport_id>udp</transport_id></userTransports>
    <useBuiltinTransports>false</useBuiltinTransports>
  </rtps></participant>
</profiles></dds>
"""


def publisher_env(env: dict[str, str], tmp: Path, shm_mb: int) -> dict[str, str]:
    """The publisher's environment: its participant's shared-memory segment `shm_mb` MB (0: Fast DDS's default)."""
    if not shm_mb:
        return env
    profile = tmp / "publisher_fastdds.xml"
    profile.write_text(_SHM_PROFILE.format(segment=shm_mb << 20))
    return {**env, "FASTDDS_DEFAULT_PROFILES_FILE": str(profile)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a 6 s run instead of 30 s")
    parser.add_argument("--soak-s", type=float, default=None, help="run this long instead (RSS over a soak)")
    parser.add_argument("--large-qos", choices=("sensor_data", "reliable"), default="sensor_data",
                        help="the QoS preset the camera and cloud are read with (bridge and bare alike)")
    parser.add_argument("--skip-links", action="store_true",
                        help="leave out the bare Kafka and paho figures (repeated soaks: only the bridge's run)")
    parser.add_argument("--bridge-odometry-only", action="store_true",
                        help="the bridge carries Odometry only (images and clouds still published, and read by bare "
                             "rclpy): what the large routes cost its Odometry")
    parser.add_argument("--publisher-shm-mb", type=int, default=PUBLISHER_SHM_MB,
                        help="the publisher's Fast DDS shared-memory segment in MB (0: Fast DDS's default, 512 KB, "
                             "which loses samples to every local reader at these rates)")
    opts = parser.parse_args()
    seconds = opts.soak_s or (6.0 if opts.quick else 30.0)
    image = photo(816, 816)  # 2.0 MB
    figures: dict[str, Any] = {"seconds": seconds, "budget_bytes_per_s": BUDGET, "large_qos": opts.large_qos,
                               "bridge_odometry_only": opts.bridge_odometry_only,
                               "publisher_shm_mb": opts.publisher_shm_mb,
                               "load_average_start": os.getloadavg()[0], "codecs": codecs(image)}
    with tempfile.TemporaryDirectory() as tmp_name, lease_domain() as domain:
        tmp = Path(tmp_name)
        (tmp / "photo.rgb").write_bytes(image)
        env = {**os.environ, "ROS_DOMAIN_ID": str(domain.domain), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
        if not opts.skip_links:
            kafka = Kafka(run_dir=tmp / "kafka", port=free_port())
            kafka.start()
            try:
                same_bytes = [image, lidar_bytes()] * 30  # 90 MB: 2 MB images and 1 MiB clouds, alternating
                raised = bare_kafka(kafka.bootstrap, same_bytes, chunk_bytes=None)
                chunked = bare_kafka(kafka.bootstrap, same_bytes, chunk_bytes=512 * 1024)
                figures["bare_kafka"] = {"raised_limits_mb_per_s": round(raised, 1),
                                         "chunked_mb_per_s": round(chunked, 1),
                                         "chunked_over_raised": round(chunked / raised, 2)}
            finally:
                kafka.stop()
        broker = Mosquitto(run_dir=tmp / "mosquitto", port=free_port())
        broker.start()
        try:
            if not opts.skip_links:
                figures["raw_paho_mb_per_s"] = round(raw_paho(broker.port, image, 40), 1)
            figures["bare"], figures["bridge"] = run(tmp, env, broker.port, seconds, opts.large_qos,
                                                     odometry_only=opts.bridge_odometry_only,
                                                     publisher_shm_mb=opts.publisher_shm_mb)
        finally:
            broker.stop()
    figures["load_average_end"] = os.getloadavg()[0]
    bridge, bare = figures["bridge"], figures["bare"]
    bridge["odometry_added_p99_ms"] = round(bridge["odometry_p99_ms"] - bare["odometry_p99_ms"], 3)
    figures["goals"] = {"odometry_zero_loss": bridge["odometry_lost"] == 0,
                        "odometry_added_p99_le_5_ms": bridge["odometry_added_p99_ms"] <= ADDED_P99_GOAL_MS,
                        "bridge_rss_flat": bridge["rss_second_half_fit_kb"] <= RSS_FLAT_KB}
    large_mb_s = bridge["large_bytes_per_s"] / 1e6
    if not opts.skip_links:
        print(f"raw paho, 2 MB payloads: {figures['raw_paho_mb_per_s']} MB/s; budget {BUDGET / 1e6:.2f} MB/s")
        kafka = figures["bare_kafka"]
        print(f"bare Kafka, the same bytes producer -> consumer: {kafka['raised_limits_mb_per_s']} MB/s whole (raised "
              f"limits), {kafka['chunked_mb_per_s']} MB/s in 512 KiB chunks (default limits); chunked / raised "
              f"{kafka['chunked_over_raised']}; the budget is {BUDGET / 1e6 / kafka['chunked_mb_per_s']:.3f} of "
              f"chunked Kafka, the bridge's large streams {large_mb_s / kafka['chunked_mb_per_s']:.3f}")
    goals = figures["goals"]
    print(f"odometry: {bridge['odometry_received']} of {bridge['odometry_sent']} (lost {bridge['odometry_lost']}; "
          f"the bridge took {bridge['odometry_taken_by_bridge']} from ROS, its drops by reason "
          f"{bridge['drops']['odometry'] or 'none'}), p99 {bridge['odometry_p99_ms']} ms (inside the bridge, taken "
          f"-> PUBACK: p99 <= {bridge['odometry_in_bridge_p99_ms']} ms), bare rclpy p99 {bare['odometry_p99_ms']} ms "
          f"in the same minutes ({bare['received']['odom']} of {bare['odometry_sent']}), added "
          f"{bridge['odometry_added_p99_ms']} ms (goal <= {ADDED_P99_GOAL_MS:g} ms "
          f"{_mark(goals['odometry_added_p99_le_5_ms'])}, zero loss {_mark(goals['odometry_zero_loss'])})")
    hops = bridge["odometry_hops"]
    if "stamp_to_tap" in hops:
        print("odometry hops (p50 / p99 / mean in the slowest 1 % end to end, ms): " + ", ".join(
            f"{name} {hops[name]['p50_ms']} / {hops[name]['p99_ms']} / {hops[name]['mean_in_slowest_1pct_ms']}"
            for name, _start, _end in HOPS) + f"; bare rclpy stamp -> subscriber p99 {bare['odometry_p99_ms']}")
    print(f"the bridge's garbage collector while it ran: {bridge['gc_passes']}")
    print(f"images: {bridge['images_whole']} whole, {bridge['images_dropped']} dropped (counted: "
          f"{bridge['drops']['camera']}); clouds: {bridge['clouds_whole']} whole, {bridge['clouds_dropped']} dropped "
          f"({bridge['drops']['cloud']}); bare rclpy received {bare['received']['camera']} images and "
          f"{bare['received']['cloud']} clouds; large streams took {large_mb_s:.2f} "
          f"MB/s on the wire of the budget's {BUDGET / 1e6:.2f} ({large_mb_s / (BUDGET / 1e6):.2f})")
    for name, codec in figures["codecs"].items():
        print(f"{name}: ratio {codec['ratio']}, {codec['compress_ms_per_mb']} ms/MB to compress, "
              f"{codec['decompress_ms_per_mb']} ms/MB to undo")
    for name, side in (("bridge", bridge), ("bare rclpy", bare)):
        print(f"{name} RSS {side['rss_start_kb']} -> {side['rss_end_kb']} kB (max {side['rss_max_kb']}; over the "
              f"second half {side['rss_second_half_growth_kb']:+d} kB end - middle, {side['rss_second_half_fit_kb']:+d}"
              f" kB by a line through its {len(side['rss_samples_kb']) - len(side['rss_samples_kb']) // 2} samples)")
    print(f"CPU while the streams ran: bridge {bridge['cpu_percent']} %, bare rclpy {bare['cpu_percent']} % of a core")
    print(f"bridge RSS flat (the second half's line rises <= {RSS_FLAT_KB} kB): {_mark(goals['bridge_rss_flat'])}")
    print(f"camera and cloud read with {opts.large_qos}; load average {figures['load_average_start']:.1f} at the "
          f"start, {figures['load_average_end']:.1f} at the end (2 cores)")
    print(json.dumps(figures))
    return 0


def _mark(met: bool) -> str:
    return "met" if met else "NOT met"


def _rss_figures(rss: list[int], every_s: float) -> dict[str, Any]:
    """RSS samples (kB, every `every_s`): start, end, max, and the growth over the second half, end minus middle and
    by a least-squares line (one sample does not make the verdict)."""
    half = rss[len(rss) // 2:]
    fit = 0
    if len(half) >= 2:
        xs = np.arange(len(half)) * every_s
        fit = round(float(np.polyfit(xs, np.asarray(half, dtype=float), 1)[0] * xs[-1]))
    return {"rss_start_kb": rss[0], "rss_end_kb": rss[-1], "rss_max_kb": max(rss),
            "rss_second_half_growth_kb": rss[-1] - rss[len(rss) // 2], "rss_second_half_fit_kb": fit,
            "rss_samples_kb": rss}


RSS_EVERY_S = 5.0


def run(tmp: Path, env: dict[str, str], port: int, seconds: float, large_qos: str, *,
        odometry_only: bool = False, publisher_shm_mb: int = PUBLISHER_SHM_MB) -> tuple[dict[str, Any], dict[str, Any]]:
    """The streams, at once, into a bare rclpy subscriber (the bridge's QoS) and through a robot_bridge process under
    the budget: what each got and how late, their RSS; the bridge's Odometry as it reached the broker, the large
    records put together whole. Both sides see the same messages in the same minutes, so their p99s compare."""
    wire = MqttTap(host="127.0.0.1", port=port, patterns=[f"{PREFIX}/camera", f"{PREFIX}/cloud"], split=False)
    tap = MqttTap(host="127.0.0.1", port=port, patterns=[f"{PREFIX}/camera", f"{PREFIX}/cloud"])
    progress = tmp / "odometry_tap.count"
    progress.write_text("0")
    odometry = subprocess.Popen([sys.executable, "-c", ODOMETRY_TAP, str(port), f"{PREFIX}/odometry", str(progress)],
                                env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert odometry.stdout is not None
    odometry.stdout.readline()  # subscribed
    config = bridge_config(tmp, port, large_qos, metrics_port=(metrics_port := free_port()),
                           odometry_only=odometry_only)
    # Its log to a file: a pipe no one reads while it runs fills up (64 KiB: a soak's budget lines) and then blocks
    # the bridge on its next log line, its readers overflowing meanwhile (the last session's soak lost the
    # odometry of its last seconds so).
    log_path = tmp / "bridge.log"
    log_file = log_path.open("w")
    hops_path = tmp / "odometry_hops.bin"
    bridge = subprocess.Popen([sys.executable, "-c", BRIDGE_WITH_HOPS, str(hops_path), "odometry", "--config",
                               str(config)], env=env, stdout=log_file, stderr=subprocess.STDOUT, text=True)
    bare = subprocess.Popen([sys.executable, "-c", BARE, large_qos], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    pub: subprocess.Popen[str] | None = None
    try:
        pub = subprocess.Popen([sys.executable, "-c", PUBLISHER, str(seconds), "2", str(tmp / "photo.rgb"),
                                "1" if odometry_only else "2"], env=publisher_env(env, tmp, publisher_shm_mb),
                               stdout=subprocess.PIPE, text=True)
        while progress.read_text() in ("", "0") and pub.poll() is None:  # the first Odometry through the bridge
            time.sleep(0.05)
        time.sleep(1.0)
        seen = Seen()
        rss, bare_rss, first = [rss_kb(bridge.pid)], [rss_kb(bare.pid)], time.monotonic()
        cpu_start, bare_cpu_start = cpu_s(bridge.pid), cpu_s(bare.pid)
        while pub.poll() is None:  # read the taps in parts (a soak's images would not fit in memory) and sample RSS
            time.sleep(min(RSS_EVERY_S, max(0.0, first + RSS_EVERY_S * len(rss) - time.monotonic())))
            seen.read(tap, wire)
            rss.append(rss_kb(bridge.pid))
            bare_rss.append(rss_kb(bare.pid))
        out, _ = pub.communicate(timeout=seconds + 120)
        span = time.monotonic() - first
        cpu, bare_cpu = cpu_s(bridge.pid) - cpu_start, cpu_s(bare.pid) - bare_cpu_start
        rss.append(rss_kb(bridge.pid))
        bare_rss.append(rss_kb(bare.pid))
        sent = int(out.split()[0])
        last, quiet_since = -1, time.monotonic()
        while (got := int(progress.read_text() or 0)) < sent and time.monotonic() - quiet_since < 10.0:
            time.sleep(1.0)  # the end edge: until all arrived, or nothing more for 10 s
            if got != last:
                last, quiet_since = got, time.monotonic()
        seen.read(tap, wire)
        in_bridge = _odometry_in_bridge_p99_s(metrics_port)
    except BaseException:  # Ctrl-C, SIGTERM: none of them is left running
        for proc in (bare, odometry, pub):
            if proc is not None:
                proc.kill()
        raise
    finally:
        bridge.terminate()
        bridge.wait(timeout=60)
        log_file.close()
        tap.close()
        wire.close()
    bare_out = json.loads(bare.communicate("", timeout=60)[0])
    odometry_out = json.loads(odometry.communicate("", timeout=60)[0])
    log = log_path.read_text()
    drops = {stream: _drops(log, stream) for stream in ("odometry", "camera", "cloud")}
    summary = f"{PREFIX}/odometry: received "
    taken = log.split(summary)[1].split(",")[0] if summary in log else "?"
    bare_figures = {"odometry_sent": sent, "received": bare_out["counts"],
                    "odometry_p99_ms": round(percentile(bare_out["latency_ns"], 0.99) / 1e6, 3),
                    "cpu_percent": round(100 * bare_cpu / span, 1), **_rss_figures(bare_rss, RSS_EVERY_S)}
    received = odometry_out["received"]
    bridge_figures = {
        "odometry_sent": sent, "odometry_received": received, "odometry_lost": sent - received,
        "odometry_taken_by_bridge": int(taken) if taken.isdigit() else None,
        "odometry_p99_ms": round(percentile(odometry_out["latency_ns"], 0.99) / 1e6, 3),
        "odometry_in_bridge_p99_ms": None if in_bridge is None else round(in_bridge * 1e3, 3),
        "odometry_hops": _hops(hops_path, odometry_out),
        "gc_passes": json.loads(gc_path.read_text()) if (gc_path := hops_path.with_suffix(".bin.gc.json")).exists()
        else None,
        "images_whole": seen.whole["camera"], "images_dropped": sum(drops["camera"].values()),
        "clouds_whole": seen.whole["cloud"], "clouds_dropped": sum(drops["cloud"].values()), "drops": drops,
        "large_bytes_per_s": seen.wire_bytes / max(span, 1e-9), "chunks_undone_by_tap": tap.chunks.completed,
        "cpu_percent": round(100 * cpu / span, 1), **_rss_figures(rss, RSS_EVERY_S)}
    return bare_figures, bridge_figures


# The hops of an Odometry record, between the stamps the bench has of it: header.stamp (the publisher), received by
# the bridge's DDS reader, taken from it by the bridge, handed by its outbox to the MQTT client, on the socket, at the
# tap (another process: after the broker).
HOPS = (("dds_to_reader", "stamp", "received"), ("reader_to_take", "received", "take"),
        ("ros_to_take", "stamp", "take"), ("take_to_handed", "take", "handed"),
        ("handed_to_socket", "handed", "socket"), ("socket_to_tap", "socket", "tap"),
        ("stamp_to_socket", "stamp", "socket"), ("stamp_to_tap", "stamp", "tap"))


def _hops(path: Path, tap: dict[str, Any]) -> dict[str, Any]:
    """Per hop of the bridge's Odometry: p50, p99 and max (ms), and what each hop took on average in the records that
    were the slowest 1 % end to end (which hop the late ones were late in). Records are matched by their number in
    the run (seq's low 32 bits = the order the bridge took them, which is the order its outbox sent them)."""
    if not path.exists():
        return {"error": "no hop file"}
    head, _, body = path.read_bytes().partition(b"\n")
    offset = int(head)
    rows = np.frombuffer(body[:len(body) // 32 * 32], dtype=np.int64).reshape(-1, 4)
    numbers = np.asarray(tap["numbers"], dtype=np.int64)
    keep = numbers < len(rows)
    numbers = numbers[keep]
    stamps = {"stamp": np.asarray(tap["stamps_ns"], dtype=np.int64)[keep],
              "tap": np.asarray(tap["arrivals_ns"], dtype=np.int64)[keep],
              "received": rows[numbers, 0],
              **{name: rows[numbers, column] + offset for column, name in enumerate(("take", "handed", "socket"), 1)}}
    written = rows[numbers, 3] > 0
    stamps = {name: values[written] for name, values in stamps.items()}
    out: dict[str, Any] = {"records": int(written.sum()), "stamped_by_bridge": len(rows),
                           "not_on_socket_at_stop": int((~written).sum())}
    if not written.any():
        return out
    if dump := os.environ.get("SWARM_BRIDGE_HOPS_OUT"):  # the per-record stamps, for a timeline of the late ones
        np.savez(dump, **stamps)
    total = stamps["tap"] - stamps["stamp"]
    slowest = total >= np.quantile(total, 0.99)
    for name, start, end in HOPS:
        ms = (stamps[end] - stamps[start]) / 1e6
        out[name] = {"p50_ms": round(float(np.quantile(ms, 0.5)), 3),
                     "p99_ms": round(float(np.quantile(ms, 0.99)), 3), "max_ms": round(float(ms.max()), 3),
                     "mean_in_slowest_1pct_ms": round(float(ms[slowest].mean()), 3)}
    return out


def _odometry_in_bridge_p99_s(port: int) -> float | None:
    """The bucket bound under which 99 % of the bridge's Odometry went from its take to the broker's PUBACK (its
    /metrics histogram): the bridge's own share of the added latency, the rest being the broker and the tap."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    except OSError:
        return None
    buckets = [(float(line.split('le="')[1].split('"')[0]), float(line.rsplit(" ", 1)[1]))
               for line in text.splitlines()
               if line.startswith("swarm_bridge_uplink_latency_seconds_bucket") and "/odometry" in line]
    total = max((count for _le, count in buckets), default=0.0)
    return next((le for le, count in sorted(buckets) if count >= 0.99 * total), None) if total else None


class Seen:
    """What the taps saw of the large streams so far, kept as counts (not payloads)."""

    def __init__(self) -> None:
        self.whole = {"camera": 0, "cloud": 0}
        self.wire_bytes = 0  # large streams on the wire: compressed, chunk headers included

    def read(self, tap: MqttTap, wire: MqttTap) -> None:
        for record in tap.drain():
            stream = record.topic.rsplit("/", 1)[1]
            if stream in self.whole:
                self.whole[stream] += 1
        self.wire_bytes += sum(len(r.payload) for r in wire.drain())


def _drops(log: str, stream: str) -> dict[str, int]:
    """Records of `stream` the bridge counted as dropped, by reason (its stop summary)."""
    marker = f"{PREFIX}/{stream}: dropped by reason: "
    if marker not in log:
        return {}
    parts = log.split(marker)[1].split("\n")[0].split(", ")
    return {reason: int(n) for reason, n in (part.rsplit(": ", 1) for part in parts)}


if __name__ == "__main__":
    with terminate_as_interrupt():  # SIGTERM cleans up as Ctrl-C does
        sys.exit(main())
