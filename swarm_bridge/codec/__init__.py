"""Records and their wire formats; bytes in, bytes out, no ROS or broker imports."""

from swarm_bridge.codec.envelope import SCHEMA_VERSION, Envelope
from swarm_bridge.codec.json_codec import RecordError, decode_json, encode_json

__all__ = ["SCHEMA_VERSION", "Envelope", "RecordError", "decode_json", "encode_json"]
