"""The alert engine on a real store: fire once, resolve once, cool down, lease, rules
file; a missed beat entry (judged by the web's schedule watcher) fires once."""
from __future__ import annotations

import contextlib
import email
import email.policy
import json
import time

import pytest
from celery import Celery
from sqlalchemy import insert, select, update

from helpers.factories import add_worker
from helpers.receiver import WebhookReceiver
from lookout.collectors.alerts.engine import AlertEngine
from lookout.core.alerting import RuleError, validate_rule
from lookout.core.config import Settings
from lookout.core.store import db
from lookout.core.store.models import Alert, AlertRule, ScheduleStatus, Worker
from lookout.dashboard.schedules.watch import ScheduleWatcher


def add_rule(engine, **rule):
    checked = validate_rule(rule)
    with engine.begin() as conn:
        conn.execute(insert(AlertRule).values(**{**checked, "params": json.dumps(
            checked["params"]), "notify": json.dumps(checked["notify"])}, source="api",
            updated_at=time.time()))


def heard(engine, hostname, at):
    with engine.begin() as conn:
        conn.execute(update(Worker).where(Worker.hostname == hostname)
                     .values(last_heartbeat=at))


def listening(engine, now):
    """A collector connected for a day, its status row written at `now`: worker silence
    is judged only while one listens (rules.worker_offline)."""
    from helpers.factories import set_collector_status

    set_collector_status(engine, connected_since=now - 86400, updated_at=now)


def alerts(engine):
    with engine.connect() as conn:
        return conn.execute(select(Alert.__table__).order_by(Alert.id)).all()


@pytest.fixture
def store(database_url):
    engine = db.make_engine(database_url)
    yield engine
    engine.dispose()


def test_worker_offline_fires_once_and_resolves_once_clear_for_the_cooldown(store, caplog):
    """A condition back within the cooldown is the same alert, never preceded by an
    all-clear: the former cooldown resolved, then kept the next firing quiet (a trial)."""
    caplog.set_level("INFO", logger="lookout.collectors.alerts.engine")
    now = [1_800_000_000.0]
    fired = now[0]
    settings = Settings(alert_interval=1)
    with WebhookReceiver() as hook:
        add_rule(store, name="workers", kind="worker_offline",
                 params={"after": "2m"}, notify=[hook.url], cooldown="10m")
        add_worker(store, hostname="w1@h", last_heartbeat=now[0] - 300, online=True)
        listening(store, now[0])
        engine = AlertEngine(store, settings, clock=lambda: now[0])
        engine.tick()
        engine.tick()  # still down: no second notification
        assert hook.events() == [("firing", "w1@h")]
        assert hook.received[0]["text"] == ("[FIRING] workers: worker w1@h was last heard "
                                            "300 s before this alert fired")
        now[0] += 185
        heard(store, "w1@h", now[0])  # back: clear, but not for the cooldown yet
        listening(store, now[0])
        engine.tick()
        assert hook.events() == [("firing", "w1@h")]
        [alert] = alerts(store)
        assert (alert.status, alert.clear_since) == ("firing", now[0])
        now[0] += 400  # silent again within the cooldown: the same alert, still firing
        listening(store, now[0])
        engine.tick()
        assert hook.events() == [("firing", "w1@h")]
        [alert] = alerts(store)
        assert (alert.status, alert.clear_since) == ("firing", None)
        heard(store, "w1@h", now[0])  # back for good
        engine.tick()
        now[0] += 599
        heard(store, "w1@h", now[0])  # heartbeats go on
        listening(store, now[0])
        engine.tick()
        assert hook.events() == [("firing", "w1@h")]  # clear for 599 s: not yet
        now[0] += 1
        heard(store, "w1@h", now[0])
        listening(store, now[0])
        engine.tick()
        assert hook.events() == [("firing", "w1@h"), ("resolved", "w1@h")]
        resolved = hook.received[1]["text"]
        assert resolved.startswith("[RESOLVED] workers: cleared after 19 min 45 s (was: ")
        assert "was last heard 300 s before this alert fired" in resolved
        # The collector's log keeps the same record (it said nothing of alerts: a trial).
        logged = [r.getMessage() for r in caplog.records
                  if r.name == "lookout.collectors.alerts.engine"]
        assert logged == ["alert firing: workers [w1@h]: worker w1@h was last heard 300 s "
                          "before this alert fired",
                          f"alert resolved: workers [w1@h] after {now[0] - fired:.0f} s: "
                          "cleared"]
        now[0] += 400  # down again after the resolution: a new alert
        listening(store, now[0])
        engine.tick()
        assert hook.events()[-1] == ("firing", "w1@h")
    [first, second] = alerts(store)
    assert first.status == "resolved" and second.status == "firing"
    assert json.loads(first.deliveries)[0]["ok"] is True


def test_one_evaluator_holds_the_lease(store):
    settings = Settings(alert_interval=1)
    now = [1_800_000_000.0]
    one = AlertEngine(store, settings, clock=lambda: now[0])
    two = AlertEngine(store, settings, clock=lambda: now[0])
    assert one.acquire() and not two.acquire() and one.acquire()
    now[0] += 31  # the holder died: its lease expired
    assert two.acquire() and not one.acquire()


def test_rules_file_and_validation(store, tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text('[[rule]]\nname = "lost"\nkind = "lost_tasks"\n'
                    '[[rule]]\nname = "slow reports"\nkind = "runtime_p95"\n'
                    'params = {task = "proj.report", threshold = "2m"}\n')
    engine = AlertEngine(store, Settings(alert_rules_file=str(path)))
    engine.load_rules_file()
    with store.connect() as conn:
        rules = {r.name: r for r in conn.execute(select(AlertRule.__table__))}
    assert set(rules) == {"lost", "slow reports"} and rules["lost"].source == "file"
    assert json.loads(rules["slow reports"].params)["threshold"] == 120
    for bad, field in (({"name": "x", "kind": "nope"}, "kind"),
                       ({"name": "x", "kind": "failure_rate", "params": {"threshold": 2}},
                        "params.threshold"),
                       ({"name": "x", "kind": "lost_tasks", "notify": ["ftp://x"]}, "notify"),
                       ({"name": "", "kind": "lost_tasks"}, "name"),
                       ({"name": "x", "kind": "lost_tasks", "notfiy": ["mailto:a@b"]},
                        "notfiy")):
        with pytest.raises(RuleError) as error:
            validate_rule(bad)
        assert error.value.field == field


def test_a_missed_beat_entry_fires_once(sqlite_url, make_app):
    now = [time.time()]
    beat = Celery("beat", broker="memory://", set_as_current=False)
    beat.conf.beat_schedule = {"nightly": {"task": "proj.nightly", "schedule": 30.0}}
    web = make_app(sqlite_url, clock=lambda: now[0])
    web.config["LOOKOUT"].extra["celery_app"] = beat
    watcher = ScheduleWatcher(web.extensions["lookout.schedules"], lambda payload: None)
    store = web.extensions["lookout.engine"]
    with WebhookReceiver() as hook, web.app_context():
        add_rule(store, name="beat", kind="missed_schedule", notify=[hook.url])
        engine = AlertEngine(store, Settings(), clock=lambda: now[0])
        watcher.check()  # first seen now: not due yet
        engine.tick()
        assert hook.received == []
        now[0] += 120  # due after 30 s, grace 30 s: missed
        watcher.check()
        engine.tick()
        engine.tick()
        assert hook.events() == [("firing", "app/nightly")]
        assert "missed" in hook.received[0]["text"]


@contextlib.contextmanager
def beat_without_runs(sqlite_url, make_app, periods: dict[str, float]):
    """Beat entries of `periods` that never run, judged by a web app's schedule watcher
    on a clock the test moves; two missed_schedule rules: "beat" groups (the default),
    "each" does not. Yields (now, check): check() moves on `seconds`, judges, evaluates,
    and returns the grouped and the per-entry receivers."""
    now = [time.time()]
    beat = Celery("beat", broker="memory://", set_as_current=False)
    beat.conf.beat_schedule = {name: {"task": f"proj.{name}", "schedule": period}
                               for name, period in periods.items()}
    web = make_app(sqlite_url, clock=lambda: now[0])
    web.config["LOOKOUT"].extra["celery_app"] = beat
    watcher = ScheduleWatcher(web.extensions["lookout.schedules"], lambda payload: None)
    store = web.extensions["lookout.engine"]
    with WebhookReceiver() as grouped, WebhookReceiver() as each, web.app_context():
        add_rule(store, name="beat", kind="missed_schedule", notify=[grouped.url])
        add_rule(store, name="each", kind="missed_schedule", notify=[each.url],
                 params={"group_over": 0})
        engine = AlertEngine(store, Settings(), clock=lambda: now[0])
        watcher.check()  # first seen now: each entry is due a period from now

        def check(seconds: float):
            now[0] += seconds
            watcher.check()
            engine.tick()
            return grouped, each
        yield check


def test_entries_missed_at_once_are_one_alert_for_their_source(sqlite_url, make_app):
    """A stopped beat misses every entry: one page for the source, not one per entry (a
    Django trial got three pages for three entries); group_over 0 keeps one per entry."""
    with beat_without_runs(sqlite_url, make_app, {"a": 30.0, "b": 30.0, "c": 30.0}) as check:
        grouped, each = check(120)
        assert grouped.events() == [("firing", "app")]
        assert grouped.received[0]["text"] == (
            "[FIRING] beat: 3 app entries missed at once (is beat itself running?): a, b, c")
        assert sorted(each.events()) == [("firing", "app/a"), ("firing", "app/b"),
                                         ("firing", "app/c")]


def test_entries_overdue_when_the_first_one_misses_join_its_group(sqlite_url, make_app):
    """Each entry turns missed after its own grace, so with beat stopped the first ones
    paged alone before the group formed (a trial). Entries already past their due time
    with nothing received are evidence too: the group forms at the first miss."""
    with beat_without_runs(sqlite_url, make_app, {"a": 30.0, "b": 40.0, "c": 50.0}) as check:
        grouped, each = check(61)  # a: due at +30, missed after 30 s of grace; b, c due
        assert grouped.events() == [("firing", "app")]
        assert grouped.received[0]["text"] == (
            "[FIRING] beat: 3 app entries not run when due (1 missed, 2 overdue) (is beat "
            "itself running?): a, b, c")
        assert each.events() == [("firing", "app/a")]


def test_one_entry_missed_while_the_others_run_is_its_own_alert(store):
    """Not beat: one entry missed while the others are not due yet (they ran)."""
    from lookout.collectors.alerts.rules import missed_schedule

    now = 1_800_000_000.0
    rows = [{"source": "app", "name": name, "task": f"proj.{name}", "status": status,
             "reason": "due 40 s ago and not received", "due_at": due, "updated_at": now}
            for name, status, due in (("a", "missed", now - 40), ("b", "ok", now + 20),
                                      ("c", "ok", now - 5), ("d", "disabled", now - 500))]
    with store.begin() as conn:
        conn.execute(insert(ScheduleStatus), rows)
    with store.connect() as conn:
        found = missed_schedule(conn, now, {"entry": "*", "group_over": 2}, Settings())
    # c is 5 s past due (beat's own latency, not yet evidence), d disabled: no group.
    assert list(found) == ["app/a"]


def test_email_notifications_go_through_smtp(store):
    from helpers.receiver import SmtpReceiver

    now = [1_800_000_000.0]
    with SmtpReceiver() as smtp:
        settings = Settings(smtp_url=smtp.url, alert_email_from="lookout@example.com",
                            alert_email_to="oncall@example.com")
        add_rule(store, name="workers", kind="worker_offline", params={"after": 60})
        add_worker(store, hostname="w9@h", last_heartbeat=now[0] - 120)
        listening(store, now[0])
        AlertEngine(store, settings, clock=lambda: now[0]).tick()
        wait = time.monotonic() + 5
        while not smtp.messages and time.monotonic() < wait:
            time.sleep(0.05)
    [message] = smtp.messages
    assert message["to"] == ["<oncall@example.com>"]
    subject = email.message_from_string(message["data"], policy=email.policy.default)["Subject"]
    assert subject.strip() == ("[FIRING] workers: worker w9@h was last heard 120 s before "
                               "this alert fired")
    [alert] = alerts(store)
    assert json.loads(alert.deliveries)[0] == {**json.loads(alert.deliveries)[0], "ok": True,
                                               "channel": "mailto:oncall@example.com"}


def test_evaluators_find_what_is_wrong(store):
    from helpers.factories import add_rollup, add_task
    from lookout.collectors.alerts.rules import (
        failure_rate, new_failure_group, queue_length, runtime_p95,
    )
    from lookout.core.store.models import QueueSample

    now = 1_800_000_000.0
    settings = Settings(queue_sample_interval=10)
    minute = int(now // 60 * 60)
    add_rollup(store, "proj.slow", minute, runtimes=[90.0] * 6, succeeded=6)
    add_rollup(store, "proj.quick", minute, runtimes=[0.1] * 6, succeeded=5, failed=1)
    with store.begin() as conn:
        conn.execute(insert(QueueSample), [
            {"queue": q, "timestamp": now - age, "messages": m, "consumers": 0}
            for q, m in (("busy", 5000), ("calm", 3)) for age in range(0, 400, 10)])
        found_p95 = runtime_p95(conn, now, {"task": "*", "window": 600, "threshold": 60,
                                            "min_runs": 5}, settings)
        found_rate = failure_rate(conn, now, {"task": "*", "window": 600, "threshold": 0.1,
                                              "min_runs": 5}, settings)
        found_queue = queue_length(conn, now, {"queue": "*", "threshold": 1000,
                                               "duration": 300}, settings)
    assert set(found_p95) == {"proj.slow"} and found_p95["proj.slow"][0] > 60
    assert set(found_rate) == {"proj.quick"} and "1 of 6 runs failed" in found_rate[
        "proj.quick"][1]
    assert set(found_queue) == {"busy"}
    # Shown long after firing: no "in the last" that would silently slide with the clock.
    assert found_rate["proj.quick"][1].endswith("in the 10 min before this alert fired")
    assert "over the 10 min before this alert fired (limit 60 s)" in found_p95["proj.slow"][1]
    assert found_queue["busy"][1] == ("queue busy: over 1000 messages for the 5 min before "
                                      "this alert fired (at least 5000)")
    add_task(store, state="FAILURE", exception="KeyError('order 1')", timestamp=now - 86400)
    add_task(store, state="FAILURE", exception="KeyError('order 2')", timestamp=now - 30)
    add_task(store, state="FAILURE", exception="TimeoutError('db 7')", timestamp=now - 20)
    with store.connect() as conn:
        new = new_failure_group(conn, now, {"window": 600, "lookback": 7 * 86400}, settings)
    assert [message for _, message in new.values()] == [
        "new failure: TimeoutError: db <n> (1x in proj.tasks.add)"]


def test_new_failure_groups_are_read_incrementally_with_the_same_findings(store):
    """The engine's index reads each failure once (by updated_at), not the whole week of
    failures with their tracebacks every 15 s, and finds what a full read finds."""
    from helpers.factories import add_task
    from lookout.collectors.alerts.failure_index import FailureIndex
    from lookout.collectors.alerts.rules import MAX_FAILURES, new_failure_group

    now = 1_800_000_000.0
    params = {"window": 600, "lookback": 7 * 86400}
    settings = Settings()
    for i in range(30):  # an old, known failure, once every 200 s the day before
        add_task(store, state="FAILURE", exception=f"KeyError('order {i}')",
                 timestamp=now - 86400 - 200 * i)
    index = FailureIndex(MAX_FAILURES)
    with store.connect() as conn:
        assert new_failure_group(conn, now, params, settings, index) == {}
    assert index.last_read == 30

    add_task(store, state="FAILURE", exception="TimeoutError('db 7')", timestamp=now + 10)
    add_task(store, state="FAILURE", exception="KeyError('order 99')", timestamp=now + 12)
    with store.connect() as conn:
        found = new_failure_group(conn, now + 15, params, settings, index)
        full = new_failure_group(conn, now + 15, params, settings)  # a fresh full read
    # Only what changed since: the two new ones, and the newest old one again (within
    # the slack that catches rows committed out of order).
    assert index.last_read == 3
    assert found == full
    assert [message for _, message in found.values()] == [
        "new failure: TimeoutError: db <n> (1x in proj.tasks.add)"]
    # A week on, the old failures leave the horizon and are forgotten.
    with store.connect() as conn:
        new_failure_group(conn, now + 8 * 86400, params, settings, index)
    assert index.since(0) == []


def test_worker_offline_messages_stay_true_after_firing(store):
    from lookout.collectors.alerts.rules import worker_offline

    now = 1_800_000_000.0
    add_worker(store, hostname="gone@h", last_heartbeat=now - 44, online=False)
    add_worker(store, hostname="quiet@h", last_heartbeat=now - 130, online=True)
    listening(store, now)
    with store.connect() as conn:
        found = worker_offline(conn, now, {"worker": "*", "after": 30,
                                           "forget_after": 86400}, Settings())
    assert {host: message for host, (_, message) in found.items()} == {
        "gone@h": "worker gone@h went offline; it was last heard 44 s before this alert fired",
        "quiet@h": "worker quiet@h was last heard 130 s before this alert fired"}


def test_silence_heard_by_no_collector_neither_fires_nor_resolves(store):
    """A collector restarted on RabbitMQ judged every worker before writing what the
    queue kept for it: "worker offline" for a live worker, and a real queue backlog
    "resolved" (no samples during the gap), then kept quiet by the cool-down."""
    from helpers.factories import set_collector_status
    from lookout.collectors.alerts.rules import queue_length, worker_offline
    from lookout.core.store.models import QueueSample

    now = 1_800_000_000.0
    add_worker(store, hostname="gone@h", last_heartbeat=now - 44, online=False)
    add_worker(store, hostname="quiet@h", last_heartbeat=now - 85, online=True)
    set_collector_status(store, connected_since=now - 0.1, updated_at=now)  # just back
    with store.begin() as conn:  # a backlog sampled until the collector stopped
        conn.execute(insert(QueueSample), [
            {"queue": "slow", "timestamp": now - age, "messages": 45, "consumers": 0}
            for age in range(90, 400, 10)])
    with store.connect() as conn:
        offline = worker_offline(conn, now, {"worker": "*", "after": 30,
                                             "forget_after": 86400}, Settings())
        backlog = queue_length(conn, now, {"queue": "*", "threshold": 20, "duration": 60},
                               Settings(queue_sample_interval=10))
    assert offline["quiet@h"] == (None, "")  # undecided: not heard, by nobody listening
    with store.connect() as conn:  # rollouts that retire workers by name need not page
        silent_only = worker_offline(conn, now, {"worker": "*", "after": 30, "shutdowns": 0,
                                                 "forget_after": 86400}, Settings())
    assert set(silent_only) == {"quiet@h"}
    assert offline["gone@h"][0] == 44  # it said goodbye: that needs no listener
    assert backlog == {"slow": (None, "")}


def test_a_lost_task_revoked_from_lookout_no_longer_counts_for_the_alert(store):
    """No event ever closes a lost task, so the alert fired till retention (a week); the
    Trouble page's Revoke is how an operator says it was handled."""
    from helpers.factories import add_task, set_collector_status
    from lookout.collectors.alerts.rules import lost_tasks
    from lookout.core.store.models import RevokeRequest, TaskLink

    now = time.time()
    set_collector_status(store, updated_at=now, connected_since=now - 600)
    add_worker(store, hostname="killed@h", last_heartbeat=now - 300, online=True)
    for uuid in ("lost-1", "lost-2"):
        add_task(store, uuid=uuid, state="STARTED", worker="killed@h", started_at=now - 400)
    params = {"min_count": 1}
    with store.connect() as conn:
        count, message = lost_tasks(conn, now, params, Settings())["*"]
    assert count == 2 and "2 lost task(s) when this alert fired" in message
    with store.begin() as conn:
        conn.execute(insert(RevokeRequest).values(task_uuid="lost-1", requested_at=now))
    with store.connect() as conn:
        count, message = lost_tasks(conn, now, params, Settings())["*"]
    assert count == 1 and "lost-2" in message
    with store.begin() as conn:  # retried from Lookout: handled too
        conn.execute(insert(TaskLink).values(task_uuid="lost-2-again", retry_of="lost-2",
                                             created_at=now))
    with store.connect() as conn:
        assert lost_tasks(conn, now, params, Settings()) == {}


def test_a_lost_task_alert_counts_back_from_its_firing(store):
    """The message is kept after the alert fired: "went offline 300 s ago" would be wrong a
    minute later (seen in a trial), so the lost reason counts back from the firing."""
    from helpers.factories import add_task
    from lookout.collectors.alerts.rules import lost_tasks

    now = time.time()
    add_worker(store, hostname="down@h", last_heartbeat=now - 300, online=False)
    add_task(store, uuid="lost-1", state="STARTED", worker="down@h", started_at=now - 400)
    with store.connect() as conn:
        _, message = lost_tasks(conn, now, {"min_count": 1}, Settings())["*"]
    assert message.endswith("its worker down@h went offline 300 s before this alert fired")
    assert " ago" not in message


def test_a_failure_rate_alert_stays_open_while_too_few_runs_still_fail(store):
    """A trial disabled a failing task's schedule: with fewer than min_runs runs left in
    the window its alert said "cleared" while every run still failed. Now it stays open
    until no failing run is left; too few runs never fire a new one."""
    from helpers.factories import add_rollup
    from lookout.core.store.models import TaskRollup

    now = [1_800_000_000.0]
    minute = int(now[0] // 60 * 60)
    with WebhookReceiver() as hook:
        add_rule(store, name="fails", kind="failure_rate", notify=[hook.url], cooldown=0,
                 params={"task": "*", "window": 600, "threshold": 0.5, "min_runs": 3})
        engine = AlertEngine(store, Settings(alert_interval=1), clock=lambda: now[0])
        add_rollup(store, "proj.few", minute, failed=2)  # too few to judge: quiet
        add_rollup(store, "proj.fails", minute, failed=4)
        engine.tick()
        assert hook.events() == [("firing", "proj.fails")]

        def only(failed: int, succeeded: int = 0) -> None:
            with store.begin() as conn:
                conn.execute(TaskRollup.__table__.delete())
            if failed or succeeded:
                add_rollup(store, "proj.fails", minute, failed=failed, succeeded=succeeded)
        only(failed=2)
        engine.tick()
        assert hook.events() == [("firing", "proj.fails")]  # still failing, still open
        only(failed=0)  # no run left in the window
        engine.tick()  # clear from now on; with cooldown 0, resolved at the next round
        engine.tick()
        assert hook.events() == [("firing", "proj.fails"), ("resolved", "proj.fails")]
        # Resolved, but not "cleared": nothing succeeded, the task just stopped running.
        text = hook.received[-1]["text"]
        assert text.startswith("[RESOLVED] fails: resolved after 0 s: no run of proj.fails "
                               "finished in the last 10 min (it stopped running, or is no "
                               "longer sent): nothing succeeded (was: "), text
        with store.connect() as conn:
            stored = conn.execute(select(Alert.resolution)).scalar()
        assert stored.startswith("no run of proj.fails finished")

        now[0] += 3600  # past the cooldown: failing again, then back under the threshold
        minute = int(now[0] // 60 * 60)
        only(failed=5)
        engine.tick()
        only(failed=1, succeeded=9)
        engine.tick()
        engine.tick()
        assert hook.events()[-2:] == [("firing", "proj.fails"), ("resolved", "proj.fails")]
        assert "resolved after 0 s: 1 of 10 runs failed (10%) in the last 10 min, not over " \
               "50% (was: " in hook.received[-1]["text"]


def test_lost_tasks_never_started_are_not_counted_the_broker_gives_them_back(store):
    from helpers.factories import add_task, set_collector_status
    from lookout.collectors.alerts.rules import lost_tasks

    now = time.time()
    set_collector_status(store, connected_since=now - 600, updated_at=now)
    add_worker(store, hostname="dead@h", last_heartbeat=now - 300, online=True)
    add_task(store, uuid="prefetched", state="RECEIVED", worker="dead@h",
             timestamp=now - 310, received_at=now - 310)
    add_task(store, uuid="running", state="STARTED", worker="dead@h",
             timestamp=now - 310, received_at=now - 310, started_at=now - 309)
    with store.connect() as conn:
        found = lost_tasks(conn, now, {"min_count": 1}, Settings(lost_after=60))
    assert found["*"][0] == 1.0 and "e.g. running" in found["*"][1]
