"""Strict validation of submitted events: unknown kinds and fields, wrong types, missing fields; nothing written."""

import pytest

from audit.events import event_errors, field_type, validate_events
from audit.models import AuditEvent
from audit.writing import append_events, start_session
from masker.errors import ValidationFailed
from tests.conftest import T0

GOOD = {
    "ts": "2026-05-03T21:14:32.481Z",
    "kind": "phi.redacted",
    "turn": 1,
    "pass": "ner",
    "entity_kind": "NAME",
    "span": [11, 24],
    "confidence": 0.94,
    "action": "tokenize",
    "token_kind": "MSKV1",
    "kid": "K_HEALTHCARE",
}


def test_valid_event_has_no_errors():
    assert event_errors(GOOD) == []


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"kind": "phi.smuggled"}, "kind", "unknown event kind"),
        ({"original": "555-0100"}, "original", "unknown field"),
        ({"turn": "one"}, "turn", "must be of type integer"),
        ({"turn": True}, "turn", "must be of type integer"),
        ({"span": [1, "x"]}, "span.1", "must be of type integer"),
        ({"span": [1, 2, 3]}, "span", "at most 2 items"),
        ({"span": [9, 2]}, "span", "start must not exceed end"),
        ({"confidence": 1.5}, "confidence", "must be <= 1"),
        ({"entity_kind": "PATIENT"}, "entity_kind", "must be one of"),
        ({"ts": "2026-05-03 21:14"}, "ts", "invalid format"),
        ({"kind": "session.ended"}, "kind", "written by the service"),
    ],
)
def test_bad_event_is_named_by_field(change, field, message):
    errors = event_errors({**GOOD, **change})
    assert errors, f"{change} should be rejected"
    assert any(e["field"] == field and message in e["message"] for e in errors), errors


@pytest.mark.parametrize(
    "change",
    [
        {"turn": True},
        {"turn": 1.5},
        {"confidence": True},
        {"span": [True, 2]},
        {"span": [9, 2]},
        {"value": "x"},
        {"kid": "has spaces in it"},
        {"kind": "session.started"},
    ],
)
def test_fast_batch_check_rejects_what_the_detailed_check_rejects(change):
    with pytest.raises(ValidationFailed):
        validate_events([GOOD, {**GOOD, **change}])
    assert validate_events([GOOD]) == [GOOD]


def test_missing_field_is_named():
    event = dict(GOOD)
    del event["entity_kind"]
    assert event_errors(event) == [{"field": "entity_kind", "message": "required field is missing"}]


def test_error_messages_never_echo_the_submitted_value():
    errors = event_errors({**GOOD, "turn": "John Smith 555-0100", "kid": "John Smith"})
    assert "John" not in repr(errors)
    assert "555" not in repr(errors)


def test_free_text_reason_is_rejected():
    event = {
        "ts": GOOD["ts"],
        "kind": "phi.rehydration_failed",
        "turn": 1,
        "entity_kind": "PHONE",
        "reason": "patient said 555-0100",
    }
    assert event_errors(event)[0]["field"] == "reason"


def test_invalid_batch_writes_nothing_and_names_every_bad_index(agent):
    session, _ = start_session(agent, external_ref="call-1", started_at=T0)
    before = AuditEvent.objects.filter(session=session).count()
    batch = [GOOD, {**GOOD, "value": "555-0100"}, GOOD, {**GOOD, "kind": "nope"}]
    with pytest.raises(ValidationFailed) as caught:
        append_events(session, batch)
    problems = caught.value.details["events"]
    assert [(p["index"], p["field"]) for p in problems] == [(1, "value"), (3, "kind")]
    assert "555" not in caught.value.message + repr(caught.value.details)
    assert AuditEvent.objects.filter(session=session).count() == before
    session.refresh_from_db()
    assert session.tree_size == before


def test_empty_or_oversized_batch_is_rejected(agent):
    session, _ = start_session(agent, external_ref="call-2", started_at=T0)
    with pytest.raises(ValidationFailed):
        append_events(session, [])
    with pytest.raises(ValidationFailed):
        append_events(session, [GOOD] * 1001)


def test_field_types_come_from_the_event_schema():
    # A walk decodes stored events into structs typed by these: one type per field name, whatever the kind.
    assert [field_type(name) for name in ("seq", "turn", "pass", "baa", "policy", "span", "confidence")] == [
        int,
        int,
        str,
        bool,
        dict,
        list,
        float,
    ]
    for name in ("v", "no_such_field"):  # a const has no type; an unknown field none either
        with pytest.raises(ValueError, match="no single type"):
            field_type(name)
