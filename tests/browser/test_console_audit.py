"""The console as an auditor uses it, in a real browser: the leak call opens with its alert banner (never a green
one), downloads appear on "Reports issued", axe-core finds no serious or critical violation on any page at 1366 px
and 390 px, the main actions work with the keyboard alone. Screenshots of the session page, the reports-issued
page and page 1 of the leak call's PDF are saved under var/screenshots/."""

import json
import subprocess
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import expect

from audit.demo import DEMO_EMAIL, DEMO_PASSWORD, OTHER_EMAIL, OTHER_PASSWORD, seed_demo
from reports.models import ReportRun
from tests.browser.conftest import AXE_VERSION
from tests.browser.test_console_browser import RecordedContext
from tests.reports.report_support import pdf_attachments
from tests.reports.runs_support import run_here, start_here

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"
WIDE = {"width": 1366, "height": 768}
NARROW = {"width": 390, "height": 844}
BLOCKING = ("serious", "critical")


def _sign_in(page, base: str, email: str = DEMO_EMAIL, password: str = DEMO_PASSWORD) -> None:
    page.goto(f"{base}/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/sessions/")


def _axe_violations(page, axe_script: Path) -> list[str]:
    """axe-core's serious and critical violations on the loaded page, as "rule: target" lines."""
    # Evaluated through the DevTools protocol, which the page's Content-Security-Policy does not govern: a <script>
    # tag (add_script_tag) would be inline script, which the policy rightly refuses.
    page.evaluate(axe_script.read_text(encoding="utf-8") + "\n;undefined")
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    assert result["testEngine"]["name"] == "axe-core" and result["testEngine"]["version"] == AXE_VERSION
    assert result["passes"], "axe ran no check"
    return [
        f"{violation['id']} ({violation['impact']}): {node['target']}"
        for violation in result["violations"]
        if violation["impact"] in BLOCKING
        for node in violation["nodes"]
    ]


def _download(page, link_name: str, directory: Path) -> Path:
    with page.expect_download() as info:
        page.get_by_role("link", name=link_name).click()
    target = directory / info.value.suggested_filename
    info.value.save_as(target)
    return target


def test_leak_call_opens_with_its_alerts_and_reports_issued_lists_the_downloads(live_server, chromium, tmp_path):
    demo = seed_demo()
    leak = next(s for s in demo.sessions if s.external_ref == "call-rehydration-0003")
    base = live_server.url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    recorded = RecordedContext(chromium.launch(), base, WIDE)
    page = recorded.page
    _sign_in(page, base)

    page.goto(f"{base}/sessions/{leak.id}/")
    verdict = page.locator("#verdict")
    assert verdict.get_attribute("role") == "alert"
    assert "bad" in verdict.get_attribute("class").split()
    assert verdict.inner_text().startswith("Verdict: 3 alerts in this call.")
    assert page.locator(".notice.good").count() == 0
    # First on the page after the heading, and above the alerts, which are above the Safe Harbor matrix.
    assert page.locator("main .notice").first.get_attribute("id") == "verdict"
    tops = [page.locator(sel).bounding_box()["y"] for sel in ("#verdict", "#alerts-title", "#sh-title")]
    assert tops == sorted(tops)
    assert not page.locator("details.matrix-details").evaluate("d => d.open")
    assert page.locator("#external-ref").inner_text() == "call-rehydration-0003"
    page.get_by_role("link", name="Residual PHI leak").click()
    assert page.url.endswith("#alert-4")
    page.screenshot(path=SCREENSHOTS / "audit-session-leak-verdict-1366.png", full_page=True)

    json_path = _download(page, "Download JSON", tmp_path)
    pdf_path = _download(page, "Download PDF", tmp_path)
    json_id = json.loads(json_path.read_text())["report"]["id"]
    (embedded,) = pdf_attachments(pdf_path.read_bytes()).values()
    pdf_id = json.loads(embedded)["report"]["id"]
    subprocess.run(
        [
            "pdftoppm",
            "-png",
            "-r",
            "100",
            "-f",
            "1",
            "-l",
            "1",
            "-singlefile",
            str(pdf_path),
            str(SCREENSHOTS / "audit-report-leak-page1"),
        ],
        check=True,
    )

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Reports issued").click()
    page.wait_for_url(f"{base}/reports/")
    listed = page.locator("tbody th[data-label='Report'] .report-id").all_inner_texts()
    assert listed[:2] == [pdf_id, json_id]
    assert page.locator("tbody tr").first.locator("td[data-label='Format']").inner_text() == "PDF"
    page.screenshot(path=SCREENSHOTS / "audit-reports-issued-after-downloads-1366.png", full_page=True)
    assert recorded.external_requests() == []
    recorded.close()

    other = RecordedContext(chromium.browser, base, NARROW)
    _sign_in(other.page, base, OTHER_EMAIL, OTHER_PASSWORD)
    other.page.goto(f"{base}/reports/")
    assert other.page.locator("tbody tr").count() == 0  # the other account sees none of these downloads
    other.page.goto(f"{base}/sessions/{leak.id}/")
    other.page.screenshot(path=SCREENSHOTS / "audit-other-account-390.png", full_page=True)
    other.close()


@pytest.mark.parametrize(("viewport", "label"), [(WIDE, "1366"), (NARROW, "390")])
def test_axe_finds_no_serious_or_critical_violation_on_any_console_page(
    live_server, chromium, axe_script, viewport, label
):
    demo = seed_demo()
    november = {"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z", "formats": ["json", "pdf"]}
    succeeded = run_here(start_here(demo.account, {"scope": "account", **november, "bundle": True}))
    assert succeeded.status == "succeeded", succeeded.error
    queued = start_here(demo.account, {"scope": "agent", "agent_id": demo.sessions[0].agent_id, **november})
    failed = start_here(demo.account, {"scope": "session", "session_id": demo.sessions[1].id})
    ReportRun.objects.filter(pk=failed.pk).update(status="failed", error="Chunk 0 failed 3 times: OSError.")
    base = live_server.url
    recorded = RecordedContext(chromium.launch(), base, viewport)
    page = recorded.page
    page.goto(f"{base}/login/")
    problems = {"/login/": _axe_violations(page, axe_script)}
    _sign_in(page, base)
    for session in demo.sessions[:2]:  # two rows in the register for the reports-issued page
        assert page.request.get(f"{base}/api/v1/sessions/{session.id}/report?format=json").status == 200
    paths = [
        "/sessions/",
        "/sessions/?alerts=1&status=bogus",
        *(f"/sessions/{session.id}/" for session in demo.sessions),
        "/agents/",
        *(
            f"/agents/{agent_id}/report/?from=2026-11-01&to=2026-11-30"
            for agent_id in sorted({s.agent_id for s in demo.sessions})
        ),
        "/reports/account/?from=2026-11-01&to=2026-11-30",
        "/reports/",
        "/reports/runs/",
        *(f"/reports/runs/{run.id}/" for run in (succeeded, queued, failed)),
        "/reports/runs/run_00000000000000000000000000/",
        "/logout/",
        "/sessions/sess_00000000000000000000000000/",
    ]
    for path in paths:
        page.goto(f"{base}{path}")
        page.wait_for_load_state("networkidle")
        problems[path] = _axe_violations(page, axe_script)
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"], path
        # No table hides columns behind a horizontal scroll bar.
        hidden = (
            "[...document.querySelectorAll('.table-wrap')].filter(w => w.scrollWidth > w.clientWidth)"
            ".map(w => (w.closest('section')?.querySelector('h2')?.textContent || '?') + ' +' + "
            "(w.scrollWidth - w.clientWidth) + 'px')"
        )
        assert page.evaluate(hidden) == [], path
        if viewport["width"] >= 1280:  # the top bar keeps to one row on a laptop
            assert page.evaluate("document.querySelector('.topbar-inner').offsetHeight") <= 64, path
        if path == f"/sessions/{demo.session('call-rehydration-0003').id}/":
            page.screenshot(path=SCREENSHOTS / f"audit-session-leak-{label}.png", full_page=True)
        if path == f"/reports/runs/{queued.id}/":
            page.screenshot(path=SCREENSHOTS / f"audit-run-queued-{label}.png", full_page=True)
        if path == "/reports/":
            page.screenshot(path=SCREENSHOTS / f"audit-reports-issued-{label}.png", full_page=True)
    assert {path: found for path, found in problems.items() if found} == {}
    recorded.close()


def test_the_auditor_path_works_with_the_keyboard_alone(live_server, chromium):
    demo = seed_demo()
    leak = next(s for s in demo.sessions if s.external_ref == "call-rehydration-0003")
    base = live_server.url
    recorded = RecordedContext(chromium.launch(), base, WIDE)
    page = recorded.page

    def tab_to(predicate: str, limit: int = 60) -> None:
        for _ in range(limit):
            page.keyboard.press("Tab")
            if page.evaluate(f"(() => {{ const e = document.activeElement; return {predicate}; }})()"):
                return
        raise AssertionError(f"no focusable element matched {predicate}")

    page.goto(f"{base}/login/")
    expect(page.get_by_label("Email")).to_be_focused()  # the email field has the focus on arrival (once it settled)
    page.keyboard.type(DEMO_EMAIL)
    page.keyboard.press("Tab")
    page.keyboard.type(DEMO_PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/sessions/")

    tab_to(f"e.getAttribute('href') === '/sessions/{leak.id}/'")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/sessions/{leak.id}/")
    tab_to("e.getAttribute('href') === '#alert-3'")
    page.keyboard.press("Enter")
    assert page.url.endswith("#alert-3")
    tab_to("e.tagName === 'SUMMARY'")
    page.keyboard.press("Enter")
    assert page.locator("details.matrix-details").evaluate("d => d.open")
    tab_to("e.textContent.trim() === 'Download PDF'")
    with page.expect_download() as info:
        page.keyboard.press("Enter")
    assert info.value.suggested_filename == f"masker-report-{leak.id}.pdf"
    tab_to("e.textContent.trim() === 'Reports issued'", limit=200)  # the navigation, after wrapping around
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/reports/")
    tab_to("e.textContent.trim() === 'Download CSV'")
    with page.expect_download() as info:
        page.keyboard.press("Enter")
    assert info.value.suggested_filename == "masker-reports-issued.csv"
    tab_to("e.textContent.trim() === 'Sign out'", limit=200)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/login/?signed_out=1")
    recorded.close()
