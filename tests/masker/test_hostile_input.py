"""Bad input of every kind gets a 4xx in the error envelope and writes nothing, on SQLite and PostgreSQL alike
(the suite runs on both)."""

import json

import pytest
from django.test import Client

from audit.models import AuditEvent, Session
from masker.models import LoginFailureWindow
from tests.audit.api_support import bearer_client, egress, issue_token, redacted


@pytest.fixture
def writer(acme, agent):
    """A token client of Acme, an open session of Acme's agent, and a snapshot of what is stored."""
    client = bearer_client(issue_token(acme))
    body = {"agent_id": agent.id, "external_ref": "call-1", "started_at": "2026-05-03T21:14:30.000Z"}
    response = client.post("/api/v1/sessions", body, format="json")
    assert response.status_code == 201
    return client, response.json()["id"]


def _stored() -> tuple[int, int, int]:
    return AuditEvent.objects.count(), Session.objects.count(), LoginFailureWindow.objects.count()


def _assert_refused(response, status: int, code: str, before: tuple[int, int, int]) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code
    assert error["request_id"] == response["X-Request-ID"]
    assert "{" not in error["message"]  # every message filled in
    assert _stored() == before
    return error


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_a_body_nested_1000_deep_is_a_400_on_append(writer):
    client, session_id = writer
    before = _stored()
    body = '{"events": ' + _nested(1000) + "}"
    response = client.generic("POST", f"/api/v1/sessions/{session_id}/events", body, "application/json")
    error = _assert_refused(response, 400, "validation_failed", before)
    assert "nested" in error["message"]


def test_a_body_nested_1000_deep_is_a_400_on_the_unauthenticated_login(db):
    before = _stored()
    body = '{"email": ' + _nested(1000) + ', "password": "x"}'
    response = Client().generic("POST", "/api/v1/auth/login", body, "application/json")
    _assert_refused(response, 400, "validation_failed", before)


def test_nesting_within_the_bound_still_parses_and_is_judged_by_the_schema(writer):
    client, session_id = writer
    before = _stored()
    body = '{"events": [' + _nested(20) + "]}"
    response = client.generic("POST", f"/api/v1/sessions/{session_id}/events", body, "application/json")
    error = _assert_refused(response, 400, "validation_failed", before)
    assert error["details"]["events"][0]["index"] == 0


@pytest.mark.parametrize("number", ["1.0", "1e3", "1E0", "123456789012345678901234567890"])
def test_a_json_number_that_is_not_an_integer_is_refused_for_an_integer_field(writer, number):
    client, session_id = writer
    before = _stored()
    event = json.dumps(egress(1)).replace('"turn": 1', f'"turn": {number}')
    body = '{"events": [' + event + "]}"
    response = client.generic("POST", f"/api/v1/sessions/{session_id}/events", body, "application/json")
    error = _assert_refused(response, 400, "validation_failed", before)
    assert {"index": 0, "field": "turn", "message": "must be of type integer"} in error["details"]["events"]


def test_the_events_of_these_tests_are_valid_as_sent(writer):
    client, session_id = writer
    batch = {"events": [egress(1), redacted(2)]}
    assert client.post(f"/api/v1/sessions/{session_id}/events", batch, format="json").status_code == 201


def test_a_float_in_a_span_is_refused(writer):
    client, session_id = writer
    before = _stored()
    body = json.dumps({"events": [redacted(1)]}).replace('"span": [0, 9]', '"span": [0.0, 9]')
    response = client.generic("POST", f"/api/v1/sessions/{session_id}/events", body, "application/json")
    error = _assert_refused(response, 400, "validation_failed", before)
    assert error["details"]["events"][0]["field"] == "span.0"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/sessions?cursor=%00",
        "/api/v1/sessions?cursor=abc%00def",
        "/api/v1/sessions?status=ok%00",
        "/api/v1/agents?cursor=%00",
        "/api/v1/sessions?since=2026-05-03T21:14:30Z%00",
    ],
)
def test_nul_in_a_query_parameter_is_a_400(writer, path):
    client, _ = writer
    before = _stored()
    _assert_refused(client.get(path), 400, "validation_failed", before)


def test_nul_in_a_json_string_is_a_400(writer, agent):
    client, _ = writer
    before = _stored()
    body = json.dumps({"agent_id": agent.id, "external_ref": "call\u00002"})
    response = client.generic("POST", "/api/v1/sessions", body, "application/json")
    error = _assert_refused(response, 400, "validation_failed", before)
    assert "NUL" in error["message"]


def test_nul_in_a_json_key_is_a_400(writer):
    client, session_id = writer
    before = _stored()
    body = json.dumps({"events": [{**egress(1), "x\u0000": 1}]})
    response = client.generic("POST", f"/api/v1/sessions/{session_id}/events", body, "application/json")
    _assert_refused(response, 400, "validation_failed", before)


def test_console_date_filter_at_the_end_of_the_calendar_is_ignored_with_a_note(acme_client):
    response = acme_client.get("/sessions/?to=9999-12-31&from=9999-12-31")
    assert response.status_code == 200
    assert "out of range" in response.content.decode()


def test_a_control_byte_in_the_authorization_header_is_a_400_envelope(db):
    before = _stored()
    response = Client().get("/api/v1/me", HTTP_AUTHORIZATION="Bearer mk_abc\x01def")
    _assert_refused(response, 400, "validation_failed", before)


def test_a_disallowed_host_under_the_api_is_a_400_envelope(db):
    before = _stored()
    response = Client().get("/api/v1/keys", HTTP_HOST="evil.example")
    _assert_refused(response, 400, "validation_failed", before)


def test_a_disallowed_host_outside_the_api_is_a_plain_400_page(db):
    response = Client().get("/login/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")


def test_405_names_the_method(writer):
    client, _ = writer
    before = _stored()
    error = _assert_refused(client.delete("/api/v1/me"), 405, "method_not_allowed", before)
    assert error["message"] == 'Method "DELETE" not allowed.'


@pytest.mark.parametrize("content_type", ["*/*", "application/*", "text/plain", "application/x-www-form-urlencoded"])
def test_a_body_that_is_not_declared_as_json_is_refused(writer, agent, content_type):
    client, _ = writer
    before = _stored()
    body = json.dumps({"agent_id": agent.id, "external_ref": "call-2"})
    response = client.generic("POST", "/api/v1/sessions", body, content_type)
    error = _assert_refused(response, 400, "validation_failed", before)
    assert "application/json" in error["message"]


def test_json_with_a_charset_parameter_is_accepted(writer, agent):
    client, _ = writer
    body = json.dumps({"agent_id": agent.id, "external_ref": "call-2"})
    response = client.generic("POST", "/api/v1/sessions", body, "application/json; charset=utf-8")
    assert response.status_code == 201


@pytest.mark.parametrize("body", ['{"events": [NaN]}', '{"events": [1,]}', b'{"events": ["\xff"]}'])
def test_malformed_json_is_a_400(writer, body):
    client, session_id = writer
    before = _stored()
    response = client.generic("POST", f"/api/v1/sessions/{session_id}/events", body, "application/json")
    error = _assert_refused(response, 400, "validation_failed", before)
    assert error["message"] == "Malformed JSON body."


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("vendor", "John.Smith"),
        ("vendor", "555-123-4567"),
        ("vendor", "smith-1980"),
        ("kid", "JaneDoe-DOB-1980-01-01"),
        ("kid", "JANEDOE_DOB_1980"),
        ("reason", "patient_john_smith_mrn_12345678"),
    ],
)
def test_phi_shaped_identifiers_are_refused_without_echoing_them(writer, field, value):
    client, session_id = writer
    before = _stored()
    event = {
        "vendor": egress(1),
        "kid": redacted(1),
        "reason": {"ts": egress(1)["ts"], "kind": "detection.degraded", "turn": 1, "reason": "ner_timeout"},
    }[field]
    response = client.post(
        f"/api/v1/sessions/{session_id}/events", {"events": [{**event, field: value}]}, format="json"
    )
    error = _assert_refused(response, 400, "validation_failed", before)
    assert error["details"]["events"][0]["field"] == field
    assert value not in response.content.decode()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("external_ref", "555-123-4567"),
        ("external_ref", "call-555-0100"),
        ("external_ref", "123-45-6789"),
        ("external_ref", "JaneDoe-DOB-1980-01-01"),
        ("external_ref", "patient_john_smith_mrn_12345678"),
        ("external_ref", "12.31.1999"),
        ("platform", "Vapi.Cloud"),
        ("platform", "555-123-4567"),
    ],
)
def test_phi_shaped_session_fields_are_refused_without_echoing_them(writer, agent, field, value):
    client, _ = writer
    before = _stored()
    body = {"agent_id": agent.id, "external_ref": "call-3", field: value}
    response = client.post("/api/v1/sessions", body, format="json")
    error = _assert_refused(response, 400, "validation_failed", before)
    assert field in error["details"]["fields"]
    assert value not in response.content.decode()


@pytest.mark.parametrize(
    "external_ref", ["call-42", "vapi-call-7f3a", "550e8400-e29b-41d4-a716-446655440000", "CA0123456789abcdef"]
)
def test_real_call_ids_are_accepted(writer, agent, external_ref):
    client, _ = writer
    body = {"agent_id": agent.id, "external_ref": external_ref, "platform": "vapi"}
    assert client.post("/api/v1/sessions", body, format="json").status_code == 201


@pytest.mark.parametrize("kind", [{}, [], 1, None, True])
def test_an_event_kind_that_is_not_a_string_is_a_400(writer, kind):
    client, session_id = writer
    before = _stored()
    event = {"kind": kind, "ts": "2026-05-03T21:14:31.000Z", "turn": 0, "reason": "ner_timeout"}
    response = client.post(f"/api/v1/sessions/{session_id}/events", {"events": [event]}, format="json")
    error = _assert_refused(response, 400, "validation_failed", before)
    assert error["details"]["events"][0]["field"] == "kind"
