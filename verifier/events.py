"""Walking an NDJSON event export: the checks every walk of an audit log applies, and the report's figures.

The export (``GET /api/v1/sessions/{id}/events``) holds one event per line, exactly the canonical bytes that were
hashed, each ending in ``\\n``. Every line is hashed as it is (without its ``\\n``): leaf hash = SHA-256(0x00 ||
line). The walk applies the audit log's contract, the same checks as every walk of the server:

- seq 0 is ``session.started`` of this session (and, given a report, names the report's agent and the SHA-256 of
  the report's policy snapshot), its ``prev_hash`` 64 zeros;
- seqs are gapless and every ``prev_hash`` is the previous line's leaf hash (the hash chain);
- every event names this session and is a valid v1 event of its kind: a known kind, every required field present
  with its JSON type, no unknown field;
- nothing follows ``session.ended``;
- no event's ``ts`` precedes the session's start (seq 0's ``ts``) by more than five minutes.

An altered line is caught by the next line's ``prev_hash`` (or, for the last line, by the chain head and the root);
a dropped, duplicated or moved line by ``seq``; a truncated file by its incomplete last line or by the count.
Memory is O(log n): the Merkle tree is folded as the lines go by.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta
from typing import IO, Any

from verifier.inputs import loads
from verifier.merkle import EMPTY_ROOT, MerkleAccumulator, leaf_hash
from verifier.outcome import Outcome

EVENT_VERSION = 1
ZERO_HASH_HEX = "0" * 64
START_SKEW = timedelta(minutes=5)
ALERT_TYPES = ("rehydration_failed", "leak_detected", "non_baa_egress", "card_not_masked", "detection_degraded")

# The v1 event kinds: each field's JSON type (``float`` stands for any JSON number). The tests check these
# against the service's schema, field by field.
COMMON_FIELDS: dict[str, type] = {
    "v": int,
    "id": str,
    "session_id": str,
    "seq": int,
    "ts": str,
    "kind": str,
    "prev_hash": str,
}
KIND_FIELDS: dict[str, dict[str, type]] = {
    "session.started": {"agent_id": str, "platform": str, "upstream_model": str, "policy": dict},
    "phi.redacted": {
        "turn": int,
        "pass": str,
        "entity_kind": str,
        "span": list,
        "confidence": float,
        "action": str,
        "token_kind": str,
        "kid": str,
    },
    "phi.rehydrated": {"turn": int, "entity_kind": str, "token_kind": str},
    "phi.rehydration_failed": {"turn": int, "entity_kind": str, "reason": str},
    "leak.detected": {"turn": int, "entity_kind": str, "stage": str},
    "pci.card_detected": {"turn": int, "luhn_valid": bool, "masked_before_egress": bool, "action": str},
    "egress.forwarded": {"turn": int, "hop": str, "vendor": str, "baa": bool, "retention_days": int},
    "payload.persisted": {"what": str, "encrypted": bool},
    "detection.degraded": {"turn": int, "reason": str},
    "session.ended": {"status": str, "duration_ms": int},
}
OPTIONAL_FIELDS: dict[str, set[str]] = {"phi.redacted": {"confidence"}}
POLICY_FIELDS: dict[str, type] = {"name": str, "version": int, "sha256": str}
_TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
_JSON_TYPE_NAMES = {int: "integer", float: "number", str: "string", bool: "boolean", list: "array", dict: "object"}


def policy_sha256(text: str) -> str:
    """The SHA-256 (hex) of a policy's YAML text as ``session.started`` names it: over its UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def event_alert(kind: str, fields: dict[str, Any]) -> str | None:
    """The alert an event raises, or None (the tests check it agrees with the service's rule on every kind)."""
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


def _has_type(value: Any, expected: type) -> bool:
    if expected is float:  # a JSON number: canonical bytes write 1.0 as 1
        return type(value) in (int, float)
    return type(value) is expected


def event_problems(event: dict[str, Any]) -> list[str]:
    """What makes ``event`` not a valid v1 event of its kind: unknown kind, missing or mistyped fields, unknown
    fields. Names fields, never values."""
    kind = event.get("kind")
    fields = KIND_FIELDS.get(kind) if isinstance(kind, str) else None
    if fields is None:
        return ["unknown event kind"]
    problems = []
    optional = OPTIONAL_FIELDS.get(kind, set())
    for name, expected in (COMMON_FIELDS | fields).items():
        if name not in event:
            if name not in optional:
                problems.append(f"{name}: required field is missing")
        elif not _has_type(event[name], expected):
            problems.append(f"{name}: must be a JSON {_JSON_TYPE_NAMES[expected]}")
    unknown = sorted(set(event) - set(COMMON_FIELDS) - set(fields))
    if unknown:
        problems.append(f"{len(unknown)} unknown field(s): not part of a v1 {kind} event")
    if kind == "session.started" and isinstance(event.get("policy"), dict):
        policy = event["policy"]
        for name, expected in POLICY_FIELDS.items():
            if not _has_type(policy.get(name), expected):
                problems.append(f"policy.{name}: missing or not a JSON {_JSON_TYPE_NAMES[expected]}")
        if set(policy) - set(POLICY_FIELDS):
            problems.append("policy: unknown field(s)")
    if kind == "phi.redacted" and isinstance(event.get("span"), list):
        span = event["span"]
        if len(span) != 2 or not all(type(x) is int for x in span):
            problems.append("span: must be two integers")
    if isinstance(event.get("ts"), str) and _parse_ts(event["ts"]) is None:
        problems.append("ts: not an RFC 3339 UTC time with milliseconds")
    return problems


def _parse_ts(text: str) -> datetime | None:
    if not _TS.match(text):
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")  # noqa: DTZ007 -- the Z is checked above: UTC
    except ValueError:
        return None


class Tally:
    """The report's figures, recomputed from the event lines (mirrors reports/tally.py)."""

    def __init__(self) -> None:
        self.events = 0
        self.redactions = 0
        self.by_kind: dict[str, int] = {}
        self.by_pass: dict[str, int] = {}
        self.by_action: dict[str, int] = {}
        self.alerts: dict[str, int] = dict.fromkeys(ALERT_TYPES, 0)
        self.rehydrations = 0
        self.rehydration_failures = 0
        self.leaks = 0
        self.degraded = 0
        self.cards = 0
        self.cards_luhn_valid = 0
        self.cards_masked = 0
        self.card_alerts = 0
        self.egress = 0
        self.baa_alerts = 0
        self.payloads: dict[str, int] = {}
        self.status = "active"

    @staticmethod
    def _bump(counts: dict[str, int], key: Any) -> None:
        key = str(key)
        counts[key] = counts.get(key, 0) + 1

    def add(self, event: dict[str, Any]) -> None:
        kind = event.get("kind")
        self.events += 1
        if kind == "phi.redacted":
            self.redactions += 1
            self._bump(self.by_kind, event.get("entity_kind"))
            self._bump(self.by_pass, event.get("pass"))
            self._bump(self.by_action, event.get("action"))
            return
        alert = event_alert(str(kind), event)
        if alert is not None:
            self.alerts[alert] += 1
        if kind == "egress.forwarded":
            self.egress += 1
            self.baa_alerts += alert is not None
        elif kind == "phi.rehydrated":
            self.rehydrations += 1
        elif kind == "phi.rehydration_failed":
            self.rehydration_failures += 1
        elif kind == "leak.detected":
            self.leaks += 1
        elif kind == "pci.card_detected":
            self.cards += 1
            self.cards_luhn_valid += bool(event.get("luhn_valid"))
            self.cards_masked += bool(event.get("masked_before_egress"))
            self.card_alerts += alert is not None
        elif kind == "detection.degraded":
            self.degraded += 1
        elif kind == "payload.persisted":
            self._bump(self.payloads, event.get("what"))
        elif kind == "session.ended":
            self.status = str(event.get("status"))

    def figures(self) -> dict[str, Any]:
        """Report path -> value recomputed from the events."""
        return {
            "summary.total_events": self.events,
            "summary.total_redactions": self.redactions,
            "summary.alert_count": sum(self.alerts.values()),
            "summary.alerts_by_type": self.alerts,
            "summary.redactions_by_action": self.by_action,
            "redactions_by_kind": self.by_kind,
            "redactions_by_pass": self.by_pass,
            "pci_dss.detections": self.cards,
            "pci_dss.luhn_valid": self.cards_luhn_valid,
            "pci_dss.masked_before_egress": self.cards_masked,
            "pci_dss.alert_count": self.card_alerts,
            "leak_detection.rehydrations": self.rehydrations,
            "leak_detection.rehydration_failure_count": self.rehydration_failures,
            "leak_detection.residual_leak_count": self.leaks,
            "leak_detection.detection_degraded_count": self.degraded,
            "baa_chain.egress_count": self.egress,
            "baa_chain.alert_count": self.baa_alerts,
            "retention_attestation.payloads_persisted": sum(self.payloads.values()),
            "retention_attestation.payloads_by_what": self.payloads,
            "cover.session.status": self.status,
        }


# Figures every session report must carry (the rest are compared when present).
REQUIRED_FIGURES = (
    "summary.total_events",
    "summary.total_redactions",
    "summary.alert_count",
    "redactions_by_kind",
    "redactions_by_pass",
)


class EventsWalk:
    """Checks an NDJSON export line by line (the checks of the module docstring) and recomputes the root, the
    chain head and the report's figures.

    ``session_id``: the session the events must name (None: the first line's). ``agent_id``/``policy_sha256``:
    what seq 0 must name, when known (from a report). ``limit``: the report's tree_size: root, head and figures are
    taken over the first ``limit`` lines (the report covers those); later lines (a live call exported after the
    report) are still checked. ``checkpoints``: tree sizes whose prefix (root, head) to keep, in ``prefixes``.
    """

    def __init__(
        self,
        outcome: Outcome,
        *,
        session_id: str | None,
        limit: int | None = None,
        agent_id: str | None = None,
        policy_sha256: str | None = None,
        checkpoints: set[int] | frozenset[int] = frozenset(),
    ):
        self.outcome = outcome
        self.session_id = session_id
        self.limit = limit
        self.agent_id = agent_id
        self.policy_sha256 = policy_sha256
        self.checkpoints = set(checkpoints) | ({limit} if limit is not None else set())
        self.prefixes: dict[int, tuple[bytes, str]] = {0: (EMPTY_ROOT, ZERO_HASH_HEX)}
        self.accumulator = MerkleAccumulator()
        self.tally = Tally()
        self.lines = 0
        self.head = ZERO_HASH_HEX
        self.crlf = False
        self.ended_seq: int | None = None
        self.started_at: datetime | None = None
        self._prev_seq: int | None = None
        self._offset = 0  # found seq - expected seq, to report a shift once, not on every later line

    def feed_file(self, stream: IO[bytes]) -> None:
        """Walk every line of ``stream``. A file with CRLF line endings is named once as the cause and not walked:
        every line would otherwise fail for the same reason."""
        for raw in stream:
            if self.lines == 0 and raw.endswith(b"\r\n"):
                self.crlf = True
                self.outcome.fail(
                    "events: the file has CRLF line endings; the export uses LF (download it again without "
                    "converting line endings)"
                )
                return
            self.feed(raw)

    def feed(self, raw: bytes) -> None:
        self.lines += 1
        n = self.lines
        expected = n - 1
        fail = self.outcome.fail
        if not raw.endswith(b"\n"):
            fail(f"line {n}: incomplete last line (no newline at the end): the file was truncated")
            return
        data = raw[:-1]
        digest = leaf_hash(data)
        event_hash = digest.hex()
        try:
            event = loads(data)
        except (ValueError, UnicodeDecodeError):
            fail(f"line {n} (seq {expected} expected): not valid JSON: the line was altered or cut")
            event = None
        if event is not None and not isinstance(event, dict):
            fail(f"line {n} (seq {expected} expected): not a JSON object")
            event = None
        if event is None:
            self._prev_seq = None
        else:
            self._check(n, event)
        self.accumulator.append(digest)
        self.head = event_hash
        if n in self.checkpoints:
            self.prefixes[n] = (self.accumulator.root(), event_hash)

    def _check(self, n: int, event: dict[str, Any]) -> None:
        fail = self.outcome.fail
        expected = n - 1
        seq = event.get("seq")
        kind = event.get("kind")
        where = f"line {n} (seq {seq})"
        seq_ok = type(seq) is int
        offset = seq - expected if seq_ok else None
        if not seq_ok:
            fail(f"line {n}: seq is missing or not an integer")
        elif offset != self._offset and offset != 0:
            why = "a line before it is missing" if offset > 0 else "a line is duplicated or out of order"
            fail(f"line {n}: seq {seq} where seq {expected} was expected: {why}")
        if offset is not None:
            self._offset = offset
        if event.get("v") != EVENT_VERSION:
            fail(f"{where}: event version is not {EVENT_VERSION}")
        if self.session_id is None and n == 1 and isinstance(event.get("session_id"), str):
            self.session_id = event["session_id"]
        if event.get("session_id") != self.session_id:
            fail(f"{where}: session_id names another session")
        for problem in event_problems(event):
            fail(f"{where}: not a valid v1 event: {problem}")
        # A broken link is only reported between lines whose seqs follow each other; otherwise the seq problem
        # above already explains it.
        if seq_ok and self._prev_seq is not None and seq == self._prev_seq + 1 and event.get("prev_hash") != self.head:
            fail(
                f"{where}: prev_hash does not link to the hash of line {n - 1} (seq {seq - 1}): line {n - 1} was "
                "altered (or this line's prev_hash was)"
            )
        elif seq == 0 and event.get("prev_hash") != ZERO_HASH_HEX:
            fail(f"{where}: the first event's prev_hash must be 64 zeros")
        if n == 1:
            self._check_start(where, event)
        elif kind == "session.started":
            fail(f"{where}: a second session.started")
        if self.ended_seq is not None:
            fail(f"{where}: event after session.ended (seq {self.ended_seq}): nothing may follow the end")
        elif kind == "session.ended":
            self.ended_seq = seq if seq_ok else expected
        ts = _parse_ts(event["ts"]) if isinstance(event.get("ts"), str) else None
        if ts is not None and self.started_at is not None and ts < self.started_at - START_SKEW:
            fail(f"{where}: ts is more than 5 minutes before the session's start (seq 0)")
        self._prev_seq = seq if seq_ok else None
        if self.limit is None or n <= self.limit:
            self.tally.add(event)

    def _check_start(self, where: str, event: dict[str, Any]) -> None:
        fail = self.outcome.fail
        if event.get("kind") != "session.started":
            fail(f"{where}: the log does not start with session.started (seq 0 is {_kind_label(event)})")
            return
        if isinstance(event.get("ts"), str):
            self.started_at = _parse_ts(event["ts"])
        if self.agent_id is not None and event.get("agent_id") != self.agent_id:
            fail(f"{where}: session.started names another agent than the report (cover.agent.id)")
        policy = event.get("policy")
        named = policy.get("sha256") if isinstance(policy, dict) else None
        if self.policy_sha256 is not None and named != self.policy_sha256:
            fail(
                f"{where}: session.started's policy.sha256 is not the SHA-256 of the report's policy_snapshot: the "
                "report shows another policy than the session ran with"
            )

    def covered(self) -> tuple[int, bytes, str]:
        """(tree size, root, chain head) over the lines the report covers (all of them, without a limit)."""
        if self.limit is not None and self.limit in self.prefixes:
            return (self.limit, *self.prefixes[self.limit])
        return self.accumulator.size, self.accumulator.root(), self.head


def _kind_label(event: dict[str, Any]) -> str:
    kind = event.get("kind")
    return kind if isinstance(kind, str) and kind in KIND_FIELDS else "an unknown kind"
