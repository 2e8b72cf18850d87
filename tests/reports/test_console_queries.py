"""Each console page runs a bounded number of queries, whatever the number of sessions, agents or events."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import Agent
from audit.timestamps import format_ts
from audit.writing import append_events, end_session, start_session

pytestmark = pytest.mark.django_db

# Auth (django session, user, membership, account) + the page's own queries + the sliding-session save.
MAX_LIST_QUERIES = 10
MAX_AGENTS_QUERIES = 10
MAX_SESSION_QUERIES = 12
T0 = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)


def _count_queries(client, url: str, **params) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, params)
    assert response.status_code == 200
    return len(captured.captured_queries)


def _redaction(moment: datetime, turn: int) -> dict:
    return {
        "ts": format_ts(moment),
        "kind": "phi.redacted",
        "turn": turn,
        "pass": "regex",
        "entity_kind": "PHONE",
        "span": [0, 12],
        "action": "tokenize",
        "token_kind": "MSKV1",
        "kid": "K_HEALTHCARE",
    }


def _leak(moment: datetime, turn: int) -> dict:
    return {"ts": format_ts(moment), "kind": "leak.detected", "turn": turn, "entity_kind": "NAME", "stage": "egress"}


def _add_agents_with_sessions(seeded, *, agents: int, sessions_each: int) -> None:
    policy = Agent.objects.filter(account=seeded.account).first().policy
    for a in range(agents):
        agent = Agent.objects.create(
            account=seeded.account,
            name=f"Extra line {a:02d}",
            platform="vapi",
            upstream_model="openai:gpt-4o-mini",
            policy=policy,
        )
        for n in range(sessions_each):
            start = T0 + timedelta(days=a, minutes=n)
            session, _ = start_session(agent, external_ref=f"extra-{a}-{n}", started_at=start)
            if n % 2:
                append_events(session, [_redaction(start, 1), _leak(start, 1)])
                end_session(session, status="ok", now=start + timedelta(seconds=30))


def test_sessions_list_runs_the_same_bounded_number_of_queries_for_6_or_66_sessions(
    acme_client, seeded, django_assert_max_num_queries
):
    with django_assert_max_num_queries(MAX_LIST_QUERIES):
        few = _count_queries(acme_client, "/sessions/")
    _add_agents_with_sessions(seeded, agents=3, sessions_each=20)
    with django_assert_max_num_queries(MAX_LIST_QUERIES):
        many = _count_queries(acme_client, "/sessions/")
    with django_assert_max_num_queries(MAX_LIST_QUERIES):
        filtered = _count_queries(
            acme_client, "/sessions/", alerts="1", status="ok", page="2", **{"from": "2026-09-01"}
        )
    assert few == many == filtered


def test_agents_page_runs_the_same_bounded_number_of_queries_for_2_or_14_agents(
    acme_client, seeded, django_assert_max_num_queries
):
    with django_assert_max_num_queries(MAX_AGENTS_QUERIES):
        few = _count_queries(acme_client, "/agents/")
    _add_agents_with_sessions(seeded, agents=12, sessions_each=7)
    with django_assert_max_num_queries(MAX_AGENTS_QUERIES):
        many = _count_queries(acme_client, "/agents/")
    assert few == many


def test_session_page_runs_the_same_bounded_number_of_queries_for_3_or_300_events(
    acme_client, seeded, django_assert_max_num_queries
):
    agent = Agent.objects.get(account=seeded.account, name="Intake line")
    small, _ = start_session(agent, external_ref="small-call", started_at=T0)
    big, _ = start_session(agent, external_ref="big-call", started_at=T0 + timedelta(hours=1))
    append_events(small, [_redaction(T0, 1)])
    for batch in range(3):
        append_events(big, [_redaction(T0 + timedelta(hours=1, seconds=batch), turn) for turn in range(100)])
    end_session(small, status="ok", now=T0 + timedelta(minutes=1))
    end_session(big, status="ok", now=T0 + timedelta(hours=1, minutes=5))
    assert big.tree_size == 302

    with django_assert_max_num_queries(MAX_SESSION_QUERIES):
        few = _count_queries(acme_client, f"/sessions/{small.id}/")
    with django_assert_max_num_queries(MAX_SESSION_QUERIES):
        many = _count_queries(acme_client, f"/sessions/{big.id}/")
    assert few == many
