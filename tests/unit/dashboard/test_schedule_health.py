"""Schedule health from a schedule and its runs: each status, and what tips it."""
from __future__ import annotations

import pytest

from lookout.dashboard.schedules import health, timing
from lookout.dashboard.schedules.sources import BeatEntry

T0 = 1_800_000_000.0  # a whole minute (UTC)


def entry(timing_, **fields) -> BeatEntry:
    return BeatEntry("app", "e", "proj.task", timing_, **fields)


def run(at: float, state: str = "SUCCESS", started: float | None = None) -> dict:
    return {"received_at": at, "sent_at": None, "timestamp": at, "state": state,
            "started_at": started}


def assess(e: BeatEntry, runs: list[dict], now: float, first_seen: float = T0 - 3600,
           **limits) -> dict:
    period = e.timing.period(now) if e.timing else None
    base = health.default_thresholds(period)
    return health.assess(e, runs, health.Thresholds(**{**base.as_dict(), **limits}), now,
                         first_seen)


EVERY_20S = timing.Interval(20)
EVERY_MINUTE = timing.Cron.parse()


def test_defaults_scale_with_the_period():
    minute, daily = health.default_thresholds(60), health.default_thresholds(86400)
    assert (minute.grace, minute.late_after, minute.running_limit) == (30, 10, 60)
    assert (daily.grace, daily.late_after, daily.running_limit) == (3600, 600, 6 * 3600)
    assert health.default_thresholds(None).grace == 1800


def test_an_interval_run_on_time_is_ok_and_missed_after_its_grace():
    runs = [run(T0)]
    assert assess(entry(EVERY_20S), runs, T0 + 10)["status"] == "ok"
    assert assess(entry(EVERY_20S), runs, T0 + 49)["status"] == "ok"  # due +20, grace 30
    missed = assess(entry(EVERY_20S), runs, T0 + 51)
    assert missed["status"] == "missed" and missed["due_at"] == T0 + 20
    assert "grace 30 s" in missed["reason"]


def test_runs_beat_sent_that_no_worker_takes_are_unconsumed_not_ok():
    """Beat sends on time, its runs stay PENDING (no worker consumes the queue): it said
    "ok" with ten grey runs in a row (an on-call trial)."""
    pending = [{**run(T0 + 20 * i, "PENDING"), "queue": "mail"} for i in (3, 2, 1)]
    finished = [run(T0)]
    assert assess(entry(EVERY_20S), pending[2:] + finished, T0 + 25)["status"] == "ok"
    verdict = assess(entry(EVERY_20S), pending + finished, T0 + 61)
    assert verdict["status"] == "unconsumed"
    assert verdict["reason"].startswith("beat sent its last 3 runs (the first 41 s ago) and "
                                        "no worker has received them: is a worker consuming "
                                        "queue mail?")
    # one received since: consumed again
    taken = [run(T0 + 80, "STARTED", started=T0 + 80.5)] + pending + finished
    assert assess(entry(EVERY_20S), taken, T0 + 81)["status"] == "ok"


def test_beats_own_record_counts_as_a_run():
    beat_saw = entry(EVERY_20S, last_run_at=T0 + 40)
    assert assess(beat_saw, [run(T0)], T0 + 60)["status"] == "ok"


def test_never_run_is_measured_from_first_sight():
    assert assess(entry(EVERY_20S), [], T0 + 5, first_seen=T0)["reason"] == "no run seen yet"
    assert assess(entry(EVERY_20S), [], T0 + 60, first_seen=T0)["status"] == "missed"
    # django-celery-beat counts a never-run entry from its last change, as beat does
    changed = entry(EVERY_20S, changed_at=T0 + 50)
    assert assess(changed, [], T0 + 60, first_seen=T0)["status"] == "ok"


def test_a_crontab_is_due_at_its_next_minute():
    runs = [run(T0 + 0.5)]
    ok = assess(entry(EVERY_MINUTE), runs, T0 + 80)
    assert ok["status"] == "ok" and ok["due_at"] == T0 + 60
    assert assess(entry(EVERY_MINUTE), runs, T0 + 91)["status"] == "missed"


def test_a_run_sent_just_before_its_due_time_counts_for_it():
    early = [run(T0 - 0.2)]  # beat's clock a little ahead
    verdict = assess(entry(EVERY_MINUTE), early, T0 + 40)
    assert verdict["status"] == "ok" and verdict["due_at"] == T0 + 60


def test_failing_after_the_set_number_of_failed_runs():
    runs = [run(T0 + 20, "FAILURE"), run(T0, "SUCCESS")]
    failing = assess(entry(EVERY_20S), runs, T0 + 25)
    assert failing["status"] == "failing" and failing["reason"] == "the last 1 run failed"
    assert assess(entry(EVERY_20S), runs, T0 + 25, failures=2)["status"] == "ok"
    two = [run(T0 + 20, "FAILURE"), run(T0, "FAILURE")]
    assert assess(entry(EVERY_20S), two, T0 + 25, failures=2)["status"] == "failing"
    # a run still going does not hide the failure before it
    going = [run(T0 + 40, "STARTED", started=T0 + 40)] + two
    assert assess(entry(EVERY_20S), going, T0 + 45)["status"] == "failing"


def test_running_long():
    hourly = entry(timing.Interval(3600))
    runs = [run(T0, "STARTED", started=T0 + 1)]
    assert assess(hourly, runs, T0 + 3000)["status"] == "ok"
    long = assess(hourly, runs, T0 + 3700)
    assert long["status"] == "running_long" and "limit 3600 s" in long["reason"]
    assert assess(hourly, runs, T0 + 3700, running_limit=7200)["status"] == "ok"


def test_late_when_the_last_run_came_well_after_its_due_time():
    every_minute = entry(timing.Interval(60))
    on_time = [run(T0 + 61), run(T0)]
    assert assess(every_minute, on_time, T0 + 65)["status"] == "ok"
    late = assess(every_minute, [run(T0 + 80), run(T0)], T0 + 85)
    assert late["status"] == "late" and "20 s after its due time" in late["reason"]
    # a crontab run is measured against the due time it answered, not a skipped one
    cron_runs = [run(T0 + 180.5), run(T0 + 0.5)]
    assert assess(entry(EVERY_MINUTE), cron_runs, T0 + 190)["status"] == "ok"
    assert assess(entry(EVERY_MINUTE), [run(T0 + 195), run(T0 + 0.5)],
                  T0 + 196)["status"] == "late"


def test_disabled_and_expired_outrank_everything():
    stale = [run(T0 - 3600, "FAILURE")]
    assert assess(entry(EVERY_20S, enabled=False), stale, T0)["status"] == "disabled"
    assert assess(entry(EVERY_20S, expires_at=T0 - 1), stale, T0)["status"] == "expired"
    assert assess(entry(EVERY_20S, expires_at=T0 + 100), [run(T0 - 5)], T0)["status"] == "ok"


def test_not_due_before_its_start_time():
    later = entry(EVERY_MINUTE, start_time=T0 + 7200)
    verdict = assess(later, [], T0 + 600, first_seen=T0)
    assert verdict["status"] == "ok" and verdict["due_at"] == T0 + 7200


def test_a_clocked_one_off_is_missed_when_its_time_passes_unseen():
    once = entry(timing.Clocked(T0 + 100), one_off=True)
    assert assess(once, [], T0 + 50, first_seen=T0)["status"] == "ok"
    assert assess(once, [], T0 + 100 + 3601, first_seen=T0)["status"] == "missed"
    done = assess(once, [run(T0 + 100)], T0 + 100 + 3601, first_seen=T0)
    assert done["status"] == "ok" and done["due_at"] is None


def test_an_entry_enabled_again_counts_from_then_not_from_its_run_before():
    """Disabling clears beat's last run; once enabled, beat counts from then. Counting from
    the run before the disable called it missed 30 s after an Enable, and paged (a trial)."""
    enabled_at = T0 + 600.4
    again = entry(EVERY_MINUTE, last_run_at=None, changed_at=enabled_at)
    verdict = assess(again, [run(T0)], enabled_at + 40)
    assert verdict["status"] == "ok" and verdict["due_at"] == T0 + 660
    # Its first run after that is the reference again, and a real miss still shows.
    assert assess(again, [run(T0 + 660.2), run(T0)], T0 + 700)["due_at"] == T0 + 720
    assert assess(again, [run(T0)], T0 + 660 + 31)["status"] == "missed"
    # Beat's own record of a run (not cleared) still wins over an older change.
    kept = entry(EVERY_MINUTE, last_run_at=T0 + 600.1, changed_at=T0 + 300)
    assert assess(kept, [run(T0)], T0 + 640)["due_at"] == T0 + 660


def test_a_retried_run_counts_when_beat_sent_it_not_when_it_was_retried():
    """A retry sends the task again: its row's sent_at moves, its timestamp does not."""
    retried = {"received_at": T0 + 72, "sent_at": T0 + 71.9, "timestamp": T0 + 0.2,
               "state": "SUCCESS", "started_at": T0 + 72}
    assert health.run_time(retried) == T0 + 0.2
    verdict = assess(entry(EVERY_MINUTE), [retried, run(T0 - 59.8)], T0 + 75)
    assert verdict["status"] == "ok" and verdict["due_at"] == T0 + 60


def test_a_spent_one_off_says_it_is_done_not_switched_off():
    once = entry(timing.Clocked(T0 + 100), one_off=True, enabled=False)
    assert assess(once, [run(T0 + 100)], T0 + 500)["reason"] == (
        "one-off, done: its scheduler disabled it after its run")
    assert assess(once, [], T0 + 50)["reason"] == "disabled in its scheduler"


def test_an_unreadable_schedule_says_why():
    broken = entry(None, error="cannot read its schedule: bad")
    assert assess(broken, [], T0) == {"status": "unknown", "reason": "cannot read its schedule: bad",
                                      "due_at": None}


@pytest.mark.parametrize("status", health.STATUSES)
def test_every_status_is_named_once(status):
    assert health.STATUSES.count(status) == 1
