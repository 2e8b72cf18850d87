"""Standalone offline verifier for the session audit log and its compliance reports (docs/audit-log.md, docs/report.md).

An auditor runs this one file on its own (``python verify.py …`` or ``python -m audit.verify …``), so it imports
only the Python standard library: never Django, never another module of this project. Anything it trusts has
to be readable here, in one place. Three optional packages are loaded when a check needs them, and the verifier
says so when one is missing: ``cryptography`` (Ed25519 signatures), ``rfc8785`` (the canonical bytes a report's
signature covers) and ``pypdf`` (the ``pdf`` subcommand). Usage: see the CLI section at the end, or ``--help``.

The Merkle primitives below are the single source of truth: the server imports them from this file
(``audit.merkle``) instead of keeping a copy, so the roots the server signs and the roots the auditor
recomputes come from the same code.

Hashing (RFC 6962 §2.1 / RFC 9162 §2.1, SHA-256):

- leaf hash  = SHA-256(0x00 || data)             -- for an audit event, data is its canonical (JCS) bytes
- node hash  = SHA-256(0x01 || left || right)
- MTH({})    = SHA-256("")                       -- the empty tree
- MTH(D[n])  = node(MTH(D[0:k]), MTH(D[k:n])), k = the largest power of two < n; an odd node is promoted to
  the next level, never duplicated.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import importlib
import json
import re
import sys
from collections.abc import Iterable, Sequence
from typing import IO, Any

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MerkleAccumulator",
    "leaf_hash",
    "main",
    "merkle_root",
    "node_hash",
    "verify_consistency",
    "verify_inclusion",
]

# =====================================================================================================
# Merkle primitives (RFC 6962 / RFC 9162). The server imports these; do not duplicate them elsewhere.
# =====================================================================================================

HASH_SIZE = 32

_sha256 = hashlib.sha256
# Domain-separation prefixes (RFC 6962 §2.1): without them a leaf could be passed off as an interior node
# (second-preimage attack on the tree).
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
# Cloning a hasher that has already absorbed the 1-byte prefix is measurably cheaper than building a new one
# per node (about 15% on CPython 3.11 + OpenSSL), and node hashing is the hot path for 1M-event sessions.
_NODE_HASHER = _sha256(_NODE_PREFIX)
_LEAF_HASHER = _sha256(_LEAF_PREFIX)

EMPTY_ROOT: bytes = _sha256(b"").digest()
"""MTH of the empty tree: SHA-256 of the empty string (e3b0c442...b855)."""


def leaf_hash(data: bytes) -> bytes:
    """Return the RFC 6962 leaf hash SHA-256(0x00 || data) (32 bytes). ``data`` is any bytes-like object."""
    h = _LEAF_HASHER.copy()
    h.update(data)
    return h.digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 6962 interior node hash SHA-256(0x01 || left || right) (32 bytes)."""
    h = _NODE_HASHER.copy()
    h.update(left)
    h.update(right)
    return h.digest()


def _is_hash(value: object) -> bool:
    # Verification input comes from files an attacker may have written: anything that is not exactly a
    # 32-byte bytes-like value is a failed verification, not a crash.
    return isinstance(value, (bytes, bytearray, memoryview)) and len(value) == HASH_SIZE


def _is_size(value: object) -> bool:
    # bool is an int subclass; True/False as a tree size or index is a caller bug, so it is refused.
    return isinstance(value, int) and not isinstance(value, bool)


class MerkleAccumulator:
    """Streaming RFC 6962 Merkle Tree Hash in O(log n) memory.

    Contract: ``append`` takes 32-byte *leaf hashes* (already ``leaf_hash``-ed), in leaf order; anything else
    raises ``ValueError``. ``size`` is the number of leaves appended. ``root()`` may be called at any time, is
    O(log n), does not change the state, and returns ``EMPTY_ROOT`` when nothing has been appended.

    Internally ``_stack`` holds the roots of the perfect subtrees that make up the tree so far, largest
    (left) first: one per set bit of ``size``, like a binary counter. Appending a leaf merges equal-sized
    subtrees (the carry); the root folds the stack right to left, which is exactly RFC 6962's split at the
    largest power of two below n.
    """

    __slots__ = ("_size", "_stack")

    def __init__(self) -> None:
        self._size = 0
        self._stack: list[bytes] = []

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    def append(self, leaf_hash: bytes) -> None:
        """Append one 32-byte leaf hash. Raises ``ValueError`` if it is not 32 bytes."""
        if type(leaf_hash) is not bytes:
            # Copy mutable buffers so a caller reusing its bytearray cannot change a stored subtree root.
            if not isinstance(leaf_hash, (bytearray, memoryview)):
                raise ValueError("leaf hash must be bytes")
            leaf_hash = bytes(leaf_hash)
        if len(leaf_hash) != HASH_SIZE:
            raise ValueError(f"leaf hash must be {HASH_SIZE} bytes, got {len(leaf_hash)}")
        stack = self._stack
        n = self._size
        h = leaf_hash
        # Each trailing 1 bit of the old size is a perfect subtree as large as the one being carried: merge.
        while n & 1:
            hasher = _NODE_HASHER.copy()
            hasher.update(stack.pop())
            hasher.update(h)
            h = hasher.digest()
            n >>= 1
        stack.append(h)
        self._size += 1

    def root(self) -> bytes:
        """Return the Merkle Tree Hash of the leaves appended so far (``EMPTY_ROOT`` if none)."""
        stack = self._stack
        if not stack:
            return EMPTY_ROOT
        r = stack[-1]
        for i in range(len(stack) - 2, -1, -1):
            hasher = _NODE_HASHER.copy()
            hasher.update(stack[i])
            hasher.update(r)
            r = hasher.digest()
        return r

    def __repr__(self) -> str:
        return f"MerkleAccumulator(size={self._size}, root={self.root().hex()})"

    def frontier_hex(self) -> list[str]:
        """The perfect-subtree roots (largest first) as hex: with ``size``, enough to resume the tree later."""
        return [h.hex() for h in self._stack]

    @classmethod
    def from_frontier(cls, size: int, frontier_hex: Sequence[str]) -> MerkleAccumulator:
        """Resume from ``size`` and ``frontier_hex()``; raises ``ValueError`` if they do not fit together."""
        if not _is_size(size) or size < 0 or len(frontier_hex) != bin(size).count("1"):
            raise ValueError("frontier does not match the tree size")
        stack = [bytes.fromhex(h) for h in frontier_hex]
        if any(len(h) != HASH_SIZE for h in stack):
            raise ValueError("frontier entries must be 32-byte hashes")
        accumulator = cls()
        accumulator._size = size
        accumulator._stack = stack
        return accumulator


def merkle_root(leaf_hashes: Iterable[bytes]) -> bytes:
    """Return the RFC 6962 Merkle Tree Hash over 32-byte leaf hashes in order (``EMPTY_ROOT`` if empty).

    Streams: consumes the iterable once in O(log n) memory. Raises ``ValueError`` for a non-32-byte element.
    """
    acc = MerkleAccumulator()
    append = acc.append
    for h in leaf_hashes:
        append(h)
    return acc.root()


def verify_inclusion(
    leaf_hash: bytes,
    index: int,
    tree_size: int,
    path: Sequence[bytes],
    root: bytes,
) -> bool:
    """Check an RFC 9162 §2.1.3.2 inclusion proof: leaf ``leaf_hash`` is leaf ``index`` of the tree of
    ``tree_size`` leaves whose Merkle Tree Hash is ``root``.

    ``path`` is the audit path in RFC order (sibling nearest the leaf first). Returns True only if the proof
    is valid; any malformed input (index >= tree_size, negative values, a path that is too short or too long,
    an element or hash that is not 32 bytes) returns False. Never raises.

    The root does not commit to the tree size: take ``tree_size`` and ``root`` from the same signed seal.
    """
    try:
        if not (_is_size(index) and _is_size(tree_size) and 0 <= index < tree_size):
            return False
        if not (_is_hash(leaf_hash) and _is_hash(root)):
            return False
        fn = index
        sn = tree_size - 1
        r = bytes(leaf_hash)
        for p in path:
            if sn == 0 or not _is_hash(p):  # sn == 0: path longer than the tree is tall
                return False
            if fn & 1 or fn == sn:
                # A right child, or the last node of an incomplete level (promoted): sibling is on the left.
                r = node_hash(p, r)
                if not fn & 1:
                    # Skip the levels where this node was promoted without a sibling.
                    while fn and not fn & 1:
                        fn >>= 1
                        sn >>= 1
            else:
                r = node_hash(r, p)
            fn >>= 1
            sn >>= 1
        return sn == 0 and r == root
    except Exception:
        # Contract: malformed input (a non-iterable path, a len() that fails...) is a False, not a crash.
        return False


def verify_consistency(
    first: int,
    second: int,
    first_root: bytes,
    second_root: bytes,
    proof: Sequence[bytes],
) -> bool:
    """Check an RFC 9162 §2.1.4.2 consistency proof: the tree of ``first`` leaves with root ``first_root``
    is a prefix of the tree of ``second`` leaves with root ``second_root``.

    - ``first == second``: valid only with an empty proof and ``first_root == second_root``.
    - ``first == 0`` (or negative, or ``first > second``): False. RFC 9162 defines proofs for 0 < first;
      an empty tree is trivially a prefix of anything, so a True would say nothing about ``second_root``
      and could be mistaken for a check of it. Callers meaning "anything extends the empty tree" should not
      call this.
    - A hash or proof element that is not 32 bytes, a proof too short or too long: False. Never raises.
    - As with inclusion, a root does not commit to its size: each (size, root) pair must come from one seal.
    """
    try:
        if not (_is_size(first) and _is_size(second) and 0 < first <= second):
            return False
        if not (_is_hash(first_root) and _is_hash(second_root)):
            return False
        proof = list(proof)
        if not all(_is_hash(c) for c in proof):
            return False
        if first == second:
            return not proof and first_root == second_root
        if not proof:
            return False
        # If the old tree is a perfect subtree of the new one, its root is the first (implicit) proof node.
        if first & (first - 1) == 0:
            proof.insert(0, bytes(first_root))
        fn = first - 1
        sn = second - 1
        # Climb past the levels where the old tree's last node is a right child: those are covered by the
        # first proof node.
        while fn & 1:
            fn >>= 1
            sn >>= 1
        fr = sr = bytes(proof[0])
        for c in proof[1:]:
            if sn == 0:  # proof longer than the tree is tall
                return False
            if fn & 1 or fn == sn:
                fr = node_hash(c, fr)
                sr = node_hash(c, sr)
                if not fn & 1:
                    while fn and not fn & 1:
                        fn >>= 1
                        sn >>= 1
            else:
                # A node only in the new tree, to the right: extends the new root but not the old one.
                sr = node_hash(sr, c)
            fn >>= 1
            sn >>= 1
        return sn == 0 and fr == first_root and sr == second_root
    except Exception:
        # Contract: malformed input is a False, not a crash.
        return False


# --- CLI ---------------------------------------------------------------------------------------------------------
#
#   python -m audit.verify report REPORT.json --events EVENTS.ndjson [--keys KEYS.json]
#   python -m audit.verify pdf REPORT.pdf --events EVENTS.ndjson [--keys KEYS.json]
#   python -m audit.verify proof PROOF.json [--report REPORT.json ...] [--keys KEYS.json] [--event EVENT.json]
#
# REPORT.json is the body of GET /api/v1/sessions/{id}/report ({"report": {...}}), EVENTS.ndjson the body of
# GET /api/v1/sessions/{id}/events, KEYS.json the body of GET /api/v1/keys (a JWKS), PROOF.json the body of
# GET .../events/{seq}/proof or .../consistency. "-" reads the events from standard input.
#
# Exit status: 0 = verified (a report checked without --keys prints "signature NOT checked" and still exits 0:
# the log and the figures were verified, the signature was not asked for); 1 = verification failed, every
# problem named on its own "FAIL" line (line number and seq, or the report field); 2 = the verifier could not run
# the check asked for (unreadable file, bad usage, a missing optional package).

SCHEMA_V1 = "masker.audit.v1"
EVENT_VERSION = 1
ZERO_HASH_HEX = "0" * 64
MAX_PROBLEMS = 25  # printed in full; the rest are counted
ALERT_TYPES = ("rehydration_failed", "leak_detected", "non_baa_egress", "card_not_masked", "detection_degraded")
EXIT_OK, EXIT_FAILED, EXIT_UNABLE = 0, 1, 2


class CannotVerify(Exception):
    """The check asked for cannot be run (exit 2): not a verdict on the evidence."""


def event_alert(kind: str, fields: dict[str, Any]) -> str | None:
    """The alert an event raises, or None.

    A copy of ``audit.events.event_alert`` (this file may not import the service): the tests assert both agree on
    every event kind, so a change there without the same change here fails the suite.
    """
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


def _optional(module: str, purpose: str) -> Any:
    """Import an optional package by name (never statically: this file must run with the standard library)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        message = f"{purpose} needs the '{package}' package, which is not installed: pip install {package}"
        raise CannotVerify(message) from None


class Outcome:
    """Problems (verdict: failed), warnings (printed, not fatal) and what was checked (OK lines)."""

    def __init__(self, out: IO[str]):
        self.out = out
        self.problems = 0
        self.signature_unchecked = False  # a signed object was met and its signature not checked (no keys)

    def fail(self, message: str) -> None:
        self.problems += 1
        if self.problems <= MAX_PROBLEMS:
            print(f"FAIL    {message}", file=self.out)

    def warn(self, message: str) -> None:
        print(f"WARNING {message}", file=self.out)

    def ok(self, message: str) -> None:
        print(f"OK      {message}", file=self.out)

    def info(self, message: str) -> None:
        print(f"NOTE    {message}", file=self.out)

    def finish(self, subject: str) -> int:
        if self.problems:
            hidden = self.problems - MAX_PROBLEMS
            if hidden > 0:
                print(f"FAIL    ... and {hidden} more problem(s) not shown", file=self.out)
            print(f"NOT VERIFIED: {subject}: {self.problems} problem(s)", file=self.out)
            return EXIT_FAILED
        suffix = " (signature NOT checked)" if self.signature_unchecked else ""
        print(f"VERIFIED: {subject}{suffix}", file=self.out)
        return EXIT_OK


# --- reading inputs -------------------------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Duplicate keys would let two readers of one file see two different values; RFC 8785 forbids them.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _loads(data: bytes | str) -> Any:
    return json.loads(data, object_pairs_hook=_unique_keys, parse_constant=_reject_constant)


def _read_json_file(path: str, what: str) -> Any:
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise CannotVerify(f"cannot read {what} {path}: {exc.strerror}") from None
    try:
        return _loads(data)
    except ValueError as exc:
        raise CannotVerify(f"{what} {path} is not valid JSON: {exc}") from None


def _report_object(document: Any, origin: str) -> dict[str, Any]:
    """The report object: the ``"report"`` member of a downloaded body, or a bare report object."""
    if isinstance(document, dict) and isinstance(document.get("report"), dict) and len(document) == 1:
        return document["report"]
    if isinstance(document, dict) and "merkle_root_hex" in document:
        return document
    raise CannotVerify(f'{origin} is not a Masker report (expected {{"report": {{...}}}})')


_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")


def _b64url_decode(text: Any) -> bytes | None:
    """Strict base64url without padding (RFC 7515 §2), else None: stray characters are not skipped."""
    if not isinstance(text, str) or not _B64URL.match(text) or len(text) % 4 == 1:
        return None
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, binascii.Error):
        return None


def _hash_of(value: Any) -> bytes | None:
    """A 32-byte hash from 64 lowercase hex digits, else None."""
    if isinstance(value, str) and len(value) == 2 * HASH_SIZE and value == value.lower():
        try:
            return bytes.fromhex(value)
        except ValueError:
            return None
    return None


# --- the events ---------------------------------------------------------------------------------------------------


class _Tally:
    """The report's figures, recomputed from the event lines (mirrors reports/domain.py's walk)."""

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
    """Checks an NDJSON export line by line in O(log n) memory, and recomputes the root, head and figures.

    Every line is hashed exactly as it is (without its ``\\n``): leaf hash = SHA-256(0x00 || line). Checked per
    line: complete (ends with ``\\n``), a JSON object of event version 1, ``seq`` equal to its position, the
    session's id, ``prev_hash`` equal to the previous line's leaf hash (the hash chain), ``session.started`` first
    and nothing after ``session.ended``. An altered line is caught by the next line's ``prev_hash`` (or, for the
    last line, by the chain head and the root); a dropped, duplicated or moved line by ``seq``; a truncated file by
    its incomplete last line or by the count.

    ``limit``: the report's tree_size. Root, head and figures are taken over the first ``limit`` lines (the report
    covers those); later lines (a live call exported after the report) are still chain-checked.
    """

    def __init__(self, outcome: Outcome, *, session_id: str | None, limit: int | None):
        self.outcome = outcome
        self.session_id = session_id
        self.limit = limit
        self.accumulator = MerkleAccumulator()
        self.tally = _Tally()
        self.lines = 0
        self.head = ZERO_HASH_HEX
        self.prefix: tuple[int, bytes, str] | None = (0, EMPTY_ROOT, ZERO_HASH_HEX) if limit == 0 else None
        self._prev_seq: int | None = None
        self._offset = 0  # found seq - expected seq, to report a shift once, not on every later line
        self._ended_at_line: int | None = None

    def feed_file(self, stream: IO[bytes]) -> None:
        for raw in stream:
            self.feed(raw)

    def feed(self, raw: bytes) -> None:
        self.lines += 1
        n = self.lines
        fail = self.outcome.fail
        if not raw.endswith(b"\n"):
            fail(f"line {n}: incomplete last line (no newline at the end): the file was truncated")
            return
        data = raw[:-1]
        digest = leaf_hash(data)
        event_hash = digest.hex()
        expected = n - 1
        where = f"line {n}"
        try:
            event = _loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            hint = " (CRLF line endings: download the file again without converting it)" if data[-1:] == b"\r" else ""
            fail(f"{where} (seq {expected} expected): not valid JSON: the line was altered or cut{hint}: {exc}")
            event = None
        seq = event.get("seq") if isinstance(event, dict) else None
        if event is not None and not isinstance(event, dict):
            fail(f"{where}: not a JSON object")
        elif isinstance(event, dict):
            where = f"line {n} (seq {seq})"
            seq_ok = type(seq) is int
            offset = seq - expected if seq_ok else None
            if not seq_ok:
                fail(f"{where}: seq is missing or not an integer")
            elif offset != self._offset and offset != 0:
                why = "a line before it is missing" if offset > 0 else "a line is duplicated or out of order"
                fail(f"line {n}: seq {seq} where seq {expected} was expected: {why}")
            if offset is not None:
                self._offset = offset
            if event.get("v") != EVENT_VERSION:
                fail(f"{where}: event version is not {EVENT_VERSION}")
            if self.session_id is None and n == 1:
                self.session_id = event.get("session_id")
            if event.get("session_id") != self.session_id:
                fail(f"{where}: session_id names another session")
            # A broken link is only reported between lines whose seqs follow each other; otherwise the seq
            # problem above already explains it.
            if (
                seq_ok
                and self._prev_seq is not None
                and seq == self._prev_seq + 1
                and event.get("prev_hash") != self.head
            ):
                fail(
                    f"{where}: prev_hash does not link to the hash of line {n - 1} (seq {seq - 1}): line {n - 1} "
                    f"was altered (or this line's prev_hash was)"
                )
            elif seq == 0 and event.get("prev_hash") != ZERO_HASH_HEX:
                fail(f"{where}: the first event's prev_hash must be 64 zeros")
            if n == 1 and event.get("kind") != "session.started":
                fail(f"{where}: the log does not start with session.started")
            if self._ended_at_line is not None:
                fail(f"{where}: event after session.ended (line {self._ended_at_line})")
            if event.get("kind") == "session.ended":
                self._ended_at_line = n
            self._prev_seq = seq if seq_ok else None
            if self.limit is None or n <= self.limit:
                self.tally.add(event)
        else:
            self._prev_seq = None
        self.accumulator.append(digest)
        self.head = event_hash
        if n == self.limit:
            self.prefix = (n, self.accumulator.root(), event_hash)

    def covered(self) -> tuple[int, bytes, str]:
        """(tree size, root, chain head) over the lines the report covers (all, without a limit)."""
        if self.prefix is not None:
            return self.prefix
        return self.accumulator.size, self.accumulator.root(), self.head


# --- the report ---------------------------------------------------------------------------------------------------


_MISSING = object()


def _at(report: dict[str, Any], path: str) -> Any:
    node: Any = report
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _same(a: Any, b: Any) -> bool:
    # bool is an int in Python: a report saying true for a count must not pass as 1.
    return type(a) is type(b) and a == b


def _compare(outcome: Outcome, report: dict[str, Any], path: str, computed: Any, *, required: bool) -> bool:
    """Compare one report figure with its recomputed value; report and return whether it matches."""
    stated = _at(report, path)
    if stated is _MISSING:
        if required:
            outcome.fail(f"report.{path}: missing from the report")
            return False
        return True
    if isinstance(computed, dict):
        if not isinstance(stated, dict):
            outcome.fail(f"report.{path}: not an object")
            return False
        good = True
        for key in sorted(set(stated) | set(computed)):
            says, gives = stated.get(key, 0), computed.get(key, 0)
            if not _same(says, gives):
                outcome.fail(f"report.{path}.{key}: report says {json.dumps(says)}, events give {gives}")
                good = False
        return good
    if not _same(stated, computed):
        outcome.fail(f"report.{path}: report says {json.dumps(stated)}, events give {json.dumps(computed)}")
        return False
    return True


def _load_jwks(keys_path: str) -> list[dict[str, Any]]:
    document = _read_json_file(keys_path, "keys file")
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list) or not all(isinstance(k, dict) for k in keys):
        raise CannotVerify(f'keys file {keys_path} is not a JWKS ({{"keys": [...]}}, as GET /api/v1/keys returns)')
    return keys


def check_signature(outcome: Outcome, signed: dict[str, Any], keys: list[dict[str, Any]] | None, label: str) -> None:
    """Check ``signed["signature"]`` (Ed25519 over the RFC 8785 bytes of ``signed`` without it) against a JWKS.

    Without keys, says the signature was NOT checked. Raises ``CannotVerify`` when keys are given but
    ``cryptography`` or ``rfc8785`` is missing.
    """
    signature = signed.get("signature")
    if not isinstance(signature, dict):
        outcome.fail(f"{label}signature: missing (the object is not signed)")
        return
    if keys is None:
        outcome.signature_unchecked = True
        outcome.warn(
            f"{label}signature NOT checked: no --keys given (download GET /api/v1/keys and pass --keys keys.json)"
        )
        return
    rfc8785 = _optional("rfc8785", "checking a signature (RFC 8785 canonical bytes)")
    ed25519 = _optional("cryptography.hazmat.primitives.asymmetric.ed25519", "checking an Ed25519 signature")
    exceptions = _optional("cryptography.exceptions", "checking an Ed25519 signature")
    alg, kid = signature.get("alg"), signature.get("kid")
    if alg != "Ed25519":
        outcome.fail(f"{label}signature.alg: {json.dumps(alg)} is not Ed25519")
        return
    matches = [k for k in keys if k.get("kid") == kid]
    if not matches:
        known = ", ".join(str(k.get("kid")) for k in keys) or "none"
        outcome.fail(f"{label}signature: kid {json.dumps(kid)} not in keys (the keys file lists: {known})")
        return
    jwk = matches[0]
    raw_key = _b64url_decode(jwk.get("x"))
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or raw_key is None or len(raw_key) != 32:
        outcome.fail(f"{label}signature: key {kid} in the keys file is not an Ed25519 OKP key (RFC 8037)")
        return
    expected_kid = "ed25519-" + hashlib.sha256(raw_key).hexdigest()[:16]
    if kid != expected_kid:
        outcome.warn(f"{label}key {kid}: its kid is not the hash of its public key ({expected_kid})")
    sig = _b64url_decode(signature.get("sig"))
    if sig is None or len(sig) != 64:
        outcome.fail(f"{label}signature.sig: not a base64url (unpadded) 64-byte Ed25519 signature")
        return
    unsigned = {key: value for key, value in signed.items() if key != "signature"}
    try:
        message = rfc8785.dumps(unsigned)
    except Exception as exc:  # the package raises its own error types for non-I-JSON values
        outcome.fail(f"{label}signature: the signed object cannot be canonicalised (RFC 8785): {exc}")
        return
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(raw_key).verify(sig, message)
    except exceptions.InvalidSignature:
        outcome.fail(
            f"{label}signature: does not verify with key {kid}: the signed content was changed after signing, "
            "or it was signed by another key"
        )
        return
    status = jwk.get("status") or "status not given"
    outcome.ok(f"{label}signature: Ed25519, key {kid} ({status})")


def verify_report(
    outcome: Outcome,
    report: dict[str, Any],
    events: IO[bytes],
    keys: list[dict[str, Any]] | None,
) -> None:
    """Check a report object against the NDJSON events and, with keys, its signature. Problems go to ``outcome``."""
    if report.get("schema") != SCHEMA_V1:
        outcome.fail(f"report.schema: {json.dumps(report.get('schema'))}, this verifier checks {SCHEMA_V1}")
    session_id = report.get("session_id")
    if not isinstance(session_id, str):
        outcome.fail("report.session_id: missing")
        session_id = None
    tree_size = _at(report, "audit_integrity.tree_size")
    if type(tree_size) is not int or tree_size < 0:
        outcome.fail("report.audit_integrity.tree_size: missing or not a non-negative integer")
        tree_size = None

    seal = _at(report, "audit_integrity.seal")
    sealed = isinstance(seal, dict) and seal.get("status") == "sealed"
    start = outcome.problems
    walk = EventsWalk(outcome, session_id=session_id, limit=tree_size)
    walk.feed_file(events)
    size, root, head = walk.covered()
    if walk.lines == 0:
        outcome.fail("events: the file is empty")
    elif tree_size is not None and walk.lines > tree_size and sealed:
        outcome.fail(
            f"report.audit_integrity.tree_size: report says {tree_size}, events give {walk.lines} (the report "
            "says the session is sealed: no event can follow its last one)"
        )
    elif tree_size is not None and walk.lines > tree_size:
        outcome.info(
            f"events: the file holds {walk.lines - tree_size} event(s) after the report's tree_size {tree_size} "
            "(the call continued after the report); the report was checked against the first "
            f"{tree_size}, every line's chain was checked"
        )
    if outcome.problems == start:
        outcome.ok(f"events: {walk.lines} line(s) re-hashed, seq 0..{walk.lines - 1} gapless, every prev_hash links")
    start = outcome.problems
    if tree_size is not None and size != tree_size:
        outcome.fail(
            f"report.audit_integrity.tree_size: report says {tree_size}, events give {size} "
            "(lines are missing: was the file truncated?)"
        )
    _compare(outcome, report, "merkle_root_hex", root.hex(), required=True)
    _compare(outcome, report, "audit_integrity.chain_head_hex", head, required=True)
    _compare(outcome, report, "audit_integrity.first_seq", 0 if size else None, required=False)
    _compare(outcome, report, "audit_integrity.last_seq", size - 1 if size else None, required=False)
    if sealed:
        _compare(outcome, report, "audit_integrity.seal.tree_size", size, required=True)
        _compare(outcome, report, "audit_integrity.seal.merkle_root_hex", root.hex(), required=True)
    if outcome.problems == start:
        outcome.ok(f"merkle_root_hex {root.hex()}: matches the report (tree_size {size}, chain head {head[:16]}…)")
    start = outcome.problems
    figures = walk.tally.figures()
    for path, computed in figures.items():
        _compare(outcome, report, path, computed, required=path in REQUIRED_FIGURES)
    if outcome.problems == start:
        outcome.ok(
            f"figures: {len(figures)} report figures (counts, by kind/pass/action, alerts) agree with the events"
        )
    check_signature(outcome, report, keys, "report.")


# --- subcommands --------------------------------------------------------------------------------------------------


def _open_events(path: str) -> IO[bytes]:
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")
    except OSError as exc:
        raise CannotVerify(f"cannot read events file {path}: {exc.strerror}") from None


def _run_report(report: dict[str, Any], args: argparse.Namespace, outcome: Outcome) -> int:
    keys = _load_jwks(args.keys) if args.keys else None
    events = _open_events(args.events)
    try:
        verify_report(outcome, report, events, keys)
    finally:
        if events is not sys.stdin.buffer:
            events.close()
    return outcome.finish(f"report {report.get('id')} of session {report.get('session_id')}")


def cmd_report(args: argparse.Namespace, out: IO[str]) -> int:
    outcome = Outcome(out)
    document = _read_json_file(args.report, "report")
    return _run_report(_report_object(document, args.report), args, outcome)


def _pdf_text(reader: Any) -> str:
    return "".join("".join((page.extract_text() or "").split()) for page in reader.pages)


def cmd_pdf(args: argparse.Namespace, out: IO[str]) -> int:
    pypdf = _optional("pypdf", "the pdf subcommand (reading the PDF's attachment)")
    import logging

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # pypdf warns about harmless PDF quirks on stderr
    outcome = Outcome(out)
    try:
        reader = pypdf.PdfReader(args.pdf)
        attachments = reader.attachments
    except OSError as exc:
        raise CannotVerify(f"cannot read PDF {args.pdf}: {exc.strerror}") from None
    except Exception as exc:  # pypdf's own errors: the file is not a readable PDF
        raise CannotVerify(f"{args.pdf} is not a readable PDF: {exc}") from None
    candidates = [(name, blobs) for name, blobs in attachments.items() if name.lower().endswith(".json")]
    candidates.sort(key=lambda item: not item[0].startswith("masker-report-"))
    if not candidates:
        outcome.fail("pdf: no JSON report attached (expected masker-report-<session>.json)")
        return outcome.finish(f"PDF {args.pdf}")
    name, blobs = candidates[0]
    if len(candidates) > 1 or len(blobs) != 1:
        outcome.warn(f"pdf: several JSON attachments; checking {name}")
    try:
        report = _report_object(_loads(blobs[0]), f"the attachment {name}")
    except ValueError as exc:
        outcome.fail(f"pdf: the attachment {name} is not valid JSON: {exc}")
        return outcome.finish(f"PDF {args.pdf}")
    outcome.ok(f"pdf: attachment {name} holds report {report.get('id')}")
    # The pages are what a reader sees: they must show the report that is attached and verified below.
    try:
        text = _pdf_text(reader)
    except Exception as exc:  # text extraction is best effort in pypdf
        outcome.warn(f"pdf: could not read the printed text ({exc}); only the attachment is checked")
        text = None
    if text is not None:
        signature = report.get("signature") if isinstance(report.get("signature"), dict) else {}
        printed = {
            "id": report.get("id"),
            "merkle_root_hex": report.get("merkle_root_hex"),
            "signature.kid": signature.get("kid"),
            "signature.sig": signature.get("sig"),
        }
        for field, value in printed.items():
            if isinstance(value, str) and value not in text:
                outcome.fail(f"pdf: the printed pages do not show the attached report's {field} {value}")
    return _run_report(report, args, outcome)


def _check_proof_fields(outcome: Outcome, proof: dict[str, Any], ints: tuple[str, ...], hashes: tuple[str, ...],
                        path_field: str) -> dict[str, Any] | None:  # fmt: skip
    values: dict[str, Any] = {}
    for name in ints:
        value = proof.get(name)
        if type(value) is not int or value < 0:
            outcome.fail(f"proof.{name}: missing or not a non-negative integer")
            return None
        values[name] = value
    for name in hashes:
        value = _hash_of(proof.get(name))
        if value is None:
            outcome.fail(f"proof.{name}: missing or not 64 lowercase hex digits")
            return None
        values[name] = value
    path = proof.get(path_field)
    if not isinstance(path, list):
        outcome.fail(f"proof.{path_field}: missing or not a list")
        return None
    nodes = []
    for index, item in enumerate(path):
        node = _hash_of(item)
        if node is None:
            outcome.fail(f"proof.{path_field}[{index}]: not 64 lowercase hex digits")
            return None
        nodes.append(node)
    values[path_field] = nodes
    return values


def _anchor_reports(outcome: Outcome, proof: dict[str, Any], pairs: list[tuple[int, bytes]], args) -> None:
    """Each ``--report`` must be of the proof's session and state one of the proof's (tree size, root) pairs."""
    keys = _load_jwks(args.keys) if args.keys else None
    for path in args.report or ():
        report = _report_object(_read_json_file(path, "report"), path)
        label = f"report {report.get('id')}: "
        if report.get("session_id") != proof.get("session_id"):
            outcome.fail(f"{label}session_id: the report is of another session than the proof")
            continue
        size = _at(report, "audit_integrity.tree_size")
        root = _hash_of(report.get("merkle_root_hex"))
        if (size, root) not in pairs:
            stated = ", ".join(f"{n} -> {r.hex()}" for n, r in pairs)
            outcome.fail(
                f"{label}tree_size {size} / merkle_root_hex {report.get('merkle_root_hex')}: not what the proof "
                f"proves ({stated})"
            )
        else:
            outcome.ok(f"{label}states tree_size {size} and its root, as the proof does")
        check_signature(outcome, report, keys, label)
    if args.keys and not args.report:
        outcome.warn("--keys given without --report: nothing signed to check (pass the report the proof anchors)")


def cmd_proof(args: argparse.Namespace, out: IO[str]) -> int:
    outcome = Outcome(out)
    proof = _read_json_file(args.proof, "proof")
    if not isinstance(proof, dict) or proof.get("type") not in ("inclusion", "consistency"):
        outcome.fail('proof.type: must be "inclusion" or "consistency"')
        return outcome.finish(f"proof {args.proof}")
    if not isinstance(proof.get("session_id"), str):
        outcome.fail("proof.session_id: missing")
    if proof["type"] == "inclusion":
        v = _check_proof_fields(outcome, proof, ("seq", "leaf_index", "tree_size"), ("leaf_hash_hex", "root_hex"),
                                "path_hex")  # fmt: skip
        if v is None:
            return outcome.finish(f"proof {args.proof}")
        if v["seq"] != v["leaf_index"]:
            outcome.fail("proof.leaf_index: must equal seq (an event's leaf index is its seq)")
        if verify_inclusion(v["leaf_hash_hex"], v["leaf_index"], v["tree_size"], v["path_hex"], v["root_hex"]):
            outcome.ok(
                f"inclusion: event seq {v['seq']} (leaf {v['leaf_hash_hex'].hex()[:16]}…) is in the tree of "
                f"{v['tree_size']} events with root {v['root_hex'].hex()}"
            )
        else:
            outcome.fail(
                f"proof: the audit path does not lead from leaf_hash_hex (leaf {v['leaf_index']}) to root_hex for "
                f"tree_size {v['tree_size']}"
            )
        if args.event:
            _check_event_line(outcome, args.event, proof, v["leaf_hash_hex"])
        pairs = [(v["tree_size"], v["root_hex"])]
    else:
        v = _check_proof_fields(outcome, proof, ("first", "second"), ("first_root_hex", "second_root_hex"),
                                "proof_hex")  # fmt: skip
        if v is None:
            return outcome.finish(f"proof {args.proof}")
        if args.event:
            outcome.fail("--event applies to an inclusion proof, not a consistency proof")
        first, second = v["first"], v["second"]
        if verify_consistency(first, second, v["first_root_hex"], v["second_root_hex"], v["proof_hex"]):
            outcome.ok(
                f"consistency: the tree of {first} events (root {v['first_root_hex'].hex()[:16]}…) is a prefix of "
                f"the tree of {second} events (root {v['second_root_hex'].hex()[:16]}…)"
            )
        else:
            outcome.fail(
                f"proof: proof_hex does not show the tree of {first} events (first_root_hex) to be a prefix of the "
                f"tree of {second} events (second_root_hex)"
            )
        pairs = [(first, v["first_root_hex"]), (second, v["second_root_hex"])]
    _anchor_reports(outcome, proof, pairs, args)
    if not args.report:
        outcome.warn(
            "the proof was checked on its own: pass --report (a signed report) to tie its root to a signed one"
        )
    return outcome.finish(f"{proof['type']} proof {args.proof}")


def _check_event_line(outcome: Outcome, path: str, proof: dict[str, Any], leaf: bytes) -> None:
    """``--event``: a file holding the event's NDJSON line; its leaf hash must be the proof's leaf."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise CannotVerify(f"cannot read event file {path}: {exc.strerror}") from None
    line = data[:-1] if data.endswith(b"\n") else data
    if leaf_hash(line) != leaf:
        outcome.fail(f"event {path}: its hash is not the proof's leaf_hash_hex (the line was altered, or is another)")
        return
    event = _loads(line)
    if event.get("seq") != proof.get("seq") or event.get("session_id") != proof.get("session_id"):
        outcome.fail(f"event {path}: names another seq or session than the proof")
        return
    outcome.ok(f"event {path}: hashes to the proof's leaf (seq {event.get('seq')})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m audit.verify",
        description="Verify Masker compliance reports, audit-log exports and proofs offline, without trusting "
        "the server. Exit 0: verified; 1: verification failed (each problem is named); 2: cannot check.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    report = sub.add_parser("report", help="check a JSON report against the events export (and its signature)")
    report.add_argument("report", help="REPORT.json: the body of GET /api/v1/sessions/{id}/report")
    pdf = sub.add_parser("pdf", help="check a PDF report: its attached JSON report, as `report` does")
    pdf.add_argument("pdf", help="REPORT.pdf: the body of GET /api/v1/sessions/{id}/report?format=pdf")
    for command in (report, pdf):
        command.add_argument("--events", required=True, help="EVENTS.ndjson (GET /api/v1/sessions/{id}/events), or -")
        command.add_argument("--keys", help="KEYS.json: the JWKS of GET /api/v1/keys; without it the signature "
                             "is NOT checked")  # fmt: skip
    proof = sub.add_parser("proof", help="check an inclusion or consistency proof as served")
    proof.add_argument("proof", help="PROOF.json: the body of .../events/{seq}/proof or .../consistency")
    proof.add_argument("--report", action="append", help="a report whose tree_size and root the proof must match "
                       "(repeat for a consistency proof's two reports)")  # fmt: skip
    proof.add_argument("--keys", help="KEYS.json: also check the signatures of the --report files")
    proof.add_argument("--event", help="a file holding the proven event's NDJSON line (inclusion proofs)")
    return parser


def main(argv: Sequence[str] | None = None, out: IO[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 verified, 1 failed, 2 cannot check)."""
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    commands = {"report": cmd_report, "pdf": cmd_pdf, "proof": cmd_proof}
    try:
        return commands[args.command](args, out)
    except CannotVerify as exc:
        print(f"ERROR   {exc}", file=out)
        return EXIT_UNABLE


if __name__ == "__main__":
    sys.exit(main())
