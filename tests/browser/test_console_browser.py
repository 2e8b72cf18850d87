"""The console in a real browser against a live server: sign in, list, open, download both reports, sign out,
tenant isolation, screenshots, and no external resource loaded."""

import json
import re
import subprocess
from pathlib import Path

import pytest
from django.conf import settings

from audit.demo import DEMO_EMAIL, DEMO_PASSWORD, OTHER_EMAIL, OTHER_PASSWORD, seed_demo
from audit.walk import verify_session

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


class RecordedContext:
    """A browser context that records the URL of every request its pages make and every console message
    (ORM work must precede it). Closing it asserts that no message reports a Content-Security-Policy violation."""

    def __init__(self, browser, base_url: str, viewport: dict):
        self.base_url = base_url
        self.urls: list[str] = []
        self.console: list[str] = []
        self.context = browser.new_context(viewport=viewport, accept_downloads=True)
        self.context.on("request", lambda request: self.urls.append(request.url))
        self.context.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))
        self.context.on("weberror", lambda error: self.console.append(f"pageerror: {error.error}"))
        self.page = self.context.new_page()

    def external_requests(self) -> list[str]:
        return [url for url in self.urls if not url.startswith(self.base_url + "/")]

    def csp_violations(self) -> list[str]:
        return [text for text in self.console if "content security policy" in text.lower() or "csp" in text.lower()]

    def close(self) -> None:
        self.context.close()
        assert self.csp_violations() == []


def _sign_in(page, base_url: str, email: str, password: str) -> None:
    page.goto(f"{base_url}/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}/sessions/")


def _listed_session_ids(page) -> list[str]:
    hrefs = page.locator("table a[href^='/sessions/sess_']").evaluate_all("links => links.map(a => a.pathname)")
    return [re.fullmatch(r"/sessions/(sess_[0-9A-Z]{26})/", href).group(1) for href in hrefs]


def _download(page, link_name: str, directory: Path) -> tuple[Path, str]:
    """Click a download link; returns the saved file and the URL it came from."""
    with page.expect_download() as info:
        page.get_by_role("link", name=link_name).click()
    download = info.value
    assert download.failure() is None
    target = directory / download.suggested_filename
    download.save_as(target)
    return target, download.url


def _pdf_text(path: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True).stdout.decode()


def test_demo_user_downloads_pdf_and_json_with_the_same_root_then_signs_out(live_server, chromium, tmp_path):
    demo = seed_demo()
    session = next(s for s in demo.sessions if s.external_ref == "call-intake-0001")
    expected_root = verify_session(session).merkle_root_hex
    base = live_server.url
    recorded = RecordedContext(chromium.launch(), base, LAPTOP)
    page = recorded.page

    _sign_in(page, base, DEMO_EMAIL, DEMO_PASSWORD)
    listed = _listed_session_ids(page)
    assert sorted(listed) == sorted(s.id for s in demo.sessions)
    for other in demo.other_sessions:
        assert other.id not in page.content()

    # The call is found by the reference the customer knows it by.
    page.get_by_label("Call reference").fill(session.external_ref)
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(f"{base}/sessions/?*external_ref={session.external_ref}*")
    assert _listed_session_ids(page) == [session.id]
    assert page.locator("td[data-label='External reference']").all_inner_texts() == [session.external_ref]

    page.locator(f"a[href='/sessions/{session.id}/']").click()
    page.wait_for_url(f"{base}/sessions/{session.id}/")
    assert page.get_by_role("heading", level=1).inner_text() == "Compliance report"
    assert page.locator("#merkle-root").inner_text() == expected_root

    pdf_path, pdf_url = _download(page, "Download PDF", tmp_path)
    json_path, json_url = _download(page, "Download JSON", tmp_path)
    assert pdf_url == f"{base}/api/v1/sessions/{session.id}/report?format=pdf"
    assert json_url == f"{base}/api/v1/sessions/{session.id}/report?format=json"
    assert pdf_path.name == f"masker-report-{session.id}.pdf"
    assert json_path.name == f"masker-report-{session.id}.json"
    assert pdf_path.read_bytes().startswith(b"%PDF-")
    report = json.loads(json_path.read_text())["report"]
    assert report["session_id"] == session.id
    assert report["merkle_root_hex"] == expected_root
    assert report["merkle_root_hex"] in _pdf_text(pdf_path)

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{base}/login/?signed_out=1")
    page.goto(f"{base}/sessions/{session.id}/")
    assert page.url == f"{base}/login/?next=/sessions/{session.id}/"
    assert page.get_by_role("heading", name="Sign in").is_visible()
    assert page.get_by_label("Password").is_visible()

    assert recorded.external_requests() == []
    assert any(url.endswith("/static/console/console.css") for url in recorded.urls)
    recorded.close()


def test_second_user_cannot_reach_the_first_accounts_session_page(live_server, chromium):
    demo = seed_demo()
    acme_session = demo.sessions[0]
    base = live_server.url
    recorded = RecordedContext(chromium.launch(), base, LAPTOP)
    page = recorded.page

    _sign_in(page, base, OTHER_EMAIL, OTHER_PASSWORD)
    assert _listed_session_ids(page) == [s.id for s in demo.other_sessions]
    response = page.goto(f"{base}/sessions/{acme_session.id}/")
    assert response.status == 404
    assert page.get_by_role("heading", level=1).inner_text() == "This page does not exist"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "not-found-laptop.png", full_page=True)
    assert acme_session.id not in page.locator("main").inner_text()
    report = page.goto(f"{base}/api/v1/sessions/{acme_session.id}/report?format=json")
    assert report.status == 404
    assert recorded.external_requests() == []
    recorded.close()


@pytest.mark.parametrize(("viewport", "label"), [(LAPTOP, "laptop"), (PHONE, "phone")])
def test_screenshots_of_the_console_load_no_external_resource(live_server, chromium, viewport, label):
    demo = seed_demo()
    session = next(s for s in demo.sessions if s.external_ref == "call-rehydration-0003")
    base = live_server.url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    recorded = RecordedContext(chromium.launch(), base, viewport)
    page = recorded.page

    page.goto(f"{base}/login/")
    page.screenshot(path=SCREENSHOTS / f"login-{label}.png", full_page=True)
    _sign_in(page, base, DEMO_EMAIL, DEMO_PASSWORD)
    shots = {
        "sessions": "/sessions/",
        "session": f"/sessions/{session.id}/",
        "agents": "/agents/",
    }
    for name, path in shots.items():
        response = page.goto(f"{base}{path}")
        assert response.status == 200
        page.wait_for_load_state("networkidle")
        target = SCREENSHOTS / f"{name}-{label}.png"
        page.screenshot(path=target, full_page=True)
        assert target.stat().st_size > 10_000
        # Nothing is wider than the viewport: the page reads without sideways scrolling.
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]

    assert recorded.external_requests() == []
    assert len(recorded.urls) >= 8
    recorded.close()


def test_swagger_ui_and_the_admin_run_under_the_content_security_policy(live_server, chromium):
    base = live_server.url
    recorded = RecordedContext(chromium.launch(), base, LAPTOP)
    page = recorded.page

    docs = page.goto(f"{base}/api/v1/docs")
    assert docs.status == 200
    assert "script-src 'self'" in docs.headers["content-security-policy"]
    # The UI renders from the served schema: its start-up script ran (a separate file, not inline).
    page.get_by_text("Masker Compliance API").first.wait_for()
    page.locator(".opblock").first.wait_for()
    assert page.locator(".opblock").count() > 10

    admin = page.goto(f"{base}/admin/login/")
    assert admin.status == 200
    assert "default-src 'self'" in admin.headers["content-security-policy"]
    page.wait_for_load_state("networkidle")

    assert recorded.external_requests() == []
    recorded.close()
