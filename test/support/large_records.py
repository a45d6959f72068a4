"""Large records of real content for the chunking tests: a camera image made from a real photograph (the
Grace Hopper portrait matplotlib ships), a PointCloud2 of a lidar sweep's size, and a reader of Kafka topics that
puts the gateway's chunks together again."""

from __future__ import annotations

import io
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import cbook
from PIL import Image

from swarm_bridge.codec import record_codec
from swarm_bridge.codec.chunks import Reassembler, is_chunk, joined

__all__ = ["camera_image", "decode_kafka", "kafka_records", "lidar_cloud", "photo_rgb"]


def photo_rgb(width: int, height: int, shift: int = 0) -> bytes:
    """A real photograph scaled to width x height, RGB8; `shift` rolls it sideways so each frame differs."""
    path = Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    photo = Image.open(io.BytesIO(path.read_bytes())).convert("RGB")
    pixels = np.asarray(photo.resize((width, height), Image.Resampling.BICUBIC))
    return np.roll(pixels, shift, axis=1).tobytes()


def camera_image(msg_cls: Any, width: int, height: int, shift: int = 0, frame: int = 0) -> Any:
    """A sensor_msgs/Image of the photograph: rgb8, width x height (1672 x 1672 is 8.4 MB)."""
    image = msg_cls(height=height, width=width, encoding="rgb8", is_bigendian=0, step=width * 3)
    image.header.frame_id = "camera"
    image.header.stamp.sec = 1_700_000_000 + frame
    image.data = photo_rgb(width, height, shift)
    return image


def lidar_cloud(cloud_cls: Any, field_cls: Any, *, rings: int = 64, columns: int = 2048, sweep: int = 0) -> Any:
    """A sensor_msgs/PointCloud2 of one sweep of a 64-ring lidar in a room (floor and four walls, range noise):
    x, y, z, intensity as float32, 64 x 2048 points, 2 MiB."""
    rng = np.random.default_rng(sweep)
    azimuth = np.linspace(0, 2 * math.pi, columns, endpoint=False)[None, :]
    elevation = np.radians(np.linspace(-25.0, 15.0, rings))[:, None]
    direction = np.stack([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth),
                          np.sin(elevation) * np.ones_like(azimuth)], axis=-1)
    height, half_x, half_y = 1.8, 12.0, 8.0
    with np.errstate(divide="ignore"):
        to_floor = np.where(direction[..., 2] < 0, -height / direction[..., 2], np.inf)
        to_wall = np.minimum(half_x / np.abs(direction[..., 0]), half_y / np.abs(direction[..., 1]))
    distance = np.minimum(to_floor, to_wall) + rng.normal(0, 0.02, (rings, columns))
    points = direction * distance[..., None]
    intensity = (100.0 / (1.0 + distance)).astype(np.float32)[..., None]
    data = np.concatenate([points.astype(np.float32), intensity], axis=-1)
    cloud = cloud_cls(height=rings, width=columns, is_bigendian=False, point_step=16, row_step=16 * columns,
                      is_dense=True)
    cloud.fields = [field_cls(name=name, offset=4 * i, datatype=7, count=1) for i, name in enumerate("xyz")]
    cloud.fields.append(field_cls(name="intensity", offset=12, datatype=7, count=1))
    cloud.header.frame_id = "lidar"
    cloud.data = data.tobytes()
    return cloud


def kafka_records(bootstrap: str, topic: str, *, count: int, timeout_s: float = 90.0) -> tuple[list[Any], Any]:
    """The first `count` whole records of `topic` as (key, value) pairs, chunks put together; and the reassembler
    (its counts)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "test-large", "enable.auto.commit": False,
                         "fetch.max.bytes": 64 << 20})
    chunks: Reassembler[None] = Reassembler()
    found: list[tuple[bytes, bytes]] = []
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        deadline = time.monotonic() + timeout_s
        while len(found) < count and time.monotonic() < deadline:
            for message in consumer.consume(100, 0.5):
                if message.error() is not None:
                    continue
                value, key = message.value() or b"", message.key() or b""
                if is_chunk(value):
                    found += [(key, whole) for whole in joined(chunks.add(f"{message.partition()}/{key!r}", value,
                                                                         None, time.monotonic()))]
                else:
                    found.append((key, value))
        return found, chunks
    finally:
        consumer.close()


def decode_kafka(ros_type: str, value: bytes) -> Any:
    """The envelope of a Confluent-framed Avro record (magic 0, schema id, Avro body)."""
    assert value[:1] == b"\x00", value[:8]
    return record_codec(ros_type, "avro").decode(value[5:])
