"""RFC 9162 proofs over a session's audit log, built from the database.

- ``build_inclusion_proof(session, seq, tree_size=None)``: the audit path of event ``seq`` in the tree of the
  first ``tree_size`` events (default: the session's current size), with the leaf hash and the root;
- ``build_consistency_proof(session, first, second=None)``: the proof that the tree of the first ``first`` events
  is a prefix of the tree of the first ``second`` (default: current size), with both roots. A report taken
  mid-call (tree_size = first) is thereby proven a prefix of the final one.

Both return the JSON documents the API serves and ``python3 masker-verify.pyz proof`` checks. The leaf hashes come
from the ``event_hash`` column (one query, streamed) and the proofs from ``audit.merkle``; the roots are recomputed
from those leaves, not taken from the session's counters. Bounds are validated here and refused with
``ValidationFailed`` (400): ``0 <= seq < tree_size <= size`` and ``1 <= first <= second <= size``.

Cost: O(tree_size) hashes and about 100 bytes of memory per leaf during one request (~100 MB at 1M events).
"""

from typing import Any

from audit.errors import AuditChainBroken
from audit.merkle import consistency_proof, inclusion_proof, merkle_root
from audit.models import AuditEvent, Session
from masker.errors import ValidationFailed

FETCH_CHUNK = 10_000


def _leaf_hashes(session: Session, size: int) -> list[bytes]:
    """The event hashes of seq 0 .. size - 1, in order, as 32-byte values."""
    rows = (
        AuditEvent.objects.filter(session_id=session.pk, seq__lt=size)
        .order_by("seq")
        .values_list("event_hash", flat=True)
        .iterator(chunk_size=FETCH_CHUNK)
    )
    hashes = list(map(bytes.fromhex, rows))
    if len(hashes) != size:
        # The session records more events than the table holds: the log lost rows. Never prove over a gap.
        raise AuditChainBroken(len(hashes), f"log holds {len(hashes)} events below tree size {size}")
    return hashes


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, details={"fields": {field: [message]}})


def build_inclusion_proof(session: Session, seq: int, *, tree_size: int | None = None) -> dict[str, Any]:
    """``{"type": "inclusion", "session_id", "seq", "leaf_index", "tree_size", "leaf_hash_hex", "path_hex",
    "root_hex"}`` for event ``seq``. Raises ``ValidationFailed`` unless 0 <= seq < tree_size <= session size."""
    size = session.tree_size
    tree_size = size if tree_size is None else tree_size
    if not 0 < tree_size <= size:
        raise _invalid("tree_size", f"tree_size must be between 1 and the session's size ({size}).")
    if not 0 <= seq < tree_size:
        raise _invalid("seq", f"seq must be below tree_size ({tree_size}).")
    leaves = _leaf_hashes(session, tree_size)
    return {
        "type": "inclusion",
        "session_id": session.id,
        "seq": seq,
        "leaf_index": seq,
        "tree_size": tree_size,
        "leaf_hash_hex": leaves[seq].hex(),
        "path_hex": [node.hex() for node in inclusion_proof(leaves, seq)],
        "root_hex": merkle_root(leaves).hex(),
    }


def build_consistency_proof(session: Session, first: int, *, second: int | None = None) -> dict[str, Any]:
    """``{"type": "consistency", "session_id", "first", "second", "first_root_hex", "second_root_hex",
    "proof_hex"}``. Raises ``ValidationFailed`` unless 1 <= first <= second <= session size."""
    size = session.tree_size
    second = size if second is None else second
    if not 0 < second <= size:
        raise _invalid("second", f"second must be between 1 and the session's size ({size}).")
    if not 0 < first <= second:
        raise _invalid("first", f"first must be between 1 and second ({second}).")
    leaves = _leaf_hashes(session, second)
    return {
        "type": "consistency",
        "session_id": session.id,
        "first": first,
        "second": second,
        "first_root_hex": merkle_root(leaves[:first]).hex(),
        "second_root_hex": merkle_root(leaves).hex(),
        "proof_hex": [node.hex() for node in consistency_proof(leaves, first, second)],
    }
