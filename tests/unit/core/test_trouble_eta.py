"""Stuck: open far longer than its name usually runs, unless it waits for its ETA."""
from lookout.core.trouble import StuckRule

NOW = 1_700_000_000.0


def test_a_task_waiting_for_its_eta_is_not_stuck():
    rule = StuckRule(factor=10, minimum=60, default=3600)
    waiting = {"state": "RECEIVED", "received_at": NOW - 7200, "eta": NOW + 60}
    assert rule.reason(waiting, None, NOW) is None
    overdue = {**waiting, "eta": NOW - 3700}  # its ETA has passed: judged as any open task
    assert rule.reason(overdue, None, NOW).startswith("received and not started for 7200 s")
    # what it may be waiting for, said (an on-call trial read "stuck" as hung)
    assert rule.reason({**overdue, "worker": "w2@h"}, None, NOW).endswith(
        ": waiting in w2@h behind its running tasks (prefetched) or a rate limit")
    assert rule.reason({**overdue, "state": "STARTED", "started_at": NOW - 7200}, None,
                       NOW).startswith("running for 7200 s, over 3600 s")
    assert rule.reason({**waiting, "eta": None}, 1.0, NOW) is not None


def test_the_page_and_the_alert_rule_read_the_same_usual_runtime(make_app, sqlite_url):
    """The Trouble page takes p95 from the Overview's cached stats, the collector's rule
    from core.trouble.usual_runtimes: same minutes, same merge, same figures."""
    from helpers.factories import add_rollup
    from lookout.core.trouble import usual_runtimes

    now = [NOW]
    app = make_app(sqlite_url, clock=lambda: now[0])
    engine = app.extensions["lookout.engine"]
    minute = int(NOW // 60) * 60
    add_rollup(engine, "proj.slow", minute - 86400 - 60, runtimes=[500.0] * 50)  # too old
    add_rollup(engine, "proj.slow", minute - 86400, runtimes=[0.2] * 10)
    add_rollup(engine, "proj.slow", minute - 600, runtimes=[1.0, 2.0, 40.0])
    add_rollup(engine, "proj.fast", minute, runtimes=[0.01] * 30)
    with engine.connect() as conn:
        rule = usual_runtimes(conn, int((NOW - 86400) // 60 * 60))
    page = app.extensions["lookout.trouble"].usual_runtimes()
    assert page == rule and set(rule) == {"proj.slow", "proj.fast"}
    assert 20 < rule["proj.slow"] < 100  # the 500 s minute is outside the day
