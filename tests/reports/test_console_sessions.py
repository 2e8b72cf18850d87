"""Console sessions list and agents page: scoped to the account, filters, pagination, invalid filters."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model

from audit.models import Agent, Session
from audit.writing import start_session
from reports.console import AGENTS_PER_PAGE, RECENT_SESSIONS_PER_AGENT, SESSIONS_PER_PAGE, format_duration

pytestmark = pytest.mark.django_db


def _listed_ids(response) -> list[str]:
    return re.findall(r'href="/sessions/(sess_[0-9A-Z]{26})/"', response.content.decode())


def test_sessions_list_shows_the_accounts_sessions_newest_first_and_not_the_other_accounts(acme_client, seeded):
    response = acme_client.get("/sessions/")
    assert response.status_code == 200
    expected = [s.id for s in sorted(seeded.sessions, key=lambda s: s.started_at, reverse=True)]
    assert _listed_ids(response) == expected
    html = response.content.decode()
    for other in seeded.other_sessions:
        assert other.id not in html
    assert "Globex" not in html
    assert "Front desk" not in html  # the other account's agent is not even in the agent filter


def test_each_row_shows_agent_started_duration_status_redactions_and_alerts(acme_client, seeded):
    vendor_call = next(s for s in seeded.sessions if s.external_ref == "call-vendor-0004")
    vendor_call.refresh_from_db()
    html = acme_client.get("/sessions/").content.decode()
    row = re.search(rf"<tr>\s*<th[^>]*><a href=\"/sessions/{vendor_call.id}/\".*?</tr>", html, re.S).group(0)
    assert "Billing line" in row
    assert vendor_call.started_at.strftime("%Y-%m-%d %H:%M:%S") in row
    assert "15.0 s" in row
    assert 'class="badge good">Ended OK<' in row
    assert f">{vendor_call.redaction_count}<" in row
    assert f'<span class="count-alert">{vendor_call.alert_count}</span>' in row
    assert vendor_call.alert_count == 1
    for header in ("Session", "Agent", "Started (UTC)", "Duration", "Status", "Redactions", "Alerts"):
        assert f">{header}</th>" in html


def test_sessions_list_filters_by_agent(acme_client, seeded):
    billing = Agent.objects.get(account=seeded.account, name="Billing line")
    ids = _listed_ids(acme_client.get("/sessions/", {"agent": billing.id}))
    assert set(ids) == {s.id for s in seeded.sessions if s.agent_id == billing.id}
    assert len(ids) == 2


def test_sessions_list_filters_by_status(acme_client, seeded):
    ids = _listed_ids(acme_client.get("/sessions/", {"status": "partial"}))
    assert ids == [s.id for s in seeded.sessions if s.external_ref == "call-rehydration-0003"]
    ids = _listed_ids(acme_client.get("/sessions/", {"status": "active"}))
    assert ids == [s.id for s in seeded.sessions if s.external_ref == "call-live-0006"]


def test_sessions_list_searches_by_call_reference(acme_client, seeded):
    response = acme_client.get("/sessions/", {"external_ref": "call-vendor-0004"})
    html = response.content.decode()
    assert _listed_ids(response) == [s.id for s in seeded.sessions if s.external_ref == "call-vendor-0004"]
    assert 'name="external_ref" value="call-vendor-0004"' in html  # the box keeps what was searched
    other_ref = seeded.other_sessions[0].external_ref
    assert _listed_ids(acme_client.get("/sessions/", {"external_ref": other_ref})) == []


def test_sessions_list_filters_on_has_alerts(acme_client, seeded):
    ids = _listed_ids(acme_client.get("/sessions/", {"alerts": "1"}))
    flagged = Session.objects.filter(account=seeded.account, alert_count__gt=0)
    assert set(ids) == {s.id for s in flagged}
    assert {s.external_ref for s in flagged} == {"call-rehydration-0003", "call-vendor-0004"}


def test_sessions_list_filters_by_an_inclusive_date_range(acme_client, seeded):
    agent = Agent.objects.get(account=seeded.account, name="Intake line")
    older = start_session(agent, external_ref="older-call", started_at=datetime(2026, 11, 18, 23, 59, tzinfo=UTC))[0]
    newer = start_session(agent, external_ref="newer-call", started_at=datetime(2026, 11, 22, 0, 0, tzinfo=UTC))[0]
    assert _listed_ids(acme_client.get("/sessions/", {"from": "2026-11-22"})) == [newer.id]
    assert _listed_ids(acme_client.get("/sessions/", {"to": "2026-11-18"})) == [older.id]
    ids = _listed_ids(acme_client.get("/sessions/", {"from": "2026-11-19", "to": "2026-11-21"}))
    assert set(ids) == {s.id for s in seeded.sessions}


def test_filters_combine(acme_client, seeded):
    intake = Agent.objects.get(account=seeded.account, name="Intake line")
    ids = _listed_ids(acme_client.get("/sessions/", {"agent": intake.id, "alerts": "1", "status": "partial"}))
    assert ids == [s.id for s in seeded.sessions if s.external_ref == "call-rehydration-0003"]


@pytest.mark.parametrize(
    ("params", "note"),
    [
        ({"agent": "agt_nope"}, "The agent filter was ignored"),
        ({"status": "exploded"}, "The status filter was ignored"),
        ({"from": "yesterday"}, "The &#x27;from&#x27; date was ignored"),
        ({"to": "2026-13-45"}, "The &#x27;to&#x27; date was ignored"),
        ({"from": "2026-11-21", "to": "2026-11-19"}, "The date range was ignored"),
        ({"alerts": "maybe"}, "The &#x27;has alerts&#x27; filter was ignored"),
        ({"external_ref": "Jane Doe"}, "The call reference filter was ignored"),
        ({"page": "many"}, None),
        ({"page": "9999"}, None),
    ],
)
def test_an_invalid_filter_is_ignored_with_a_visible_note(acme_client, seeded, params, note):
    response = acme_client.get("/sessions/", params)
    assert response.status_code == 200
    assert len(_listed_ids(response)) == len(seeded.sessions)
    if note:
        assert note in response.content.decode()


def test_another_accounts_agent_id_is_an_ignored_filter_not_a_leak(acme_client, seeded):
    globex_agent = Agent.objects.get(account=seeded.other_account)
    response = acme_client.get("/sessions/", {"agent": globex_agent.id})
    assert "The agent filter was ignored" in response.content.decode()
    assert set(_listed_ids(response)) == {s.id for s in seeded.sessions}


def test_sessions_list_is_paginated_and_keeps_the_filters_in_page_links(acme_client, seeded):
    agent = Agent.objects.get(account=seeded.account, name="Billing line")
    base = datetime(2026, 10, 1, tzinfo=UTC)
    for n in range(SESSIONS_PER_PAGE + 3):
        start_session(agent, external_ref=f"bulk-{n:03d}", started_at=base + timedelta(minutes=n))
    first = acme_client.get("/sessions/", {"agent": agent.id})
    html = first.content.decode()
    assert len(_listed_ids(first)) == SESSIONS_PER_PAGE
    assert "Page 1 of 2" in html
    assert f'href="?agent={agent.id}&amp;page=2"' in html
    second = acme_client.get("/sessions/", {"agent": agent.id, "page": 2})
    assert len(_listed_ids(second)) == SESSIONS_PER_PAGE + 3 + 2 - SESSIONS_PER_PAGE
    assert not set(_listed_ids(first)) & set(_listed_ids(second))


def test_a_user_without_an_account_sees_no_sessions(client, seeded):
    loner = get_user_model().objects.create_user(username="loner@x.test", email="loner@x.test", password="pw")
    client.force_login(loner)
    response = client.get("/sessions/")
    assert response.status_code == 200
    assert _listed_ids(response) == []
    assert client.get("/agents/").status_code == 200
    assert client.get(f"/sessions/{seeded.sessions[0].id}/").status_code == 404


def test_agents_page_shows_policy_and_latest_sessions_of_the_accounts_agents_only(acme_client, seeded):
    intake = Agent.objects.select_related("policy").get(account=seeded.account, name="Intake line")
    base = datetime(2026, 12, 1, tzinfo=UTC)
    newest = [
        start_session(intake, external_ref=f"recent-{n}", started_at=base + timedelta(hours=n))[0]
        for n in range(RECENT_SESSIONS_PER_AGENT + 2)
    ]
    response = acme_client.get("/agents/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Intake line" in html and "Billing line" in html
    assert "Front desk" not in html and "clinic-basic" not in html
    assert intake.policy.sha256 in html
    assert "name: healthcare-default" in html and "version: 3" in html  # the YAML itself
    section = html.split('id="agent-' + intake.id + '"', 1)[1].split("</section>", 1)[0]
    listed = re.findall(r'href="/sessions/(sess_[0-9A-Z]{26})/"', section)
    assert listed == [s.id for s in reversed(newest)][:RECENT_SESSIONS_PER_AGENT]
    intake_total = Session.objects.filter(agent=intake).count()
    assert f"All {intake_total} sessions" in section
    assert f'href="/sessions/?agent={intake.id}"' in section


def test_another_accounts_user_sees_only_their_own_world(client, seeded):
    client.force_login(seeded.other_account.memberships.get().user)
    html = client.get("/sessions/").content.decode()
    assert set(re.findall(r"sess_[0-9A-Z]{26}", html)) == {s.id for s in seeded.other_sessions}
    agents_html = client.get("/agents/").content.decode()
    assert "Front desk" in agents_html and "Intake line" not in agents_html


@pytest.mark.parametrize(
    ("ms", "text"),
    [(None, "—"), (2000, "2.0 s"), (41_500, "41.5 s"), (64_000, "1 min 04 s"), (7_500_000, "2 h 05 min")],
)
def test_durations_are_human_readable(ms, text):
    assert format_duration(ms) == text


def test_agents_page_is_paginated(acme_client, seeded):
    policy = Agent.objects.filter(account=seeded.account).first().policy
    for n in range(AGENTS_PER_PAGE):
        Agent.objects.create(account=seeded.account, name=f"Line {n:02d}", policy=policy, platform="vapi")
    first = acme_client.get("/agents/").content.decode()
    assert "Page 1 of 2" in first
    assert 'href="?page=2" rel="next">Next →</a>' in first
    assert 'rel="prev"' not in first
    second = acme_client.get("/agents/", {"page": 2}).content.decode()
    assert 'href="?page=1" rel="prev">← Previous</a>' in second
    assert 'rel="next"' not in second
