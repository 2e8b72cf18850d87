"""POST /api/v1/sessions/{id}/events and /end: strict all-or-nothing batches, idempotency, sealing, limits."""

import json

import pytest
from django.urls import reverse

from audit.events import MAX_LISTED_PROBLEMS
from audit.models import AuditEvent, IdempotencyRecord, Session
from audit.signing import signature_verifies
from audit.writing import start_session
from tests.audit.api_support import bearer_client, egress, issue_token, mixed_batch, redacted
from tests.conftest import T0


@pytest.fixture
def session(agent):
    return start_session(agent, external_ref="call-1", started_at=T0)[0]


@pytest.fixture
def client(acme):
    return bearer_client(issue_token(acme, "events:write", "sessions:read"))


def events_url(session) -> str:
    return reverse("audit:session-events", args=[session.id])


def end_url(session) -> str:
    return reverse("audit:session-end", args=[session.id])


def test_append_returns_positions_and_hashes_and_no_event_contents(client, session):
    response = client.post(events_url(session), {"events": mixed_batch(0, 3)}, format="json")

    assert response.status_code == 201
    session.refresh_from_db()
    body = response.json()
    receipt = body.pop("receipt")
    assert body == {
        "session_id": session.id,
        "appended": 3,
        "first_seq": 1,
        "last_seq": 3,
        "tree_size": 4,
        "chain_head_hex": session.chain_head,
        "merkle_root_hex": session.merkle_root_hex,
    }
    assert {name: receipt[name] for name in ("session_id", "tree_size", "merkle_root_hex", "chain_head_hex")} == {
        "session_id": session.id,
        "tree_size": 4,
        "merkle_root_hex": session.merkle_root_hex,
        "chain_head_hex": session.chain_head,
    }
    assert signature_verifies(receipt)
    stored = [
        json.loads(c)
        for c in AuditEvent.objects.filter(session=session).order_by("seq").values_list("canonical", flat=True)
    ]
    assert [e["kind"] for e in stored] == ["session.started", "egress.forwarded", "phi.redacted", "phi.redacted"]
    assert stored[2]["span"] == [0, 9] and stored[2]["seq"] == 2 and stored[2]["session_id"] == session.id


BAD_EVENTS = [
    pytest.param({**redacted(1), "kind": "phi.whispered"}, "kind", id="unknown-kind"),
    pytest.param({**redacted(1), "value": "Jane Doe"}, "value", id="extra-field-value"),
    pytest.param(redacted(1, span=[0]), "span", id="span-one-int"),
    pytest.param(redacted(1, span=[0, "9"]), "span.1", id="span-not-ints"),
    pytest.param(redacted(1, span=[0, 9, 12]), "span", id="span-three-ints"),
    pytest.param(redacted(1, confidence=1.5), "confidence", id="confidence-above-1"),
    pytest.param(redacted(1, confidence=-0.1), "confidence", id="confidence-below-0"),
    pytest.param({k: v for k, v in redacted(1).items() if k != "ts"}, "ts", id="missing-ts"),
    pytest.param(redacted(1, ts="2026-02-30T10:00:00.000Z"), "ts", id="ts-february-30"),
    pytest.param(redacted(1, ts="0000-01-01T00:00:00.000Z"), "ts", id="ts-year-0"),
    pytest.param(redacted(1, ts="2026-05-03T21:14:32Z"), "ts", id="ts-without-milliseconds"),
    pytest.param({**redacted(1), "seq": 7}, "seq", id="client-seq"),
    pytest.param({**redacted(1), "prev_hash": "0" * 64}, "prev_hash", id="client-prev-hash"),
    pytest.param({**egress(1), "session_id": "sess_01JD00000000000000000000AA"}, "session_id", id="client-session"),
    pytest.param(
        {"ts": redacted(1)["ts"], "kind": "session.ended", "status": "ok", "duration_ms": 5}, "kind", id="server-kind"
    ),
]


@pytest.mark.parametrize(("bad_event", "field"), BAD_EVENTS)
def test_batch_with_one_bad_event_writes_nothing_and_names_index_and_field(client, session, bad_event, field):
    batch = [redacted(0), egress(1), bad_event, redacted(3)]

    response = client.post(events_url(session), {"events": batch}, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    assert {(d["index"], d["field"]) for d in error["details"]["events"]} == {(2, field)}  # one field, maybe 2 rules
    assert "Jane" not in response.content.decode()  # a submitted value is never echoed
    assert AuditEvent.objects.filter(session=session).count() == 1
    session.refresh_from_db()
    assert session.tree_size == 1


def test_every_bad_event_of_a_batch_is_named(client, session):
    batch = [redacted(0, confidence=2), redacted(1), {**egress(2), "baa": "yes"}]

    response = client.post(events_url(session), {"events": batch}, format="json")

    assert response.status_code == 400
    details = response.json()["error"]["details"]["events"]
    assert [(d["index"], d["field"]) for d in details] == [(0, "confidence"), (2, "baa")]


def test_an_event_missing_every_field_names_each_missing_field_once(client, session):
    response = client.post(events_url(session), {"events": [redacted(0), {"kind": "phi.redacted"}]}, format="json")

    assert response.status_code == 400
    details = response.json()["error"]["details"]
    expected = ["ts", "turn", "pass", "entity_kind", "span", "action", "token_kind", "kid"]  # confidence is optional
    assert [(d["index"], d["field"]) for d in details["events"]] == [(1, field) for field in expected]
    assert {d["message"] for d in details["events"]} == {"required field is missing"}
    assert details["problem_count"] == len(expected)
    assert AuditEvent.objects.filter(session=session).count() == 1  # session.started only


def test_every_unknown_field_is_named_once(client, session):
    response = client.post(events_url(session), {"events": [redacted(0, zeta=1, alpha=2)]}, format="json")

    assert [d["field"] for d in response.json()["error"]["details"]["events"]] == ["alpha", "zeta"]


def test_problems_of_a_large_batch_are_capped_and_counted(client, session):
    batch = [{"kind": "phi.rehydrated"} for _ in range(100)]  # 4 missing fields each

    details = client.post(events_url(session), {"events": batch}, format="json").json()["error"]["details"]

    assert len(details["events"]) == MAX_LISTED_PROBLEMS
    assert details["problem_count"] == 400
    assert details["truncated"] is True
    assert details["events"][-1] == {"index": 49, "field": "token_kind", "message": "required field is missing"}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param({"events": []}, 400, id="empty"),
        pytest.param({"events": mixed_batch(0, 1001)}, 400, id="over-1000"),
        pytest.param({"events": mixed_batch(0, 1), "note": "x"}, 400, id="unknown-envelope-field"),
        pytest.param([redacted(0)], 400, id="bare-list"),
        pytest.param({}, 400, id="no-events"),
    ],
)
def test_malformed_batches_are_refused(client, session, body, status):
    response = client.post(events_url(session), body, format="json")

    assert response.status_code == status
    assert response.json()["error"]["code"] == "validation_failed"
    assert AuditEvent.objects.filter(session=session).count() == 1


def test_a_full_batch_of_1000_is_accepted(client, session):
    response = client.post(events_url(session), {"events": mixed_batch(0, 1000)}, format="json")

    assert response.status_code == 201
    assert response.json()["tree_size"] == 1001


def test_malformed_json_is_a_validation_error(client, session):
    response = client.post(events_url(session), b'{"events": [', content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_failed"


def test_body_over_the_limit_is_413_and_nothing_is_written(client, session, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    batch = mixed_batch(0, 100)
    assert len(json.dumps({"events": batch})) > 10_000

    response = client.post(events_url(session), {"events": batch}, format="json")

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert response["X-Request-ID"].startswith("req_")
    assert AuditEvent.objects.filter(session=session).count() == 1


def test_default_body_limit_is_2_mib(settings):
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == 2 * 1024 * 1024


def test_retried_batch_with_same_idempotency_key_is_not_appended_twice(client, session):
    batch = mixed_batch(0, 5)
    first = client.post(events_url(session), {"events": batch}, format="json", HTTP_IDEMPOTENCY_KEY="batch-0001")
    again = client.post(events_url(session), {"events": batch}, format="json", HTTP_IDEMPOTENCY_KEY="batch-0001")

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert AuditEvent.objects.filter(session=session).count() == 6
    record = IdempotencyRecord.objects.get(session=session)
    assert record.key == "batch-0001" and record.response_body == first.json()


def test_same_batch_reserialised_with_other_key_order_is_recognised_as_a_retry(client, session):
    batch = mixed_batch(0, 2)
    client.post(events_url(session), {"events": batch}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    reordered = json.dumps({"events": [dict(reversed(list(e.items()))) for e in batch]}, indent=2)

    again = client.post(events_url(session), reordered, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert AuditEvent.objects.filter(session=session).count() == 3


def test_idempotency_key_reused_for_another_batch_is_400_and_writes_nothing(client, session):
    client.post(events_url(session), {"events": mixed_batch(0, 2)}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    response = client.post(
        events_url(session), {"events": mixed_batch(5, 2)}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_failed" and error["details"] == {"field": "Idempotency-Key"}
    assert AuditEvent.objects.filter(session=session).count() == 3


def test_idempotency_keys_are_per_session(client, agent, session):
    other = start_session(agent, external_ref="call-2", started_at=T0)[0]
    batch = mixed_batch(0, 2)

    first = client.post(events_url(session), {"events": batch}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    second = client.post(events_url(other), {"events": batch}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert first.status_code == second.status_code == 201
    assert "Idempotent-Replayed" not in second
    assert AuditEvent.objects.filter(session=other).count() == 3


def test_failed_batch_does_not_consume_its_idempotency_key(client, session):
    bad = client.post(
        events_url(session), {"events": [redacted(0, confidence=9)]}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    good = client.post(events_url(session), {"events": [redacted(0)]}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert bad.status_code == 400 and good.status_code == 201
    assert IdempotencyRecord.objects.filter(session=session).count() == 1


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "é-accent", "-leading-dash"])
def test_malformed_idempotency_key_is_400(client, session, key):
    response = client.post(events_url(session), {"events": [redacted(0)]}, format="json", HTTP_IDEMPOTENCY_KEY=key)

    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"field": "Idempotency-Key"}
    assert AuditEvent.objects.filter(session=session).count() == 1


def test_end_appends_session_ended_and_seals(client, session):
    client.post(events_url(session), {"events": mixed_batch(0, 2)}, format="json")

    response = client.post(end_url(session), {"status": "ok"}, format="json")

    assert response.status_code == 200
    body = response.json()
    session.refresh_from_db()
    assert body["status"] == "ok" and body["sealed"] is True and body["tree_size"] == 4
    assert body["seal"]["tree_size"] == 4
    assert body["seal"]["merkle_root_hex"] == body["merkle_root_hex"] == session.merkle_root_hex
    assert body["seal"]["signature"]["alg"] == "Ed25519"
    assert body["counts_by_kind"] == {
        "egress.forwarded": 1,
        "phi.redacted": 1,
        "session.ended": 1,
        "session.started": 1,
    }
    last = AuditEvent.objects.filter(session=session).order_by("-seq").first()
    assert last.kind == "session.ended" and json.loads(last.canonical)["status"] == "ok"


def test_appending_to_an_ended_session_is_409_and_writes_nothing(client, session):
    client.post(end_url(session), {"status": "partial"}, format="json")
    before = AuditEvent.objects.filter(session=session).count()

    response = client.post(events_url(session), {"events": mixed_batch(0, 3)}, format="json")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "session_ended"
    assert AuditEvent.objects.filter(session=session).count() == before
    session.refresh_from_db()
    assert session.tree_size == before == session.seal["tree_size"]


def test_ending_twice_is_409(client, session):
    assert client.post(end_url(session), {"status": "ok"}, format="json").status_code == 200

    response = client.post(end_url(session), {"status": "ok"}, format="json")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "session_ended"


def test_retry_of_an_acknowledged_batch_after_the_end_still_gets_its_original_answer(client, session):
    batch = mixed_batch(0, 2)
    first = client.post(events_url(session), {"events": batch}, format="json", HTTP_IDEMPOTENCY_KEY="k-9")
    client.post(end_url(session), {"status": "ok"}, format="json")

    again = client.post(events_url(session), {"events": batch}, format="json", HTTP_IDEMPOTENCY_KEY="k-9")

    assert again.status_code == 201 and again.json() == first.json()


@pytest.mark.parametrize(
    "body", [{"status": "done"}, {}, {"status": "ok", "duration_ms": 5}, {"status": ["ok"]}], ids=str
)
def test_end_with_invalid_body_is_400_and_does_not_seal(client, session, body):
    response = client.post(end_url(session), body, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_failed"
    session.refresh_from_db()
    assert not session.is_sealed


def test_append_is_a_bounded_number_of_queries(client, session, django_assert_max_num_queries):
    # token, rate window, session, key lookup, savepoint, lock, insert, chain update, key check + insert, release.
    # (90 events: one INSERT on SQLite, which splits bulk inserts by its parameter limit; PostgreSQL uses one COPY.)
    client.post(events_url(session), {"events": mixed_batch(0, 1)}, format="json")  # last_used_at written once
    with django_assert_max_num_queries(11):
        response = client.post(
            events_url(session), {"events": mixed_batch(1, 90)}, format="json", HTTP_IDEMPOTENCY_KEY="k-q"
        )
    assert response.status_code == 201


def test_session_row_reflects_the_chain_after_appends(client, session):
    for start in (0, 10, 20):
        client.post(events_url(session), {"events": mixed_batch(start, 10)}, format="json")

    session = Session.objects.get(pk=session.pk)
    assert session.tree_size == 31
    assert session.redaction_count == sum(1 for i in range(30) if i % 3)


def test_keyed_batch_with_an_integer_beyond_64_bits_is_a_validation_error(client, session):
    body = json.dumps({"events": [redacted(0, turn=2**70)]})

    response = client.post(events_url(session), body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-big")

    assert response.status_code == 400
    assert response.json()["error"]["details"]["events"][0]["field"] == "turn"
    assert not IdempotencyRecord.objects.exists()
