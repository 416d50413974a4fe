"""What each alert kind finds in the store right now: {key: (value, message)}.

A key names what the alert is about (a task name, worker, queue, failure group, beat
entry); the engine fires one alert per new key and resolves it when the key is no longer
found. Every evaluator reads only the store, so any collector can evaluate.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any, Callable

from sqlalchemy import Connection, func, select

from lookout.core import histogram
from lookout.collectors.alerts.failure_index import FailureIndex
from lookout.core.store.models import (
    QueueSample, RevokeRequest, ScheduleStatus, Task, TaskLink, TaskRollup, Worker,
)
from lookout.core.trouble import (
    StuckRule, listening_since, lost_clause, lost_reason, open_tasks, redelivered,
    usual_runtimes, workers_by_name,
)

# key -> (value, message). A value of None means "too few runs to judge": an alert open for
# that key stays open, and none fires for it (see failure_rate).
Findings = dict[str, tuple[float | None, str]]
UNDECIDED = (None, "")
# A message is written once, when its alert fires, and shown for as long as it fires (and
# after), so its times count back from the firing: "N s ago" would be wrong a minute later.
FIRED = "before this alert fired"
MAX_FAILURES = 50_000
MAX_OPEN = 5000


def _minutes(window: float, now: float) -> int:
    return int((now - window) // 60 * 60)


def _names(task: str, rows) -> list:
    return [r for r in rows if task == "*" or r[0] == task]


def _finished_runs(conn: Connection, now: float, window: float,
                   name: str | None = None) -> list[tuple[str, int, int]]:
    """(name, failed, succeeded) per task name over the window's minutes, or of `name`:
    what failure_rate judges, and what its resolution says."""
    query = (select(TaskRollup.name, func.sum(TaskRollup.failed),
                    func.sum(TaskRollup.succeeded))
             .where(TaskRollup.bucket >= _minutes(window, now)).group_by(TaskRollup.name))
    if name is not None:
        query = query.where(TaskRollup.name == name)
    return [(n, failed or 0, succeeded or 0) for n, failed, succeeded in conn.execute(query)]


def _runtime_hists(conn: Connection, now: float, window: float,
                   name: str | None = None) -> dict[str, dict[int, int]]:
    """Runtime histogram per task name over the window's minutes, or of `name`."""
    query = select(TaskRollup.name, TaskRollup.runtime_hist).where(
        TaskRollup.bucket >= _minutes(window, now), TaskRollup.runtime_hist.is_not(None))
    if name is not None:
        query = query.where(TaskRollup.name == name)
    return histogram.merge_by_name(conn.execute(query).all())


def failure_rate(conn: Connection, now: float, p: dict, settings) -> Findings:
    found: Findings = {}
    for name, failed, succeeded in _names(p["task"], _finished_runs(conn, now, p["window"])):
        runs = failed + succeeded
        if not name or not runs or failed / runs <= p["threshold"]:
            continue
        if runs < max(1, p["min_runs"]):
            # Still failing, on fewer runs than the rule judges: not "cleared" (a trial's
            # alert resolved while every run failed, its schedule disabled); none fires.
            found[name] = UNDECIDED
            continue
        found[name] = (failed / runs, f"{name}: {failed} of {runs} runs failed "
                                      f"({failed / runs:.0%}) in the "
                                      f"{p['window'] / 60:g} min {FIRED}")
    return found


def runtime_p95(conn: Connection, now: float, p: dict, settings) -> Findings:
    hists = _runtime_hists(conn, now, p["window"], None if p["task"] == "*" else p["task"])
    found = {}
    for name, hist in hists.items():
        if sum(hist.values()) < max(1, p["min_runs"]):
            continue
        p95 = histogram.percentiles(hist, (95,))[95]
        if name and p95 is not None and p95 > p["threshold"]:
            found[name] = (p95, f"{name}: p95 runtime {p95:.3g} s over the "
                                f"{p['window'] / 60:g} min {FIRED} "
                                f"(limit {p['threshold']:g} s)")
    return found


def queue_length(conn: Connection, now: float, p: dict, settings) -> Findings:
    since = now - p["duration"]
    rows = conn.execute(select(QueueSample.queue, func.min(QueueSample.messages),
                               func.min(QueueSample.timestamp), func.count())
                        .where(QueueSample.timestamp >= since).group_by(QueueSample.queue)).all()
    covered = since + 2 * settings.queue_sample_interval + 1  # samples span the duration
    older = {q for (q,) in conn.execute(select(QueueSample.queue).where(
        QueueSample.timestamp < since, QueueSample.timestamp >= since - 3600).distinct())}
    found: Findings = {}
    # Sampled before the window and not within it: no collector sampled (one restarting,
    # or none holding the queues job). Undecided, so an open backlog alert stays open: it
    # was resolved on such a gap, then kept quiet by its cool-down (an on-call trial).
    for queue in older - {row[0] for row in rows}:
        if p["queue"] in ("*", queue):
            found[queue] = (None, "")
    for queue, smallest, first, _ in rows:
        if p["queue"] not in ("*", queue) or smallest <= p["threshold"]:
            continue
        if first <= covered or queue in older:
            found[queue] = (float(smallest), f"queue {queue}: over {p['threshold']} messages "
                                             f"for the {p['duration'] / 60:g} min {FIRED} "
                                             f"(at least {smallest})")
    return found


def worker_offline(conn: Connection, now: float, p: dict, settings) -> Findings:
    """Workers silent for `after`. A worker that said it went offline counts at once;
    silence counts only once some collector has listened for `after` without a break:
    a collector just restarted has not written what the broker kept for it yet, and
    every worker read as silent (a false page at each restart, in an on-call trial).
    Unjudged silence is undecided: it neither fires nor resolves."""
    rows = conn.execute(select(Worker.hostname, Worker.online, Worker.last_heartbeat)
                        .where(Worker.last_heartbeat >= now - p["forget_after"])).all()
    listening = listening_since(conn, now)
    judged = listening is not None and listening <= now - p["after"]
    found: Findings = {}
    for host, online, heard in rows:
        if not online and not p.get("shutdowns", 1):
            continue  # it said goodbye: a shutdown or a deploy, left out on request
        if p["worker"] in ("*", host) and now - heard > p["after"]:
            if online and not judged:
                found[host] = (None, "")
                continue
            said = "went offline; it was" if not online else "was"
            found[host] = (now - heard, f"worker {host} {said} last heard "
                                        f"{now - heard:.0f} s {FIRED}")
    return found


def new_failure_group(conn: Connection, now: float, p: dict, settings,
                      index: FailureIndex | None = None) -> Findings:
    """Failure fingerprints seen in the window and not in the lookback before it.

    `index` (the alert engine's) remembers fingerprints between evaluations; without one
    the whole horizon is read for this call.
    """
    horizon = p["window"] + p["lookback"]
    index = index if index is not None else FailureIndex(MAX_FAILURES)
    index.refresh(conn, now, horizon)
    recent: dict[str, dict[str, Any]] = {}
    before: set[str] = set()
    for name, key, at in index.since(now - horizon):
        if at >= now - p["window"]:
            group = recent.setdefault(key["fingerprint"], {**key, "count": 0,
                                                           "names": Counter()})
            group["count"] += 1
            group["names"][name or "(unknown)"] += 1
        else:
            before.add(key["fingerprint"])
    return {k: (float(g["count"]), f"new failure: {g['exception_type']}: {g['message']} "
                                   f"({g['count']}x in "
                                   f"{', '.join(n for n, _ in g['names'].most_common(3))})")
            for k, g in recent.items() if k not in before}


def lost_tasks(conn: Connection, now: float, p: dict, settings) -> Findings:
    """Lost tasks nobody has handled. A lost task stays lost (no event will ever close it)
    until retention, so revoking or retrying it from Lookout is how an operator says it was
    dealt with: before, a lost-tasks alert could not be cleared for a week (a trial)."""
    revoked = select(RevokeRequest.task_uuid).where(RevokeRequest.task_uuid == Task.uuid)
    retried = select(TaskLink.task_uuid).where(TaskLink.retry_of == Task.uuid)
    rows = conn.execute(select(Task.uuid, Task.worker, Task.state, Task.started_at,
                               Task.received_at, Task.timestamp)
                        .where(lost_clause(now, settings.lost_after), ~revoked.exists(),
                               ~retried.exists())
                        .limit(1000)).mappings().all()
    workers = workers_by_name(conn, [r["worker"] for r in rows])
    # Never started: the broker delivers those again by itself (core/trouble.py).
    rows = [r for r in rows if not redelivered(r, workers.get(r["worker"]), now)]
    if len(rows) < max(1, p["min_count"]):
        return {}
    reason = lost_reason(dict(rows[0]), workers.get(rows[0]["worker"]), now,
                         settings.lost_after, listening=listening_since(conn, now), ago=FIRED)
    return {"*": (float(len(rows)), f"{len(rows)} lost task(s) when this alert "
                                    f"fired, e.g. {rows[0]['uuid']}: {reason}")}


def stuck_tasks(conn: Connection, now: float, p: dict, settings) -> Findings:
    rows = open_tasks(conn, MAX_OPEN)
    workers = workers_by_name(conn, [r["worker"] for r in rows])
    usual = usual_runtimes(conn, _minutes(86400, now))
    rule = StuckRule.from_settings(settings)
    listening = listening_since(conn, now)
    stuck = [(r, why) for r in rows
             if not lost_reason(r, workers.get(r["worker"]), now, settings.lost_after,
                                listening=listening)
             and (why := rule.reason(r, usual.get(r["name"] or ""), now))]
    if len(stuck) < max(1, p["min_count"]):
        return {}
    first, why = stuck[0]
    return {"*": (float(len(stuck)), f"{len(stuck)} stuck task(s) when this alert "
                                     f"fired, e.g. {first['uuid']} ({first['name']}): {why}")}


# An entry this far past its due time with nothing received, when last judged, is
# overdue: not yet `missed` (its grace runs on), but evidence that beat is not sending.
OVERDUE_AFTER = 10.0
_NOT_DUE = ("disabled", "expired")


def missed_schedule(conn: Connection, now: float, p: dict, settings) -> Findings:
    rows = conn.execute(select(ScheduleStatus.__table__).where(
        ScheduleStatus.updated_at >= now - 4 * 60)).mappings().all()  # a web process judges
    found: Findings = {}
    missed: dict[str, list[str]] = defaultdict(list)
    overdue: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        key = f"{r['source']}/{r['name']}"
        if r["status"] == "missed":
            if p["entry"] in ("*", key):
                found[key] = (1.0, f"beat entry {key} ({r['task']}) missed: {r['reason']}")
                missed[r["source"]].append(r["name"])
        elif (r["status"] not in _NOT_DUE and r["due_at"] is not None
              and r["updated_at"] - r["due_at"] > OVERDUE_AFTER):
            overdue[r["source"]].append(r["name"])
    group_over = p.get("group_over", 3)
    if p["entry"] != "*" or not group_over:
        return found
    for source, names in missed.items():
        # A stopped beat misses every entry: one alert for the source, not one page per
        # entry (a trial got three; fifty entries would be fifty). Entries past their due
        # time but still within their grace count too: each entry turns missed after its
        # own grace, and the first ones paged alone before the group formed (a trial).
        # The entries' own open alerts resolve, as this one covers them.
        silent = sorted(names + overdue.get(source, []))
        if len(silent) < group_over:
            continue
        for name in names:
            del found[f"{source}/{name}"]
        shown = ", ".join(silent[:10]) + (f" and {len(silent) - 10} more"
                                          if len(silent) > 10 else "")
        what = ("missed at once" if len(names) == len(silent) else
                f"not run when due ({len(names)} missed, {len(silent) - len(names)} "
                f"overdue)")
        found[source] = (float(len(silent)), (
            f"{len(silent)} {source} entries {what} (is beat itself running?): {shown}"))
    return found


def failure_rate_resolution(conn: Connection, now: float, p: dict, key: str) -> str:
    """Why a failure-rate alert resolved: under the threshold, or nothing ran at all
    (its failing runs left the window; "cleared" read as a recovery: a trial)."""
    _, failed, succeeded = next(iter(_finished_runs(conn, now, p["window"], key)),
                                (key, 0, 0))
    runs = failed + succeeded
    window = f"{p['window'] / 60:g} min"
    if not runs:
        return (f"no run of {key} finished in the last {window} (it stopped running, or "
                f"is no longer sent): nothing succeeded")
    return (f"{failed} of {runs} runs failed ({failed / runs:.0%}) in the last {window}, "
            f"not over {p['threshold']:.0%}")


def runtime_p95_resolution(conn: Connection, now: float, p: dict, key: str) -> str:
    """Why a runtime alert resolved: back under the limit, or no run to measure."""
    hist = _runtime_hists(conn, now, p["window"], key).get(key, {})
    window = f"{p['window'] / 60:g} min"
    runs = sum(hist.values())
    if runs < max(1, p["min_runs"]):
        return (f"{runs} successful run{'s' if runs != 1 else ''} of {key} in the last "
                f"{window}, fewer than the {p['min_runs']} judged: not measured as fast again")
    p95 = histogram.percentiles(hist, (95,))[95]
    return f"p95 runtime {p95:.3g} s in the last {window}, within {p['threshold']:g} s"


# Kind -> why one of its alerts resolved, asked when its key is no longer found. Kinds
# without one resolve as "cleared": what they watch is gone (a worker back, a queue under).
RESOLUTIONS: dict[str, Callable[[Connection, float, dict, str], str]] = {
    "failure_rate": failure_rate_resolution, "runtime_p95": runtime_p95_resolution,
}

EVALUATORS: dict[str, Callable[[Connection, float, dict, Any], Findings]] = {
    "failure_rate": failure_rate, "runtime_p95": runtime_p95, "queue_length": queue_length,
    "worker_offline": worker_offline, "new_failure_group": new_failure_group,
    "lost_tasks": lost_tasks, "stuck_tasks": stuck_tasks, "missed_schedule": missed_schedule,
}
