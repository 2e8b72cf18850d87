"""Audit event kinds of Masker Audit Schema v1 (docs/audit-log.md) and their strict validation.

Every kind has a closed set of fields, expressed as JSON Schema (draft 7). A batch is checked with
``fastjsonschema`` (compiled, fast enough for the ingestion hot path); only a rejected batch is re-checked with
``jsonschema`` to name every bad field.
Nothing free-form is accepted: strings are enums or short identifier-like codes, so a transcript, an original
value or a token cannot be smuggled into the log. Error messages name the field and the rule, never the value.
"""

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import fastjsonschema
from jsonschema import Draft7Validator, validators

from audit.identifiers import KID_SCHEMA, REASON_SCHEMA, SLUG_SCHEMA
from masker.errors import ValidationFailed

SCHEMA_VERSION = 1
ZERO_HASH = "0" * 64

# Canonical entity kinds (docs/audit-log.md; each maps to a Safe Harbor category in reports/safe_harbor.py).
ENTITY_KINDS = (
    "NAME",
    "ADDRESS",
    "ZIP",
    "DOB",
    "DATE",
    "AGE",
    "PHONE",
    "FAX",
    "EMAIL",
    "SSN",
    "MRN",
    "HEALTH_PLAN_ID",
    "ACCOUNT",
    "CREDIT_CARD",
    "LICENSE",
    "VIN",
    "LICENSE_PLATE",
    "DEVICE_ID",
    "URL",
    "IP_ADDRESS",
    "OTHER_ID",
)
ACTIONS = ("tokenize", "redact", "passthrough")
TOKEN_KINDS = ("MSKV1", "MSK1", "REDACTED")
PASSES = ("regex", "ner", "diarize")
HOPS = ("stt", "llm", "tts", "telephony")
END_STATUSES = ("ok", "error", "partial")

# An RFC 3339 UTC time with milliseconds on a real calendar day (no year 0, no February 30th, February 29th in
# leap years only), so the OpenAPI pattern admits exactly what the server accepts.
_YEAR = r"(\d{3}[1-9]|\d{2}[1-9]0|\d[1-9]00|[1-9]000)"
_LEAP_YEAR = r"(\d{2}(0[48]|[2468][048]|[13579][26])|(0[48]|[2468][048]|[13579][26])00)"
_MONTH_DAY = r"((0[1-9]|1[0-2])-(0[1-9]|1\d|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)"
TS_PATTERN = rf"^({_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)T([01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{{3}}Z$"
HEX64 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
# Written by the service from its own records (agent, policy): models, policy names, the agent's platform.
NAME_LIKE = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$"}
TURN = {"type": "integer", "minimum": 0, "maximum": 1_000_000}
ENTITY = {"enum": list(ENTITY_KINDS)}
COUNT = {"type": "integer", "minimum": 0, "maximum": 2**53 - 1}

KIND_FIELDS: dict[str, dict[str, Any]] = {
    "session.started": {
        "agent_id": {"type": "string", "pattern": "^agt_[0-9A-HJKMNP-TV-Z]{26}$"},
        "platform": NAME_LIKE,
        "upstream_model": NAME_LIKE,
        "policy": {
            "type": "object",
            "properties": {
                "name": NAME_LIKE,
                "version": {"type": "integer", "minimum": 1},
                "sha256": HEX64,
            },
            "required": ["name", "version", "sha256"],
            "additionalProperties": False,
        },
    },
    "phi.redacted": {
        "turn": TURN,
        "pass": {"enum": list(PASSES)},
        "entity_kind": ENTITY,
        "span": {"type": "array", "items": [COUNT, COUNT], "additionalItems": False, "minItems": 2, "maxItems": 2},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "action": {"enum": list(ACTIONS)},
        "token_kind": {"enum": list(TOKEN_KINDS)},
        "kid": KID_SCHEMA,
    },
    "phi.rehydrated": {"turn": TURN, "entity_kind": ENTITY, "token_kind": {"enum": list(TOKEN_KINDS)}},
    "phi.rehydration_failed": {"turn": TURN, "entity_kind": ENTITY, "reason": REASON_SCHEMA},
    "leak.detected": {"turn": TURN, "entity_kind": ENTITY, "stage": {"enum": ["egress", "response"]}},
    "pci.card_detected": {
        "turn": TURN,
        "luhn_valid": {"type": "boolean"},
        "masked_before_egress": {"type": "boolean"},
        "action": {"enum": list(ACTIONS)},
    },
    "egress.forwarded": {
        "turn": TURN,
        "hop": {"enum": list(HOPS)},
        "vendor": SLUG_SCHEMA,
        "baa": {"type": "boolean"},
        "retention_days": {"type": "integer", "minimum": 0, "maximum": 36500},
    },
    "payload.persisted": {"what": {"enum": ["request", "masked", "response"]}, "encrypted": {"type": "boolean"}},
    "detection.degraded": {"turn": TURN, "reason": REASON_SCHEMA},
    "session.ended": {"status": {"enum": list(END_STATUSES)}, "duration_ms": COUNT},
}
# Optional fields per kind; every other listed field is required.
OPTIONAL_FIELDS = {"phi.redacted": {"confidence"}}
# Written by the service itself (session start and end), never accepted from a client batch.
SERVER_KINDS = frozenset({"session.started", "session.ended"})
EVENT_KINDS = tuple(KIND_FIELDS)

COMMON_FIELDS: dict[str, Any] = {
    "v": {"const": SCHEMA_VERSION},
    "id": {"type": "string", "pattern": "^evt_[0-9A-HJKMNP-TV-Z]{26}$"},
    "session_id": {"type": "string", "pattern": "^sess_[0-9A-HJKMNP-TV-Z]{26}$"},
    "seq": COUNT,
    "ts": {"type": "string", "pattern": TS_PATTERN},
    "kind": {"enum": list(EVENT_KINDS)},
    "prev_hash": HEX64,
}
CLIENT_COMMON = ("kind", "ts")  # a client sends these; the server assigns v, id, session_id, seq, prev_hash

_JSON_TYPES = {"string": str, "integer": int, "boolean": bool, "number": float, "array": list, "object": dict}


def field_type(name: str) -> type:
    """The Python type of an event field, from its schema (``COMMON_FIELDS`` or any kind's ``KIND_FIELDS``; a field
    has one type in every kind that has it): walks decode stored events straight into structs of such fields."""
    schemas = [COMMON_FIELDS[name]] if name in COMMON_FIELDS else [f[name] for f in KIND_FIELDS.values() if name in f]
    types = {_python_type(schema) for schema in schemas}
    if len(types) != 1 or None in types:
        raise ValueError(f"event field {name!r} has no single type")
    return types.pop()


def _python_type(schema: dict[str, Any]) -> type | None:
    if "enum" in schema:
        return str if all(isinstance(value, str) for value in schema["enum"]) else None
    return _JSON_TYPES.get(schema.get("type"))


def _object_schema(kind: str, common: Iterable[str]) -> dict[str, Any]:
    fields = KIND_FIELDS[kind]
    properties = {name: COMMON_FIELDS[name] for name in common} | fields
    required = [*common, *(f for f in fields if f not in OPTIONAL_FIELDS.get(kind, ()))]
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def stored_event_schema(kind: str) -> dict[str, Any]:
    """JSON Schema of a stored event of ``kind`` (all common fields, including ``prev_hash``)."""
    return _object_schema(kind, COMMON_FIELDS)


def input_event_schema(kind: str) -> dict[str, Any]:
    """JSON Schema of an event as a client submits it (``kind``, ``ts`` and the kind's fields)."""
    return _object_schema(kind, CLIENT_COMMON)


# JSON Schema's "integer" admits 1.0 and 1e3; an event's integers must be JSON integers (a float would be stored
# as "1" in SQLite and fail PostgreSQL's integer columns). bool is an int in Python, never a JSON integer.
_StrictValidator = validators.extend(
    Draft7Validator,
    type_checker=Draft7Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)
    ),
)
_INPUT_VALIDATORS = {kind: _StrictValidator(input_event_schema(kind)) for kind in EVENT_KINDS}
# fastjsonschema has no such option: the fast path sends any float in these fields to the detailed check.
_INTEGER_FIELDS = {
    kind: tuple(name for name, schema in fields.items() if schema.get("type") == "integer")
    for kind, fields in KIND_FIELDS.items()
}
# A rejected batch lists at most this many problems (each with its event index and field) and counts them all.
MAX_LISTED_PROBLEMS = 200

_FAST_CHECKS = {kind: fastjsonschema.compile(input_event_schema(kind)) for kind in EVENT_KINDS}
_SAFE_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def _describe(error) -> list[tuple[str, str]]:
    """(field, message) pairs for one jsonschema error, without echoing the submitted value.

    A ``required`` error names every missing field of its object (jsonschema raises one such error per missing
    field, all with the same ``validator_value``; the caller drops the repeats)."""
    path = ".".join(str(p) for p in error.absolute_path)
    rule = error.validator
    if rule == "additionalProperties":
        extra = sorted(str(name) for name in set(error.instance) - set(error.schema.get("properties", {})))
        names = [name if _SAFE_FIELD.match(name) else "<unexpected field>" for name in extra]
        return [((f"{path}.{name}" if path else name), "unknown field: not part of this event kind") for name in names]
    if rule == "required":
        missing = [f for f in error.validator_value if f not in error.instance]
        return [((f"{path}.{name}" if path else name), "required field is missing") for name in missing]
    value = error.validator_value
    messages = {
        "type": lambda: f"must be of type {value}",
        "enum": lambda: "must be one of: " + ", ".join(map(str, value)),
        "const": lambda: f"must be {value}",
        "pattern": lambda: "has an invalid format",
        "minimum": lambda: f"must be >= {value}",
        "maximum": lambda: f"must be <= {value}",
        "minItems": lambda: f"must have at least {value} items",
        "maxItems": lambda: f"must have at most {value} items",
        "additionalItems": lambda: "has too many items",
    }
    describe = messages.get(rule)
    return [(path or "<event>", describe() if describe else f"fails the '{rule}' rule")]


def event_errors(event: object, *, allow_server_kinds: bool = False) -> list[dict[str, str]]:
    """Every problem with one submitted event, as ``[{"field", "message"}]`` (empty when valid)."""
    if not isinstance(event, Mapping):
        return [{"field": "<event>", "message": "must be an object"}]
    kind = event.get("kind")
    if not isinstance(kind, str) or kind not in KIND_FIELDS:  # a JSON object or array as kind is unhashable
        if "kind" not in event:
            return [{"field": "kind", "message": "required field is missing"}]
        return [{"field": "kind", "message": "unknown event kind; must be one of: " + ", ".join(EVENT_KINDS)}]
    if kind in SERVER_KINDS and not allow_server_kinds:
        return [{"field": "kind", "message": f"'{kind}' is written by the service, not submitted in a batch"}]
    errors: list[dict[str, str]] = []
    for error in sorted(_INPUT_VALIDATORS[kind].iter_errors(event), key=lambda e: list(e.absolute_path)):
        for field, message in _describe(error):
            problem = {"field": field, "message": message}
            if problem not in errors:
                errors.append(problem)
    span = event.get("span")
    if kind == "phi.redacted" and not errors and span[0] > span[1]:
        errors.append({"field": "span", "message": "start must not exceed end"})
    if not any(e["field"] == "ts" for e in errors) and not _is_calendar_ts(event["ts"]):
        errors.append({"field": "ts", "message": "is not a real date and time (e.g. February 30th, year 0)"})
    return errors


def _is_calendar_ts(ts: str) -> bool:
    """The pattern admits impossible dates (``2026-02-31``, year ``0000``); the calendar does not."""
    try:
        datetime.fromisoformat(ts[:-1])  # without the "Z"; C-fast, unlike strptime
    except ValueError:
        return False
    return True


def _passes_fast_check(event: object, allow_server_kinds: bool) -> bool:
    """The compiled check; any doubt falls through to the detailed (slow) one."""
    if not isinstance(event, dict):
        return False
    kind = event.get("kind")
    check = _FAST_CHECKS.get(kind) if isinstance(kind, str) else None
    if check is None or (kind in SERVER_KINDS and not allow_server_kinds):
        return False
    try:
        check(event)
    except fastjsonschema.JsonSchemaException:
        return False
    if any(isinstance(event.get(name), float) for name in _INTEGER_FIELDS[kind]):
        return False
    if kind == "phi.redacted" and any(isinstance(bound, float) for bound in event["span"]):
        return False
    if kind == "phi.redacted" and event["span"][0] > event["span"][1]:
        return False
    return _is_calendar_ts(event["ts"])


def validate_events(events: object, *, max_events: int = 1000, allow_server_kinds: bool = False) -> list[dict]:
    """Check a whole batch; raise ``ValidationFailed`` naming every bad index and field. Returns the batch."""
    if not isinstance(events, list) or not events:
        raise ValidationFailed("'events' must be a non-empty list.", details={"field": "events"})
    if len(events) > max_events:
        raise ValidationFailed(f"A batch holds at most {max_events} events.", details={"field": "events"})
    if all(_passes_fast_check(event, allow_server_kinds) for event in events):
        return events
    problems = []
    for index, event in enumerate(events):
        for problem in event_errors(event, allow_server_kinds=allow_server_kinds):
            problems.append({"index": index, **problem})
    if problems:
        details: dict[str, Any] = {"events": problems[:MAX_LISTED_PROBLEMS], "problem_count": len(problems)}
        if len(problems) > MAX_LISTED_PROBLEMS:
            details["truncated"] = True
        raise ValidationFailed(
            f"{len({p['index'] for p in problems})} event(s) in the batch are invalid; nothing was written.",
            details=details,
        )
    return events


def event_alert(kind: str, fields: Mapping[str, Any]) -> str | None:
    """The alert an event raises for a compliance reviewer, or None. One definition for counters and reports.
    ``fields``: the event, or anything with the same ``get`` (a report reads events as ``reports.domain.EventView``)."""
    if kind == "phi.rehydration_failed":
        return "rehydration_failed"
    if kind == "leak.detected":
        return "leak_detected"
    if kind == "egress.forwarded" and not fields.get("baa"):
        return "non_baa_egress"
    if kind == "pci.card_detected" and not fields.get("masked_before_egress"):
        return "card_not_masked"
    if kind == "detection.degraded":
        return "detection_degraded"
    return None
