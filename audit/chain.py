"""Writes to the audit log and its verification. Every write is one function and one transaction that locks
the session row it orders (docs/audit-log.md): on PostgreSQL ``SELECT … FOR UPDATE``; on SQLite the IMMEDIATE
transaction mode serialises writers.
"""

import ctypes
import fcntl
import gc
import hashlib
import itertools
import multiprocessing
import operator
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, nullcontext, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Protocol, TypeVar

import msgspec
import orjson
from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone
from psycopg.types.string import ByteaBinaryLoader

from audit.canonical import canonical_bytes
from audit.errors import AuditChainBroken, SessionEnded
from audit.events import SCHEMA_VERSION, ZERO_HASH, event_alert, validate_events
from audit.merkle import MerkleAccumulator
from audit.models import Agent, AuditEvent, Session
from audit.signing import sign_object
from masker.ids import new_id

APPEND_RETRIES = 5


def format_ts(moment: datetime) -> str:
    """RFC 3339 UTC with milliseconds and ``Z`` (docs/audit-log.md)."""
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


# A chunk's bytes, their copies and parsed events (~1 MB at 512 events) stay within a core's 1 MB L2 cache here:
# 1,024-event chunks cost the checker ~17% more CPU, 4,096 ~40% more; 256 cost the fetch more round trips.
# With the pipe below, several chunks are in flight between the walk's two processes.
CHUNK_EVENTS = 512


def iter_canonical_chunks(
    session: Session, *, size: int | None = None, chunk_events: int | None = None
) -> Iterator[list[bytes]]:
    """The stored canonical bytes of the first ``size`` events (default: the session's recorded ``tree_size``) in seq
    order, as lists of up to ``chunk_events`` events, streamed in one statement with flat memory. Bounding by the
    recorded size keeps a walk consistent while a live call keeps appending. Only the canonical column is read: each
    event names its own seq and links to its predecessor's hash, so the walker needs nothing else
    (``walking`` looks a stored hash up only to say where a chain it found broken was altered).

    PostgreSQL: a server-side cursor read in binary (``_cursor_canonical_chunks``); a ``COPY`` of one row per event
    cost this process ~2 µs an event (psycopg's per-row loop), the ORM's server-side cursor ~5 µs more (row objects,
    text decoding, re-encoding). Elsewhere: the ORM iterator (chunked reads). A walk that stops early must
    ``close()`` the iterator (``contextlib.closing``): that closes the cursor and its transaction at once.
    """
    size = session.tree_size if size is None else size
    chunk_events = chunk_events or CHUNK_EVENTS
    if connection.vendor == "postgresql":
        return _cursor_canonical_chunks(session.pk, size, chunk_events)
    return _orm_canonical_chunks(session.pk, size, chunk_events)


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


_TABLE = AuditEvent._meta.db_table
_CURSOR_NUMBERS = itertools.count()  # a cursor's name is unique within its transaction
_SELECT_CANONICAL = (
    f"SELECT canonical FROM {_TABLE} "  # noqa: S608 (a constant table name)
    "WHERE session_id = %(session)s AND seq < %(size)s ORDER BY seq"
)


def _cursor_canonical_chunks(session_id: str, size: int, chunk_events: int) -> Iterator[list[bytes]]:
    """A server-side cursor (``DECLARE``, then ``FETCH`` ``chunk_events`` rows at a time) in binary format, with the
    text column loaded as bytes: psycopg builds the rows in C and nothing is decoded or re-encoded, so this process
    spends ~0.4 µs an event, and PostgreSQL only scans the index (~1 µs an event). One statement, counted as one
    query like Django's own ``iterator()``. A cursor lives in a transaction: outside one, the iterator opens its own."""
    params = {"session": session_id, "size": size}
    if connection.queries_logged:  # the psycopg cursor bypasses Django's wrapper: count it like any other query
        connection.queries_log.append({"sql": f"{_SELECT_CANONICAL} -- {params!r}", "time": "0.000"})
    # Inside a transaction already (a request's, a test's), the cursor lives in it: no savepoint needed.
    with nullcontext() if connection.in_atomic_block else transaction.atomic():
        connection.ensure_connection()
        with connection.connection.cursor(name=f"audit_walk_{next(_CURSOR_NUMBERS)}", binary=True) as rows:
            rows.adapters.register_loader("text", ByteaBinaryLoader)
            rows.execute(_SELECT_CANONICAL, params)
            while fetched := rows.fetchmany(chunk_events):
                yield [row[0] for row in fetched]


LINK_BROKEN = "prev_hash does not link to the previous event"
BYTES_CHANGED = "event bytes do not match the stored event hash"
HEAD_MISMATCH = "the last event does not match the session's recorded chain head"
EVENT_INVALID = "event is not a valid v1 event of its kind"

# From this many events on, a walk folds, checks and tallies in a second process while this one fetches and hashes
# (``_walk_pipelined``): below it, starting the process costs more than the overlap saves.
PIPELINE_MIN_EVENTS = 65_536


class ChainLinks(msgspec.Struct):
    """What the chain check reads of an event: its position, its session and its link. A walk decodes each event's
    bytes straight into such a struct (msgspec, typed): every other field is skipped and no dict is built, a third
    of the CPU of parsing into dicts, which was the largest cost of a long walk. A tally's ``event_type`` adds the
    fields it reads."""

    seq: int
    session_id: str
    prev_hash: str


class Tally(Protocol):
    """What a walk feeds verified events to, a chunk (list, in seq order) at a time, decoded as its
    ``event_type`` (``ChainLinks`` and the fields it reads). Picklable: a pipelined walk tallies in the checking
    process and returns the tally from there."""

    event_type: type[ChainLinks]

    def add_events(self, events: list) -> None: ...


class ChainWalker:
    """A walk's state, chunk by chunk in seq order: ``hash_chunk`` re-hashes the events' stored canonical bytes,
    ``walk_chunk`` folds those hashes into the RFC 6962 root and checks the events against them (``check_chunk``).
    ``finish`` checks the walk against what the session records (size, head, and the signed seal's root), so
    tampering with the last event or dropping trailing ones is caught too. Picklable: a pipelined walk returns it
    from its checking process."""

    __slots__ = ("accumulator", "expected_seq", "head", "session_id")

    def __init__(self, session_id: str):
        self.session_id = session_id
        self.accumulator = MerkleAccumulator()
        self.head = ZERO_HASH
        self.expected_seq = 0

    @staticmethod
    def hash_chunk(chunk: list[bytes]) -> bytes:
        """The leaf hashes of the events' canonical bytes, 32 bytes each, concatenated."""
        sha256 = hashlib.sha256
        return b"".join([sha256(b"\x00" + raw).digest() for raw in chunk])

    def walk_chunk(
        self, chunk: list[bytes], digests: bytes, event_type: type[ChainLinks] = ChainLinks
    ) -> list[ChainLinks]:
        """Fold the next events' leaf hashes (``hash_chunk``) into the root and check the events against them: each
        must carry the previous one's hash as ``prev_hash``. Returns the events decoded as ``event_type``."""
        first_seq, prev_head = self.expected_seq, self.head
        append = self.accumulator.append
        for start in range(0, len(digests), 32):
            append(digests[start : start + 32])
        hashes_hex = digests.hex()
        if hashes_hex:
            self.head = hashes_hex[-64:]
        self.expected_seq += len(chunk)
        return check_chunk(chunk, prev_head, hashes_hex, first_seq, self.session_id, event_type)

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


_LINK_FIELDS = operator.attrgetter("seq", "session_id", "prev_hash")


@cache
def _decoder(event_type: type[ChainLinks]) -> Callable[[bytes], ChainLinks]:
    return msgspec.json.Decoder(event_type).decode


def check_chunk(
    chunk: list[bytes],
    prev_head: str,
    hashes_hex: str,
    first_seq: int,
    session_id: str,
    event_type: type[ChainLinks] = ChainLinks,
) -> list[ChainLinks]:
    """The events of a chunk decoded as ``event_type`` and checked: each a JSON object with the fields and types
    ``event_type`` requires, naming its own position (``first_seq`` on) and this session, and carrying as
    ``prev_hash`` the previous event's hash (``prev_head`` before the chunk, then the chunk's own leaf hashes,
    ``hashes_hex``, as ``ChainWalker.walk_chunk`` passes them), which is how changed bytes show. Raises
    ``AuditChainBroken`` at the first bad seq: a gap, bytes that are not a JSON object, an event naming another
    position or session, a link that does not hold, or a field of the wrong type.

    This is the hot loop of every report, so a chunk is checked with whole-list operations that run in C (``map``
    of the msgspec decoder and ``attrgetter``, joins, equality) rather than a Python step per event; only a chunk
    that fails is gone through event by event, to name the exact seq and reason. (The links are compared joined:
    with every ``prev_hash`` a 64-character string, equal joins mean equal links.)
    """
    if not chunk:
        return []
    try:
        events = list(map(_decoder(event_type), chunk))
        seqs, sessions, links = zip(*map(_LINK_FIELDS, events), strict=True)
        intact = (
            seqs == tuple(range(first_seq, first_seq + len(events)))
            and set(sessions) == {session_id}
            and set(map(len, links)) == {64}
            and "".join(links) == prev_head + hashes_hex[:-64]
        )
    except msgspec.DecodeError:  # not JSON; not an object; a field missing or of the wrong type
        intact = False
    if not intact:
        raise _first_break(chunk, prev_head, hashes_hex, first_seq, session_id, event_type)
    return events


def _first_break(
    chunk: list[bytes], prev_head: str, hashes_hex: str, first_seq: int, session_id: str, event_type: type[ChainLinks]
) -> AuditChainBroken:
    """The first failing check of a chunk that did not verify, found event by event."""
    links = [prev_head, *(hashes_hex[i : i + 64] for i in range(0, len(hashes_hex) - 64, 64))]
    for seq, (raw, link) in enumerate(zip(chunk, links, strict=True), start=first_seq):
        try:
            event = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return AuditChainBroken(seq, "event bytes are not JSON")
        if type(event) is not dict:
            return AuditChainBroken(seq, "event bytes are not a JSON object")
        found_seq = event.get("seq")
        if found_seq != seq or type(found_seq) is not int:
            if type(found_seq) is int and found_seq > seq:
                return AuditChainBroken(seq, "event missing (gap in seq)")
            return AuditChainBroken(seq, "event names another position")
        if event.get("session_id") != session_id:
            return AuditChainBroken(seq, "event names another session")
        if event.get("prev_hash") != link:
            return AuditChainBroken(seq, LINK_BROKEN)
        try:
            _decoder(event_type)(raw)
        except msgspec.DecodeError:  # a field the walk reads is missing or of the wrong type
            return AuditChainBroken(seq, EVENT_INVALID)
    return AuditChainBroken(first_seq, "chunk did not verify")  # unreachable while both checks agree


def _pinpoint(session: Session, broken: AuditChainBroken) -> AuditChainBroken:
    """A link that does not hold at seq k means event k-1's bytes, or event k's link, changed: comparing event
    k-1's bytes with the hash stored for it when it was appended tells which, so the error names the event that was
    altered. One more query, only for a broken chain."""
    if broken.reason in (LINK_BROKEN, HEAD_MISMATCH):
        previous = broken.seq - 1 if broken.reason == LINK_BROKEN else broken.seq
        row = AuditEvent.objects.filter(session_id=session.pk, seq=previous).values_list("canonical", "event_hash")
        for canonical, event_hash in row:
            if hashlib.sha256(b"\x00" + canonical.encode("utf-8")).hexdigest() != event_hash:
                return AuditChainBroken(previous, BYTES_CHANGED)
    return broken


TallyT = TypeVar("TallyT", bound=Tally | None)


def walk_chain(session: Session, tally: TallyT) -> tuple[ChainSummary, TallyT]:
    """Walk ``session``'s whole log from the stored bytes: re-hash every event, check every link, fold the root,
    feed the verified events to ``tally`` (a chunk at a time; None to only verify), and check the result against
    the session's records. Returns the summary and the tally that saw every event -- from a long log, the checking
    process's copy, so use the returned one. Raises ``AuditChainBroken`` at the first bad seq, naming the altered
    event where one lookup can tell.

    One query while the chain holds, flat memory. From ``PIPELINE_MIN_EVENTS`` events on (where ``fork`` exists),
    folding, checking and tallying run in a second process, overlapped with fetching and hashing here.
    """
    walker = ChainWalker(session.id)
    event_type = ChainLinks if tally is None else tally.event_type
    # A walk allocates an object per event and frees it at once (no cycles), yet each allocation counts towards the
    # cyclic collector's next pass over the process's long-lived objects: pausing it cut ~10% of a 1M-event walk.
    collecting = gc.isenabled()
    gc.disable()
    try:
        with closing(iter_canonical_chunks(session)) as chunks:
            if session.tree_size >= PIPELINE_MIN_EVENTS and _can_fork():
                walker, tally = _walk_pipelined(walker, chunks, tally, event_type)
            else:
                for chunk in chunks:
                    events = walker.walk_chunk(chunk, walker.hash_chunk(chunk), event_type)
                    if tally is not None:
                        tally.add_events(events)
        summary = walker.finish(expected_size=session.tree_size, expected_head=session.chain_head, seal=session.seal)
    except AuditChainBroken as broken:
        raise _pinpoint(session, broken) from None
    finally:
        if collecting:
            gc.enable()
    return summary, tally


def verify_chain(session: Session) -> ChainSummary:
    """Walk the whole chain from the stored bytes; raise ``AuditChainBroken`` at the first bad seq."""
    return walk_chain(session, None)[0]


def _can_fork() -> bool:
    # A daemonic process (a multiprocessing worker) may not start children; elsewhere than on POSIX there is no fork.
    return "fork" in multiprocessing.get_all_start_methods() and not multiprocessing.current_process().daemon


def _walk_pipelined(
    walker: ChainWalker, chunks: Iterable[list[bytes]], tally: TallyT, event_type: type[ChainLinks]
) -> tuple[ChainWalker, TallyT]:
    """This process fetches and leaf-hashes; a forked one walks on (folds the root, parses, checks, tallies) a
    chunk behind. A chunk and its hashes go through a pipe (a copy); the checker answers once, at the end (with
    the walker and the tally) or at the first break. The child inherits the database connection and never touches
    it."""
    context = multiprocessing.get_context("fork")
    data_recv, data_send = context.Pipe(duplex=False)
    result_recv, result_send = context.Pipe(duplex=False)
    _widen(data_send)
    checker = context.Process(
        target=_check_in_child,
        args=(data_recv, result_send, (data_send, result_recv), walker, tally, event_type),
        daemon=True,
    )
    checker.start()
    data_recv.close()
    result_send.close()
    try:
        for chunk in chunks:
            if result_recv.poll():  # the checker stopped early: a break
                break
            digests = walker.hash_chunk(chunk)
            # Two raw messages per chunk (pickling them cost both processes more than the pipe itself): the hashes,
            # flagged, then the rows joined on newlines. Canonical JSON never holds a raw newline; a chunk with a
            # row that does (altered bytes) is pickled as a list instead, so that row is found where it stands.
            joined = b"\n".join(chunk)
            plain = joined.count(b"\n") == len(chunk) - 1
            try:
                if plain:
                    data_send.send_bytes(b"J" + digests)
                    data_send.send_bytes(joined)
                else:
                    data_send.send_bytes(b"L" + digests)
                    data_send.send(chunk)
            except BrokenPipeError:
                break
        else:
            with suppress(BrokenPipeError):  # the checker may have stopped at a break in the last chunk
                data_send.send_bytes(b"")
        try:
            outcome = result_recv.recv()
        except EOFError:
            raise RuntimeError("the audit walk's checking process ended without an answer") from None
    finally:
        data_send.close()
        checker.join(timeout=10)
        if checker.is_alive():
            checker.kill()
            checker.join()
        result_recv.close()
    if outcome[0] == "broken":
        raise AuditChainBroken(outcome[1], outcome[2])
    if outcome[0] == "error":
        raise RuntimeError(f"the audit walk's checking process failed: {outcome[1]}")
    return outcome[1], outcome[2]


def _widen(connection_end) -> None:
    """Let ~1 MB (a few chunks) wait in the pipe, so neither process stalls whenever the other is descheduled: on
    two cores shared with PostgreSQL this took ~15% off a 1M-event walk. Linux only; elsewhere the pipe keeps its
    default size."""
    with suppress(AttributeError, OSError):
        fcntl.fcntl(connection_end.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


def _keep_freed_memory() -> None:
    """Let this short-lived process keep what it frees. Each chunk's ~400 KB pipe buffers are freed and allocated
    again; by default glibc hands such memory back to the kernel every time and faults it in again (~140,000 page
    faults, ~0.4 s of system time in a 1M-event walk). Elsewhere than glibc this changes nothing."""
    with suppress(AttributeError, OSError):
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_TRIM_THRESHOLD, 256 << 20)
        libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)


def _check_in_child(
    data_recv, result_send, parent_ends, walker: ChainWalker, tally: Tally | None, event_type: type[ChainLinks]
) -> None:
    for end in parent_ends:
        end.close()
    _keep_freed_memory()
    try:
        while head := data_recv.recv_bytes():
            chunk = data_recv.recv_bytes().split(b"\n") if head[:1] == b"J" else data_recv.recv()
            events = walker.walk_chunk(chunk, head[1:], event_type)
            if tally is not None:
                tally.add_events(events)
        result_send.send(("ok", walker, tally))
    except AuditChainBroken as broken:
        result_send.send(("broken", broken.seq, broken.reason))
    except EOFError:  # the parent gave up (its own error): nobody is waiting for an answer
        pass
    except Exception as exc:  # answered, never left hanging; the type only (no event contents)
        result_send.send(("error", type(exc).__name__))
