"""Server-side Merkle tree helpers: RFC 9162 proof generation over a session's event hashes.

The hashing primitives are *not* defined here: they live in ``verifier.merkle``, the stdlib-only package auditors
run on its own, and the server imports and re-exports the very same functions. One implementation means the
server's roots and the auditor's checks can only disagree if the data differ.

What this module adds is the prover side, which the auditor never needs:

- ``inclusion_proof``   -- RFC 9162 §2.1.3.1 PATH(m, D[n])
- ``consistency_proof`` -- RFC 9162 §2.1.4.1 PROOF(m, D[n]) / SUBPROOF(m, D[n], b)

Both take the leaf hashes (``event_hash`` values, 32 bytes each, in ``seq`` order) as an in-memory sequence;
the elements are not re-validated, for speed. Cost is O(n) hashes and O(n) transient memory per proof.
"""

from __future__ import annotations

from collections.abc import Sequence

from verifier.merkle import (
    EMPTY_ROOT,
    MerkleAccumulator,
    leaf_hash,
    merkle_root,
    node_hash,
    verify_consistency,
    verify_inclusion,
)

__all__ = [
    "EMPTY_ROOT",
    "MerkleAccumulator",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "merkle_root",
    "node_hash",
    "verify_consistency",
    "verify_inclusion",
]


def _split(n: int) -> int:
    """Largest power of two strictly less than ``n`` (n >= 2): RFC 6962's k."""
    return 1 << ((n - 1).bit_length() - 1)


def _subtree_hash(leaf_hashes: Sequence[bytes], lo: int, hi: int) -> bytes:
    """MTH(D[lo:hi]) for 0 <= lo < hi <= len(leaf_hashes).

    Reduces level by level, pairing neighbours and promoting a lone last node. That yields the same tree as
    RFC 6962's recursive split (both are the left-balanced tree; the tests cross-check it against a literal
    recursive MTH), with no recursion and the per-level loop in C (``map``), so the cost is the n - 1 SHA-256
    calls and little else.
    """
    level = list(leaf_hashes[lo:hi])
    while len(level) > 1:
        pairs = iter(level)
        # map() over the same iterator twice consumes it pairwise: (0, 1), (2, 3), ...; a lone last node is
        # left over and promoted unchanged (RFC 6962 never duplicates it).
        nxt = list(map(node_hash, pairs, pairs))
        if len(level) & 1:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """Return the RFC 9162 §2.1.3.1 audit path of leaf ``index`` in the tree over all of ``leaf_hashes``.

    Order is RFC order (sibling nearest the leaf first), as ``verify_inclusion`` expects. A one-leaf tree has
    an empty path. Raises ``ValueError`` unless 0 <= index < len(leaf_hashes).
    """
    n = len(leaf_hashes)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n:
        raise ValueError(f"leaf index {index!r} out of range for tree size {n}")
    # Walk down from the root (iterative form of PATH's recursion); each level contributes the sibling
    # subtree's hash. The walk collects root-side siblings first, so reverse at the end.
    path: list[bytes] = []
    lo, hi = 0, n
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            path.append(_subtree_hash(leaf_hashes, lo + k, hi))  # PATH(m, D[0:k]) : MTH(D[k:n])
            hi = lo + k
        else:
            path.append(_subtree_hash(leaf_hashes, lo, lo + k))  # PATH(m - k, D[k:n]) : MTH(D[0:k])
            lo += k
    path.reverse()
    return path


def consistency_proof(leaf_hashes: Sequence[bytes], first: int, second: int) -> list[bytes]:
    """Return the RFC 9162 §2.1.4.1 consistency proof PROOF(first, D[second]) over ``leaf_hashes[:second]``.

    The proof shows the tree of the first ``first`` leaves is a prefix of the tree of the first ``second``.
    ``first == second`` gives an empty proof. Raises ``ValueError`` unless
    1 <= first <= second <= len(leaf_hashes); first == 0 is refused because RFC 9162 defines no proof for it
    (and ``verify_consistency`` rejects it).
    """
    n = len(leaf_hashes)
    for name, value in (("first", first), ("second", second)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an int, got {value!r}")
    if not 1 <= first <= second <= n:
        raise ValueError(f"need 1 <= first <= second <= {n}, got first={first}, second={second}")
    # Iterative SUBPROOF(m, D[lo:hi], b). Every recursive step appends one subtree hash *after* the deeper
    # result, so collect them top-down and reverse; the terminal case (m == n) contributes the head.
    tail: list[bytes] = []
    lo, hi = 0, second
    known = True  # b: is MTH(D[lo:hi]) already known to the verifier (the old root itself)?
    while first - lo != hi - lo:
        k = _split(hi - lo)
        if first - lo <= k:
            # Old tree lies within the left subtree; the right one is new, prove it by hash.
            tail.append(_subtree_hash(leaf_hashes, lo + k, hi))
            hi = lo + k
        else:
            # Left subtree is complete in both trees; recurse into the right with b = false.
            tail.append(_subtree_hash(leaf_hashes, lo, lo + k))
            lo += k
            known = False
    head = [] if known else [_subtree_hash(leaf_hashes, lo, hi)]
    tail.reverse()
    return head + tail
