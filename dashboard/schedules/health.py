"""Schedule health: is each entry running when its schedule says, and running well?

The check-in model of Healthchecks.io or Sentry Crons, with beat's own sends as the
check-ins: an entry is due at `timing.next_after(its newest run)`; once that time plus a
grace period has passed with nothing received, it is `missed`. So a stopped beat turns
every enabled entry `missed` within its own grace, without any code in the user's tasks.

Statuses, first match wins: disabled, expired, missed, unconsumed, running_long,
failing, late, ok; `unknown` when the schedule itself cannot be read or computed (the
reason says why). `unconsumed`: beat sends on time, but no worker takes the runs (they
stay PENDING): "ok" there was false reassurance while the queue had no consumer (a trial).
Grace and the other limits scale with the schedule's period (a per-minute task and a
daily one need different patience) unless an operator set them for the entry.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lookout.dashboard.schedules.sources import BeatEntry

STATUSES = ("disabled", "expired", "missed", "unconsumed", "running_long", "failing", "late",
            "ok", "unknown")
FINISHED = ("SUCCESS", "FAILURE", "REVOKED", "REJECTED")
UNKNOWN_PERIOD = 3600.0
MAX_CATCH_UP = 10_000  # due times walked forward to place one run


@dataclass(frozen=True)
class Thresholds:
    grace: float  # after the due time, how long before a missing run is `missed`
    late_after: float  # a run received this long after its due time is `late`
    running_limit: float  # a run started this long ago and not finished is `running_long`
    failures: int  # this many failed runs in a row is `failing`

    def as_dict(self) -> dict[str, Any]:
        return {"grace": self.grace, "late_after": self.late_after,
                "running_limit": self.running_limit, "failures": self.failures}


def clamp(value: float, low: float, high: float) -> float:
    return max(low, min(value, high))


def default_thresholds(period: float | None) -> Thresholds:
    """Half a period of grace (30 s to 1 h); late after a tenth (10 s to 10 min); running
    long after a period (1 min to 6 h); failing from the first failed run."""
    period = period or UNKNOWN_PERIOD
    return Thresholds(grace=clamp(period / 2, 30, 3600), late_after=clamp(period / 10, 10, 600),
                      running_limit=clamp(period, 60, 6 * 3600), failures=1)


def run_time(run: dict[str, Any]) -> float:
    """When beat's message reached the system: the task's first send or receipt (its row's
    `timestamp`). Not `sent_at`: a retry sends the task again, and a run placed at its
    retry read as late and put the next due time a retry's delay off (a trial)."""
    return run["timestamp"]


def early_slack(entry: BeatEntry, now: float) -> float:
    """Clocks differ: a run sent a little before its due time still counts for it."""
    if entry.timing is None or entry.timing.relative:
        return 0.0
    return min((entry.timing.period(now) or UNKNOWN_PERIOD) / 4, 60.0)


def due_for(entry: BeatEntry, previous: float, at: float, slack: float) -> float | None:
    """The due time a run at `at` answered: the last one at or before it, after `previous`."""
    due = entry.timing.next_after(previous + slack)
    if due is None or entry.timing.relative:
        return due
    for _ in range(MAX_CATCH_UP):
        following = entry.timing.next_after(due)
        if following is None or following > at + slack:
            break
        due = following
    return due


def _unconsumed(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest runs that no worker has received yet (PENDING), newest first."""
    waiting = []
    for run in runs:
        if run["state"] != "PENDING":
            break
        waiting.append(run)
    return waiting


def assess(entry: BeatEntry, runs: list[dict[str, Any]], limits: Thresholds, now: float,
           first_seen: float) -> dict[str, Any]:
    """Status, reason and due times of one entry from its runs (newest first)."""
    out: dict[str, Any] = {"status": "ok", "reason": None, "due_at": None}
    if not entry.enabled:
        # django-celery-beat disables a one-off once it has run: done, not switched off by
        # someone (a trial could not tell the two apart).
        spent = entry.one_off and (entry.last_run_at is not None or entry.total_run_count
                                   or runs)
        return {**out, "status": "disabled", "reason": (
            "one-off, done: its scheduler disabled it after its run" if spent
            else "disabled in its scheduler")}
    if entry.expires_at is not None and now >= entry.expires_at:
        return {**out, "status": "expired", "reason": "its expiry time has passed"}
    if entry.timing is None:
        return {**out, "status": "unknown", "reason": entry.error}
    newest = runs[0] if runs else None
    slack = early_slack(entry, now)
    seen = [run_time(newest)] if newest else []
    if entry.last_run_at is not None:
        seen.append(entry.last_run_at)
    reference = max(seen) if seen else (entry.changed_at or first_seen)
    if (entry.last_run_at is None and entry.changed_at is not None
            and entry.changed_at > reference):
        # Disabling clears beat's last run (django-celery-beat's admin, and Lookout's own
        # Disable): once enabled again, beat counts from then, not from the newest run
        # before. Counting from that run paged "missed" right after an Enable (a trial).
        reference, seen = entry.changed_at, []
    try:
        due = entry.timing.next_after(reference + (slack if seen else 0.0))
        if entry.start_time is not None and (due is None or due < entry.start_time):
            due = entry.timing.next_after(entry.start_time - 0.001)
    except Exception as exc:  # noqa: BLE001 - e.g. solar without ephem installed
        return {**out, "status": "unknown", "reason": f"cannot compute the next run: {exc}"}
    out["due_at"] = due
    if due is not None and now > due + limits.grace:
        return {**out, "status": "missed", "reason": (
            f"due {now - due:.0f} s ago and not received (grace {limits.grace:g} s)")}
    waiting = _unconsumed(runs)
    if waiting and now - run_time(waiting[-1]) > limits.grace:
        count, queue = len(waiting), waiting[0].get("queue")
        return {**out, "status": "unconsumed", "reason": (
            f"beat sent {'its last ' + str(count) + ' runs' if count > 1 else 'its last run'}"
            f" (the first {now - run_time(waiting[-1]):.0f} s ago) and no worker has "
            f"received {'them' if count > 1 else 'it'}: is a worker consuming "
            f"{'queue ' + queue if queue else 'its queue'}? (Or its workers send no task "
            f"events: start them with -E)")}
    if newest is not None and newest["state"] == "STARTED" and newest.get("started_at") \
            and now - newest["started_at"] > limits.running_limit:
        return {**out, "status": "running_long", "reason": (
            f"started {now - newest['started_at']:.0f} s ago, not finished "
            f"(limit {limits.running_limit:g} s)")}
    finished = [r for r in runs if r["state"] in FINISHED]
    streak = 0
    for run in finished:
        if run["state"] != "FAILURE":
            break
        streak += 1
    if streak >= limits.failures:
        return {**out, "status": "failing", "reason": (
            f"the last {streak} run{'s' if streak > 1 else ''} failed")}
    if len(runs) >= 2:
        at = run_time(runs[0])
        answered = due_for(entry, run_time(runs[1]), at, slack)
        if answered is not None and at - answered > limits.late_after:
            return {**out, "status": "late", "reason": (
                f"the last run came {at - answered:.0f} s after its due time "
                f"(tolerance {limits.late_after:g} s)")}
    if newest is None:
        out["reason"] = "no run seen yet"
    return out
