"""The session compliance report as a value (docs/report.md): constants, the parts of the report and
``SessionReport``, computed once from the verified audit log and rendered twice, never recomputed.
``SessionReport.as_json()`` is the ``"report"`` object of Masker Audit Schema v1
(``reports/schema/masker-audit-v1.json``); ``reports.rendering`` turns the same value into the PDF.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from audit.timestamps import format_ts
from audit.walk import ChainSummary
from reports.safe_harbor import STATEMENT, SafeHarborMatrix

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
    matches_log: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "status": "sealed",
            "sealed_at": self.sealed_at,
            "tree_size": self.tree_size,
            "merkle_root_hex": self.merkle_root_hex,
            "chain_head_hex": self.chain_head_hex,
            "signature": self.signature.as_json(),
            "signature_kid": self.signature.kid,
            "matches_log": self.matches_log,
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
            "chain_verified": self.chain.verified,
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
