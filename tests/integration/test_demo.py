"""`make demo` (demo/run.py): a living dashboard within a minute, and nothing left behind."""
from __future__ import annotations

import signal
import sys

import psutil
import pytest

from helpers.browser import free_port, get_json
from helpers.support import ROOT, Process, wait_for

pytestmark = pytest.mark.slow


def test_demo_comes_alive_and_stops_everything_on_ctrl_c(redis_broker, tmp_path):
    port = free_port()
    demo = Process([sys.executable, str(ROOT / "demo" / "run.py"), "--broker", redis_broker,
                    "--data", str(tmp_path / "data"), "--port", str(port)],
                   tmp_path / "demo.log")
    url = f"http://127.0.0.1:{port}"
    children: list[psutil.Process] = []
    try:
        def online():
            status, body = get_json(url + "/api/v1/workers")
            hosts = {w["hostname"].split("@")[0] for w in body["items"]
                     if w["status"] == "online"} if status == 200 else set()
            return {"demo-a", "demo-b"} <= hosts
        wait_for(online, 60, interval=0.5, message="both demo workers online")
        wait_for(lambda: get_json(url + "/api/v1/stats?window=5m")[1]["totals"]["counts"]
                 ["succeeded"] > 0, 60, interval=0.5, message="demo tasks succeeding")
        health = get_json(url + "/healthz")
        assert health[0] == 200, (health[1]["problems"], health[1]["collectors"])
        children = psutil.Process(demo.pid).children(recursive=True)
        assert len(children) >= 4  # two workers (and their pools), beat, lookout
    finally:
        demo.signal(signal.SIGINT)  # what Ctrl-C does: the demo's own group only
        code = demo.popen.wait(60)
        leftovers = [p for p in children if p.is_running()
                     and p.status() != psutil.STATUS_ZOMBIE]
        demo.stop()
    assert code == 0, demo.output()[-3000:]
    assert not leftovers, [p.cmdline() for p in leftovers]
