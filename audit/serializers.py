"""Explicit serializers of the ingestion and read API: strict inputs, representations field for field.

Inputs refuse unknown fields and accept only short, identifier-like strings, so no PHI-bearing free text (a
transcript, a name, a phone number) can reach the database through a session's ``external_ref`` or
``platform``. Error messages name the field and the rule, never the submitted value.
"""

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from audit import identifiers
from audit.events import END_STATUSES, EVENT_KINDS, SERVER_KINDS, input_event_schema
from audit.models import Agent, Session
from audit.timestamps import format_ts
from masker.errors import ValidationFailed
from masker.query import QuerySerializer, StrictSerializer

MAX_BATCH_EVENTS = 1000
IDEMPOTENCY_KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,254}$")
RFC3339_PATTERN = re.compile(
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[Tt]([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,9})?([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)$"
)
# Times before this are certainly a client bug (the product did not exist); a year-1 date would also overflow.
EARLIEST_TIME = datetime(2000, 1, 1, tzinfo=UTC)
MAX_CLOCK_SKEW = timedelta(days=1)
_SAFE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def parse_rfc3339(value: object) -> datetime | None:
    """An aware UTC datetime from an RFC 3339 date-time (offset required), or None if it is not one."""
    if not isinstance(value, str) or not RFC3339_PATTERN.match(value):
        return None
    text = value.upper().replace("Z", "+00:00")
    head, sep, tail = text.partition(".")
    if sep:  # Python parses at most 6 fractional digits: keep microseconds, drop the rest
        digits = re.match(r"\d+", tail).group(0)
        text = f"{head}.{digits[:6].ljust(6, '0')}{tail[len(digits) :]}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # a real time whose UTC instant falls outside year 1..9999 (e.g. 0001-01-01T00:00+01:00)
        return datetime.min.replace(tzinfo=UTC) if moment.year == 1 else datetime.max.replace(tzinfo=UTC)


@extend_schema_field({"type": "string", "format": "date-time", "example": "2026-05-03T21:14:30.000Z"})
class Rfc3339Field(serializers.Field):
    """An RFC 3339 date-time with an explicit offset (``Z`` or ``±hh:mm``), within [2000, now + 1 day] unless
    ``bounded=False`` (a filter may name any time)."""

    def __init__(self, *, bounded: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.bounded = bounded

    default_error_messages = {
        "invalid": "must be an RFC 3339 date-time with a time zone offset, e.g. 2026-05-03T21:14:30.000Z",
        "range": "must be after 2000-01-01 and not in the future",
    }

    def to_internal_value(self, data):
        moment = parse_rfc3339(data)
        if moment is None:
            self.fail("invalid")
        now = self.context.get("now") or datetime.now(UTC)
        if self.bounded and not EARLIEST_TIME <= moment <= now + MAX_CLOCK_SKEW:
            self.fail("range")
        return moment

    def to_representation(self, value):
        return format_ts(value)


class StrictCharField(serializers.CharField):
    """A string, not a number or boolean coerced to one."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictRegexField(StrictCharField, serializers.RegexField):
    pass


def raise_invalid(serializer: serializers.Serializer) -> None:
    """Raise the 400 ``validation_failed`` naming every bad field of an invalid serializer."""
    raise ValidationFailed(details={"fields": serializer.errors})


def _choice(choices, *, required: bool = True, **kwargs) -> serializers.ChoiceField:
    # DRF's default message echoes the submitted value; ours names the allowed values only.
    values = [c[0] if isinstance(c, tuple) else c for c in choices]
    message = "must be one of: " + ", ".join(values)
    return serializers.ChoiceField(
        choices=choices, required=required, error_messages={"invalid_choice": message}, **kwargs
    )


def refuse_phi_shape(value: str) -> None:
    if identifiers.is_phi_shaped(value):
        raise serializers.ValidationError(
            "must not hold anything shaped like a phone number, SSN, date, e-mail address or PHI label (mrn, dob, "
            "ssn, patient)"
        )


@extend_schema_field(identifiers.EXTERNAL_REF_SCHEMA)
class ExternalRefField(StrictRegexField):
    pass


@extend_schema_field(identifiers.SLUG_SCHEMA)
class SlugField(StrictRegexField):
    pass


class SessionStartSerializer(StrictSerializer):
    """The call to start a session for. Fields other than these are refused."""

    agent_id = StrictCharField(max_length=40, help_text="The agent handling the call (agt_…).")
    external_ref = ExternalRefField(
        identifiers.EXTERNAL_REF,
        max_length=128,
        validators=[refuse_phi_shape],
        help_text="The voice platform's call id: letters, digits and . _ : - only (1-128 characters), holding "
        "nothing shaped like a phone number, SSN, date or PHI label. The same external_ref for the same agent "
        "returns the existing session.",
        error_messages={"invalid": "must be 1-128 characters of letters, digits and . _ : -"},
    )
    platform = SlugField(
        identifiers.SLUG,
        max_length=48,
        required=False,
        help_text="Voice platform (defaults to the agent's): a lower-case slug such as vapi or retell.",
        error_messages={
            "invalid": "must be a lower-case slug: words of letters (then at most 3 digits) joined by - or _"
        },
    )
    started_at = Rfc3339Field(required=False, help_text="When the call started (defaults to now).")


END_STATUS_HELP = (
    "How the call ended, as the proxy reports it: `ok` — normally; `error` — cut short by an error; `partial` — "
    "ended with part of the call not processed."
)
SESSION_STATUS_HELP = (
    "`active` — the call is in progress and the session takes events; `ok`, `error`, `partial` — the call ended "
    "(normally, cut short by an error, or with part of it not processed) and the session is sealed."
)


class SessionEndSerializer(StrictSerializer):
    """How the call ended. Fields other than `status` are refused."""

    status = _choice(END_STATUSES, help_text=END_STATUS_HELP)


class QueryValueMixin:
    """DRF reads an empty query value (``?cursor=``) as "not given"; for the API it is an invalid value."""

    def get_value(self, dictionary):
        return dictionary.get(self.field_name, serializers.empty)


class QueryRegexField(QueryValueMixin, serializers.RegexField):
    pass


class QueryIntegerField(QueryValueMixin, serializers.IntegerField):
    pass


class QueryChoiceField(QueryValueMixin, serializers.ChoiceField):
    pass


class QueryRfc3339Field(QueryValueMixin, Rfc3339Field):
    pass


# Page cursors are the keys of the last row of the previous page, in a form whose every match is a valid cursor
# (so the OpenAPI pattern states exactly what is accepted): sessions "<started_at in µs since 1970>_<session id>",
# agents "<agent id>".
SESSION_CURSOR_PATTERN = r"^[0-9]{1,16}_sess_[0-9A-HJKMNP-TV-Z]{26}$"
AGENT_CURSOR_PATTERN = r"^agt_[0-9A-HJKMNP-TV-Z]{26}$"
_CURSOR_ERRORS = {"invalid": "must be the next_cursor of a previous page"}


def _limit() -> QueryIntegerField:
    return QueryIntegerField(
        min_value=1, max_value=200, default=50, required=False, help_text="Page size, 1-200 (default 50)."
    )


class SessionListQuerySerializer(QuerySerializer):
    limit = _limit()
    cursor = QueryRegexField(
        SESSION_CURSOR_PATTERN,
        required=False,
        error_messages=_CURSOR_ERRORS,
        help_text="next_cursor of the previous page.",
    )
    agent_id = QueryRegexField(
        r"^agt_[0-9A-HJKMNP-TV-Z]{26}$",
        required=False,
        error_messages={"invalid": "must be an agent id (agt_…)"},
        help_text="Only this agent's sessions (agt_…).",
    )
    status = QueryChoiceField(
        choices=Session.Status.choices,
        required=False,
        error_messages={"invalid_choice": "must be one of: " + ", ".join(Session.Status.values)},
        help_text="Only sessions in this state. " + SESSION_STATUS_HELP,
    )
    since = QueryRfc3339Field(bounded=False, required=False, help_text="Only sessions started at or after this time.")
    external_ref = QueryRegexField(
        identifiers.EXTERNAL_REF,
        max_length=128,
        required=False,
        help_text="Only the session(s) of this call: the voice platform's call id given when the session started "
        "(exact match; one per agent).",
        error_messages={"invalid": "must be 1-128 characters of letters, digits and . _ : -"},
    )


class AgentListQuerySerializer(QuerySerializer):
    limit = _limit()
    cursor = QueryRegexField(
        AGENT_CURSOR_PATTERN,
        required=False,
        error_messages=_CURSOR_ERRORS,
        help_text="next_cursor of the previous page.",
    )


def session_cursor(session: Session) -> str:
    moment = session.started_at - EPOCH
    micros = (moment.days * 86_400 + moment.seconds) * 1_000_000 + moment.microseconds
    return f"{micros}_{session.id}"


def parse_session_cursor(cursor: str) -> tuple[datetime, str]:
    """(started_at, id) of a cursor that matched ``SESSION_CURSOR_PATTERN``."""
    micros, session_id = cursor.split("_", 1)
    return EPOCH + timedelta(microseconds=int(micros)), session_id


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_event_batch(data: object) -> list:
    """The ``events`` list of a batch body ``{"events": [...]}``; anything else in the envelope is refused.

    The events themselves are checked by ``audit.events.validate_events`` (per index and field).
    """
    if not isinstance(data, Mapping):
        raise ValidationFailed('The body must be a JSON object {"events": [...]}.', details={"field": "events"})
    unknown = sorted(str(key) for key in set(data) - {"events"})
    if unknown:
        names = [name if _SAFE_NAME.match(name) else "<unexpected field>" for name in unknown]
        fields = {name: ["unknown field"] for name in names}
        raise ValidationFailed("Unknown field(s) in the batch envelope.", details={"fields": fields})
    return data.get("events")


def idempotency_key_of(request) -> str | None:
    """The ``Idempotency-Key`` header, or None; a malformed key is a 400 (never echoed)."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not IDEMPOTENCY_KEY_PATTERN.match(key):
        raise ValidationFailed(
            "Idempotency-Key must be 1-255 characters of letters, digits and . _ : - (a UUID works).",
            details={"field": "Idempotency-Key"},
        )
    return key


# --- OpenAPI description of a batch: each client kind's exact schema (audit/events.py is the source of truth).


def _openapi(schema: dict) -> dict:
    """Draft-7 → OpenAPI 3.0: a two-item tuple (``span``) becomes an array of two items of the same type."""
    if isinstance(schema, dict):
        out = {}
        for key, value in schema.items():
            if key == "items" and isinstance(value, list):
                out["items"] = _openapi(value[0])
            elif key == "additionalItems":
                continue
            elif key == "const":
                out["enum"] = [value]
            else:
                out[key] = _openapi(value)
        return out
    if isinstance(schema, list):
        return [_openapi(item) for item in schema]
    return schema


CLIENT_EVENT_KINDS = [kind for kind in EVENT_KINDS if kind not in SERVER_KINDS]


def _client_kind_schema(kind: str) -> dict:
    schema = _openapi(input_event_schema(kind))
    schema["properties"]["kind"] = {"type": "string", "enum": [kind]}  # each alternative names its own kind
    return {"title": kind, **schema}


EVENT_INPUT_SCHEMA = {
    "oneOf": [_client_kind_schema(kind) for kind in CLIENT_EVENT_KINDS],
    "description": "One event as the client submits it: kind, ts (RFC 3339 UTC with milliseconds) and the kind's "
    "fields (docs/audit-log.md). No other field is accepted; v, id, session_id, seq and prev_hash are assigned by "
    "the server; session.started and session.ended are written by the service itself.",
}


@extend_schema_field(EVENT_INPUT_SCHEMA)
class EventField(serializers.DictField):
    pass


class EventBatchSerializer(serializers.Serializer):
    """A batch of events to append, all or nothing (1 to 1,000)."""

    events = serializers.ListField(child=EventField(), min_length=1, max_length=MAX_BATCH_EVENTS)


# --- Representations


class PolicyRefSerializer(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.IntegerField()
    sha256 = serializers.CharField()


def _policy_of(session: Session) -> dict:
    return {"name": session.policy_name, "version": session.policy_version, "sha256": session.policy_sha256}


class SessionSummarySerializer(serializers.Serializer):
    id = serializers.CharField()
    agent_id = serializers.CharField()
    external_ref = serializers.CharField()
    platform = serializers.CharField()
    upstream_model = serializers.CharField()
    status = serializers.ChoiceField(choices=Session.Status.choices, help_text=SESSION_STATUS_HELP)
    started_at = Rfc3339Field()
    ended_at = Rfc3339Field(allow_null=True)
    duration_ms = serializers.IntegerField(allow_null=True)
    policy = serializers.SerializerMethodField()
    tree_size = serializers.IntegerField()
    merkle_root_hex = serializers.CharField(help_text="RFC 6962 root over the events so far (from the frontier).")
    chain_head_hex = serializers.CharField(source="chain_head", help_text="event_hash of the last event.")
    sealed = serializers.BooleanField(source="is_sealed")
    redaction_count = serializers.IntegerField()
    alert_count = serializers.IntegerField()

    @extend_schema_field(PolicyRefSerializer)
    def get_policy(self, session: Session) -> dict:
        return _policy_of(session)


class SealSerializer(serializers.Serializer):
    session_id = serializers.CharField()
    tree_size = serializers.IntegerField()
    merkle_root_hex = serializers.CharField()
    chain_head_hex = serializers.CharField()
    sealed_at = serializers.CharField()
    signature = serializers.DictField(child=serializers.CharField(), help_text="{alg: Ed25519, kid, sig}")


class SessionDetailSerializer(SessionSummarySerializer):
    seal = serializers.SerializerMethodField(help_text="The signed seal (final size and root) once ended, else null.")
    counts_by_kind = serializers.SerializerMethodField(help_text="Number of events of each kind.")

    @extend_schema_field(SealSerializer(allow_null=True))
    def get_seal(self, session: Session) -> dict | None:
        return session.seal

    @extend_schema_field(serializers.DictField(child=serializers.IntegerField()))
    def get_counts_by_kind(self, session: Session) -> dict[str, int]:
        return self.context["counts_by_kind"]


class ReceiptSerializer(serializers.Serializer):
    """A signed tree head: proof, for whoever keeps it, of what the log held when the write was answered."""

    session_id = serializers.CharField()
    tree_size = serializers.IntegerField(help_text="Events in the log when the receipt was issued.")
    merkle_root_hex = serializers.CharField(help_text="RFC 6962 root of those events.")
    chain_head_hex = serializers.CharField(help_text="Hash of the last of those events.")
    issued_at = serializers.CharField(help_text="When the receipt was issued (RFC 3339, UTC).")
    signature = serializers.DictField(
        child=serializers.CharField(),
        help_text="{alg: Ed25519, kid, sig} over the RFC 8785 bytes of the receipt without its signature.",
    )


class SessionWriteSerializer(SessionDetailSerializer):
    receipt = ReceiptSerializer(help_text="Signed tree head after this write; keep it to check the log later.")


class SessionPageSerializer(serializers.Serializer):
    sessions = SessionSummarySerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True, help_text="Pass as cursor for the next page; null at end.")


class AppendResultSerializer(serializers.Serializer):
    session_id = serializers.CharField()
    appended = serializers.IntegerField()
    first_seq = serializers.IntegerField()
    last_seq = serializers.IntegerField()
    tree_size = serializers.IntegerField()
    chain_head_hex = serializers.CharField()
    merkle_root_hex = serializers.CharField()
    receipt = ReceiptSerializer(help_text="Signed tree head after this batch; a replay returns the same receipt.")


class AgentPolicySerializer(PolicyRefSerializer):
    id = serializers.CharField()


class AgentSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    platform = serializers.CharField()
    upstream_model = serializers.CharField()
    policy = serializers.SerializerMethodField()
    created_at = Rfc3339Field()

    @extend_schema_field(AgentPolicySerializer)
    def get_policy(self, agent: Agent) -> dict:
        policy = agent.policy
        return {"id": policy.id, "name": policy.name, "version": policy.version, "sha256": policy.sha256}


class AgentDetailSerializer(AgentSerializer):
    session_count = serializers.IntegerField()


class AgentPageSerializer(serializers.Serializer):
    agents = AgentSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True)
