"""Receipts: every successful start, append and end answers with a signed tree head of the log as it then stood;
a replay answers with the original receipt; event times outside the session's bounds are refused."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.merkle import merkle_root
from audit.models import AuditEvent, Session
from audit.signing import signature_verifies
from audit.timestamps import format_ts
from tests.audit.api_support import bearer_client, issue_token, mixed_batch

RECEIPT_FIELDS = {"session_id", "tree_size", "merkle_root_hex", "chain_head_hex", "issued_at", "signature"}


@pytest.fixture
def client(acme):
    return bearer_client(issue_token(acme, "events:write", "sessions:read"))


def _prefix(session_id: str, size: int) -> tuple[str, str]:
    """Root and head of the first ``size`` events, recomputed from the stored hashes."""
    hashes = list(
        AuditEvent.objects.filter(session_id=session_id, seq__lt=size)
        .order_by("seq")
        .values_list("event_hash", flat=True)
    )
    return merkle_root(bytes.fromhex(h) for h in hashes).hex(), hashes[-1]


def _assert_receipt_of(receipt: dict, session_id: str, size: int) -> None:
    assert set(receipt) == RECEIPT_FIELDS
    assert (receipt["session_id"], receipt["tree_size"]) == (session_id, size)
    assert (receipt["merkle_root_hex"], receipt["chain_head_hex"]) == _prefix(session_id, size)
    assert signature_verifies(receipt)


def _events_now(start: int, size: int) -> list[dict]:
    now = format_ts(timezone.now())
    return [dict(event, ts=now) for event in mixed_batch(start, size)]


def test_start_append_and_end_each_answer_a_signed_receipt_of_the_log_then(client, agent):
    started = client.post(
        reverse("audit:session-list"), {"agent_id": agent.id, "external_ref": "call-r"}, format="json"
    )
    assert started.status_code == 201
    session_id = started.json()["id"]
    _assert_receipt_of(started.json()["receipt"], session_id, 1)

    appended = client.post(
        reverse("audit:session-events", args=[session_id]), {"events": _events_now(0, 3)}, format="json"
    )
    assert appended.status_code == 201
    _assert_receipt_of(appended.json()["receipt"], session_id, 4)

    ended = client.post(reverse("audit:session-end", args=[session_id]), {"status": "ok"}, format="json")
    assert ended.status_code == 200
    receipt = ended.json()["receipt"]
    _assert_receipt_of(receipt, session_id, 5)
    seal = Session.objects.get(pk=session_id).seal
    assert (receipt["merkle_root_hex"], receipt["issued_at"]) == (seal["merkle_root_hex"], seal["sealed_at"])


def test_replays_answer_the_original_receipt(client, agent):
    body = {"agent_id": agent.id, "external_ref": "call-replay"}
    first = client.post(reverse("audit:session-list"), body, format="json").json()
    again = client.post(reverse("audit:session-list"), body, format="json")
    assert again.status_code == 200
    assert again.json()["receipt"] == first["receipt"]

    url = reverse("audit:session-events", args=[first["id"]])
    batch = {"events": _events_now(0, 2)}
    original = client.post(url, batch, format="json", HTTP_IDEMPOTENCY_KEY="batch-1")
    replayed = client.post(url, batch, format="json", HTTP_IDEMPOTENCY_KEY="batch-1")
    assert (original.status_code, replayed.status_code) == (201, 201)
    assert replayed["Idempotent-Replayed"] == "true"
    assert replayed.json()["receipt"] == original.json()["receipt"]
    assert AuditEvent.objects.filter(session_id=first["id"]).count() == 3


@pytest.mark.parametrize(
    "moment",
    [
        lambda start: start - timedelta(minutes=5, milliseconds=1),  # before the session's start, beyond the skew
        lambda start: timezone.now() + timedelta(minutes=6),  # in the future
        lambda start: start.replace(year=1),
        lambda start: start.replace(year=9999),
    ],
)
def test_event_times_outside_the_sessions_bounds_are_refused(client, agent, moment):
    started = client.post(
        reverse("audit:session-list"), {"agent_id": agent.id, "external_ref": "call-ts"}, format="json"
    ).json()
    start = Session.objects.get(pk=started["id"]).started_at
    events = _events_now(0, 3)
    events[1]["ts"] = format_ts(moment(start))
    response = client.post(reverse("audit:session-events", args=[started["id"]]), {"events": events}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    assert error["details"]["events"] == [
        {"index": 1, "field": "ts", "message": error["details"]["events"][0]["message"]}
    ]
    assert events[1]["ts"] not in response.content.decode()  # the value is never echoed
    assert AuditEvent.objects.filter(session_id=started["id"]).count() == 1
