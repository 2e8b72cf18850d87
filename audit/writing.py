"""Writes to the audit log: start a session, append events, end (seal) it. Every write is one function and one
transaction that locks the session row it orders: on PostgreSQL ``SELECT … FOR UPDATE``; on SQLite the IMMEDIATE
transaction mode serialises writers.

Every successful write is answered with a ``receipt``: a signed tree head ``{session_id, tree_size,
merkle_root_hex, chain_head_hex, issued_at, signature}``. Whoever holds one can later prove, with the log or a
consistency proof, that the log still extends it (docs/audit-log.md).
"""

import hashlib
from collections.abc import Callable
from datetime import datetime

from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from audit.canonical import canonical_bytes
from audit.errors import SessionEnded
from audit.events import SCHEMA_VERSION, event_alert, validate_events
from audit.merkle import MerkleAccumulator
from audit.models import Agent, AuditEvent, Session
from audit.signing import sign_object
from audit.timestamps import earliest_ts, format_ts, latest_ts, parse_ts
from masker.errors import ValidationFailed
from masker.ids import new_id

APPEND_RETRIES = 5


def issue_receipt(session: Session, *, issued_at: datetime) -> dict:
    """The signed tree head of ``session`` as it stands (size, root, head), issued at ``issued_at``."""
    head = {
        "session_id": session.id,
        "tree_size": session.tree_size,
        "merkle_root_hex": session.merkle_root_hex,
        "chain_head_hex": session.chain_head,
        "issued_at": format_ts(issued_at),
    }
    return {**head, "signature": sign_object(head)}


def start_receipt(session: Session) -> dict:
    """The receipt of a session's start (its first event), issued at its start: the same receipt every time it is
    asked for again (Ed25519 signatures are deterministic), as long as the signing key has not been rotated."""
    first = AuditEvent.objects.filter(session_id=session.pk, seq=0).values_list("event_hash", flat=True).first()
    head = {
        "session_id": session.id,
        "tree_size": 1,
        "merkle_root_hex": first,
        "chain_head_hex": first,
        "issued_at": format_ts(session.started_at),
    }
    return {**head, "signature": sign_object(head)}


def _check_times(session: Session, events: list[dict], now: datetime) -> None:
    """Event times within the session's bounds (``audit.timestamps``); 400 naming every index, never the value."""
    earliest, latest = earliest_ts(session.started_at), latest_ts(now)
    problems = [
        {
            "index": index,
            "field": "ts",
            "message": "must lie between 5 minutes before the session's start and 5 minutes from now",
        }
        for index, event in enumerate(events)
        if not earliest <= event["ts"] <= latest
    ]
    if problems:
        raise ValidationFailed(
            f"{len(problems)} event(s) in the batch are invalid; nothing was written.", details={"events": problems}
        )


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
    """Insert new events. On PostgreSQL through COPY: the same rows and constraints as ``bulk_create``, at a tenth
    of the cost of binding 10 parameters per row client-side."""
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


def append_events(
    session: Session,
    events: list[dict],
    *,
    now: datetime | None = None,
    on_appended: Callable[[Session, list[AuditEvent], dict], None] | None = None,
) -> tuple[list[AuditEvent], dict]:
    """Validate a client batch strictly (all-or-nothing), then append it to the session's chain; returns the rows
    and the receipt of the new tree head.

    One transaction: lock the session row, refuse a sealed session (``SessionEnded``), check event times against
    the session's start and ``now``, assign gapless ``seq``, compute canonical bytes and hashes once, insert,
    update the chain head. Unique ``(session, seq)`` and ``(session, prev_hash)`` make a fork impossible even if the
    lock were bypassed; on such a conflict (or a busy SQLite database) the whole transaction is retried.

    ``on_appended(locked_session, rows, receipt)`` runs inside that transaction, still under the lock, after the
    insert: whatever it writes commits or rolls back with the events (the ingestion API records its idempotency
    key there), and an exception it raises undoes the append.
    """
    validate_events(events)
    now = now or timezone.now()
    for attempt in range(APPEND_RETRIES):
        try:
            with transaction.atomic():
                locked = _lock(session.pk)
                if locked.is_sealed:
                    raise SessionEnded()
                _check_times(locked, events, now)
                rows = _append_locked(locked, events)
                receipt = issue_receipt(locked, issued_at=now)
                if on_appended is not None:
                    on_appended(locked, rows, receipt)
            _refresh(session, locked)
            return rows, receipt
        except (IntegrityError, OperationalError):
            if attempt == APPEND_RETRIES - 1:
                raise
    raise AssertionError("unreachable")


def _refresh(target: Session, source: Session) -> None:
    for field in (
        "tree_size",
        "chain_head",
        "merkle_frontier",
        "redaction_count",
        "alert_count",
        "status",
        "ended_at",
        "sealed_at",
        "seal",
    ):
        setattr(target, field, getattr(source, field))


def start_session(
    agent: Agent, *, external_ref: str, platform: str | None = None, started_at: datetime | None = None
) -> tuple[Session, bool]:
    """Start (or find) the session of one call; returns (session, created).

    The same ``external_ref`` for the same agent returns the existing session. A new session snapshots the
    agent's current policy text and appends ``session.started`` as seq 0, in the same transaction. Its receipt is
    ``start_receipt(session)``.
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


def end_session(session: Session, *, status: str, now: datetime | None = None) -> dict:
    """Append ``session.ended`` and seal the session: final size, root and head, signed. Later appends get 409.
    Returns the receipt of the sealed tree head (issued at the seal's time)."""
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
        receipt = issue_receipt(locked, issued_at=now)
    _refresh(session, locked)
    return receipt
