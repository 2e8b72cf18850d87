"""Report runs in a real browser, on a real ``celery`` worker: the demo user starts an account run over the demo
window from the console, watches the page follow it (run-progress.js) to the end, downloads the evidence bundle
through its link and the offline verifier accepts it with the service's published keys."""

import hashlib
import io
import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.conf import settings

from audit.demo import DEMO_EMAIL, DEMO_PASSWORD, OTHER_EMAIL, OTHER_PASSWORD, seed_demo
from audit.models import Session
from tests.browser.test_console_audit import NARROW, WIDE
from tests.browser.test_console_browser import RecordedContext, _sign_in
from tests.reports.runs_support import started, worker_command
from verifier import cli

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"
FIRST, LAST = "2026-11-01", "2026-11-30"  # the demo window, both days included
# Installed through the DevTools protocol (page.evaluate), which the page's Content-Security-Policy does not govern:
# every change run-progress.js makes to the status is logged to the console, which the test records across the
# page's own reload, so what the page showed before it reloaded is known.
FOLLOW = """() => {
  const status = document.getElementById('run-status');
  const text = document.getElementById('run-progress-text');
  const bar = document.getElementById('run-progress');
  const log = () => console.log(`followed: ${status.textContent} | ${text.textContent} | ${bar.value}/${bar.max}`);
  new MutationObserver(log).observe(status, {childList: true, characterData: true, subtree: true});
}"""


def test_a_console_run_is_followed_to_the_end_and_its_bundle_verifies(live_server, chromium, tmp_path):
    demo = seed_demo()
    window = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    sessions = Session.objects.visible_to(demo.account).filter(started_at__gte=window[0], started_at__lt=window[1])
    total, events = sessions.count(), sum(s.tree_size for s in sessions)
    assert total >= 3
    base = live_server.url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    recorded = RecordedContext(chromium.launch(), base, WIDE)
    page = recorded.page
    _sign_in(page, base, DEMO_EMAIL, DEMO_PASSWORD)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Report runs").click()
    page.wait_for_url(f"{base}/reports/runs/")
    page.get_by_label("The whole account").check()
    page.get_by_label("From (UTC)").fill(FIRST)
    page.get_by_label("To (UTC, included)").fill(LAST)
    for name in ("JSON report", "PDF report", "Evidence bundle (agent and account runs)"):
        page.get_by_label(name).check()
    page.get_by_role("button", name="Start run").click()
    page.wait_for_url(re.compile(re.escape(base) + r"/reports/runs/run_[0-9A-Z]{26}/$"))
    run_id = page.url.rstrip("/").rsplit("/", 1)[1]
    # No worker yet: the run waits in the queue, and the page says so.
    assert page.locator("#run-status").inner_text() == "Queued"
    assert page.get_by_role("progressbar", name="Progress").is_visible()
    assert page.locator("#run-progress-text").inner_text() == "0 of 0 sessions, 0 events"
    assert page.get_by_role("link", name="Refresh").is_visible()
    page.evaluate(FOLLOW)

    log = tmp_path / "worker.log"
    with started(worker_command(f"ui-{uuid.uuid4().hex[:8]}@%h"), log) as worker:
        worker.wait_for("ready.")
        files = page.get_by_role("heading", name="Files")  # shown once the page reloaded itself after the run
        try:
            files.wait_for(timeout=120_000)
        except Exception as exc:
            raise AssertionError(f"{recorded.console}\n{log.read_text()[-3000:]}") from exc
    followed = [message.removeprefix("log: followed: ") for message in recorded.console if "followed: " in message]
    assert followed[0].split(" | ")[0] in ("Queued", "Running"), followed  # updated in place from the start
    assert followed[-1] == f"Succeeded | {total} of {total} sessions, {events} events | {total}/{total}", followed
    assert page.locator("#run-status").inner_text() == "Succeeded"
    assert page.locator("#run-finished").inner_text() != "not yet"
    hint = page.locator("#verify-hint").inner_text()
    assert f"python3 masker-verify.pyz bundle evidence-{run_id}.zip --keys keys.json" in hint
    page.screenshot(path=SCREENSHOTS / "runs-run-1366.png", full_page=True)

    bundle_name = f"evidence-{run_id}.zip"
    with page.expect_download() as info:
        page.get_by_role("link", name=bundle_name).click()
    assert info.value.failure() is None and info.value.suggested_filename == bundle_name
    bundle = tmp_path / bundle_name
    info.value.save_as(bundle)
    shown_sha256 = page.locator(f"li:has(a[href$='/{bundle_name}']) code.sha256").inner_text()
    assert hashlib.sha256(bundle.read_bytes()).hexdigest() == shown_sha256
    keys = page.request.get(f"{base}/api/v1/keys")
    assert keys.status == 200
    keys_path = tmp_path / "keys.json"
    keys_path.write_text(json.dumps(keys.json()))
    out = io.StringIO()
    assert cli.main(["bundle", str(bundle), "--keys", str(keys_path)], out) == 0, out.getvalue()

    page.get_by_role("link", name="Report runs").first.click()
    page.wait_for_url(f"{base}/reports/runs/")
    row = page.locator("tbody tr", has=page.locator(f"a[href='/reports/runs/{run_id}/']"))
    assert row.locator("td[data-label='Status']").inner_text() == "Succeeded"
    assert row.locator("code.sha256").count() == 3  # JSON, PDF, bundle
    page.screenshot(path=SCREENSHOTS / "runs-1366.png", full_page=True)
    assert recorded.external_requests() == []
    recorded.close()

    narrow = RecordedContext(chromium.browser, base, NARROW)
    _sign_in(narrow.page, base, DEMO_EMAIL, DEMO_PASSWORD)
    narrow.page.goto(f"{base}/reports/runs/")
    narrow.page.screenshot(path=SCREENSHOTS / "runs-390.png", full_page=True)
    assert narrow.page.evaluate("document.documentElement.scrollWidth") <= NARROW["width"]
    narrow.close()

    other = RecordedContext(chromium.browser, base, NARROW)
    _sign_in(other.page, base, OTHER_EMAIL, OTHER_PASSWORD)
    response = other.page.goto(f"{base}/reports/runs/{run_id}/")
    assert response.status == 404
    other.page.goto(f"{base}/reports/runs/")
    assert run_id not in other.page.content()
    other.close()
