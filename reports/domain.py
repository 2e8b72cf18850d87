"""The session compliance report (docs/report.md): one immutable value, computed from the verified audit log.

``build_session_report(session, *, generated_at)`` walks the session's events once, in ``seq`` order, streamed
from the database (memory does not grow with the log): each stored canonical byte string is re-hashed, its
``seq``, ``session_id`` and ``prev_hash`` are checked against the chain (``audit.walk.walk_session``), the RFC 6962
root is computed incrementally, and every figure in the report is tallied from those same verified bytes -- never
from the denormalised counters on ``Session``. If anything does not verify, ``AuditChainBroken`` names the first
bad seq and no report exists.

Queries: one for the walk (plus the session's account and agent if the caller did not ``select_related`` them),
whatever the size of the log. Lists that could grow with the log (alerts) are capped at ``LIST_LIMIT`` entries
each, next to their exact counts.

The value is rendered twice, never recomputed: ``SessionReport.as_json()`` is the ``"report"`` object of Masker
Audit Schema v1 (``reports/schema/masker-audit-v1.json``), and ``reports.rendering`` turns the same value into the
PDF. ``sign_report`` adds the Ed25519 signature over the RFC 8785 bytes of ``as_json()`` without ``signature``.
"""

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from itertools import compress
from operator import attrgetter
from typing import Any

import msgspec

from audit.errors import AuditChainBroken
from audit.events import ACTIONS, ALERT_TYPES, KIND_FIELDS, PASSES, PAYLOAD_KINDS, event_alert
from audit.models import Session
from audit.policy import PolicyDoc, parse_policy
from audit.signing import sign_object
from audit.timestamps import format_ts
from audit.walk import EGRESS, REDACTED, REHYDRATED, ChainSummary, EventView, walk_session
from masker.ids import new_id
from reports.models import ReportRecord
from reports.safe_harbor import CATEGORIES, STATEMENT, SafeHarborMatrix, safe_harbor_matrix

logger = logging.getLogger("masker.reports")

SCHEMA = "masker.audit.v1"
SCOPE = "session"
HASH_SCHEME = "RFC9162_SHA256"
CANONICALIZATION = "RFC8785"
LIST_LIMIT = 1000  # per alert list in the JSON; the PDF shows fewer (reports.rendering)
TIMELINE_BUCKETS = 200  # at most this many buckets of turns in the timeline; wider calls share buckets
TIMELINE_COLUMNS = ("redactions", "egress", "alerts")

KEYS_URL = "/api/v1/keys"

RETENTION_STATEMENT = (
    "Figures come from the session's audit log: a payload.persisted event is written whenever the proxy stores a "
    "request, masked or response payload. Originals (request or response payloads) may contain PHI; masked "
    "payloads carry tokens only. Vendor retention is as declared for each egress hop."
)
LIMITATIONS = (
    "Safe Harbor coverage is computed from the policy snapshot (what the policy replaces when an entity is "
    "detected), not from what this call happened to contain; detection itself is statistical.",
    "Safe Harbor also requires no actual knowledge that the remaining information could identify an individual; "
    "software cannot attest to that.",
    "The audit log holds no PHI (kinds, offsets, counts, confidences and vendor names only), so masked values "
    "cannot be re-checked from it, and PHI that no detector flagged leaves no trace in it.",
    "BAA status and vendor retention are as declared by the proxy's configuration for each egress hop.",
    "For a session that is still open (not sealed), the report covers the events logged up to tree_size; later "
    "events are covered by a later report, whose tree extends this one.",
)


# --- the value ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountRef:
    id: str
    name: str

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name}


@dataclass(frozen=True)
class AgentRef:
    id: str
    name: str
    platform: str
    upstream_model: str

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "platform": self.platform, "upstream_model": self.upstream_model}


@dataclass(frozen=True)
class SessionInfo:
    id: str
    external_ref: str
    status: str  # "active" until session.ended, then its status
    started_at: str
    ended_at: str | None
    duration_ms: int | None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "external_ref": self.external_ref,
            "status": self.status,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "duration_ms": self.duration_ms,
        }


@dataclass(frozen=True)
class Cover:
    account: AccountRef
    agent: AgentRef
    session: SessionInfo
    window_from: str
    window_to: str

    def as_json(self) -> dict[str, Any]:
        return {
            "account": self.account.as_json(),
            "agent": self.agent.as_json(),
            "session": self.session.as_json(),
            "time_window": {"from": self.window_from, "to": self.window_to},
        }


@dataclass(frozen=True)
class Summary:
    total_events: int
    total_redactions: int
    coverage_percent: Decimal
    alert_count: int
    alerts_by_type: tuple[tuple[str, int], ...]  # every type of ALERT_TYPES, in that order
    redactions_by_action: tuple[tuple[str, int], ...]  # every action of ACTIONS, in that order
    total_sessions: int = 1

    @property
    def verdict(self) -> str:
        return "no_alerts" if self.alert_count == 0 else "alerts_present"

    def as_json(self) -> dict[str, Any]:
        return {
            "total_sessions": self.total_sessions,
            "total_events": self.total_events,
            "total_redactions": self.total_redactions,
            "coverage_percent": float(self.coverage_percent),
            "alert_count": self.alert_count,
            "alerts_by_type": dict(self.alerts_by_type),
            "redactions_by_action": dict(self.redactions_by_action),
            "verdict": self.verdict,
        }


@dataclass(frozen=True)
class SafeHarbor:
    matrix: SafeHarborMatrix
    stamped_at: str
    media: str

    def as_json(self) -> dict[str, Any]:
        return {
            "coverage_percent": float(self.matrix.coverage_percent),
            "applicable_categories": self.matrix.applicable_categories,
            "full": self.matrix.count("full"),
            "partial": self.matrix.count("partial"),
            "none": self.matrix.count("none"),
            "not_applicable": self.matrix.count("not_applicable"),
            "media": self.media,
            "basis": "policy_snapshot",
            "stamped_at": self.stamped_at,
            "statement": STATEMENT,
        }


@dataclass(frozen=True)
class Item:
    """One listed occurrence (an alert) at its seq and time: ``fields`` are the event's own, in report order.
    ``session_id`` says which session it happened in: a period report lists it (``as_period_json``)."""

    seq: int
    turn: int | None
    ts: str
    fields: tuple[tuple[str, Any], ...] = ()
    session_id: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "turn": self.turn, "ts": self.ts, **dict(self.fields)}

    def as_period_json(self) -> dict[str, Any]:
        return {"session_id": self.session_id, "seq": self.seq, "turn": self.turn, "ts": self.ts, **dict(self.fields)}


@dataclass(frozen=True)
class Listing:
    """A capped list of occurrences with its exact count."""

    count: int
    items: tuple[Item, ...]

    @property
    def more(self) -> int:
        return self.count - len(self.items)


@dataclass(frozen=True)
class PciDss:
    detections: int
    luhn_valid: int
    masked_before_egress: int
    policy_masks_card_numbers: bool
    alerts: Listing

    @property
    def outcome(self) -> str:
        if self.detections == 0:
            return "no_card_data"
        return "all_masked" if self.masked_before_egress == self.detections else "card_data_exposed"

    def as_json(self) -> dict[str, Any]:
        detected = self.detections > 0
        return {
            "card_data_detected": detected,
            "detections": self.detections,
            "luhn_checked": detected,
            "luhn_valid": self.luhn_valid,
            "masked_before_egress": self.masked_before_egress,
            "all_masked_before_egress": self.masked_before_egress == self.detections if detected else None,
            "policy_masks_card_numbers": self.policy_masks_card_numbers,
            "outcome": self.outcome,
            "alert_count": self.alerts.count,
            "alerts": [item.as_json() for item in self.alerts.items],
        }


@dataclass(frozen=True)
class LeakDetection:
    rehydrations: int
    rehydration_failures: Listing
    residual_leaks: Listing
    detection_degraded: Listing

    @property
    def outcome(self) -> str:
        clean = not (self.rehydration_failures.count or self.residual_leaks.count or self.detection_degraded.count)
        return "clean" if clean else "alerts_present"

    def as_json(self) -> dict[str, Any]:
        return {
            "rehydrations": self.rehydrations,
            "rehydration_failure_count": self.rehydration_failures.count,
            "rehydration_failures": [item.as_json() for item in self.rehydration_failures.items],
            "residual_leak_count": self.residual_leaks.count,
            "residual_leaks": [item.as_json() for item in self.residual_leaks.items],
            "detection_degraded_count": self.detection_degraded.count,
            "detection_degraded": [item.as_json() for item in self.detection_degraded.items],
            "outcome": self.outcome,
        }


@dataclass(frozen=True)
class RetentionAttestation:
    policy_logs_payloads: bool
    policy_retention_days: int
    payloads_by_what: tuple[tuple[str, int], ...]  # every kind of PAYLOAD_KINDS, in that order
    payloads_unencrypted: int
    max_vendor_retention_days: int | None

    @property
    def payloads_persisted(self) -> int:
        return sum(count for _, count in self.payloads_by_what)

    @property
    def originals_persisted(self) -> bool:
        counts = dict(self.payloads_by_what)
        return counts["request"] + counts["response"] > 0

    @property
    def consistent_with_policy(self) -> bool:
        return self.policy_logs_payloads or self.payloads_persisted == 0

    def as_json(self) -> dict[str, Any]:
        persisted = self.payloads_persisted
        return {
            "policy_logs_payloads": self.policy_logs_payloads,
            "retention_days": self.policy_retention_days,
            "payloads_persisted": persisted,
            "payloads_by_what": dict(self.payloads_by_what),
            "originals_persisted": self.originals_persisted,
            "all_payloads_encrypted": self.payloads_unencrypted == 0 if persisted else None,
            "consistent_with_policy": self.consistent_with_policy,
            "max_vendor_retention_days": self.max_vendor_retention_days,
            "statement": RETENTION_STATEMENT,
        }


@dataclass(frozen=True)
class BaaHop:
    hop: str
    vendor: str
    baa: bool
    retention_days: int
    count: int
    first_turn: int
    first_seq: int

    def as_json(self) -> dict[str, Any]:
        return {
            "hop": self.hop,
            "vendor": self.vendor,
            "baa": self.baa,
            "retention_days": self.retention_days,
            "count": self.count,
            "first_turn": self.first_turn,
            "first_seq": self.first_seq,
        }


@dataclass(frozen=True)
class BaaChain:
    hops: tuple[BaaHop, ...]  # one per (hop, vendor, baa, retention_days), in order of first use
    alerts: Listing

    @property
    def egress_count(self) -> int:
        return sum(hop.count for hop in self.hops)

    def as_json(self) -> dict[str, Any]:
        return {
            "egress_count": self.egress_count,
            "all_baa": all(hop.baa for hop in self.hops),
            "hops": [hop.as_json() for hop in self.hops],
            "alert_count": self.alerts.count,
            "alerts": [item.as_json() for item in self.alerts.items],
        }


@dataclass(frozen=True)
class Signature:
    alg: str
    kid: str
    sig: str

    def as_json(self) -> dict[str, str]:
        return {"alg": self.alg, "kid": self.kid, "sig": self.sig}


@dataclass(frozen=True)
class Seal:
    """The session's seal as signed when it ended. The walk has checked the signature under a published key and
    that the signed size, root and head are the walked ones (``matches_log``): a report exists only then. The
    signature is carried so that an offline verifier can check it too: it signs the RFC 8785 bytes of
    ``{session_id, tree_size, merkle_root_hex, chain_head_hex, sealed_at}``."""

    sealed_at: str
    tree_size: int
    merkle_root_hex: str
    chain_head_hex: str
    signature: Signature

    def as_json(self) -> dict[str, Any]:
        return {
            "status": "sealed",
            "sealed_at": self.sealed_at,
            "tree_size": self.tree_size,
            "merkle_root_hex": self.merkle_root_hex,
            "chain_head_hex": self.chain_head_hex,
            "signature": self.signature.as_json(),
            "signature_kid": self.signature.kid,
            "matches_log": True,
        }


OPEN_SEAL = {
    "status": "open",
    "sealed_at": None,
    "tree_size": None,
    "merkle_root_hex": None,
    "chain_head_hex": None,
    "signature": None,
    "signature_kid": None,
    "matches_log": None,
}


@dataclass(frozen=True)
class AuditIntegrity:
    chain: ChainSummary
    seal: Seal | None

    def as_json(self) -> dict[str, Any]:
        size = self.chain.tree_size
        return {
            "hash_scheme": HASH_SCHEME,
            "canonicalization": CANONICALIZATION,
            "leaf_hash": "SHA-256(0x00 || canonical event bytes)",
            "tree_size": size,
            "first_seq": 0 if size else None,
            "last_seq": size - 1 if size else None,
            "chain_head_hex": self.chain.chain_head_hex,
            "chain_verified": True,  # a report exists only for a chain that verified
            "seal": self.seal.as_json() if self.seal else dict(OPEN_SEAL),
        }


@dataclass(frozen=True)
class PolicyRef:
    name: str
    version: int
    sha256: str

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "sha256": self.sha256}


@dataclass(frozen=True)
class TurnBucket:
    from_turn: int
    to_turn: int
    redactions: int
    egress: int
    alerts: int

    def as_json(self) -> dict[str, int]:
        return {
            "from_turn": self.from_turn,
            "to_turn": self.to_turn,
            "redactions": self.redactions,
            "egress": self.egress,
            "alerts": self.alerts,
        }


@dataclass(frozen=True)
class Timeline:
    """Redactions, egress events and alerts per turn: consecutive buckets of ``bucket_size`` turns from the first
    turn logged to the last (empty buckets included), at most ``TIMELINE_BUCKETS`` of them."""

    bucket_size: int
    buckets: tuple[TurnBucket, ...]

    @property
    def first_turn(self) -> int | None:
        return self.buckets[0].from_turn if self.buckets else None

    @property
    def last_turn(self) -> int | None:
        return self.buckets[-1].to_turn if self.buckets else None

    def as_json(self) -> dict[str, Any]:
        return {
            "first_turn": self.first_turn,
            "last_turn": self.last_turn,
            "bucket_size": self.bucket_size,
            "buckets": [bucket.as_json() for bucket in self.buckets],
        }


def verification_section(session_id: str, tree_size: int) -> dict[str, Any]:
    events_url = f"/api/v1/sessions/{session_id}/events"
    return {
        "merkle_root": (
            f"Download the events ({events_url}: NDJSON, one stored canonical event per line, in seq order). For "
            "each line compute the leaf hash SHA-256(0x00 || line bytes without the newline); each event's "
            "prev_hash must equal the previous leaf hash in hex. The RFC 9162 Merkle tree hash over the first "
            f"{tree_size} leaf hashes must equal merkle_root_hex."
        ),
        "inclusion_proof": (
            f"{events_url}/{{seq}}/proof returns the RFC 9162 audit path of one event; hashing the event's leaf "
            "hash up the path must give merkle_root_hex for tree_size."
        ),
        "signature": (
            f"Fetch the public keys ({KEYS_URL}, a JWKS of Ed25519 keys, retired ones included) and verify "
            "signature.sig (base64url, no padding) with the key named signature.kid over the RFC 8785 bytes of "
            "this report object without its signature field."
        ),
        "offline_verifier": (
            f"python3 masker-verify.pyz report masker-report-{session_id}.json --events "
            f"masker-events-{session_id}.ndjson --keys keys.json"
        ),
        "urls": {"keys": KEYS_URL, "events": events_url, "inclusion_proof": f"{events_url}/{{seq}}/proof"},
        "scope": (
            f"One session (one call) of one agent: the first {tree_size} events of its audit log, as recorded by "
            "the Masker proxy, with the policy snapshot taken when the session started."
        ),
        "limitations": list(LIMITATIONS),
    }


@dataclass(frozen=True)
class SessionReport:
    """A session's compliance report. ``as_json()`` is the ``"report"`` object, keys in the order of docs/report.md."""

    id: str
    session_id: str
    generated_at: datetime
    merkle_root_hex: str
    cover: Cover
    summary: Summary
    safe_harbor: SafeHarbor
    pci_dss: PciDss
    leak_detection: LeakDetection
    retention_attestation: RetentionAttestation
    baa_chain: BaaChain
    redactions_by_kind: tuple[tuple[str, int], ...]  # kinds seen, alphabetical
    redactions_by_pass: tuple[tuple[str, int], ...]  # passes seen, in PASSES order
    audit_integrity: AuditIntegrity
    policy_snapshot: str
    policy: PolicyRef
    upstream_model: str
    timeline: Timeline = Timeline(bucket_size=1, buckets=())
    signature: Signature | None = None
    scope: str = SCOPE
    schema: str = SCHEMA

    @property
    def generated_at_text(self) -> str:
        return format_ts(self.generated_at)

    @property
    def tree_size(self) -> int:
        return self.audit_integrity.chain.tree_size

    def as_json(self) -> dict[str, Any]:
        """The report object; ``signature`` is present once signed (``sign_report``)."""
        body = {
            "schema": self.schema,
            "id": self.id,
            "scope": self.scope,
            "session_id": self.session_id,
            "generated_at": self.generated_at_text,
            "merkle_root_hex": self.merkle_root_hex,
            "cover": self.cover.as_json(),
            "summary": self.summary.as_json(),
            "safe_harbor_coverage": dict(self.safe_harbor.matrix.coverage),
            "safe_harbor": self.safe_harbor.as_json(),
            "pci_dss": self.pci_dss.as_json(),
            "leak_detection": self.leak_detection.as_json(),
            "retention_attestation": self.retention_attestation.as_json(),
            "baa_chain": self.baa_chain.as_json(),
            "redactions_by_kind": dict(self.redactions_by_kind),
            "redactions_by_pass": dict(self.redactions_by_pass),
            "audit_integrity": self.audit_integrity.as_json(),
            "policy_snapshot": self.policy_snapshot,
            "policy": self.policy.as_json(),
            "upstream_model": self.upstream_model,
            "verification": verification_section(self.session_id, self.tree_size),
            "timeline": self.timeline.as_json(),
        }
        if self.signature is not None:
            body["signature"] = self.signature.as_json()
        return body


def sign_report(report: SessionReport) -> SessionReport:
    """The same report with ``signature``: Ed25519 over the RFC 8785 bytes of ``as_json()`` without it."""
    unsigned = replace(report, signature=None).as_json()
    return replace(report, signature=Signature(**sign_object(unsigned)))


# --- the walk -----------------------------------------------------------------------------------------------------


class _Capped:
    """Collects at most ``LIST_LIMIT`` items and counts all of them."""

    __slots__ = ("count", "items")

    def __init__(self) -> None:
        self.count = 0
        self.items: list[Item] = []

    def add(self, event: "EventView", *fields: tuple[str, Any]) -> None:
        self.count += 1
        if len(self.items) < LIST_LIMIT:
            self.items.append(Item(seq=event.seq, turn=event.turn, ts=event.ts, fields=fields))

    def extend(self, other: "_Capped", session_id: str) -> None:
        """Add another list's items, as occurring in ``session_id``, and its count."""
        self.count += other.count
        room = LIST_LIMIT - len(self.items)
        if room > 0:
            self.items.extend(replace(item, session_id=session_id) for item in other.items[:room])

    def freeze(self) -> Listing:
        return Listing(count=self.count, items=tuple(self.items))


class _TurnHistogram:
    """Counts per turn in buckets of ``width`` turns (a power of two). When the turns seen span more than
    ``TIMELINE_BUCKETS`` buckets, the width doubles and neighbouring buckets merge, so memory is bounded whatever
    the log, and the final width depends only on the first and last turn (not on the order events came in)."""

    __slots__ = ("counts", "first", "last", "width")

    def __init__(self) -> None:
        self.width = 1
        self.first: int | None = None
        self.last: int | None = None
        self.counts: dict[int, list[int]] = {}  # bucket (turn // width) -> one count per TIMELINE_COLUMNS

    def add(self, turn: int, column: int, n: int = 1) -> None:
        first = self.first = turn if self.first is None else min(self.first, turn)
        last = self.last = turn if self.last is None else max(self.last, turn)
        row = self.counts.get(turn // self.width)
        if row is None:
            while last // self.width - first // self.width >= TIMELINE_BUCKETS:
                self._widen()
            row = self.counts.setdefault(turn // self.width, [0] * len(TIMELINE_COLUMNS))
        row[column] += n

    def _widen(self) -> None:
        self.width *= 2
        merged: dict[int, list[int]] = {}
        for key, row in self.counts.items():
            into = merged.setdefault(key // 2, [0] * len(TIMELINE_COLUMNS))
            for i, n in enumerate(row):
                into[i] += n
        self.counts = merged

    def freeze(self) -> Timeline:
        if self.first is None or self.last is None:
            return Timeline(bucket_size=1, buckets=())
        width, empty = self.width, [0] * len(TIMELINE_COLUMNS)
        buckets = []
        for key in range(self.first // width, self.last // width + 1):
            counts = self.counts.get(key, empty)
            buckets.append(TurnBucket(max(key * width, self.first), min((key + 1) * width - 1, self.last), *counts))
        return Timeline(bucket_size=width, buckets=tuple(buckets))


@dataclass
class _Tally:
    """Everything the report counts from the verified events, fed a chunk at a time by ``walk_chain`` (which, for
    a long log, runs it in its checking process: it must stay picklable). Memory: O(distinct vendors and kinds),
    lists capped."""

    alerts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ALERT_TYPES, 0))
    rehydration_failures: _Capped = field(default_factory=_Capped)
    leaks: _Capped = field(default_factory=_Capped)
    degraded: _Capped = field(default_factory=_Capped)
    cards: int = 0
    cards_luhn_valid: int = 0
    cards_masked: int = 0
    card_alerts: _Capped = field(default_factory=_Capped)
    # (hop, vendor, baa, retention_days) -> (turn, seq) of its first use, in order of first use; counts: census.
    hops: dict[tuple[str, str, bool, int], tuple[int, int]] = field(default_factory=dict)
    hop_counts: dict[tuple[str, str, bool, int], int] = field(default_factory=dict)
    baa_alerts: _Capped = field(default_factory=_Capped)
    payloads: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PAYLOAD_KINDS, 0))
    payloads_unencrypted: int = 0
    turns: _TurnHistogram = field(default_factory=_TurnHistogram)
    started: dict | None = None
    ended: dict | None = None
    last_ts: str = ""
    # Set from the walk's census once it is done (``count_census``): (entity, pass, action) -> count.
    redactions: dict[tuple[str, str, str], int] = field(default_factory=dict)
    rehydrations: int = 0

    def add_events(self, events: list[EventView], kinds: list[str]) -> None:
        """Tally a verified chunk: redactions and rehydrations (most of any log) come from the walk's census
        (``count_census``); every other event goes through ``_add_one``."""
        for event in compress(events, map(_ONE_BY_ONE.__contains__, kinds)):
            self._add_one(event)
        if EGRESS in kinds:
            self._add_egress(list(compress(events, map(EGRESS.__eq__, kinds))))
        for turn, count in Counter(map(_TURN, compress(events, map(REDACTED.__eq__, kinds)))).items():
            if turn is not None:
                self.turns.add(turn, 0, count)
        self.last_ts = events[-1].ts

    def count_census(self, census: Counter) -> None:
        """Take the redaction and rehydration figures from the walk's census of (kind, entity, pass, action)."""
        for (kind, entity, pass_, action, hop, vendor, baa, retention_days), count in census.items():
            if kind == REDACTED:
                key = (entity, pass_, action)
                self.redactions[key] = self.redactions.get(key, 0) + count
            elif kind == REHYDRATED:
                self.rehydrations += count
            elif kind == EGRESS:
                key = (hop, vendor, baa, retention_days)
                self.hop_counts[key] = self.hop_counts.get(key, 0) + count

    def _add_egress(self, egress: list[EventView]) -> None:
        """Egress hops of a chunk: counted by the census; only a hop's first use and non-BAA hops (alerts) need a
        look at single events."""
        for turn, count in Counter(map(_TURN, egress)).items():
            self.turns.add(turn, 1, count)
        keys = set(map(_HOP_KEY, egress))
        if keys <= self.hops.keys() and all(key[2] for key in keys):
            return
        for event in egress:
            key = _HOP_KEY(event)
            if key not in self.hops:
                self.hops[key] = (event.turn, event.seq)
            alert = event_alert(EGRESS, event)
            if alert is not None:
                self.alerts[alert] = self.alerts.get(alert, 0) + 1
                self.turns.add(event.turn, 2)
                self.baa_alerts.add(event, ("hop", key[0]), ("vendor", key[1]), ("retention_days", key[3]))

    def _add_one(self, event: EventView) -> None:
        kind = event.kind
        alert = event_alert(kind, event)
        if alert is not None:
            self.alerts[alert] = self.alerts.get(alert, 0) + 1
            if event.turn is not None:
                self.turns.add(event.turn, 2)
        if kind == "phi.rehydration_failed":
            self.rehydration_failures.add(event, ("entity_kind", event.entity_kind), ("reason", event.reason))
        elif kind == "leak.detected":
            self.leaks.add(event, ("entity_kind", event.entity_kind), ("stage", event.stage))
        elif kind == "pci.card_detected":
            self.cards += 1
            self.cards_luhn_valid += event.luhn_valid
            self.cards_masked += event.masked_before_egress
            if alert is not None:
                self.card_alerts.add(event, ("luhn_valid", event.luhn_valid), ("action", event.action))
        elif kind == "detection.degraded":
            self.degraded.add(event, ("reason", event.reason))
        elif kind == "payload.persisted":
            self.payloads[event.what] += 1
            self.payloads_unencrypted += not event.encrypted
        elif kind == "session.started":
            self.started = msgspec.structs.asdict(event)
        elif kind == "session.ended":
            self.ended = msgspec.structs.asdict(event)

    def redaction_counts(self, position: int, order: Iterable[str] | None = None) -> tuple[tuple[str, int], ...]:
        """Redactions summed by one element of the (entity, pass, action) key: alphabetical, or in ``order``
        (then keys of ``order`` with no redaction are left out)."""
        counts: dict[str, int] = {}
        for key, count in self.redactions.items():
            counts[key[position]] = counts.get(key[position], 0) + count
        return _sorted_counts(counts, order)

    @property
    def total_redactions(self) -> int:
        return sum(self.redactions.values())


_HOP_KEY = attrgetter("hop", "vendor", "baa", "retention_days")
# Kinds the tally reads event by event: all but redactions, rehydrations and egress hops (most of any log), which
# the walk's census counts.
_ONE_BY_ONE = frozenset(KIND_FIELDS) - {REDACTED, REHYDRATED, EGRESS}
_TURN = attrgetter("turn")


def _walk(session: Session) -> tuple[ChainSummary, _Tally]:
    """One streaming pass: verify every event and tally it. Raises ``AuditChainBroken`` at the first bad seq."""
    summary, tally = walk_session(session, _Tally())
    tally.count_census(summary.census)
    return summary, tally


@lru_cache(maxsize=128)
def parsed_policy(snapshot: str) -> PolicyDoc:
    """The parsed policy snapshot. Cached by its text: parsing YAML cost more than walking a 300-event log, and a
    snapshot never changes (sessions share a handful of policy versions). Treat the result as read-only."""
    return parse_policy(snapshot)


def _sorted_counts(counts: dict[str, int], order: Iterable[str] | None = None) -> tuple[tuple[str, int], ...]:
    if order is None:
        return tuple(sorted(counts.items()))
    return tuple((key, counts[key]) for key in order if counts.get(key))


def _seal(session: Session) -> Seal | None:
    """The seal the walk verified (signature and figures), or None for an open session."""
    if not session.is_sealed:
        return None
    seal = session.seal
    return Seal(
        sealed_at=seal["sealed_at"],
        tree_size=seal["tree_size"],
        merkle_root_hex=seal["merkle_root_hex"],
        chain_head_hex=seal["chain_head_hex"],
        signature=Signature(**seal["signature"]),
    )


def build_session_report(session: Session, *, generated_at: datetime) -> SessionReport:
    """Walk and verify ``session``'s audit log and build its report (unsigned; see ``sign_report``).

    ``generated_at`` must be an aware datetime. Raises ``AuditChainBroken`` (409) if the log does not verify, or
    if it disagrees with the session's recorded size, head, seal or policy snapshot.
    """
    if generated_at.tzinfo is None:
        raise ValueError("generated_at must be timezone-aware")
    try:
        chain, tally = _walk(session)
    except AuditChainBroken as broken:
        # Ids and the reason only (never event contents): a broken chain is an integrity incident.
        logger.error("audit chain broken: session %s at seq %s: %s", session.id, broken.seq, broken.reason)
        raise
    policy_doc = parsed_policy(session.policy_snapshot)
    matrix = safe_harbor_matrix(policy_doc)
    started, ended = tally.started, tally.ended
    stamped = format_ts(generated_at)
    vendor_retention = [key[3] for key in tally.hops]
    card_rule = policy_doc.entities.get("CREDIT_CARD")
    return SessionReport(
        id=new_id("rep"),
        session_id=session.id,
        generated_at=generated_at,
        merkle_root_hex=chain.merkle_root_hex,
        cover=Cover(
            account=AccountRef(id=session.account.id, name=session.account.name),
            agent=AgentRef(
                id=started["agent_id"],
                name=session.agent.name,
                platform=started["platform"],
                upstream_model=started["upstream_model"],
            ),
            session=SessionInfo(
                id=session.id,
                external_ref=session.external_ref,
                status=ended["status"] if ended else "active",
                started_at=started["ts"],
                ended_at=ended["ts"] if ended else None,
                duration_ms=ended["duration_ms"] if ended else None,
            ),
            window_from=started["ts"],
            window_to=tally.last_ts,
        ),
        summary=Summary(
            total_events=chain.tree_size,
            total_redactions=tally.total_redactions,
            coverage_percent=matrix.coverage_percent,
            alert_count=sum(tally.alerts.values()),
            alerts_by_type=tuple((kind, tally.alerts.get(kind, 0)) for kind in ALERT_TYPES),
            redactions_by_action=tuple((action, dict(tally.redaction_counts(2)).get(action, 0)) for action in ACTIONS),
        ),
        safe_harbor=SafeHarbor(matrix=matrix, stamped_at=stamped, media=policy_doc.media),
        pci_dss=PciDss(
            detections=tally.cards,
            luhn_valid=tally.cards_luhn_valid,
            masked_before_egress=tally.cards_masked,
            policy_masks_card_numbers=bool(card_rule and card_rule.covers),
            alerts=tally.card_alerts.freeze(),
        ),
        leak_detection=LeakDetection(
            rehydrations=tally.rehydrations,
            rehydration_failures=tally.rehydration_failures.freeze(),
            residual_leaks=tally.leaks.freeze(),
            detection_degraded=tally.degraded.freeze(),
        ),
        retention_attestation=RetentionAttestation(
            policy_logs_payloads=policy_doc.log_payloads,
            policy_retention_days=policy_doc.retention_days,
            payloads_by_what=tuple((what, tally.payloads[what]) for what in PAYLOAD_KINDS),
            payloads_unencrypted=tally.payloads_unencrypted,
            max_vendor_retention_days=max(vendor_retention) if vendor_retention else None,
        ),
        baa_chain=BaaChain(
            hops=tuple(
                BaaHop(
                    hop=key[0],
                    vendor=key[1],
                    baa=key[2],
                    retention_days=key[3],
                    count=count,
                    first_turn=turn,
                    first_seq=seq,
                )
                for key, (turn, seq) in tally.hops.items()
                for count in (tally.hop_counts[key],)
            ),
            alerts=tally.baa_alerts.freeze(),
        ),
        redactions_by_kind=tally.redaction_counts(0),
        redactions_by_pass=tally.redaction_counts(1, PASSES),
        audit_integrity=AuditIntegrity(chain=chain, seal=_seal(session)),
        policy_snapshot=session.policy_snapshot,
        policy=PolicyRef(
            name=started["policy"]["name"], version=started["policy"]["version"], sha256=started["policy"]["sha256"]
        ),
        upstream_model=started["upstream_model"],
        timeline=tally.turns.freeze(),
    )


def record_report(
    report: SessionReport,
    *,
    report_format: str,
    generated_by: str,
    run_id: str | None = None,
    files: list | None = None,
) -> ReportRecord:
    """Add an issued report to the append-only register: id, scope, session, format, root, tree size, who, when;
    for a report run, the run and its stored files' names, sizes and SHA-256."""
    return ReportRecord.objects.create(
        run_id=run_id,
        files=files or [],
        id=report.id,
        account_id=report.cover.account.id,
        scope=report.scope,
        session_id=report.session_id,
        format=report_format,
        merkle_root_hex=report.merkle_root_hex,
        tree_size=report.tree_size,
        signature_kid=report.signature.kid if report.signature else "",
        generated_by=generated_by,
        generated_at=report.generated_at,
    )


__all__ = ["CATEGORIES", "SessionReport", "build_session_report", "record_report", "sign_report"]
