"""The console's account and agent report pages: the range form, the figures of the same period report as the API,
the sessions table linked to each session page, the download links carrying the same window."""

from datetime import timedelta

import pytest
from django.test import Client

from reports.models import ReportRecord
from tests.reports.period_support import World, _tamper

pytestmark = pytest.mark.django_db

RANGE = {"from": "2026-03-01", "to": "2026-03-31"}  # the whole of March, both days included


@pytest.fixture
def world() -> World:
    return World()


def test_account_report_page_shows_the_windows_sessions_and_figures(world):
    response = world.client().get("/reports/account/", RANGE)
    assert response.status_code == 200
    page = response.content.decode()
    report = response.context["report"]
    assert [e["session_id"] for e in report["sessions"]] == sorted(s.id for s in world.inside)
    for session in world.inside:
        assert f'href="/sessions/{session.id}/"' in page
    for session in [*world.outside, world.other_session]:
        assert session.id not in page
    assert report["merkle_root_hex"] in page
    assert "from=2026-03-01T00%3A00%3A00Z&amp;to=2026-04-01T00%3A00%3A00Z&amp;format=pdf" in page
    assert (
        'href="/api/v1/reports?from=2026-03-01T00%3A00%3A00Z&amp;to=2026-04-01T00%3A00%3A00Z&amp;format=json"' in page
    )
    for agent in (world.intake, world.billing, world.triage):
        assert f"/agents/{agent.id}/report/?from=2026-03-01&amp;to=2026-03-31" in page
    assert not ReportRecord.objects.exists()  # the page shows; only downloads are issued reports
    assert "<script" not in page and "style=" not in page


def test_the_download_links_give_the_pages_root(world):
    client = world.client()
    response = client.get(f"/agents/{world.billing.id}/report/", RANGE)
    assert response.status_code == 200
    context = response.context
    for link in (context["download_json"], context["download_pdf"]):
        assert client.get(link).status_code == 200
    json_report = client.get(context["download_json"]).json()["report"]
    assert json_report["merkle_root_hex"] == context["report"]["merkle_root_hex"]
    assert [e["session_id"] for e in json_report["sessions"]] == sorted(s.id for s in world.inside[2:4])


def test_agent_report_page_of_another_accounts_agent_is_404(world):
    response = world.client().get(f"/agents/{world.other_agent.id}/report/", RANGE)
    assert response.status_code == 404


def test_report_pages_need_a_login(world):
    response = Client().get("/reports/account/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_broken_session_shows_on_the_page(world):
    _tamper(world.inside[1], 3)
    response = world.client().get("/reports/account/", RANGE)
    page = response.content.decode()
    assert response.status_code == 200
    assert "Broken at seq 3" in page
    assert "The audit chain of at least one session does not verify." in page


def test_a_range_beyond_366_days_is_explained(world):
    response = world.client().get("/reports/account/", {"from": "2025-01-01", "to": "2026-03-31"})
    assert response.status_code == 400
    assert "at most 366 days" in response.content.decode()


def test_a_window_too_large_is_explained(world, settings):
    settings.MASKER_SYNC_REPORT_MAX_EVENTS = 10
    response = world.client().get("/reports/account/", RANGE)
    assert response.status_code == 422
    assert "report run" in response.content.decode()


def test_a_bad_date_falls_back_to_the_default_range(world):
    response = world.client().get("/reports/account/", {"from": "March"})
    assert response.status_code == 200
    assert response.context["last"] - response.context["first"] == timedelta(days=29)
    assert "is not a date" in response.content.decode()


def test_sessions_and_agents_pages_link_to_the_reports(world):
    client = world.client()
    page = client.get("/sessions/", {"agent": world.intake.id}).content.decode()
    assert 'href="/reports/account/"' in page
    assert f'href="/agents/{world.intake.id}/report/"' in page
    page = client.get("/agents/").content.decode()
    for agent in (world.intake, world.billing, world.triage):
        assert f'href="/agents/{agent.id}/report/"' in page
