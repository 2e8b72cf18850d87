"""The agent report page in a real browser: sign in, open an agent's report, choose a date range, download the
JSON and the PDF; both carry the same period root, the one the page shows."""

import json
import subprocess
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from pypdf import PdfReader

from audit.demo import BASE_TIME, DEMO_EMAIL, DEMO_PASSWORD, seed_demo
from reports.period import Window, build_period_report
from tests.browser.test_console_browser import LAPTOP, RecordedContext, _download, _sign_in

pytestmark = pytest.mark.browser


def test_agent_report_downloads_carry_the_same_root(live_server, chromium, tmp_path: Path):
    demo = seed_demo()
    agent = next(s.agent for s in demo.sessions if s.external_ref == "call-intake-0001")
    first = BASE_TIME.date() - timedelta(days=1)
    last = BASE_TIME.date() + timedelta(days=1)
    window = Window(
        datetime.combine(first, time.min, tzinfo=UTC), datetime.combine(last + timedelta(days=1), time.min, tzinfo=UTC)
    )
    expected = build_period_report(demo.account, agent=agent, window=window, generated_at=datetime.now(UTC))
    expected_sessions = [entry["session_id"] for entry in expected.sessions]
    assert len(expected_sessions) >= 2
    base = live_server.url
    recorded = RecordedContext(chromium.launch(), base, LAPTOP)
    page = recorded.page

    _sign_in(page, base, DEMO_EMAIL, DEMO_PASSWORD)
    page.goto(f"{base}/agents/")
    page.locator(f"a[href='/agents/{agent.id}/report/']").click()
    page.wait_for_url(f"{base}/agents/{agent.id}/report/")
    page.get_by_label("From (UTC)").fill(first.isoformat())
    page.get_by_label("To (UTC, included)").fill(last.isoformat())
    page.get_by_role("button", name="Show report").click()
    page.wait_for_url(f"{base}/agents/{agent.id}/report/?from={first.isoformat()}&to={last.isoformat()}")
    shown_root = page.locator("#period-root").inner_text()
    assert shown_root == expected.merkle_root_hex
    listed = page.locator("table a[href^='/sessions/sess_']").evaluate_all("links => links.map(a => a.textContent)")
    assert listed == expected_sessions

    json_path, json_url = _download(page, "Download JSON", tmp_path)
    pdf_path, pdf_url = _download(page, "Download PDF", tmp_path)
    assert "format=json" in json_url and "format=pdf" in pdf_url
    report = json.loads(json_path.read_bytes())["report"]
    assert report["scope"] == "agent"
    assert report["merkle_root_hex"] == shown_root
    assert [entry["session_id"] for entry in report["sessions"]] == expected_sessions
    pdf = pdf_path.read_bytes()
    assert pdf.startswith(b"%PDF-")
    text = subprocess.run(["pdftotext", "-layout", str(pdf_path), "-"], capture_output=True, check=True).stdout
    assert shown_root in text.decode()
    (attached,) = [contents[0] for contents in PdfReader(pdf_path).attachments.values()]
    assert json.loads(attached)["report"]["merkle_root_hex"] == shown_root
    assert recorded.external_requests() == []
    recorded.close()
