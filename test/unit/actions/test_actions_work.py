"""The task queue of a robot whose tasks run as goals: what each event reports and which goals it sends or
cancels; a stop leaves no task unreported."""

from __future__ import annotations

from swarm_bridge.actions import ActionWork, CancelGoal, GoalMapping, Report, SendGoal, TaskInput
from swarm_bridge.actions.outcome import ACCEPTED, CANCELLED, DONE, FAILED, REJECTED, RUNNING, outcome
from swarm_bridge.config.tasks import ActionTaskConfig

FIELDS = {"pose.pose.position.x": "double", "behavior_tree": "string"}


def work(max_hz: float = 2.0) -> ActionWork:
    config = ActionTaskConfig.model_validate({"action": "/{robot_id}/nav", "type": "nav2_msgs/action/NavigateToPose",
                                              "goal": {"pose.pose.position.x": "target.x"}})
    return ActionWork({"navigate": GoalMapping("navigate", config, FIELDS)},
                      progress={"navigate": ("remaining", "distance_remaining")}, max_hz=max_hz)


def task(task_id: str, kind: str = "navigate", x: float = 1.0) -> TaskInput:
    return TaskInput(task_id, kind, x=x)


def test_a_goal_is_sent_accepted_reports_progress_and_ends_done() -> None:
    w = work(max_hz=1.0)
    assert w.assign(task("a", x=4.0)) == [SendGoal("a", "navigate", {"pose": {"pose": {"position": {"x": 4.0}}}})]
    assert w.accepted("a") == [Report("a", ACCEPTED)]
    assert w.feedback("a", {"distance_remaining": 4.0}, now_s=10.0) == [Report("a", RUNNING, progress=0.0)]
    assert w.feedback("a", {"distance_remaining": 1.0}, now_s=10.5) == []  # rate cap: 1 a second
    assert w.feedback("a", {"distance_remaining": 2.0}, now_s=11.0) == [Report("a", RUNNING, progress=0.75)]
    state, reason = outcome(4, {}, action="/amr/nav", reason_fields=[])
    assert w.finished("a", state, reason) == [Report("a", DONE, "", 1.0)]
    assert w.current is None


def test_tasks_queue_behind_the_running_one_and_start_in_order() -> None:
    w = work()
    w.assign(task("a"))
    assert w.assign(task("b")) == [Report("b", ACCEPTED, "queued behind task a")]
    assert w.assign(task("b")) == []  # a repeated assignment
    w.accepted("a")
    state, reason = outcome(6, {"error_code": 9000, "error_msg": "blocked"}, action="/amr/nav",
                            reason_fields=["error_code", "error_msg", "absent"])
    assert reason == "action /amr/nav ended ABORTED: error_code 9000, error_msg 'blocked'"
    assert w.finished("a", state, reason) == [Report("a", FAILED, reason, 0.0), SendGoal("b", "navigate", {
        "pose": {"pose": {"position": {"x": 1.0}}}})]
    assert w.accepted("b") == [Report("b", RUNNING)]  # told accepted when it was queued


def test_refusals_are_rejections_with_a_reason() -> None:
    w = work()
    (unknown,) = w.assign(task("x", kind="teleport"))
    assert isinstance(unknown, Report) and unknown.state == REJECTED
    assert "no action for task kind 'teleport'" in unknown.reason
    w.unmapped = "ignore"
    assert w.assign(task("y", kind="teleport")) == []  # left to another executor on the topic
    w.assign(task("a"))
    w.assign(task("b"))
    assert w.rejected("a", "action server /amr/nav rejected the goal") == [
        Report("a", REJECTED, "action server /amr/nav rejected the goal"),
        SendGoal("b", "navigate", {"pose": {"pose": {"position": {"x": 1.0}}}})]


def test_a_cancel_ends_a_queued_task_at_once_and_cancels_a_running_goal() -> None:
    w = work()
    w.assign(task("a"))
    w.assign(task("b"))
    assert w.cancel("b") == [Report("b", CANCELLED, "cancelled by the coordinator before its goal was sent")]
    assert w.cancel("a") == []  # still being sent: cancelled once accepted
    assert w.accepted("a") == [Report("a", ACCEPTED), CancelGoal("a")]
    assert w.cancel("zzz") == []
    state, reason = outcome(5, {}, action="/amr/nav", reason_fields=[])
    assert w.finished("a", state, reason) == [
        Report("a", CANCELLED, "cancelled by the coordinator (action /amr/nav ended CANCELED)")]


def test_a_stop_rejects_the_queued_cancels_the_running_and_reports_it_failed() -> None:
    w = work()
    w.assign(task("a"))
    w.accepted("a")
    w.feedback("a", {"distance_remaining": 2.0}, 1.0)
    w.feedback("a", {"distance_remaining": 1.0}, 5.0)
    w.assign(task("b"))
    assert w.stop() == [Report("b", REJECTED, "bridge stopped before the task started"), CancelGoal("a")]
    (refused,) = w.assign(task("c"))
    assert isinstance(refused, Report) and refused.state == REJECTED  # no new work while stopping
    state, reason = outcome(5, {}, action="/amr/nav", reason_fields=[])
    assert w.finished("a", state, reason) == [Report("a", FAILED, "bridge stopped while the goal was running; it "
                                                     "was cancelled on the action server", 0.5)]
    assert w.stopped(3.0) == []


def test_a_goal_whose_cancel_is_not_confirmed_is_reported_failed_at_the_stop() -> None:
    w = work()
    w.assign(task("a"))
    w.accepted("a")
    w.stop()
    assert w.stopped(3.0) == [Report("a", FAILED, "bridge stopped while the goal was running; the action server "
                                     "did not confirm its cancel within 3 s", 0.0)]
    assert w.held == []


def test_an_unknown_final_status_is_a_failure() -> None:
    assert outcome(0, {}, action="/a", reason_fields=[]) == (FAILED, "action /a ended UNKNOWN")
    assert outcome(9, {}, action="/a", reason_fields=[]) == (FAILED, "action /a ended status 9")
