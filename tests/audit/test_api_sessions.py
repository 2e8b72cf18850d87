"""POST/GET /api/v1/sessions, GET /api/v1/sessions/{id}, GET /api/v1/agents[/{id}]."""

import json
from datetime import timedelta

import pytest
from django.urls import reverse

from audit.models import Agent, AuditEvent, Policy, Session
from audit.timestamps import format_ts
from audit.writing import append_events, end_session, start_session
from tests.audit.api_support import bearer_client, issue_token, mixed_batch
from tests.conftest import POLICY_YAML, T0

SESSIONS = "/api/v1/sessions"


@pytest.fixture
def client(acme):
    return bearer_client(issue_token(acme, "events:write", "sessions:read"))


def start_body(agent, ref="call-1", **extra) -> dict:
    return {"agent_id": agent.id, "external_ref": ref, "platform": "vapi", **extra}


def test_session_urls_are_named_in_the_audit_namespace():
    assert reverse("audit:session-list") == SESSIONS
    assert reverse("audit:session-detail", args=["sess_x"]) == f"{SESSIONS}/sess_x"
    assert reverse("audit:session-events", args=["sess_x"]) == f"{SESSIONS}/sess_x/events"
    assert reverse("audit:session-end", args=["sess_x"]) == f"{SESSIONS}/sess_x/end"
    assert reverse("audit:agent-list") == "/api/v1/agents"
    assert reverse("audit:agent-detail", args=["agt_x"]) == "/api/v1/agents/agt_x"


def test_start_creates_session_snapshots_policy_and_appends_session_started(client, agent, policy):
    response = client.post(SESSIONS, start_body(agent, started_at="2026-05-03T23:14:30.250+02:00"), format="json")

    assert response.status_code == 201
    body = response.json()
    session = Session.objects.get(pk=body["id"])
    assert body["id"].startswith("sess_") and session.account == agent.account
    assert body["started_at"] == "2026-05-03T21:14:30.250Z"
    assert body["policy"] == {"name": "healthcare-default", "version": 3, "sha256": policy.sha256}
    assert body["status"] == "active" and body["sealed"] is False and body["seal"] is None
    assert body["tree_size"] == 1 and body["counts_by_kind"] == {"session.started": 1}
    assert body["merkle_root_hex"] == session.merkle_root_hex and body["chain_head_hex"] == session.chain_head
    assert session.policy_snapshot == POLICY_YAML
    started = json.loads(AuditEvent.objects.get(session=session).canonical)
    assert started["kind"] == "session.started" and started["seq"] == 0
    assert started["agent_id"] == agent.id and started["platform"] == "vapi"
    assert started["ts"] == "2026-05-03T21:14:30.250Z"


def test_same_external_ref_for_same_agent_returns_the_existing_session(client, agent):
    first = client.post(SESSIONS, start_body(agent), format="json")
    again = client.post(SESSIONS, start_body(agent), format="json")

    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert Session.objects.count() == 1 and AuditEvent.objects.count() == 1


def test_same_external_ref_for_another_agent_is_another_session(client, agent, acme, policy):
    other = Agent.objects.create(
        account=acme, name="Billing line", platform="retell", upstream_model="m", policy=policy
    )

    first = client.post(SESSIONS, start_body(agent), format="json")
    second = client.post(SESSIONS, start_body(other), format="json")

    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]


def test_later_policy_versions_do_not_change_a_started_session(client, agent, acme):
    session_id = client.post(SESSIONS, start_body(agent), format="json").json()["id"]
    agent.policy = Policy.objects.create(
        account=acme, name="healthcare-default", version=4, yaml_text=POLICY_YAML.replace("version: 3", "version: 4")
    )
    agent.save()

    body = client.get(f"{SESSIONS}/{session_id}").json()

    assert body["policy"]["version"] == 3
    assert client.post(SESSIONS, start_body(agent, "call-2"), format="json").json()["policy"]["version"] == 4


def test_platform_defaults_to_the_agents(client, agent):
    body = client.post(SESSIONS, {"agent_id": agent.id, "external_ref": "call-1"}, format="json").json()

    assert body["platform"] == agent.platform


@pytest.mark.parametrize(
    ("change", "field"),
    [
        pytest.param({"external_ref": "Jane Doe 555-0100"}, "external_ref", id="free-text-ref"),
        pytest.param({"external_ref": "x" * 129}, "external_ref", id="ref-too-long"),
        pytest.param({"external_ref": ""}, "external_ref", id="ref-empty"),
        pytest.param({"external_ref": "jane@example.com"}, "external_ref", id="ref-email"),
        pytest.param({"platform": "Vapi Cloud"}, "platform", id="platform-free-text"),
        pytest.param({"started_at": "2026-05-03T21:14:30"}, "started_at", id="naive-time"),
        pytest.param({"started_at": "yesterday"}, "started_at", id="not-a-time"),
        pytest.param({"started_at": "1999-12-31T23:59:59Z"}, "started_at", id="before-2000"),
        pytest.param({"started_at": "2999-01-01T00:00:00Z"}, "started_at", id="future"),
        pytest.param({"transcript": "hello"}, "transcript", id="unknown-field"),
        pytest.param({"external_ref": 12}, "external_ref", id="ref-not-string"),
    ],
)
def test_start_refuses_invalid_input_naming_the_field(client, agent, change, field):
    response = client.post(SESSIONS, {**start_body(agent), **change}, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    assert list(error["details"]["fields"]) == [field]
    assert "Jane" not in response.content.decode() and "hello" not in response.content.decode()
    assert Session.objects.count() == 0


def test_start_for_another_accounts_agent_is_404_agent_not_found(client, globex_agent):
    response = client.post(SESSIONS, start_body(globex_agent), format="json")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "agent_not_found"
    assert Session.objects.count() == 0


@pytest.mark.parametrize("agent_id", ["agt_01JD00000000000000000000AA", "not-an-id", ""])
def test_start_for_unknown_or_malformed_agent_is_404_or_400(client, agent_id):
    response = client.post(SESSIONS, {"agent_id": agent_id, "external_ref": "call-1"}, format="json")

    expected = (400, "validation_failed") if agent_id == "" else (404, "agent_not_found")
    assert (response.status_code, response.json()["error"]["code"]) == expected


def test_session_detail_has_every_documented_field_and_counts_by_kind(client, agent):
    session = start_session(agent, external_ref="call-1", started_at=T0)[0]
    append_events(session, mixed_batch(0, 6))
    end_session(session, status="error", now=T0 + timedelta(minutes=3))

    body = client.get(f"{SESSIONS}/{session.id}").json()

    session.refresh_from_db()
    assert body == {
        "id": session.id,
        "agent_id": agent.id,
        "external_ref": "call-1",
        "platform": "vapi",
        "upstream_model": "openai:gpt-4o-mini",
        "status": "error",
        "started_at": format_ts(T0),
        "ended_at": format_ts(T0 + timedelta(minutes=3)),
        "duration_ms": 180_000,
        "policy": {"name": "healthcare-default", "version": 3, "sha256": session.policy_sha256},
        "tree_size": 8,
        "merkle_root_hex": session.seal["merkle_root_hex"],
        "chain_head_hex": session.chain_head,
        "sealed": True,
        "seal": session.seal,
        "counts_by_kind": {"egress.forwarded": 2, "phi.redacted": 4, "session.ended": 1, "session.started": 1},
        "redaction_count": 4,
        "alert_count": 0,
    }


def test_session_detail_is_a_fixed_number_of_queries(client, agent, django_assert_max_num_queries):
    session = start_session(agent, external_ref="call-1", started_at=T0)[0]
    append_events(session, mixed_batch(0, 300))
    client.get(f"{SESSIONS}/{session.id}")  # last_used_at written once a minute

    with django_assert_max_num_queries(4):  # token, rate window, session, GROUP BY kind
        assert client.get(f"{SESSIONS}/{session.id}").status_code == 200


@pytest.mark.parametrize("session_id", ["sess_01JD00000000000000000000AA", "sess_bad", "x" * 300])
def test_unknown_or_malformed_session_is_404_session_not_found(client, session_id):
    response = client.get(f"{SESSIONS}/{session_id}")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "session_not_found"


@pytest.fixture
def many_sessions(agent, acme, policy):
    other = Agent.objects.create(
        account=acme, name="Billing line", platform="retell", upstream_model="m", policy=policy
    )
    sessions = []
    for i in range(7):
        owner = agent if i % 2 == 0 else other
        # Two sessions share each start time, so the id breaks ties in the order.
        sessions.append(start_session(owner, external_ref=f"call-{i}", started_at=T0 + timedelta(minutes=i // 2))[0])
    end_session(sessions[0], status="ok", now=T0 + timedelta(hours=1))
    return sessions


def test_list_is_newest_first_with_cursor_pagination(client, many_sessions):
    expected = [s.id for s in sorted(many_sessions, key=lambda s: (s.started_at, s.id), reverse=True)]

    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        body = client.get(SESSIONS, params).json()
        seen += [s["id"] for s in body["sessions"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break

    assert seen == expected
    assert pages == 3


def test_list_filters_by_agent_status_and_since(client, many_sessions, agent):
    by_agent = client.get(SESSIONS, {"agent_id": agent.id}).json()["sessions"]
    ended = client.get(SESSIONS, {"status": "ok"}).json()["sessions"]
    recent = client.get(SESSIONS, {"since": format_ts(T0 + timedelta(minutes=2))}).json()["sessions"]

    assert {s["id"] for s in by_agent} == {s.id for s in many_sessions[::2]}
    assert [s["id"] for s in ended] == [many_sessions[0].id]
    assert {s["id"] for s in recent} == {s.id for s in many_sessions[4:]}


def test_list_filters_by_external_ref(client, many_sessions, agent, acme, globex_agent):
    start_session(globex_agent, external_ref="call-3", started_at=T0)  # another account's call of the same ref

    found = client.get(SESSIONS, {"external_ref": "call-3"}).json()["sessions"]
    none = client.get(SESSIONS, {"external_ref": "call-99"}).json()["sessions"]
    combined = client.get(SESSIONS, {"external_ref": "call-3", "agent_id": agent.id}).json()["sessions"]

    assert [s["id"] for s in found] == [many_sessions[3].id]
    assert found[0]["external_ref"] == "call-3"
    assert none == []
    assert combined == []  # call-3 was taken by the other agent


def test_list_items_are_summaries(client, many_sessions):
    item = client.get(SESSIONS, {"limit": 1}).json()["sessions"][0]

    assert "counts_by_kind" not in item and "seal" not in item
    assert {"id", "merkle_root_hex", "tree_size", "sealed", "policy", "status"} <= set(item)


def test_list_is_one_query_for_the_page(client, many_sessions, django_assert_max_num_queries):
    client.get(SESSIONS)
    with django_assert_max_num_queries(3):  # token, rate window, page
        body = client.get(SESSIONS, {"limit": 200}).json()
    assert len(body["sessions"]) == 7


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"status": "ended"}, "status"),
        ({"since": "2026-05-03"}, "since"),
        ({"agent_id": "Intake line"}, "agent_id"),
        ({"cursor": "!!not-a-cursor!!"}, "cursor"),
        ({"cursor": "WyJ4Il0"}, "cursor"),  # a well-formed cursor of another shape
        ({"external_ref": "call 3; drop"}, "external_ref"),
    ],
)
def test_list_refuses_invalid_parameters(client, params, field):
    response = client.get(SESSIONS, params)

    assert response.status_code == 400
    assert list(response.json()["error"]["details"]["fields"]) == [field]


def test_list_never_shows_another_accounts_sessions(client, many_sessions, globex_agent):
    start_session(globex_agent, external_ref="globex-call", started_at=T0)

    ids = {s["id"] for s in client.get(SESSIONS, {"limit": 200}).json()["sessions"]}

    assert ids == {s.id for s in many_sessions}


def test_agents_list_and_detail(client, agent, acme, policy, globex_agent):
    second = Agent.objects.create(
        account=acme, name="Billing line", platform="retell", upstream_model="m", policy=policy
    )
    start_session(agent, external_ref="call-1", started_at=T0)

    page = client.get("/api/v1/agents", {"limit": 1}).json()
    rest = client.get("/api/v1/agents", {"cursor": page["next_cursor"]}).json()
    detail = client.get(f"/api/v1/agents/{agent.id}").json()

    assert [a["id"] for a in page["agents"] + rest["agents"]] == sorted([agent.id, second.id])
    assert rest["next_cursor"] is None
    assert detail == {
        "id": agent.id,
        "name": "Intake line",
        "platform": "vapi",
        "upstream_model": "openai:gpt-4o-mini",
        "policy": {"id": policy.id, "name": "healthcare-default", "version": 3, "sha256": policy.sha256},
        "created_at": format_ts(agent.created_at),
        "session_count": 1,
    }
    assert client.get(f"/api/v1/agents/{globex_agent.id}").json()["error"]["code"] == "agent_not_found"
