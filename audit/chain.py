"""Writes to the audit log and its verification. Every write is one function and one transaction that locks
the session row it orders (SPEC §6, §9): on PostgreSQL ``SELECT … FOR UPDATE``; on SQLite the IMMEDIATE
transaction mode serialises writers.
"""

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from audit.canonical import canonical_bytes
from audit.errors import AuditChainBroken, SessionEnded
from audit.events import SCHEMA_VERSION, ZERO_HASH, event_alert, validate_events
from audit.merkle import MerkleAccumulator
from audit.models import Agent, AuditEvent, Session
from audit.signing import sign_object
from masker.ids import new_id

APPEND_RETRIES = 5


def format_ts(moment: datetime) -> str:
    """RFC 3339 UTC with milliseconds and ``Z`` (SPEC §2)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_ts(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _append_locked(session: Session, events: list[dict]) -> list[AuditEvent]:
    """Hash and insert already-validated events after the session row is locked; update the chain state."""
    accumulator = MerkleAccumulator.from_frontier(session.tree_size, session.merkle_frontier)
    prev_hash, seq = session.chain_head, session.tree_size
    rows, redactions, alerts = [], 0, 0
    for submitted in events:
        event = {
            "v": SCHEMA_VERSION,
            "id": new_id("evt"),
            "session_id": session.id,
            "seq": seq,
            **submitted,
            "prev_hash": prev_hash,
        }
        canonical = canonical_bytes(event)
        digest = hashlib.sha256(b"\x00" + canonical).digest()
        accumulator.append(digest)
        event_hash = digest.hex()
        kind = event["kind"]
        rows.append(
            AuditEvent(
                id=event["id"],
                session_id=session.id,
                seq=seq,
                kind=kind,
                ts=parse_ts(event["ts"]),
                turn=event.get("turn"),
                entity_kind=event.get("entity_kind", ""),
                canonical=canonical.decode("utf-8"),
                event_hash=event_hash,
                prev_hash=prev_hash,
            )
        )
        redactions += kind == "phi.redacted"
        alerts += event_alert(kind, event) is not None
        prev_hash, seq = event_hash, seq + 1
    _insert(rows)
    session.tree_size, session.chain_head = seq, prev_hash
    session.merkle_frontier = accumulator.frontier_hex()
    session.redaction_count += redactions
    session.alert_count += alerts
    session.save(update_fields=["tree_size", "chain_head", "merkle_frontier", "redaction_count", "alert_count"])
    return rows


_COPY_COLUMNS = ("id", "session_id", "seq", "kind", "ts", "turn", "entity_kind", "canonical", "event_hash", "prev_hash")


def _insert(rows: list[AuditEvent]) -> None:
    """Insert new events. On PostgreSQL through COPY: the same rows and constraints as ``bulk_create``, but about
    ten times cheaper than binding 10 parameters per row client-side, which dominated the append cost."""
    if connection.vendor != "postgresql":
        AuditEvent.objects.bulk_create(rows)
        return
    columns = ", ".join(_COPY_COLUMNS)
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {AuditEvent._meta.db_table} ({columns}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(tuple(getattr(row, name) for name in _COPY_COLUMNS))


def _lock(session_id: str) -> Session:
    return Session.objects.select_for_update().get(pk=session_id)


def append_events(session: Session, events: list[dict]) -> list[AuditEvent]:
    """Validate a client batch strictly (all-or-nothing), then append it to the session's chain.

    One transaction: lock the session row, refuse a sealed session (``SessionEnded``), assign gapless ``seq``,
    compute canonical bytes and hashes once, insert, update the chain head. Unique ``(session, seq)`` and
    ``(session, prev_hash)`` make a fork impossible even if the lock were bypassed; on such a conflict (or a
    busy SQLite database) the whole transaction is retried from the new head.
    """
    validate_events(events)
    for attempt in range(APPEND_RETRIES):
        try:
            with transaction.atomic():
                locked = _lock(session.pk)
                if locked.is_sealed:
                    raise SessionEnded()
                rows = _append_locked(locked, events)
            _refresh(session, locked)
            return rows
        except (IntegrityError, OperationalError):
            if attempt == APPEND_RETRIES - 1:
                raise
    raise AssertionError("unreachable")


def _refresh(target: Session, source: Session) -> None:
    for field in ("tree_size", "chain_head", "merkle_frontier", "redaction_count", "alert_count", "status",
                  "ended_at", "sealed_at", "seal"):  # fmt: skip
        setattr(target, field, getattr(source, field))


def start_session(
    agent: Agent, *, external_ref: str, platform: str | None = None, started_at: datetime | None = None
) -> tuple[Session, bool]:
    """Start (or find) the session of one call; returns (session, created).

    The same ``external_ref`` for the same agent returns the existing session. A new session snapshots the
    agent's current policy text and appends ``session.started`` as seq 0, in the same transaction.
    """
    existing = Session.objects.filter(agent=agent, external_ref=external_ref).first()
    if existing is not None:
        return existing, False
    started_at = started_at or timezone.now()
    policy = agent.policy
    try:
        with transaction.atomic():
            session = Session.objects.create(
                account_id=agent.account_id,
                agent=agent,
                external_ref=external_ref,
                platform=platform or agent.platform,
                upstream_model=agent.upstream_model,
                started_at=started_at,
                policy=policy,
                policy_snapshot=policy.yaml_text,
                policy_name=policy.name,
                policy_version=policy.version,
                policy_sha256=policy.sha256,
            )
            started = {
                "ts": format_ts(started_at),
                "kind": "session.started",
                "agent_id": agent.id,
                "platform": session.platform,
                "upstream_model": session.upstream_model,
                "policy": {"name": policy.name, "version": policy.version, "sha256": policy.sha256},
            }
            validate_events([started], allow_server_kinds=True)
            _append_locked(_lock(session.pk), [started])
    except IntegrityError:
        # A concurrent request created the same (agent, external_ref) first: return that one.
        return Session.objects.get(agent=agent, external_ref=external_ref), False
    session.refresh_from_db()
    return session, True


def end_session(session: Session, *, status: str, now: datetime | None = None) -> Session:
    """Append ``session.ended`` and seal the session: final size and root, signed. Later appends get 409."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = _lock(session.pk)
        if locked.is_sealed:
            raise SessionEnded()
        duration_ms = max(0, int((now - locked.started_at).total_seconds() * 1000))
        ended = {"ts": format_ts(now), "kind": "session.ended", "status": status, "duration_ms": duration_ms}
        validate_events([ended], allow_server_kinds=True)
        _append_locked(locked, [ended])
        seal = {
            "session_id": locked.id,
            "tree_size": locked.tree_size,
            "merkle_root_hex": locked.merkle_root_hex,
            "chain_head_hex": locked.chain_head,
            "sealed_at": format_ts(now),
        }
        locked.seal = {**seal, "signature": sign_object(seal)}
        locked.sealed_at, locked.ended_at, locked.status = now, now, status
        locked.save(update_fields=["seal", "sealed_at", "ended_at", "status"])
    _refresh(session, locked)
    return session


@dataclass(frozen=True)
class ChainSummary:
    tree_size: int
    merkle_root_hex: str
    chain_head_hex: str


def iter_canonical(session: Session, *, chunk_size: int = 5000) -> Iterator[tuple[int, str, str]]:
    """(seq, canonical text, stored event_hash) in seq order, streamed with a server-side cursor (flat memory)."""
    return (
        AuditEvent.objects.filter(session_id=session.pk)
        .order_by("seq")
        .values_list("seq", "canonical", "event_hash")
        .iterator(chunk_size=chunk_size)
    )


class ChainWalker:
    """Re-hashes each event's stored canonical bytes in seq order and checks every link, incrementally.

    ``feed`` returns the parsed event; it raises ``AuditChainBroken`` naming the first bad seq (gap, wrong
    session, hash mismatch, broken ``prev_hash`` link, or bytes that are not canonical JSON).
    """

    def __init__(self, session_id: str):
        self.session_id = session_id
        self.accumulator = MerkleAccumulator()
        self.head = ZERO_HASH
        self.expected_seq = 0

    def feed(self, seq: int, canonical: str, stored_hash: str) -> dict:
        if seq != self.expected_seq:
            raise AuditChainBroken(self.expected_seq, "event missing (gap in seq)")
        raw = canonical.encode("utf-8")
        digest = hashlib.sha256(b"\x00" + raw).digest()
        if digest.hex() != stored_hash:
            raise AuditChainBroken(seq, "event bytes do not match the stored event hash")
        try:
            event = json.loads(raw)
        except ValueError:
            raise AuditChainBroken(seq, "event bytes are not JSON") from None
        if event.get("seq") != seq or event.get("session_id") != self.session_id:
            raise AuditChainBroken(seq, "event names another position or session")
        if event.get("prev_hash") != self.head:
            raise AuditChainBroken(seq, "prev_hash does not link to the previous event")
        self.accumulator.append(digest)
        self.head = digest.hex()
        self.expected_seq += 1
        return event

    def finish(self, *, expected_size: int) -> ChainSummary:
        if self.expected_seq != expected_size:
            raise AuditChainBroken(self.expected_seq, f"log holds {self.expected_seq} events, session records "
                                   f"{expected_size}")  # fmt: skip
        return ChainSummary(self.expected_seq, self.accumulator.root().hex(), self.head)


def verify_chain(session: Session) -> ChainSummary:
    """Walk the whole chain from the stored bytes; raise ``AuditChainBroken`` at the first bad seq."""
    walker = ChainWalker(session.id)
    for seq, canonical, stored_hash in iter_canonical(session):
        walker.feed(seq, canonical, stored_hash)
    return walker.finish(expected_size=session.tree_size)
