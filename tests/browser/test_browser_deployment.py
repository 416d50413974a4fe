"""What a deployment mistake or attack looks like from a browser.

A Lookout connected to a broker where no worker speaks says so in its indicator; a page
on another domain that DNS-rebinds to 127.0.0.1 (chromium's host resolver rules play the
attacker's DNS) gets nothing but 400s, not even the Socket.IO stream.
"""
from __future__ import annotations

from typing import Iterator

import pytest

from helpers.browser import CHROMIUM, CHROMIUM_ARGS, free_port, get_json
from helpers.support import VENV_BIN, Process, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def lonely_lookout(private_redis, tmp_path) -> Iterator[str]:
    """`lookout run --no-auth` on a broker no worker uses, warning after 2 s of silence."""
    port = free_port()
    process = Process([str(VENV_BIN / "lookout"), "run", "--no-auth", "--port", str(port),
                       "--broker", f"{private_redis}/5",
                       "--database", f"sqlite:///{tmp_path / 'lookout.db'}"],
                      tmp_path / "lookout.log",
                      env={"LOOKOUT_QUIET_WARNING_AFTER": "2s", "LOOKOUT_ALLOWED_HOSTS": ""})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: get_json(url + "/healthz", timeout=2)[0] == 200, 60, interval=0.2,
                 message="lookout up")
        yield url
    finally:
        process.stop()


def test_indicator_warns_when_no_worker_is_heard(browser, lonely_lookout, artifacts_dir):
    from playwright.sync_api import expect

    body = wait_for(lambda: (get_json(lonely_lookout + "/healthz")[1]
                             if get_json(lonely_lookout + "/healthz")[1]["warnings"] else None),
                    20, message="healthz warning")
    assert body["status"] == "warning" and "wrong broker" in body["warnings"][0]
    page = browser.new_page()
    try:
        page.goto(lonely_lookout + "/")
        indicator = page.locator("#connection")
        expect(indicator).to_have_attribute("data-state", "quiet", timeout=20_000)
        expect(indicator).to_have_text("live · no worker heard")
        assert "workers without events?" in indicator.get_attribute("title")
        (artifacts_dir / "quiet.png").write_bytes(page.screenshot())
    finally:
        page.close()


def test_dns_rebinding_gets_only_400s(browser, lonely_lookout, artifacts_dir):
    """evil.example resolves to 127.0.0.1: same origin as itself, but not an allowed Host."""
    port = lonely_lookout.rsplit(":", 1)[1]
    evil = f"http://evil.example:{port}"
    # A second chromium of the module's Playwright, whose DNS is the attacker's.
    rebound = browser.browser_type.launch(
        executable_path=CHROMIUM, headless=True,
        args=[*CHROMIUM_ARGS, "--host-resolver-rules=MAP evil.example 127.0.0.1"])
    try:
        page = rebound.new_page()
        response = page.goto(evil + "/")
        assert response.status == 400
        assert "is not allowed here" in page.content()
        # What the attacker's script would try next, from its own origin.
        results = page.evaluate("""async () => {
            const out = {};
            for (const [name, path, init] of [
                    ["tasks", "/api/v1/tasks", {}],
                    ["token", "/api/v1/tokens", {method: "POST",
                     headers: {"Content-Type": "application/json"},
                     body: JSON.stringify({name: "pwned", role: "admin"})}],
                    ["socket", "/socket.io/?EIO=4&transport=polling", {}]]) {
                const r = await fetch(path, init);
                out[name] = r.status;
            }
            return out;
        }""")
        (artifacts_dir / "rebinding.png").write_bytes(page.screenshot())
    finally:
        rebound.close()
    assert results["tasks"] == 400 and results["token"] == 400, results
    assert results["socket"] == 400, results
    # The same Lookout still answers its own name.
    assert get_json(lonely_lookout + "/api/v1/tasks")[0] == 200
