"""The console's report-run pages: the start form (the API's validation shown as form errors, CSRF), the run it
starts (the same service as the API), the run page and the list with each file's size, SHA-256 and download, and
tenancy. A run's steps are called in this process (``run_here``), as in the API tests."""

import hashlib
import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from audit.idempotency import json_fingerprint
from masker.models import Membership
from reports.models import ReportRecord, ReportRun
from tests.reports.period_support import World
from tests.reports.runs_support import run_here

pytestmark = pytest.mark.django_db

URL = "/reports/runs/"
MARCH = {"from": "2026-03-01", "to": "2026-03-31"}  # both days included: [03-01T00:00Z, 04-01T00:00Z)


@pytest.fixture
def world() -> World:
    return World()


def _start(client: Client, **fields):
    return client.post(URL, {"scope": "account", **MARCH, "formats": ["json", "pdf"], "bundle": "on", **fields})


def _errors(response) -> dict[str, list[str]]:
    return response.context["errors"]


def test_the_page_shows_the_form_and_is_not_stored(world):
    response = world.client().get(URL)
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    page = response.content.decode()
    assert 'aria-current="page">Report runs</a>' in page
    for label in ("From (UTC)", "To (UTC, included)", "JSON report", "PDF report", "Evidence bundle"):
        assert label in page
    assert 'name="csrfmiddlewaretoken"' in page
    assert "No run yet." in page
    assert "<script" not in page and "style=" not in page


@pytest.mark.parametrize(
    ("fields", "field", "text"),
    [
        ({"scope": "agent"}, "agent_id", "required for scope agent"),
        ({"scope": "galaxy"}, "scope", "must be one of: session, agent, account"),
        ({"formats": []}, "formats", "Ensure this field has at least 1 elements."),
        ({"formats": ["docx"]}, "formats", "must be one of: json, pdf"),
        ({"from": "2026-03-31", "to": "2026-03-01"}, "to", "not after 'from'"),
        ({"from": "2025-01-01", "to": "2026-03-31"}, "to", "more than 366 days after 'from'"),
        ({"from": "March"}, "from", "not an RFC 3339 date-time"),
        ({"scope": "session", "session_id": "no-such-call"}, "session_id", "No such session in this account."),
        ({"scope": "session"}, "session_id", "required for scope session"),
    ],
)
def test_invalid_forms_show_the_apis_errors_and_start_nothing(world, fields, field, text):
    response = _start(world.client(), **fields)
    assert response.status_code == 400
    assert text in _errors(response)[field]
    assert set(_errors(response)) <= {field, "general"}
    assert text.replace("'", "&#x27;") in response.content.decode()
    assert 'role="alert"' in response.content.decode()
    assert not ReportRun.objects.exists()


def test_another_accounts_agent_is_no_such_agent(world):
    response = _start(world.client(), scope="agent", agent_id=world.other_agent.id)
    assert response.status_code == 400
    assert _errors(response) == {"agent_id": ["No such agent in this account."]}
    assert not ReportRun.objects.exists()


def test_a_post_without_the_csrf_token_is_refused(world):
    client = Client(enforce_csrf_checks=True)
    client.force_login(Membership.objects.filter(account=world.account).first().user)
    assert _start(client).status_code == 403
    assert not ReportRun.objects.exists()
    token = client.get(URL).context["csrf_token"]
    assert _start(client, csrfmiddlewaretoken=str(token)).status_code == 303


def test_starting_a_run_redirects_to_its_page_and_asks_what_the_api_would(world):
    response = _start(world.client(), scope="agent", agent_id=world.billing.id)
    assert response.status_code == 303
    run = ReportRun.objects.get()
    assert response["Location"] == f"/reports/runs/{run.id}/"
    assert (run.account, run.scope, run.agent, run.formats, run.bundle) == (
        world.account,
        "agent",
        world.billing,
        ["json", "pdf"],
        True,
    )
    assert (run.window_from.isoformat(), run.window_to.isoformat()) == (
        "2026-03-01T00:00:00+00:00",
        "2026-04-01T00:00:00+00:00",
    )
    assert run.created_by == Membership.objects.get(account=world.account).id
    api_body = {
        "scope": "agent",
        "formats": ["json", "pdf"],
        "agent_id": world.billing.id,
        "bundle": True,
        "from": "2026-03-01T00:00:00Z",
        "to": "2026-04-01T00:00:00Z",
    }
    assert run.request_sha256 == json_fingerprint(api_body)

    page = world.client().get(response["Location"])
    assert page.status_code == 200 and page["Cache-Control"] == "no-store"
    html = page.content.decode()
    assert 'id="run-status" role="status">Queued<' in html
    assert re.search(r'<progress id="run-progress" aria-labelledby="progress-title"[^>]*max="1">', html)
    assert "0 of 0 sessions, 0 events" in html
    assert f'data-run-url="/api/v1/report-runs/{run.id}"' in html
    assert '<script src="/static/console/run-progress.js" defer></script>' in html
    assert len(re.findall(r"<script", html)) == 1 and "style=" not in html
    assert f'href="/reports/runs/{run.id}/">Refresh</a>' in html


def test_a_session_run_is_found_by_the_calls_reference(world):
    session = world.inside[2]
    response = _start(world.client(), scope="session", session_id=session.external_ref, formats=["pdf"], bundle="")
    assert response.status_code == 303
    run = ReportRun.objects.get()
    assert (run.scope, run.session, run.window_from, run.bundle) == ("session", session, None, False)


def test_a_finished_run_lists_its_files_with_hashes_that_download(world):
    client = world.client()
    _start(client)
    run = run_here(ReportRun.objects.get())
    assert run.status == "succeeded", run.error
    files = list(run.files.order_by("name"))
    assert {f.content_type for f in files} == {"application/json", "application/pdf", "application/zip"}

    listing = client.get(URL).content.decode()
    detail = client.get(f"{URL}{run.id}/").content.decode()
    for html in (listing, detail):
        for file in files:
            url = f"/api/v1/report-runs/{run.id}/files/{file.name}"
            assert f'href="{url}" download' in html
            assert file.sha256 in html and f"({file.size} bytes)" in html
            body = b"".join(client.get(url).streaming_content)  # the API's download takes the console's cookie
            assert hashlib.sha256(body).hexdigest() == file.sha256
    assert f"python3 masker-verify.pyz bundle evidence-{run.id}.zip --keys keys.json" in detail
    assert 'role="status">Succeeded<' in detail and "<script" not in detail
    assert f"{run.sessions_total} of {run.sessions_total} sessions, {run.events_done} events" in detail
    assert {f["sha256"] for f in ReportRecord.objects.get(run_id=run.id).files} == {f.sha256 for f in files}


def test_a_failed_run_shows_its_error(world):
    _start(world.client())
    run = ReportRun.objects.get()
    ReportRun.objects.filter(pk=run.pk).update(status="failed", error="Chunk 0 failed 3 times: OSError (see the log).")
    html = world.client().get(f"{URL}{run.id}/").content.decode()
    assert 'role="alert" id="run-error"' in html and "Chunk 0 failed 3 times" in html
    assert "run-progress.js" not in html


def test_another_accounts_run_is_the_404_page_and_not_listed(world):
    _start(world.client())
    run = ReportRun.objects.get()
    other = world.client(world.other)
    assert other.get(f"{URL}{run.id}/").status_code == 404
    assert other.get(f"{URL}run_00000000000000000000000000/").status_code == 404
    assert run.id not in other.get(URL).content.decode()
    assert other.get(f"/api/v1/report-runs/{run.id}").status_code == 404


def test_the_list_is_newest_first_a_page_at_a_time(world):
    client = world.client()
    for _ in range(21):
        assert _start(client, formats=["json"], bundle="").status_code == 303
    ids = list(ReportRun.objects.order_by("-created_at", "-id").values_list("id", flat=True))
    first = client.get(URL)
    shown = re.findall(r'href="/reports/runs/(run_[0-9A-Z]{26})/"', first.content.decode())
    assert shown == ids[:20]
    assert "Page 1 of 2" in first.content.decode()
    second = re.findall(r'href="/reports/runs/(run_[0-9A-Z]{26})/"', client.get(URL, {"page": 2}).content.decode())
    assert second == ids[20:]


def test_the_pages_need_a_login(world):
    for response in (Client().get(URL), Client().post(URL, {"scope": "account"})):
        assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert not ReportRun.objects.exists()


def test_a_user_of_no_account_is_refused(world):
    client = Client()
    client.force_login(get_user_model().objects.create_user(username="nobody@x.test", email="nobody@x.test"))
    assert client.get(URL).status_code == 403
    assert _start(client).status_code == 403
    assert not ReportRun.objects.exists()
