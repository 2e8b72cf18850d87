"""Writes to the audit log and its verification. Every write is one function and one transaction that locks
the session row it orders (SPEC §6, §9): on PostgreSQL ``SELECT … FOR UPDATE``; on SQLite the IMMEDIATE
transaction mode serialises writers.
"""

import gc
import hashlib
import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
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


def append_events(
    session: Session,
    events: list[dict],
    *,
    on_appended: Callable[[Session, list[AuditEvent]], None] | None = None,
) -> list[AuditEvent]:
    """Validate a client batch strictly (all-or-nothing), then append it to the session's chain.

    One transaction: lock the session row, refuse a sealed session (``SessionEnded``), assign gapless ``seq``,
    compute canonical bytes and hashes once, insert, update the chain head. Unique ``(session, seq)`` and
    ``(session, prev_hash)`` make a fork impossible even if the lock were bypassed; on such a conflict (or a
    busy SQLite database) the whole transaction is retried from the new head.

    ``on_appended(locked_session, rows)`` runs inside that transaction, still under the lock, after the insert:
    whatever it writes commits or rolls back with the events (the ingestion API records its idempotency key
    there), and an exception it raises undoes the append.
    """
    validate_events(events)
    for attempt in range(APPEND_RETRIES):
        try:
            with transaction.atomic():
                locked = _lock(session.pk)
                if locked.is_sealed:
                    raise SessionEnded()
                rows = _append_locked(locked, events)
                if on_appended is not None:
                    on_appended(locked, rows)
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


CHUNK_EVENTS = 4096


def iter_canonical_chunks(
    session: Session, *, size: int | None = None, chunk_events: int = CHUNK_EVENTS
) -> Iterator[list[bytes]]:
    """The stored canonical bytes of the first ``size`` events (default: the session's recorded ``tree_size``) in seq
    order, as lists of up to ``chunk_events`` events, streamed in one statement with flat memory. Bounding by the
    recorded size keeps a walk consistent while a live call keeps appending. Only the canonical column is read: each
    event names its own seq and links to its predecessor's hash, so the walker needs nothing else
    (``walking`` looks a stored hash up only to say where a chain it found broken was altered).

    PostgreSQL: ``COPY … TO STDOUT``, gathered into lists so the walker's loop is not also a generator per event.
    A server-side cursor through the ORM cost about 5 µs more per event (row objects, text decoding, re-encoding);
    joining runs of events on the server (string_agg) moved the cost to the server without saving any.
    Elsewhere: the ORM iterator (chunked reads). A walk that stops early must ``close()`` the iterator
    (``contextlib.closing``): that ends the COPY at once instead of leaving the connection busy with it.
    """
    size = session.tree_size if size is None else size
    if connection.vendor == "postgresql":
        return _copy_canonical_chunks(session.pk, size, chunk_events)
    return _orm_canonical_chunks(session.pk, size, chunk_events)


def iter_canonical(session: Session, *, size: int | None = None) -> Iterator[bytes]:
    """``iter_canonical_chunks`` one event at a time."""
    with closing(iter_canonical_chunks(session, size=size)) as chunks:
        for chunk in chunks:
            yield from chunk


def _orm_canonical_chunks(session_id: str, size: int, chunk_events: int) -> Iterator[list[bytes]]:
    rows = (
        AuditEvent.objects.filter(session_id=session_id, seq__lt=size)
        .order_by("seq")
        .values_list("canonical", flat=True)
        .iterator(chunk_size=chunk_events)
    )
    chunk: list[bytes] = []
    for canonical in rows:
        chunk.append(canonical.encode("utf-8"))
        if len(chunk) == chunk_events:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# COPY's text format escapes backslash and the control characters below. RFC 8785 text never holds a raw control
# character, so only doubled backslashes occur in practice, and only rows containing a backslash are unescaped.
_COPY_ESCAPES = {b"\\": b"\\", b"b": b"\b", b"f": b"\f", b"n": b"\n", b"r": b"\r", b"t": b"\t", b"v": b"\v"}
_COPY_ESCAPE = re.compile(rb"\\(.)", re.DOTALL)


def _copy_unescape(field: bytes) -> bytes:
    return _COPY_ESCAPE.sub(lambda m: _COPY_ESCAPES.get(m.group(1), m.group(1)), field)


def _copy_canonical_chunks(session_id: str, size: int, chunk_events: int) -> Iterator[list[bytes]]:
    sql = (
        f"COPY (SELECT canonical FROM {AuditEvent._meta.db_table} "  # noqa: S608 (a constant table name)
        "WHERE session_id = %s AND seq < %s ORDER BY seq) TO STDOUT"
    )
    if connection.queries_logged:  # COPY bypasses Django's cursor wrapper: count it like any other query
        connection.queries_log.append({"sql": f"{sql} -- ({session_id!r}, {size})", "time": "0.000"})
    chunk: list[bytes] = []
    with connection.cursor() as cursor, cursor.cursor.copy(sql, (session_id, size)) as copy:
        for block in copy:
            # libpq hands COPY data over one whole row at a time (PQgetCopyData): here b"<canonical>\n".
            row = bytes(block)
            if row[-1:] != b"\n":
                raise ValueError("unexpected COPY row from the event log")
            chunk.append(_copy_unescape(row[:-1]) if b"\\" in row else row[:-1])
            if len(chunk) == chunk_events:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


LINK_BROKEN = "prev_hash does not link to the previous event"
BYTES_CHANGED = "event bytes do not match the stored event hash"
HEAD_MISMATCH = "the last event does not match the session's recorded chain head"


class ChainWalker:
    """Re-hashes each event's stored canonical bytes in seq order and checks every link, incrementally.

    ``walk(chunks)`` yields each parsed event; it raises ``AuditChainBroken`` naming the first bad seq: a gap, bytes
    that are not a JSON object, an event naming another position or session, or a ``prev_hash`` that does not link
    to the re-hashed previous event (which is how changed bytes show). ``finish`` checks the walk against what the
    session records (size, head, and the signed seal's root), so tampering with the last event or dropping trailing
    ones is caught too. Parsing uses orjson: at 1M events ``json.loads`` alone cost more than fetching and hashing.
    """

    __slots__ = ("accumulator", "expected_seq", "head", "session_id")

    def __init__(self, session_id: str):
        self.session_id = session_id
        self.accumulator = MerkleAccumulator()
        self.head = ZERO_HASH
        self.expected_seq = 0

    def walk(self, chunks: Iterable[Iterable[bytes]]) -> Iterator[dict]:
        """Verified events from chunks of canonical bytes (``iter_canonical_chunks``)."""
        # The hot loop of every report: locals only, one generator frame for the whole walk; the walker's state is
        # written back when the walk ends (completed, broken or closed).
        append, sha256, loads, session_id = self.accumulator.append, hashlib.sha256, orjson.loads, self.session_id
        seq, head = self.expected_seq, self.head
        try:
            for raw in itertools.chain.from_iterable(chunks):
                try:
                    event = loads(raw)
                except orjson.JSONDecodeError:
                    raise AuditChainBroken(seq, "event bytes are not JSON") from None
                if type(event) is not dict:
                    raise AuditChainBroken(seq, "event bytes are not a JSON object")
                found_seq = event.get("seq")
                if found_seq != seq or type(found_seq) is not int:
                    if type(found_seq) is int and found_seq > seq:
                        raise AuditChainBroken(seq, "event missing (gap in seq)")
                    raise AuditChainBroken(seq, "event names another position")
                if event.get("session_id") != session_id:
                    raise AuditChainBroken(seq, "event names another session")
                if event.get("prev_hash") != head:
                    raise AuditChainBroken(seq, LINK_BROKEN)
                digest = sha256(b"\x00" + raw).digest()
                append(digest)
                head = digest.hex()
                seq += 1
                yield event
        finally:
            self.head, self.expected_seq = head, seq

    def finish(self, *, expected_size: int, expected_head: str | None = None, seal: dict | None = None) -> ChainSummary:
        """The verified summary, once the walk agrees with the session's recorded size and head, and with its
        seal (size and root) when sealed."""
        size, root = self.expected_seq, self.accumulator.root().hex()
        if size != expected_size:
            raise AuditChainBroken(size, f"log holds {size} events, session records {expected_size}")
        last = max(size - 1, 0)
        if expected_head is not None and self.head != expected_head:
            raise AuditChainBroken(last, HEAD_MISMATCH)
        if seal is not None and (seal.get("tree_size") != size or seal.get("merkle_root_hex") != root):
            raise AuditChainBroken(last, "the log does not match the session's signed seal")
        return ChainSummary(size, root, self.head)


def _stored_hash(session_id: str, seq: int) -> str | None:
    return AuditEvent.objects.filter(session_id=session_id, seq=seq).values_list("event_hash", flat=True).first()


def _pinpoint(session: Session, walker: ChainWalker, broken: AuditChainBroken) -> AuditChainBroken:
    """A link that does not hold at seq k means event k-1's bytes, or event k's link, changed: one look at the hash
    stored for k-1 when it was appended tells which, so the error names the event that was altered."""
    if broken.reason in (LINK_BROKEN, HEAD_MISMATCH):
        previous = broken.seq - 1 if broken.reason == LINK_BROKEN else broken.seq
        if previous >= 0 and _stored_hash(session.pk, previous) != walker.head:
            return AuditChainBroken(previous, BYTES_CHANGED)
    return broken


@contextmanager
def walking(session: Session, walker: ChainWalker) -> Iterator[Iterator[dict]]:
    """``with walking(session, walker) as events:`` -- the session's events as verified dicts in seq order; on
    leaving the block, ``walker.finish`` against the session's records.

    One query while the chain holds; when it does not, one more to name the altered event, and ``AuditChainBroken``
    is raised from the block. Leaving the block early ends the read at once.
    """
    # The walk allocates a dict per event and frees it at once (no cycles), yet each allocation counts towards the
    # cyclic collector's next pass over the process's long-lived objects: pausing it cut ~10% of a 1M-event walk.
    collecting = gc.isenabled()
    gc.disable()
    try:
        with closing(iter_canonical_chunks(session)) as chunks:
            yield walker.walk(chunks)
        walker.finish(expected_size=session.tree_size, expected_head=session.chain_head, seal=session.seal)
    except AuditChainBroken as broken:
        raise _pinpoint(session, walker, broken) from None
    finally:
        if collecting:
            gc.enable()


def verify_chain(session: Session) -> ChainSummary:
    """Walk the whole chain from the stored bytes; raise ``AuditChainBroken`` at the first bad seq."""
    walker = ChainWalker(session.id)
    with walking(session, walker) as events:
        for _ in events:
            pass
    return walker.finish(expected_size=session.tree_size, expected_head=session.chain_head, seal=session.seal)
