"""RFC 6962 / RFC 9162 Merkle primitives (SHA-256): the single implementation the server and the auditor share.

The server's prover (``audit.merkle``) imports these; nothing else defines them, so the roots the server signs
and the roots an auditor recomputes come from the same code.

- leaf hash  = SHA-256(0x00 || data)             -- for an audit event, data is its canonical (JCS) bytes
- node hash  = SHA-256(0x01 || left || right)
- MTH({})    = SHA-256("")                       -- the empty tree
- MTH(D[n])  = node(MTH(D[0:k]), MTH(D[k:n])), k = the largest power of two < n; an odd node is promoted to
  the next level, never duplicated.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MerkleAccumulator",
    "leaf_hash",
    "merkle_root",
    "node_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32

_sha256 = hashlib.sha256
# Domain-separation prefixes (RFC 6962 §2.1): without them a leaf could be passed off as an interior node
# (second-preimage attack on the tree).
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
# Cloning a hasher that has already absorbed the 1-byte prefix is cheaper than building a new one per node, and
# node hashing is the hot path of a long session's walk.
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
