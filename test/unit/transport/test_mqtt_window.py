"""The MQTT client's pure parts: the two QoS 1 windows and the framing of received bytes (no broker)."""

from __future__ import annotations

import mqtt5
import pytest

from swarm_bridge.transport.mqtt_window import AckOrder, Inflight
from swarm_bridge.transport.mqtt_wire import Frames, MalformedReason, reason_name, set_duplicate


def _publish(pid: int, payload: bytes = b"p") -> bytes:
    return mqtt5.PublishPacket("t/x", payload, qos=mqtt5.QoS.AT_LEAST_ONCE, packet_id=pid).write()


def test_acks_in_any_order_leave_in_arrival_order() -> None:
    order = AckOrder()
    tickets = [order.received(pid) for pid in (7, 3, 9, 4)]
    assert order.ack(tickets[1]) == []          # 3 waits for 7
    assert order.ack(tickets[3]) == []          # 4 waits for 7 and 9
    assert order.ack(tickets[0]) == [7, 3]      # 7 frees 3, 9 still holds 4
    assert order.ack(tickets[2]) == [9, 4]
    assert len(order) == 0


def test_acks_of_many_at_once_leave_in_arrival_order() -> None:
    """`ack_many` (the gateway acks a turn's messages together) frees the same ids as one `ack` each."""
    order = AckOrder()
    tickets = [order.received(pid) for pid in (7, 3, 9, 4, 5)]
    assert order.ack_many([tickets[1], tickets[3]]) == []  # 3 and 4 wait for 7
    assert order.ack_many([]) == []
    assert order.ack_many([tickets[2], tickets[0]]) == [7, 3, 9, 4]  # 5 is not acked
    assert order.ack_many([tickets[4]]) == [5]
    assert len(order) == 0


def test_packet_ids_skip_those_in_use_and_wrap() -> None:
    window = Inflight(limit=3)
    window.add(1, b"a", sent=True, on_done=None)
    window.reserve(2)
    assert window.next_id() == 3
    window._next_id = 65535
    assert window.next_id() == 65535
    assert window.next_id() == 3  # wrapped past 1 (in flight) and 2 (reserved); 3 was never added: free
    window.release(2)
    window._next_id = 2
    assert window.next_id() == 2


def test_resend_keeps_order_and_marks_what_went_out() -> None:
    window = Inflight(limit=10)
    window.add(5, b"five", sent=True, on_done=None)
    window.add(2, b"two", sent=False, on_done=None)
    assert list(window.resend()) == [(b"five", True), (b"two", False)]
    assert list(window.resend()) == [(b"five", True), (b"two", True)]
    assert window.acked(5) is not None and window.acked(5) is None
    assert not window.full and len(window) == 1


def test_duplicate_flag_is_bit_3_of_the_first_byte() -> None:
    again = set_duplicate(_publish(12))
    packet, _ = mqtt5.read(memoryview(again))
    assert isinstance(packet, mqtt5.PublishPacket)
    assert packet.duplicate and packet.packet_id == 12 and packet.payload == b"p"


def test_frames_split_and_joined_anywhere() -> None:
    stream = b"".join(_publish(i, b"x" * (i * 37)) for i in range(1, 30))
    for step in (1, 3, 64, 1000, len(stream)):
        frames, got = Frames(max_size=None), []
        for start in range(0, len(stream), step):
            packets, bad = frames.feed(stream[start:start + step])
            assert bad is None
            got += [p.packet_id for p in packets]
        assert got == list(range(1, 30)), step


def test_frames_refuse_an_announced_oversize_before_its_body_arrives() -> None:
    big = _publish(1, b"y" * 5000)
    packets, bad = Frames(max_size=1024).feed(big[:10])
    assert packets == [] and bad is not None and bad.reason == MalformedReason.PACKET_TOO_LARGE
    assert "5" in bad.problem and "1024" in bad.problem


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the codec's panic noise
def test_good_packets_before_a_bad_one_are_kept() -> None:
    packets, bad = Frames(max_size=None).feed(_publish(1) + _publish(2) + bytes([0x32, 0x06, 0, 2, 0xFF, 0xFE, 0, 5]))
    assert [p.packet_id for p in packets] == [1, 2]
    assert bad is not None and bad.reason == MalformedReason.MALFORMED_PACKET and "0x32" in bad.problem


def test_reason_names() -> None:
    assert reason_name(0x86) == "BAD_USER_NAME_OR_PASSWORD" and reason_name(0x10) == "NO_MATCHING_SUBSCRIBERS"
    assert reason_name(0x01) == "GRANTED_QOS_AT_LEAST_ONCE" and reason_name(0x42) == "UNKNOWN"


def test_a_puback_overtaken_or_missing_for_the_timeout_is_overdue_but_a_slow_link_is_not() -> None:
    window = Inflight(limit=10)
    window.add(1, b"a", sent=True, on_done=None, now=0.0)
    window.add(2, b"b", sent=True, on_done=None, now=0.5)
    second = window.acked(2)
    assert second is not None
    later = second.seq
    assert window.unanswered(2.9, 3.0, acked_seq=later, last_ack=1.0, busy_at=0.0) is None  # not yet 3 s
    assert window.unanswered(3.0, 3.0, acked_seq=later, last_ack=1.0, busy_at=0.0) == (1, 3.0, True)  # overtaken
    assert window.unanswered(3.0, 0.0, acked_seq=later, last_ack=1.0, busy_at=0.0) is None  # 0: never
    assert window.unanswered(3.5, 3.0, acked_seq=second.seq, last_ack=1.0, busy_at=1.0) is None  # bytes left at 1
    assert window.unanswered(3.0, 3.0, acked_seq=0, last_ack=0.0, busy_at=0.0) == (1, 3.0, False)  # no acks 3 s
    assert window.unanswered(3.0, 3.0, acked_seq=0, last_ack=2.0, busy_at=0.0) is None  # acks flow in order
    window.add(3, b"c", sent=False, on_done=None)
    window.acked(1)
    assert window.unanswered(99.0, 3.0, acked_seq=0, last_ack=0.0, busy_at=0.0) is None  # never sent (offline)
