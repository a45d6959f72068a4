"""Feedback as progress by each rule of the table; never going back; the rate cap; the ledger of held tasks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from swarm_bridge.actions import PROGRESS_RULES, GoalLedger, HeldTask, ProgressReader, RateCap


def test_each_rule_reads_its_field_and_progress_never_goes_back() -> None:
    assert set(PROGRESS_RULES) == {"remaining", "fraction", "percent"}
    remaining = ProgressReader("remaining", "distance_remaining")
    assert [remaining.read({"distance_remaining": d}) for d in (0.0, 8.0, 6.0, 7.0, 2.0, 0.0)] == [
        0.0, 0.0, 0.25, 0.25, 0.75, 1.0]
    assert ProgressReader("fraction", "a.b").read({"a": {"b": 0.4}}) == 0.4
    assert ProgressReader("percent", "done").read({"done": 250}) == 1.0  # clamped
    reader = ProgressReader("percent", "done")
    reader.read({"done": 30})
    assert reader.read({}) == pytest.approx(0.3) and reader.read({"done": float("nan")}) == pytest.approx(0.3)


def test_the_rate_cap_lets_one_report_through_per_interval() -> None:
    cap = RateCap(4.0)
    assert [cap.due(t) for t in (0.0, 0.1, 0.25, 0.3, 0.6)] == [True, False, True, False, True]


def test_the_ledger_keeps_what_the_bridge_holds_across_runs(tmp_path: Path) -> None:
    path = tmp_path / "robot" / "spool.tasks.json"
    ledger = GoalLedger(path)
    assert ledger.load() == []
    held = [HeldTask("a", "navigate", "/amr/nav", "00ff"), HeldTask("b", "navigate", "/amr/nav")]
    ledger.sync(held)
    assert GoalLedger(path).load() == held
    ledger.sync([])
    assert GoalLedger(path).load() == [] and [p.name for p in path.parent.iterdir()] == ["spool.tasks.json"]
    path.write_text("{not json")
    assert GoalLedger(path).load() == []
    path.write_text(json.dumps({"held": [{"task_id": "a"}]}))
    assert GoalLedger(path).load() == []


def test_a_restarted_bridge_rejects_what_its_dead_run_never_started_and_fails_what_it_did() -> None:
    from swarm_bridge.actions import left_report
    from swarm_bridge.actions.outcome import FAILED, REJECTED

    never_sent = left_report(HeldTask("q", "navigate", "/amr/nav", command_id="q#1"))
    running = left_report(HeldTask("r", "navigate", "/amr/nav", "00ff", "r#1"))
    assert (never_sent.task_id, never_sent.state) == ("q", REJECTED)  # the coordinator gives it out again
    assert (running.task_id, running.state) == ("r", FAILED)  # the robot may have moved: its end is unknown
    assert never_sent.reason.startswith("bridge restarted") and running.reason.startswith("bridge restarted")


def test_the_ledger_keeps_each_tasks_command_and_reads_a_ledger_written_without_them(tmp_path: Path) -> None:
    ledger = GoalLedger(tmp_path / "tasks.json")
    ledger.sync([HeldTask("a", "navigate", "/amr/nav", "00ff", "a#2")])
    assert GoalLedger(tmp_path / "tasks.json").load() == [HeldTask("a", "navigate", "/amr/nav", "00ff", "a#2")]
    (tmp_path / "old.json").write_text('{"held": [{"task_id": "b", "kind": "navigate", "action": "/amr/nav"}]}')
    assert GoalLedger(tmp_path / "old.json").load() == [HeldTask("b", "navigate", "/amr/nav")]
