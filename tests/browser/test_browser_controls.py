"""Controls in a real chromium: a protected `lookout run`, users made with the CLI.

An operator logs in, terminates a running task from its detail page after confirming,
sees the worker's reply and the task turn REVOKED live, and finds the action on the Audit
page. A viewer sees no control anywhere. The page must log no CSP violation.
"""
from __future__ import annotations

import json
import re
import subprocess
import urllib.error
import urllib.request
from typing import Iterator

import pytest

from helpers.browser import Lookout, running_lookout
from helpers.support import ROOT, VENV_BIN, wait_for
from helpers.workers import unique

pytestmark = [pytest.mark.browser, pytest.mark.slow]
PASSWORD = "correct horse battery"


def _expect():
    from playwright.sync_api import expect

    return expect


@pytest.fixture(scope="module")
def lookout(redis_broker, tmp_path_factory) -> Iterator[Lookout]:
    """browser.running_lookout with login required, and two users added by the CLI."""
    tmp = tmp_path_factory.mktemp("lookout-auth")
    for name, role in (("ada", "admin"), ("otto", "operator"), ("vic", "viewer")):
        subprocess.run([str(VENV_BIN / "lookout"), "users", "add", name, "--role", role,
                        "--password-stdin", "--database", f"sqlite:///{tmp / 'lookout.db'}"],
                       input=PASSWORD + "\n", text=True, check=True, capture_output=True,
                       cwd=ROOT, timeout=60)
    with running_lookout(redis_broker, tmp, args=()) as running:
        yield running


def log_in(page, username: str) -> list[str]:
    """Log in through the form; returns the list CSP violations get appended to."""
    violations: list[str] = []
    page.on("console", lambda msg: violations.append(msg.text)
            if "Content Security Policy" in msg.text else None)
    page.goto("/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_url("**/")
    return violations


def wait_started(page, task_id: str, state: str = "STARTED") -> None:
    """Through the logged-in page (the API needs its session)."""
    def reached():
        task = page.evaluate(
            "id => fetch('/api/v1/tasks/' + id).then(r => r.ok ? r.json() : {})", task_id)
        return task.get("state") == state
    wait_for(reached, 90, interval=0.3, message=f"{task_id} {state}")


def test_operator_terminates_a_running_task_and_sees_it_revoked(page, lookout, artifacts_dir):
    expect = _expect()
    violations = log_in(page, "otto")
    task_id = lookout.send("sample.sleep", 120)
    wait_started(page, task_id)
    page.goto(f"/tasks/{task_id}")
    expect(page.locator("#task-state")).to_have_text("STARTED")
    expect(page.locator("body")).to_have_attribute("data-live", "subscribed")
    # Revoke alone would not stop it: the button and its confirmation say so.
    expect(page.locator("#revoke-button")).to_have_attribute(
        "title", "Running: Revoke will not stop it; Terminate does.")
    page.click("#revoke-button")
    expect(page.locator("#confirm-dialog")).to_contain_text(
        "It is running now: revoke does not stop it")
    page.keyboard.press("Escape")
    expect(page.locator("#confirm-dialog")).to_be_hidden()

    page.select_option("#terminate-signal", "SIGTERM")
    page.click("#terminate-button")
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(task_id)
    page.screenshot(path=str(artifacts_dir / "confirm.png"))
    page.click("#confirm-ok")

    result = page.locator("#terminate-form .control-result")
    expect(result).to_have_attribute("data-status", "200")
    expect(result.locator(".control-done")).to_have_text("Sent (revoke, terminate with SIGTERM).")
    expect(result.locator(f'tr[data-worker="{lookout.worker.hostname}"]')).to_contain_text("ok")
    # No reload: the state arrives through the live socket from the collector's record.
    expect(page.locator("#task-state")).to_have_text("REVOKED", timeout=90_000)
    # A finished task cannot be revoked again: the buttons say so instead of a 409.
    expect(page.locator("#revoke-button")).to_be_disabled()
    expect(page.locator("#terminate-button")).to_be_disabled()
    page.screenshot(path=str(artifacts_dir / "revoked.png"), full_page=True)

    page.goto("/audit")
    row = page.locator('#audit-body tr[data-action="task.revoke"]').first
    expect(row).to_contain_text(task_id)
    expect(row).to_contain_text("otto")
    expect(row).to_contain_text("SIGTERM")
    # The revoke abandoned with Escape was never sent (the next dialog's OK used to send it).
    expect(page.locator('#audit-body tr[data-action="task.revoke"]', has_text=task_id)
           ).to_have_count(1)
    assert not page.watch.errors and not page.watch.dialogs
    assert not violations, violations


def test_bulk_revoke_dry_run_confirm_and_progress(page, lookout):
    expect = _expect()
    violations = log_in(page, "otto")
    held = unique("held")  # no worker consumes it: the tasks wait there, unfinished
    ids = [lookout.client.send_task("sample.add", args=(i, i), queue=held,
                                    task_id=unique("bulk")).id for i in range(3)]
    wait_for(lambda: page.evaluate(
        "q => fetch('/api/v1/tasks?queue=' + q).then(r => r.json()).then(d => d.total)",
        held) == 3, 60, message="three held tasks recorded")

    page.goto("/controls")
    page.fill("#bulk-name", "sample.add")
    page.fill("#bulk-form input[name=queue]", held)
    page.click("#bulk-submit")
    expect(page.locator("#bulk-form .dry-run")).to_have_attribute("data-count", "3")
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_contain_text("Revoke 3 task(s)?")
    for task_id in ids:
        expect(dialog).to_contain_text(task_id)
    page.click("#confirm-ok")
    result = page.locator("#bulk-form .control-result")
    expect(result).to_have_attribute("data-status", "ok")
    expect(result.locator(".bulk-label")).to_have_text("revoke sent for 3 / 3 (ok)")
    expect(result.locator('[data-testid="bulk-note"]')).to_contain_text("when its worker confirms")
    assert not page.watch.errors
    assert not violations, violations


def test_operator_retries_failed_tasks_one_and_in_bulk(page, lookout, artifacts_dir):
    expect = _expect()
    violations = log_in(page, "otto")
    failed = lookout.send("sample.fail", "<b>retry</b> me")
    wait_started(page, failed, "FAILURE")
    page.goto(f"/tasks/{failed}")
    page.click("#retry-button")
    expect(page.locator("#confirm-dialog")).to_contain_text("Retry task")
    page.click("#confirm-ok")
    link = page.locator('#retry-form [data-testid="new-task-link"]')
    expect(link).to_be_visible()
    new_id = link.inner_text().strip()
    wait_started(page, new_id, "FAILURE")
    expect(page.locator("#family")).to_contain_text(new_id)  # "retried as", live
    page.goto(f"/tasks/{new_id}")
    expect(page.locator("#family")).to_contain_text(failed)  # "retry of"
    expect(page.locator("#fields")).to_contain_text("<b>retry</b> me")
    page.screenshot(path=str(artifacts_dir / "retried.png"), full_page=True)

    # A task no worker has (not deployed yet) fails at once with NotRegistered: Retry
    # stays (a deploy fixes it) but says a retry fails the same way until then.
    unknown = lookout.send("sample.not_deployed_yet")
    wait_started(page, unknown, "FAILURE")
    page.goto(f"/tasks/{unknown}")
    expect(page.locator("#exception")).to_contain_text("NotRegistered")
    expect(page.locator("#retry-button")).to_be_enabled()
    expect(page.locator("#retry-button")).to_have_attribute("title", re.compile(
        r"No worker had sample.not_deployed_yet registered when it ran"))
    page.click("#retry-button")
    expect(page.locator("#confirm-dialog")).to_contain_text("a retry fails the same way")
    page.click("#confirm-dialog .confirm-cancel")
    page.goto(f"/tasks/{new_id}")  # an ordinary failure: no such warning
    expect(page.locator("#retry-button")).to_have_attribute("title", "")
    # Sent again already: not twice (two on-call people pressing Retry ran one twice).
    page.goto(f"/tasks/{failed}")
    expect(page.locator("#retry-button")).to_be_disabled()
    expect(page.locator("#retry-button")).to_have_attribute(
        "title", f"Already sent again from Lookout as {new_id}: retry that one.")

    others = [lookout.send("sample.fail", f"bulk {i}") for i in range(2)]
    for task_id in others:
        wait_started(page, task_id, "FAILURE")
    page.goto("/controls")
    page.fill("#bulk-retry-name", "sample.fail")
    page.click("#bulk-retry-submit")
    dry = page.locator("#bulk-retry-form .dry-run")
    # The two, and the retry that failed again; not the first failure: sent again already
    expect(dry).to_have_attribute("data-retriable", re.compile(r"^[3-9]$"))
    expect(page.locator("#bulk-retry-form .sample")).to_contain_text(
        f"{failed} sample.fail: already sent again from Lookout (as {new_id})")
    expect(page.locator("#confirm-dialog")).to_contain_text("Retry")
    page.click("#confirm-ok")
    result = page.locator("#bulk-retry-form .control-result")
    expect(result).to_have_attribute("data-status", "200")
    for task_id in others:
        expect(result).to_contain_text(task_id)
    # retries record an object ({task_id}) as their reply: the Audit page shows it too
    page.goto("/audit")
    retry_row = page.locator('tr[data-action="task.retry"]').first
    expect(retry_row).to_contain_text(new_id)
    # The bulk retry's replies: each original and its new task (was "undefined: undefined")
    bulk_row = page.locator('tr[data-action="tasks.retry"]').first
    expect(bulk_row).to_contain_text(re.compile(re.escape(others[0]) + " → "))
    expect(bulk_row).not_to_contain_text("undefined")
    assert not page.watch.errors
    assert not violations, violations


def test_operator_grows_and_shrinks_a_worker_pool(page, lookout, artifacts_dir):
    expect = _expect()
    violations = log_in(page, "otto")
    hostname = lookout.worker.hostname
    page.goto(f"/workers/{hostname}")
    concurrency = page.locator('[data-testid="concurrency"]')
    expect(concurrency).to_have_text("2")
    for form, after in (("#pool-grow-form", "3"), ("#pool-shrink-form", "2")):
        page.click(f"{form} button[type=submit]")
        expect(page.locator("#confirm-dialog")).to_contain_text(hostname)
        page.click("#confirm-ok")
        result = page.locator(f"{form} .control-result")
        expect(result).to_have_attribute("data-status", "200")
        expect(result.locator(f'tr[data-worker="{hostname}"]')).to_contain_text("ok")
        expect(concurrency).to_have_text(after, timeout=15_000)  # re-asked after the control
    page.screenshot(path=str(artifacts_dir / "worker.png"), full_page=True)
    assert not page.watch.errors
    assert not violations, violations


def test_limit_dialogs_name_the_workers_they_go_to(page, lookout):
    """The confirm dialog said "on every worker" while the body named one (a new user's
    find); it now says what is sent, and that an empty rate removes the limit."""
    expect = _expect()
    log_in(page, "otto")
    hostname = lookout.worker.hostname
    dialog = page.locator("#confirm-dialog")
    for path, workers, said in (("/controls", "nosuch@host", "on nosuch@host?"),
                                ("/controls", "", "on every worker?"),
                                (f"/workers/{hostname}#limits", None, f"on {hostname}?")):
        page.goto(path)
        form = page.locator("#rate-limit-form")
        form.locator("input[name=task_name]").fill("sample.echo")
        if workers is not None:
            form.locator("input[name=destination]").fill(workers)
        form.locator("button[type=submit]").click()
        expect(dialog).to_contain_text("Set this rate limit " + said)
        expect(dialog).to_contain_text("the task's rate limit is removed")
        page.click("#confirm-cancel")
        form.locator("input[name=rate_limit]").fill("12/m")
        form.locator("button[type=submit]").click()
        expect(dialog).to_contain_text("other tasks of the same queues wait behind them")
        page.click("#confirm-cancel")
        form.locator("input[name=rate_limit]").fill("")
        expect(dialog).to_be_hidden()
        expect(form.locator(".control-result")).to_be_empty()  # nothing was sent
    assert not page.watch.errors


def test_admin_adds_a_user_and_a_token(page, lookout):
    expect = _expect()
    violations = log_in(page, "ada")
    page.click("#admin-link")
    page.fill("#user-form input[name=username]", "nina")
    page.fill("#user-form input[name=password]", "long enough secret")
    page.select_option("#user-form select[name=role]", "operator")
    page.click("#user-form button[type=submit]")
    expect(page.locator('#users-body tr[data-username="nina"]')).to_contain_text("operator")
    page.fill("#token-form input[name=name]", "nightly")
    page.click("#token-form button[type=submit]")
    expect(page.locator("#new-token")).to_have_text(re.compile(r"^lk_"))
    secret = page.locator("#new-token").inner_text()
    status, me = get_json_with_token(lookout.url + "/api/v1/me", secret)
    assert status == 200 and me["name"] == "token:nightly" and me["role"] == "viewer"
    page.click('#tokens-body tr[data-token="nightly"] button.revoke-token')
    page.click("#confirm-ok")
    expect(page.locator('#tokens-body tr[data-token="nightly"] button')).to_have_count(0)
    assert get_json_with_token(lookout.url + "/api/v1/me", secret)[0] == 401
    assert not page.watch.errors
    assert not violations, violations


def get_json_with_token(url: str, token: str):
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, None


def test_viewer_sees_no_controls(page, lookout):
    expect = _expect()
    violations = log_in(page, "vic")
    task_id = lookout.send("sample.add", 1, 2)
    lookout_wait = wait_for(lambda: page.evaluate(
        "id => fetch('/api/v1/tasks/' + id).then(r => r.status)", task_id) == 200, 60,
        message="task recorded")
    assert lookout_wait
    page.goto(f"/tasks/{task_id}")
    expect(page.locator("#task-state")).not_to_have_text("")
    expect(page.locator("#task-controls")).to_have_count(0)
    expect(page.locator("#audit-link")).to_have_count(0)
    page.goto(f"/workers/{lookout.worker.hostname}")
    expect(page.locator("#hostname")).to_have_text(lookout.worker.hostname)
    expect(page.locator("#worker-controls")).to_have_count(0)
    expect(page.locator("button", has_text="Shut down")).to_have_count(0)
    assert not page.watch.errors
    assert not violations, violations
