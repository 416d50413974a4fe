"""Stuck: open far longer than its name usually runs, unless it waits for its ETA."""
from lookout.core.trouble import StuckRule

NOW = 1_700_000_000.0


def test_a_task_waiting_for_its_eta_is_not_stuck():
    rule = StuckRule(factor=10, minimum=60, default=3600)
    waiting = {"state": "RECEIVED", "received_at": NOW - 7200, "eta": NOW + 60}
    assert rule.reason(waiting, None, NOW) is None
    overdue = {**waiting, "eta": NOW - 3700}  # its ETA has passed: judged as any open task
    assert rule.reason(overdue, None, NOW).startswith("received and not started for 7200 s")
    assert rule.reason({**waiting, "eta": None}, 1.0, NOW) is not None
