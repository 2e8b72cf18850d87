"""Reading and checking a session's audit log: the one walk that the report, ``verify_chain``, the admin and the
period reports all use, with the one set of checks of the audit-log contract (docs/audit-log.md).

A walk streams the stored canonical bytes in seq order (flat memory), re-hashes every event, folds the RFC 6962
root, and checks, failing with ``AuditChainBroken`` at the first bad seq (or ``"seal"``):

- seq 0 is ``session.started`` of this session, naming its agent and the SHA-256 of its policy snapshot; no other
  event is a ``session.started``;
- seqs are gapless, every event names this session, and every ``prev_hash`` is the previous event's hash;
- every event is a v1 event of its kind as far as any report reads it: the fields it reads are present where the
  kind requires them, with their schema types;
- nothing follows ``session.ended``; no event claims a time more than ``MAX_SKEW`` before the session's start;
- the log holds what the session row records (size and head);
- at every size a report recorded (the register, through ``register_anchor_source``), the log's prefix still has the
  recorded root: the accumulator yields prefix roots as the walk passes those sizes, with no second read;
- a sealed session's log ends with ``session.ended``, and its seal is signed by a published key (current or
  retired) over exactly the walked size, root and head; an open session's log does not end it.

The events come out decoded as ``EventView`` (msgspec structs of the fields reports read), a chunk at a time, for
a ``Tally`` to count. From ``PIPELINE_MIN_EVENTS`` events on, the walk runs in two processes (``audit.pipeline``)
unless ``MASKER_WALK_PROCESSES`` is 1.

``walk_sessions`` walks many sessions (a period report's window) in one pass: one statement streams every event of
every session in (session, seq) order, each session gets its own ``ChainWalker`` and tally with exactly the checks
above, and a ``SessionFold`` receives each session's outcome -- verified or broken -- as the walk passes it.
"""

import gc
import hashlib
import itertools
import operator
import queue
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, nullcontext
from dataclasses import dataclass, field
from functools import cache, lru_cache
from itertools import compress
from typing import Any, Protocol, TypeVar

import msgspec
import orjson
from django.conf import settings
from django.db import connection, transaction
from psycopg.types.string import ByteaBinaryLoader

from audit.errors import AuditChainBroken
from audit.events import KIND_FIELDS, OPTIONAL_FIELDS, ZERO_HASH, field_type
from audit.merkle import MerkleAccumulator
from audit.models import AuditEvent, Session
from audit.pipeline import NEXT_SESSION, can_fork, walk_pipelined
from audit.policy import policy_sha256
from audit.signing import signature_verifies
from audit.timestamps import earliest_ts

LINK_BROKEN = "prev_hash does not link to the previous event"
BYTES_CHANGED = "event bytes do not match the stored event hash"
HEAD_MISMATCH = "the last event does not match the session's recorded chain head"
EVENT_INVALID = "event is not a valid v1 event of its kind"
AFTER_END = "an event follows session.ended"
SEAL = "seal"  # what a break names when the seal, not one event, is at fault

# Events checked (and sent between the walk's processes) at a time: a chunk's bytes, their copies and decoded events
# (~1 MB at 512 events) stay within a core's L2 cache.
CHUNK_EVENTS = 512
# Rows per round trip to the database (PostgreSQL's FETCH): fewer, larger fetches cost the database and this
# process less, up to ~2,048 rows (bench/common.py has the figures); they are walked in chunks of CHUNK_EVENTS.
FETCH_ROWS = 2048
# From this many events on, a walk runs in two processes (``audit.pipeline``): below it, starting the second
# process costs more than the overlap saves.
PIPELINE_MIN_EVENTS = 65_536

STARTED, ENDED, REDACTED, REHYDRATED = "session.started", "session.ended", "phi.redacted", "phi.rehydrated"
EGRESS = "egress.forwarded"


# --- what an event is, to a walk ------------------------------------------------------------------------------------


class _EventFields(msgspec.Struct):
    """The base of ``EventView``: what every event has, and ``get``."""

    seq: int
    session_id: str
    prev_hash: str
    kind: str
    ts: str

    def get(self, name: str, default: Any = None) -> Any:
        """A field by its name, as from a mapping (``audit.events.event_alert`` reads events so)."""
        return getattr(self, name, default)


# The fields of an event that reports read besides the common ones, each typed from the event schema; a field the
# event's kind does not have is None. A walk decodes every event straight into an ``EventView`` and skips the rest.
READ_FIELDS = (
    "turn",
    "entity_kind",
    "pass",
    "action",
    "hop",
    "vendor",
    "baa",
    "retention_days",
    "reason",
    "stage",
    "luhn_valid",
    "masked_before_egress",
    "what",
    "encrypted",
    "agent_id",
    "platform",
    "upstream_model",
    "policy",
    "status",
    "duration_ms",
)
EventView = msgspec.defstruct(
    "EventView",
    [(name, field_type(name) | None, None) for name in READ_FIELDS],
    bases=(_EventFields,),
    module=__name__,
)

_KIND = operator.attrgetter("kind")
_TS = operator.attrgetter("ts")
_TURN = operator.attrgetter("turn")
_LINK_FIELDS = operator.attrgetter("seq", "session_id", "prev_hash")
_FIRST, _THIRD = operator.itemgetter(0), operator.itemgetter(2)
# What a walk counts of every event, whatever the caller: the kind and the fields that tell redactions,
# rehydrations and egress hops apart. Reports read those figures from these counts, so the events most of any log
# consists of need no Python step of their own; and the required fields among these are checked on the distinct
# keys, not event by event.
CENSUS_FIELDS = ("kind", "entity_kind", "pass", "action", "hop", "vendor", "baa", "retention_days")
_CENSUS_KEY = operator.attrgetter(*CENSUS_FIELDS)


def _required(kind: str) -> list[str]:
    """The fields of ``kind`` that reports read and the kind requires."""
    optional = OPTIONAL_FIELDS.get(kind, ())
    return [name for name in KIND_FIELDS[kind] if name in READ_FIELDS and name not in optional]


# Per kind, the census positions it requires.
_CENSUS_REQUIRED = {
    kind: tuple(i for i, name in enumerate(CENSUS_FIELDS) if name in _required(kind)) for kind in KIND_FIELDS
}
# Kinds that require a turn, checked for the whole chunk at once.
_TURN_KINDS = frozenset(kind for kind in KIND_FIELDS if "turn" in _required(kind))
# Kinds with a required field the census and the turn check do not cover: rare (starts, ends, alerts, payloads,
# cards), checked event by event.
_REST = {
    kind: [name for name in _required(kind) if name not in CENSUS_FIELDS and name != "turn"] for kind in KIND_FIELDS
}
_REQUIRED_REST = {kind: operator.attrgetter("kind", *fields) for kind, fields in _REST.items() if fields}


@cache
def _decoder() -> Callable[[bytes], Any]:
    return msgspec.json.Decoder(EventView).decode


# --- what the walk checks against ----------------------------------------------------------------------------------


# A source of (session_id, tree_size, merkle_root_hex) triples that some party was shown, for the given sessions.
AnchorSource = Callable[[list[str]], Iterable[tuple[str, int, str]]]
_anchor_sources: list[AnchorSource] = []


def register_anchor_source(source: AnchorSource) -> None:
    """Add a source of recorded prefix roots (the report register registers itself at start-up). Every walk then
    checks the log's prefix root at each of those sizes."""
    if source not in _anchor_sources:
        _anchor_sources.append(source)


def recorded_anchors(session_ids: list[str]) -> dict[str, tuple[tuple[int, str], ...]]:
    """Per session, the distinct (tree_size, merkle_root_hex) pairs recorded for it, ascending: one query per
    source, whatever the number of sessions."""
    found: dict[str, set[tuple[int, str]]] = {}
    for source in _anchor_sources:
        for session_id, size, root in source(session_ids):
            found.setdefault(session_id, set()).add((size, root))
    return {session_id: tuple(sorted(pairs)) for session_id, pairs in found.items()}


@lru_cache(maxsize=256)
def _snapshot_sha256(snapshot: str) -> str:
    return policy_sha256(snapshot)  # sessions share a handful of policy versions


@dataclass(frozen=True)
class SessionClaims:
    """What the database claims about a session's log, which the walk must find true: its identity (agent, policy
    snapshot hash), its recorded size and head, its seal, and the roots recorded for its prefixes."""

    session_id: str
    agent_id: str
    policy_sha256: str
    tree_size: int
    chain_head: str
    seal: dict | None
    anchors: tuple[tuple[int, str], ...] = ()

    @classmethod
    def of(
        cls,
        session: Session,
        anchors: tuple[tuple[int, str], ...] | None = None,
        *,
        snapshot_sha256: str | None = None,
    ) -> "SessionClaims":
        """The claims of ``session``; ``anchors`` as ``recorded_anchors`` gives them (looked up when None).
        ``snapshot_sha256``: the SHA-256 of the session's stored policy snapshot as the database computed it
        (``django.db.models.functions.SHA256``), so that a walk of many sessions need not fetch every snapshot."""
        if anchors is None:
            anchors = recorded_anchors([session.id]).get(session.id, ())
        return cls(
            session_id=session.id,
            agent_id=session.agent_id,
            policy_sha256=snapshot_sha256 or _snapshot_sha256(session.policy_snapshot),
            tree_size=session.tree_size,
            chain_head=session.chain_head,
            seal=session.seal or ({} if session.is_sealed else None),
            anchors=anchors,
        )


@dataclass(frozen=True)
class ChainSummary:
    """A walk's result. ``census`` counts events by (kind, entity_kind, pass, action); ``verified``: every check
    held (only ``ChainWalker.finish`` sets it); ``seal``: the seal it checked against the log and verified the
    signature of (None for an open session)."""

    tree_size: int
    merkle_root_hex: str
    chain_head_hex: str
    census: Counter = field(default_factory=Counter, compare=False, repr=False)
    verified: bool = False
    seal: dict | None = field(default=None, compare=False, repr=False)


# --- the walk --------------------------------------------------------------------------------------------------------


def anchor_broken(size: int) -> AuditChainBroken:
    return AuditChainBroken(size - 1, f"the first {size} events no longer have the root a report recorded")


class TreeFold:
    """The RFC 6962 root of a log, folded from its leaf hashes a chunk at a time, with the prefix root checked at
    every size a report recorded (``anchors``, ascending; those not reached yet stay listed). Picklable and
    O(log n): a pipelined walk folds it where the leaves are hashed and hands it over at the end."""

    __slots__ = ("accumulator", "anchors")

    def __init__(self, anchors: Iterable[tuple[int, str]] = ()):
        self.accumulator = MerkleAccumulator()
        self.anchors = [pair for pair in anchors if pair[0] > 0]

    def add(self, digests: bytes) -> None:
        """Fold the next leaf hashes (32 bytes each, concatenated); raise ``AuditChainBroken`` (``anchor_broken``)
        at a recorded size whose prefix root differs."""
        append = self.accumulator.append
        anchors = self.anchors
        if not anchors or anchors[0][0] > self.accumulator.size + len(digests) // 32:
            for start in range(0, len(digests), 32):
                append(digests[start : start + 32])
            return
        for start in range(0, len(digests), 32):  # a recorded size falls in this chunk: check its prefix root
            append(digests[start : start + 32])
            while anchors and anchors[0][0] == self.accumulator.size:
                size, root = anchors.pop(0)
                if self.accumulator.root().hex() != root:
                    raise anchor_broken(size)


class ChainWalker:
    """A walk's state, chunk by chunk in seq order: ``hash_chunk`` re-hashes the events' stored canonical bytes,
    ``walk_chunk`` checks the events against those hashes and the claims, and folds the hashes into the root;
    ``finish`` checks the whole against the claims (size, head, end, seal). Picklable: a pipelined walk returns it
    from its checking process."""

    __slots__ = ("census", "claims", "earliest", "ended_seq", "expected_seq", "head", "tree")

    def __init__(self, claims: SessionClaims):
        self.claims = claims
        self.tree = TreeFold(claims.anchors)
        self.head = ZERO_HASH
        self.expected_seq = 0
        self.ended_seq: int | None = None
        self.earliest = ""
        self.census: Counter = Counter()

    @staticmethod
    def hash_chunk(chunk: list[bytes]) -> bytes:
        """The leaf hashes of the events' canonical bytes, 32 bytes each, concatenated."""
        sha256 = hashlib.sha256
        return b"".join([sha256(b"\x00" + raw).digest() for raw in chunk])

    def walk_chunk(self, chunk: list[bytes], digests: bytes) -> tuple[list, list[str]]:
        """Check the next events against their leaf hashes (``hash_chunk``) and the claims, then fold the hashes
        into the root (``check``, then ``tree.add``). Returns the events decoded as ``EventView`` and their
        kinds."""
        events, kinds = self.check(chunk, digests)
        if events:
            self.tree.add(digests)
        return events, kinds

    def check(self, chunk: list[bytes], digests: bytes) -> tuple[list, list[str]]:
        """``walk_chunk`` without the fold of the root: a pipelined walk folds in the process that hashes
        (``audit.pipeline``), which hands the folded ``tree`` over at the end (``folded``)."""
        first_seq, prev_head = self.expected_seq, self.head
        hashes_hex = digests.hex()
        events = check_chunk(chunk, prev_head, hashes_hex, first_seq, self.claims.session_id)
        if not events:
            return events, []
        kinds = list(map(_KIND, events))
        self._check_events(events, kinds, first_seq)
        self.head = hashes_hex[-64:]
        self.expected_seq += len(chunk)
        return events, kinds

    def folded(self, tree: "TreeFold") -> None:
        """Take the tree a pipelined walk folded in its other process."""
        self.tree = tree

    @staticmethod
    def tree_broken(size: int) -> None:
        """What the tree's fold found (``TreeFold.add``) in the other process of a pipelined walk, raised here,
        after the checks of the same chunk, as an in-process walk raises it."""
        raise anchor_broken(size)

    def _check_events(self, events: list, kinds: list[str], first_seq: int) -> None:
        if first_seq == 0:
            self._check_start(events[0])
        if kinds.count(STARTED) > (first_seq == 0):
            raise AuditChainBroken(first_seq + kinds.index(STARTED, first_seq == 0), "session.started after seq 0")
        if self.ended_seq is not None:
            raise AuditChainBroken(first_seq, AFTER_END)
        if ENDED in kinds:
            at = kinds.index(ENDED)
            if at != len(kinds) - 1:
                raise AuditChainBroken(first_seq + at + 1, AFTER_END)
            self.ended_seq = first_seq + at
        census = self.census
        known = len(census)
        census.update(map(_CENSUS_KEY, events))
        if len(census) != known and _census_malformed(census):
            raise AuditChainBroken(_first_malformed(events), EVENT_INVALID)
        if None in compress(map(_TURN, events), map(_TURN_KINDS.__contains__, kinds)):
            raise AuditChainBroken(_first_malformed(events), EVENT_INVALID)
        for event in compress(events, map(_REQUIRED_REST.__contains__, kinds)):
            if None in _REQUIRED_REST[event.kind](event):
                raise AuditChainBroken(event.seq, EVENT_INVALID)
        if min(map(_TS, events)) < self.earliest:
            early = next(event.seq for event in events if event.ts < self.earliest)
            raise AuditChainBroken(early, "the event's time precedes the session's start by more than 5 minutes")

    def _check_start(self, started) -> None:
        """seq 0 is this session's ``session.started``: its agent, and the policy snapshot the report prints."""
        if started.kind != STARTED or started.policy is None or started.agent_id is None:
            raise AuditChainBroken(0, "the log does not start with session.started")
        if started.agent_id != self.claims.agent_id:
            raise AuditChainBroken(0, "session.started names another agent")
        if started.policy.get("sha256") != self.claims.policy_sha256:
            raise AuditChainBroken(0, "the session's policy snapshot does not match the policy hash in the log")
        self.earliest = earliest_ts(started.ts)

    def finish(self) -> ChainSummary:
        """The verified summary, once the walk agrees with what the claims record: size, head, the roots of every
        recorded prefix, the end of the log, and the seal."""
        claims = self.claims
        size, root = self.expected_seq, self.tree.accumulator.root().hex()
        last = max(size - 1, 0)
        if size == 0:
            raise AuditChainBroken(0, "the log does not start with session.started")
        if size != claims.tree_size:
            raise AuditChainBroken(size, f"log holds {size} events, session records {claims.tree_size}")
        if self.head != claims.chain_head:
            raise AuditChainBroken(last, HEAD_MISMATCH)
        if size != self.tree.accumulator.size:
            raise RuntimeError("the walk's tree was folded over another number of events than it checked")
        if self.tree.anchors:
            recorded = self.tree.anchors[0][0]
            raise AuditChainBroken(size, f"log holds {size} events, fewer than the {recorded} a report recorded")
        seal = claims.seal
        if seal is None:
            if self.ended_seq is not None:
                raise AuditChainBroken(SEAL, "the log ends the session, but the session is not sealed")
        else:
            if self.ended_seq != last:
                raise AuditChainBroken(SEAL, "the session is sealed, but its log does not end with session.ended")
            signed = {
                "session_id": claims.session_id,
                "tree_size": size,
                "merkle_root_hex": root,
                "chain_head_hex": self.head,
            }
            if any(seal.get(name) != value for name, value in signed.items()):
                raise AuditChainBroken(SEAL, "the log does not match the session's signed seal")
            if not signature_verifies(seal):
                raise AuditChainBroken(SEAL, "the seal's signature does not verify under any published key")
        return ChainSummary(size, root, self.head, self.census, verified=True, seal=seal)


def _census_malformed(census: Counter) -> bool:
    """A counted kind lacks a field it requires: its census key holds None there (distinct keys only: cheap)."""
    return any(key[position] is None for key in census for position in _CENSUS_REQUIRED.get(key[0], ()))


def _first_malformed(events: list) -> int:
    for event in events:
        key = _CENSUS_KEY(event)
        if any(key[position] is None for position in _CENSUS_REQUIRED.get(key[0], ())):
            return event.seq
    return events[0].seq


def check_chunk(chunk: list[bytes], prev_head: str, hashes_hex: str, first_seq: int, session_id: str) -> list:
    """The events of a chunk decoded as ``EventView`` and checked: each a JSON object with the fields and types
    ``EventView`` requires, naming its own position (``first_seq`` on) and this session, and carrying as
    ``prev_hash`` the previous event's hash (``prev_head`` before the chunk, then the chunk's own leaf hashes,
    ``hashes_hex``), which is how changed bytes show. Raises ``AuditChainBroken`` at the first bad seq.

    This is the hot loop of every report, so a chunk is checked with whole-list operations that run in C (``map``
    of the msgspec decoder and ``attrgetter``, joins, equality) rather than a Python step per event; only a chunk
    that fails is gone through event by event, to name the exact seq and reason. (The links are compared joined:
    with every ``prev_hash`` a 64-character string, equal joins mean equal links.)
    """
    if not chunk:
        return []
    try:
        events = list(map(_decoder(), chunk))
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
        raise _first_break(chunk, prev_head, hashes_hex, first_seq, session_id)
    return events


def _first_break(chunk: list[bytes], prev_head: str, hashes_hex: str, first_seq: int, session_id: str):
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
            _decoder()(raw)
        except msgspec.DecodeError:  # a field the walk reads is missing or of the wrong type
            return AuditChainBroken(seq, EVENT_INVALID)
    return AuditChainBroken(first_seq, "chunk did not verify")  # unreachable while both checks agree


def _pinpoint(session_id: str, broken: AuditChainBroken) -> AuditChainBroken:
    """A link that does not hold at seq k means event k-1's bytes, or event k's link, changed: comparing event
    k-1's bytes with the hash stored for it when it was appended tells which, so the error names the event that was
    altered. One more query, only for a broken chain."""
    if broken.reason in (LINK_BROKEN, HEAD_MISMATCH) and isinstance(broken.seq, int):
        previous = broken.seq - 1 if broken.reason == LINK_BROKEN else broken.seq
        row = AuditEvent.objects.filter(session_id=session_id, seq=previous).values_list("canonical", "event_hash")
        for canonical, event_hash in row:
            if hashlib.sha256(b"\x00" + canonical.encode("utf-8")).hexdigest() != event_hash:
                return AuditChainBroken(previous, BYTES_CHANGED)
    return broken


# --- reading ---------------------------------------------------------------------------------------------------------


def iter_canonical_chunks(
    session: Session, *, size: int | None = None, chunk_events: int | None = None
) -> Iterator[list[bytes]]:
    """The stored canonical bytes of the first ``size`` events (default: the session's recorded ``tree_size``) in seq
    order, as lists of up to ``chunk_events`` events, streamed in one statement with flat memory. Bounding by the
    recorded size keeps a walk consistent while a live call keeps appending. Only the canonical column is read:
    each event names its own seq and links to its predecessor's hash.

    PostgreSQL: a server-side cursor read in binary (``_cursor_canonical_chunks``). Elsewhere: the ORM iterator.
    A walk that stops early must ``close()`` the iterator (``contextlib.closing``): that closes the cursor and its
    transaction at once.
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
    """A server-side cursor (``DECLARE``, then ``FETCH`` ``FETCH_ROWS`` rows at a time) in binary format, with the
    text column loaded as bytes: psycopg builds the rows in C and nothing is decoded or re-encoded; fetched a batch
    ahead (``fetched_ahead``). One statement, counted as one query like Django's own ``iterator()``. A cursor lives
    in a transaction: outside one, the iterator opens its own."""
    params = {"session": session_id, "size": size}
    if connection.queries_logged:  # the psycopg cursor bypasses Django's wrapper: count it like any other query
        connection.queries_log.append({"sql": f"{_SELECT_CANONICAL} -- {params!r}", "time": "0.000"})
    # Inside a transaction already (a request's, a test's), the cursor lives in it: no savepoint needed.
    with nullcontext() if connection.in_atomic_block else transaction.atomic():
        connection.ensure_connection()
        with connection.connection.cursor(name=f"audit_walk_{next(_CURSOR_NUMBERS)}", binary=True) as rows:
            rows.adapters.register_loader("text", ByteaBinaryLoader)
            rows.execute(_SELECT_CANONICAL, params)
            for fetched in fetched_ahead(rows, max(FETCH_ROWS, chunk_events)):
                canonical = list(map(_FIRST, fetched))
                for start in range(0, len(canonical), chunk_events):
                    yield canonical[start : start + chunk_events]


def fetched_ahead(rows, batch: int) -> Iterator[list]:
    """The cursor's rows, ``batch`` at a time, fetched by a thread up to two batches ahead, so the database
    produces the next batch while this thread works through the last one (psycopg lets go of the GIL while it
    waits for the server): a long log reads in about two thirds of a plain read's time. Until the iterator ends,
    that thread is the only user of the connection; closing the iterator early stops it, and the thread's errors
    are raised here."""
    batches: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()

    def hand_over(item) -> bool:
        while not stop.is_set():
            try:
                batches.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def fetch() -> None:
        try:
            while hand_over(fetched := rows.fetchmany(batch)) and fetched:
                pass
        except BaseException as exc:  # raised again by the reading thread
            hand_over(exc)

    fetcher = threading.Thread(target=fetch, name="audit-walk-read-ahead", daemon=True)
    fetcher.start()
    try:
        while (fetched := batches.get()) is not None:
            if isinstance(fetched, BaseException):
                raise fetched
            if not fetched:
                return
            yield fetched
    finally:
        stop.set()
        fetcher.join()


# --- entry points ----------------------------------------------------------------------------------------------------


class Tally(Protocol):
    """What a walk feeds verified events to, a chunk (in seq order) at a time, as ``EventView`` structs with their
    kinds. Picklable: a pipelined walk tallies in the checking process and returns the tally from there."""

    def add_events(self, events: list, kinds: list[str]) -> None: ...


TallyT = TypeVar("TallyT", bound=Tally | None)


def _pipelines(events: int) -> bool:
    """Whether a walk of ``events`` runs in two processes: long enough, allowed (``MASKER_WALK_PROCESSES``) and
    possible here (``can_fork``)."""
    return events >= PIPELINE_MIN_EVENTS and settings.MASKER_WALK_PROCESSES > 1 and can_fork()


def walk_session(session: Session, tally: TallyT = None) -> tuple[ChainSummary, TallyT]:
    """Walk ``session``'s whole log from the stored bytes with every check (module docstring), feeding the verified
    events to ``tally`` (None to only verify). Returns the summary and the tally that saw every event -- from a long
    log, the checking process's copy, so use the returned one. Raises ``AuditChainBroken`` at the first bad seq,
    naming the altered event where one lookup can tell.

    Queries: the recorded anchors (one per anchor source), then one for the walk while the chain holds.
    """
    walker = ChainWalker(SessionClaims.of(session))
    # A walk allocates an object per event and frees it at once (no cycles), yet each allocation counts towards the
    # cyclic collector's next pass over the process's long-lived objects: pausing it saves a tenth of a long walk.
    collecting = gc.isenabled()
    gc.disable()
    try:
        with closing(iter_canonical_chunks(session)) as chunks:
            if _pipelines(session.tree_size):
                walker, tally = walk_pipelined(walker, chunks, tally, iter([walker.tree]))
            else:
                for chunk in chunks:
                    events, kinds = walker.walk_chunk(chunk, walker.hash_chunk(chunk))
                    if tally is not None and events:
                        tally.add_events(events, kinds)
        summary = walker.finish()
    except AuditChainBroken as broken:
        raise _pinpoint(session.id, broken) from None
    finally:
        if collecting:
            gc.enable()
    return summary, tally


def verify_session(session: Session) -> ChainSummary:
    """Walk the whole log with every check; raise ``AuditChainBroken`` at the first failure."""
    return walk_session(session, None)[0]


# --- many sessions in one walk -------------------------------------------------------------------------------------


class SessionFold(Protocol):
    """What a walk of many sessions reports each session's outcome to, in the walk's order. Picklable: a pipelined
    walk folds in the checking process and returns the fold from there."""

    def new_tally(self) -> Tally | None:
        """A fresh tally for the next session's verified events."""

    def add(self, claims: SessionClaims, summary: ChainSummary | None, broken: AuditChainBroken | None, tally) -> None:
        """One session walked: its summary (None if broken), its first break (None if verified) and its tally
        (whose figures count only when the session verified)."""


FoldT = TypeVar("FoldT", bound=SessionFold)


class WindowWalker:
    """Many sessions walked one after the other, each by its own ``ChainWalker`` and tally, with one session's
    break kept to that session: its remaining chunks are skipped and the walk goes on with the next one.
    ``next_session`` moves to the next claims (finishing the session before); ``finish`` finishes the last one and
    returns the fold. Chunks go to the current session; each session's tally is fed here, so a pipelined walk
    passes no tally of its own. Claims are dropped once walked, so what a pipelined walk sends back is the fold."""

    __slots__ = ("broken", "fold", "pending", "tally", "walker")

    hash_chunk = staticmethod(ChainWalker.hash_chunk)

    def __init__(self, claims: Iterable[SessionClaims], fold: SessionFold):
        self.pending = deque(claims)
        self.fold = fold
        self.walker: ChainWalker | None = None
        self.tally: Tally | None = None
        self.broken: AuditChainBroken | None = None

    def next_session(self) -> None:
        self._close()
        self.walker = ChainWalker(self.pending.popleft())
        self.tally = self.fold.new_tally()
        self.broken = None

    def walk_chunk(self, chunk: list[bytes], digests: bytes) -> tuple[list, list[str]]:
        return self._walk(chunk, digests, fold=True)

    def check(self, chunk: list[bytes], digests: bytes) -> tuple[list, list[str]]:
        return self._walk(chunk, digests, fold=False)

    def _walk(self, chunk: list[bytes], digests: bytes, *, fold: bool) -> tuple[list, list[str]]:
        walker = self.walker
        if walker is None:
            raise RuntimeError("a chunk came before the session it belongs to")
        if self.broken is None:
            try:
                events, kinds = walker.check(chunk, digests)
                if fold and events:
                    walker.tree.add(digests)
            except AuditChainBroken as broken:
                self.broken = broken
            else:
                if self.tally is not None and events:
                    self.tally.add_events(events, kinds)
        return [], []  # tallied here, per session

    def folded(self, tree: TreeFold) -> None:
        if self.broken is None and self.walker is not None:
            self.walker.folded(tree)

    def tree_broken(self, size: int) -> None:
        if self.broken is None:
            self.broken = anchor_broken(size)

    def _close(self) -> None:
        walker = self.walker
        if walker is None:
            return
        summary = None
        if self.broken is None:
            try:
                summary = walker.finish()
            except AuditChainBroken as broken:
                self.broken = broken
        self.fold.add(walker.claims, summary, self.broken, self.tally)
        self.walker = self.tally = self.broken = None

    def finish(self) -> SessionFold:
        self._close()
        if self.pending:
            raise RuntimeError("the walk ended before every session was walked")
        return self.fold


def walk_sessions(claims: list[SessionClaims], fold: FoldT) -> FoldT:
    """Walk every session of ``claims`` (in that order, which must be session-id order) with every check, each up
    to its claimed ``tree_size``, reporting each outcome to ``fold``; a broken session does not stop the walk.
    Returns the fold that saw every session -- from a long walk, the checking process's copy, so use the returned
    one. Broken links are pinpointed afterwards (one query per broken session, as ``walk_session`` does).

    Queries: one statement for all the events, whatever the number of sessions (PostgreSQL); elsewhere one per
    session. Memory: one chunk of events, the walkers' O(log n) state and whatever the fold keeps."""
    walker = WindowWalker(claims, fold)
    collecting = gc.isenabled()
    gc.disable()  # as in walk_session
    try:
        with closing(_iter_window_chunks(claims)) as chunks:
            if _pipelines(sum(c.tree_size for c in claims)):
                walker, _ = walk_pipelined(walker, chunks, None, (TreeFold(c.anchors) for c in claims))
            else:
                for chunk in chunks:
                    if chunk is NEXT_SESSION:
                        walker.next_session()
                    else:
                        walker.walk_chunk(chunk, walker.hash_chunk(chunk))
        return walker.finish()
    finally:
        if collecting:
            gc.enable()


def pinpoint_break(session_id: str, broken: AuditChainBroken) -> AuditChainBroken:
    """The break as ``walk_session`` would name it: the altered event where one lookup can tell."""
    return _pinpoint(session_id, broken)


def _iter_window_chunks(claims: list[SessionClaims]) -> Iterator[list[bytes]]:
    """``NEXT_SESSION``, then the session's chunks (up to its claimed size), for each session of ``claims``."""
    if connection.vendor == "postgresql":
        return _cursor_window_chunks(claims, CHUNK_EVENTS)
    return _orm_window_chunks(claims, CHUNK_EVENTS)


def _orm_window_chunks(claims: list[SessionClaims], chunk_events: int) -> Iterator[list[bytes]]:
    for session in claims:
        yield NEXT_SESSION
        yield from _orm_canonical_chunks(session.session_id, session.tree_size, chunk_events)


# ``session_id = ANY(ids)`` on the (session_id, seq) index returns the rows in index order: no join, no sort, and
# no read of events between the sessions (a join on unnest() gets a nested loop and an external sort for a few
# hundred sessions, or a merge join over the whole stretch of the log between the first and last id). Each
# session's own bound (its claimed size) is applied as the rows arrive; ``seq < longest`` keeps most rows appended
# since the claims were taken on the server.
SELECT_WINDOW = (
    f"SELECT session_id, seq, canonical FROM {_TABLE} "  # noqa: S608
    "WHERE session_id = ANY(%(ids)s::text[]) AND seq < %(longest)s ORDER BY session_id, seq"
)


def _cursor_window_chunks(claims: list[SessionClaims], chunk_events: int) -> Iterator[list[bytes]]:
    """One server-side cursor, binary, over every event of the sessions in (session, seq) order, each session
    bounded by its claimed size; rows are split into per-session chunks by their session id (a session with no
    rows left gets none, and its walk fails at its start)."""
    ids = [c.session_id for c in claims]
    sizes = [c.tree_size for c in claims]
    params = {"ids": ids, "longest": max(sizes, default=0)}
    if connection.queries_logged:
        connection.queries_log.append({"sql": f"{SELECT_WINDOW} -- {len(ids)} sessions", "time": "0.000"})
    position = 0  # sessions announced so far
    wanted = [session_id.encode("ascii") for session_id in ids]
    with nullcontext() if connection.in_atomic_block else transaction.atomic():
        connection.ensure_connection()
        with connection.connection.cursor(name=f"audit_walk_{next(_CURSOR_NUMBERS)}", binary=True) as rows:
            rows.adapters.register_loader("text", ByteaBinaryLoader)
            rows.adapters.register_loader("varchar", ByteaBinaryLoader)
            rows.execute(SELECT_WINDOW, params)
            current, size = None, 0
            for fetched in fetched_ahead(rows, max(FETCH_ROWS, chunk_events)):
                for session_id, group in itertools.groupby(fetched, _FIRST):
                    if session_id != current:
                        while position < len(wanted) and wanted[position] != session_id:
                            yield NEXT_SESSION  # a session with no rows (left) in the log
                            position += 1
                        if position == len(wanted):
                            raise RuntimeError("the window's events came out of session order")
                        yield NEXT_SESSION
                        current, size = session_id, sizes[position]
                        position += 1
                    run = list(group)
                    if run[-1][1] < size:
                        canonical = list(map(_THIRD, run))
                    else:
                        canonical = [row[2] for row in run if row[1] < size]
                    for start in range(0, len(canonical), chunk_events):
                        yield canonical[start : start + chunk_events]
    for _ in range(position, len(wanted)):
        yield NEXT_SESSION
