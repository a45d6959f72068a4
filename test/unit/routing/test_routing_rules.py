"""Pure route rules: decimation, topic selection by allow/deny regex, command admission."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarm_bridge.commands import CommandGate, Verdict
from swarm_bridge.routing.rate import Decimator
from swarm_bridge.routing.selection import TopicSelector

MS = 1_000_000


def test_decimates_100hz_to_10hz_exactly() -> None:
    gate = Decimator(10.0)
    passed = [t for t in range(0, 1000 * MS, 10 * MS) if gate.admit(t)]
    assert passed == list(range(0, 1000 * MS, 100 * MS))
    assert (gate.passed, gate.held_back) == (10, 90)


def test_jittery_source_keeps_the_rate_and_no_burst_after_pause() -> None:
    gate = Decimator(10.0)
    arrivals = [t * MS for t in (0, 99, 101, 150, 199, 201, 299, 302)]
    assert [gate.admit(t) for t in arrivals] == [True, False, True, False, False, True, False, True]
    assert gate.admit(5000 * MS) and not gate.admit(5001 * MS) and gate.admit(5100 * MS)


@given(st.lists(st.integers(0, 10_000 * MS), max_size=200), st.floats(0.5, 500.0))
def test_never_faster_than_the_limit(times: list[int], rate: float) -> None:
    gate = Decimator(rate)
    passed = [t for t in sorted(times) if gate.admit(t)]
    period = round(1e9 / rate)
    # k+1 passes never span less than k-1 periods (at most one extra, at a slot's edge)
    assert all(passed[j] - passed[i] >= (j - i - 1) * period
               for i in range(len(passed)) for j in range(i + 1, len(passed)))
    assert gate.passed + gate.held_back == len(times)


def test_no_limit_passes_everything_and_bad_rates_are_named() -> None:
    gate = Decimator(None)
    assert all(gate.admit(0) for _ in range(5))
    with pytest.raises(ValueError, match=r"max_rate_hz must be > 0 or None for no limit \(got -5\)"):
        Decimator(-5)


def test_selector_allow_and_deny() -> None:
    selector = TopicSelector(allow=(r"/amr_\d+/.*",), deny=(r".*/camera/.*", r"/amr_\d+/rosout"))
    topics = ["/amr_1/odom", "/amr_1/camera/image", "/amr_2/rosout", "/drone_1/odom", "/amr_12/scan"]
    assert selector.select(topics) == ["/amr_1/odom", "/amr_12/scan"]
    assert TopicSelector.exact("/a.b").matches("/a.b") and not TopicSelector.exact("/a.b").matches("/aXb")


def test_selector_bad_regex_is_named() -> None:
    with pytest.raises(ValueError, match=r"deny\[1\]: not a valid regular expression '\(unclosed'"):
        TopicSelector(allow=(".*",), deny=("/x", "(unclosed"))


def test_command_gate_verdicts_and_counts() -> None:
    gate = CommandGate("amr_007", memory=2)
    now = 1_000 * MS

    def check(robot: str, command: str, deadline: int = 0) -> Verdict:
        verdict = gate.check(robot_id=robot, command_id=command, deadline_ns=deadline, now_ns=now)
        if verdict is Verdict.ACCEPT:
            gate.remember(command)  # published
        return verdict

    assert check("amr_007", "c1") is Verdict.ACCEPT
    assert check("amr_007", "c1") is Verdict.DUPLICATE
    assert check("amr_008", "c2") is Verdict.OTHER_ROBOT
    assert check("amr_007", "c3", deadline=now - 1) is Verdict.EXPIRED
    assert check("amr_007", "c3", deadline=now + 1) is Verdict.ACCEPT
    assert check("amr_007", "c4") is Verdict.ACCEPT  # memory 2: c1 is forgotten now
    assert check("amr_007", "c1") is Verdict.ACCEPT
    assert gate.counts == {Verdict.ACCEPT: 4, Verdict.DUPLICATE: 1, Verdict.OTHER_ROBOT: 1, Verdict.EXPIRED: 1}


def test_command_gate_counts_an_id_as_seen_only_once_its_command_was_published() -> None:
    gate = CommandGate("amr_007")

    def check(command: str) -> Verdict:
        return gate.check(robot_id="amr_007", command_id=command, deadline_ns=0, now_ns=1_000 * MS)

    assert check("c1") is Verdict.ACCEPT  # ... and publishing it on ROS failed: not remembered
    assert check("c1") is Verdict.ACCEPT  # the redelivery is taken
    gate.remember("c1")  # published this time
    assert check("c1") is Verdict.DUPLICATE
