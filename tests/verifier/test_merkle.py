"""RFC 6962 / RFC 9162 Merkle tree: primitives (verifier/merkle.py) and the server's proof generation (audit/merkle.py).

Pure tests: no database, no Django. Three sources of truth are played against each other:
- the published vectors in tests/vectors/rfc6962.json (agree with google/trillian, transparency-dev/merkle),
- a reference MTH / PATH / PROOF and reference verifiers written below straight from the RFC 9162 text,
- the production code.
"""

from __future__ import annotations

import hashlib
import json
import random
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from audit import merkle
from audit.merkle import consistency_proof, inclusion_proof
from verifier import merkle as verifier_merkle
from verifier.merkle import (
    EMPTY_ROOT,
    MerkleAccumulator,
    leaf_hash,
    merkle_root,
    node_hash,
    verify_consistency,
    verify_inclusion,
)

# ---------------------------------------------------------------------------------------------------------
# Vectors
# ---------------------------------------------------------------------------------------------------------


def _vectors_path() -> Path:
    return Path(__file__).resolve().parents[1] / "vectors" / "rfc6962.json"


@cache
def _vectors() -> dict[str, Any]:
    path = _vectors_path()
    if not path.is_file():
        pytest.fail(f"Merkle test vectors not found at {path}")
    return json.loads(path.read_text(encoding="utf-8"))


def _vector_leaf_hashes() -> list[bytes]:
    return [bytes.fromhex(h) for h in _vectors()["leaf_hashes_hex"]]


def _unhex(items: list[str]) -> list[bytes]:
    return [bytes.fromhex(x) for x in items]


# ---------------------------------------------------------------------------------------------------------
# Independent reference implementation, written from RFC 9162 §2.1 without looking at the production code.
# Deliberately naive (recursive, slicing, hashlib directly) so it shares nothing with verifier/merkle.py.
# ---------------------------------------------------------------------------------------------------------


def _ref_leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _ref_node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _ref_k(n: int) -> int:
    # "k is the largest power of two smaller than n (i.e., k < n <= 2k)"
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _ref_mth(d: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1 MTH over *leaf hashes* (the leaf hashing step already applied)."""
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return d[0]
    k = _ref_k(n)
    return _ref_node(_ref_mth(d[:k]), _ref_mth(d[k:]))


def _ref_path(m: int, d: list[bytes]) -> list[bytes]:
    """RFC 9162 §2.1.3.1 PATH(m, D[n])."""
    n = len(d)
    if n == 1:
        return []
    k = _ref_k(n)
    if m < k:
        return [*_ref_path(m, d[:k]), _ref_mth(d[k:])]
    return [*_ref_path(m - k, d[k:]), _ref_mth(d[:k])]


def _ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    """RFC 9162 §2.1.4.1 SUBPROOF(m, D[n], b)."""
    n = len(d)
    if m == n:
        return [] if b else [_ref_mth(d)]
    k = _ref_k(n)
    if m <= k:
        return [*_ref_subproof(m, d[:k], b), _ref_mth(d[k:])]
    return [*_ref_subproof(m - k, d[k:], False), _ref_mth(d[:k])]


def _ref_verify_inclusion(h: bytes, index: int, size: int, path: list[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2, step by step."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, h
    for p in path:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            r = _ref_node(p, r)
            if fn % 2 == 0:
                while not (fn % 2 == 1 or fn == 0):
                    fn //= 2
                    sn //= 2
        else:
            r = _ref_node(r, p)
        fn //= 2
        sn //= 2
    return sn == 0 and r == root


def _ref_verify_consistency(
    first: int,
    second: int,
    first_hash: bytes,
    second_hash: bytes,
    path: list[bytes],
) -> bool:
    """RFC 9162 §2.1.4.2, step by step (for 0 < first < second)."""
    if not path:
        return False
    path = list(path)
    if first & (first - 1) == 0:
        path = [first_hash, *path]
    fn, sn = first - 1, second - 1
    while fn % 2 == 1:
        fn //= 2
        sn //= 2
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            fr = _ref_node(c, fr)
            sr = _ref_node(c, sr)
            if fn % 2 == 0:
                while not (fn % 2 == 1 or fn == 0):
                    fn //= 2
                    sn //= 2
        else:
            sr = _ref_node(sr, c)
        fn //= 2
        sn //= 2
    return fr == first_hash and sr == second_hash and sn == 0


def _random_leaves(n: int, seed: int = 6962) -> list[bytes]:
    rng = random.Random(seed)
    return [_ref_leaf(rng.randbytes(rng.randrange(0, 48))) for _ in range(n)]


def _flip(b: bytes, i: int = 0) -> bytes:
    return b[:i] + bytes([b[i] ^ 0x01]) + b[i + 1 :]


# ---------------------------------------------------------------------------------------------------------
# Primitives and vectors
# ---------------------------------------------------------------------------------------------------------


def test_reference_implementation_is_itself_consistent_with_vectors() -> None:
    # Guards the guard: if the reference were wrong, every cross-check below would be worthless.
    v = _vectors()
    leaves = _vector_leaf_hashes()
    assert [_ref_leaf(x) for x in _unhex(v["leaf_inputs_hex"])] == leaves
    for n, root_hex in enumerate(v["roots_by_size_hex"]):
        assert _ref_mth(leaves[:n]).hex() == root_hex


def test_empty_root_is_sha256_of_empty_string() -> None:
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_leaf_hash_matches_vectors() -> None:
    v = _vectors()
    for data, expected in zip(_unhex(v["leaf_inputs_hex"]), v["leaf_hashes_hex"], strict=True):
        assert leaf_hash(data).hex() == expected


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    a, b = _ref_leaf(b"a"), _ref_leaf(b"b")
    assert node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()
    assert leaf_hash(a + b) == hashlib.sha256(b"\x00" + a + b).digest()
    # A node's preimage presented as leaf data must not hash to the node.
    assert leaf_hash(a + b) != node_hash(a, b)


def test_leaf_hash_accepts_bytes_like() -> None:
    assert leaf_hash(bytearray(b"xyz")) == leaf_hash(memoryview(b"xyz")) == _ref_leaf(b"xyz")


def test_merkle_root_matches_vector_roots_for_sizes_0_to_8() -> None:
    v = _vectors()
    leaves = _vector_leaf_hashes()
    assert len(v["roots_by_size_hex"]) == 9
    for n, expected in enumerate(v["roots_by_size_hex"]):
        assert merkle_root(leaves[:n]).hex() == expected, n
        assert merkle.merkle_root(iter(leaves[:n])).hex() == expected, n


def test_empty_tree_root_is_empty_root() -> None:
    assert merkle_root([]) == EMPTY_ROOT
    assert MerkleAccumulator().root() == EMPTY_ROOT
    assert MerkleAccumulator().size == 0


def _accumulated_root(leaves: list[bytes]) -> bytes:
    acc = MerkleAccumulator()
    for h in leaves:
        acc.append(h)
    return acc.root()


def test_known_wrong_constructions_are_not_produced_for_n3() -> None:
    wrong = _vectors()["wrong_roots_that_must_not_match"]
    leaves = _vector_leaf_hashes()[:3]
    produced = {
        merkle_root(leaves).hex(),
        _ref_mth(leaves).hex(),
        _accumulated_root(leaves).hex(),
    }
    assert len(produced) == 1
    assert produced.isdisjoint(wrong.values()), wrong


def test_accumulator_root_equals_merkle_root_and_reference_for_sizes_0_to_200() -> None:
    leaves = _random_leaves(200)
    acc = MerkleAccumulator()
    assert acc.root() == _ref_mth([])
    for n in range(1, 201):
        acc.append(leaves[n - 1])
        assert acc.size == n
        # Intermediate root() calls must not disturb the state: call it twice and keep going.
        r = acc.root()
        assert r == acc.root()
        assert r == merkle_root(leaves[:n]) == _ref_mth(leaves[:n]), n


def test_accumulator_root_is_repeatable_and_independent_of_root_calls() -> None:
    leaves = _random_leaves(77, seed=1)
    probed, quiet = MerkleAccumulator(), MerkleAccumulator()
    for h in leaves:
        probed.append(h)
        probed.root()
        quiet.append(h)
    assert probed.root() == quiet.root() == _ref_mth(leaves)


def test_accumulator_rejects_non_32_byte_leaf_hashes() -> None:
    acc = MerkleAccumulator()
    for bad in (b"", b"\x00" * 31, b"\x00" * 33, "0" * 32, None):
        with pytest.raises(ValueError, match="leaf hash must be"):
            acc.append(bad)  # type: ignore[arg-type]
    assert acc.size == 0
    assert acc.root() == EMPTY_ROOT


def test_accumulator_copies_mutable_leaf_buffers() -> None:
    buf = bytearray(_ref_leaf(b"x"))
    acc = MerkleAccumulator()
    acc.append(buf)  # type: ignore[arg-type]
    before = acc.root()
    buf[0] ^= 0xFF
    assert acc.root() == before == _ref_leaf(b"x")


def test_accumulator_resumed_from_frontier_continues_the_same_tree() -> None:
    leaves = _random_leaves(100, seed=11)
    acc = MerkleAccumulator()
    for n in range(101):
        resumed = MerkleAccumulator.from_frontier(acc.size, acc.frontier_hex())
        assert resumed.size == n
        assert resumed.root() == acc.root() == _ref_mth(leaves[:n])
        # Appending after a resume must give the tree over all leaves, not a fresh one.
        for h in leaves[n:]:
            resumed.append(h)
        assert resumed.root() == _ref_mth(leaves), n
        if n < 100:
            acc.append(leaves[n])


def test_accumulator_frontier_has_one_entry_per_set_bit_of_size() -> None:
    acc = MerkleAccumulator()
    for n, h in enumerate(_random_leaves(40, seed=12), start=1):
        acc.append(h)
        assert len(acc.frontier_hex()) == bin(n).count("1")
    frontier = acc.frontier_hex()
    for wrong_size in (acc.size - 1, acc.size + 1, -1):
        with pytest.raises(ValueError, match="frontier does not match"):
            MerkleAccumulator.from_frontier(wrong_size, frontier)


def test_merkle_root_rejects_non_32_byte_leaf_hashes() -> None:
    with pytest.raises(ValueError, match="leaf hash must be 32 bytes"):
        merkle_root([_ref_leaf(b"a"), b"short"])


def test_merkle_module_re_exports_the_verifier_primitives_not_copies() -> None:
    # One implementation: the server must use the auditor's code, not a lookalike.
    for name in (
        "EMPTY_ROOT",
        "leaf_hash",
        "node_hash",
        "MerkleAccumulator",
        "merkle_root",
        "verify_inclusion",
        "verify_consistency",
    ):
        assert getattr(merkle, name) is getattr(verifier_merkle, name), name
        assert name in merkle.__all__


# ---------------------------------------------------------------------------------------------------------
# Inclusion proofs
# ---------------------------------------------------------------------------------------------------------


def test_inclusion_proofs_match_vectors_and_verify() -> None:
    v = _vectors()
    leaves = _vector_leaf_hashes()
    roots = _unhex(v["roots_by_size_hex"])
    assert v["inclusion_proofs"]
    for case in v["inclusion_proofs"]:
        i, n, path = case["leaf_index"], case["tree_size"], _unhex(case["path_hex"])
        assert inclusion_proof(leaves[:n], i) == path, case
        assert _ref_path(i, leaves[:n]) == path, case
        assert verify_inclusion(leaves[i], i, n, path, roots[n]), case
        assert _ref_verify_inclusion(leaves[i], i, n, path, roots[n]), case


def _inclusion_mutations(h: bytes, i: int, n: int, path: list[bytes], roots: list[bytes]):
    """Every (description, args) that must be rejected, derived from one valid proof.

    A wrong tree size is paired with the genuine root *of that size* (an attacker replaying another signed
    head). Pairing it with this tree's root is not a mutation RFC 9162 can catch: see
    test_tree_size_is_not_committed_by_the_root_alone.
    """
    root = roots[n]
    for j in range(len(path)):
        flipped = [*path[:j], _flip(path[j], j % 32), *path[j + 1 :]]
        yield f"flip byte in path[{j}]", (h, i, n, flipped, root)
        yield f"drop path[{j}]", (h, i, n, path[:j] + path[j + 1 :], root)
    for j in range(len(path) + 1):
        yield f"insert at {j}", (h, i, n, [*path[:j], _ref_leaf(b"extra"), *path[j:]], root)
    if len(path) >= 2 and path[0] != path[1]:
        yield "swap path[0] and path[1]", (h, i, n, [path[1], path[0], *path[2:]], root)
    yield "flipped leaf", (_flip(h), i, n, path, root)
    yield "flipped root", (h, i, n, path, _flip(root, 31))
    for wrong_i in (i - 1, i + 1, n, n + 5, -1):
        if wrong_i != i:
            yield f"index {wrong_i}", (h, wrong_i, n, path, root)
    for wrong_n in (n - 1, n + 1, 2 * n, 0, -1):
        if wrong_n != n:
            other_root = roots[wrong_n] if 0 <= wrong_n < len(roots) else root
            yield f"tree size {wrong_n}", (h, i, wrong_n, path, other_root)


def _inclusion_still_valid(
    h: bytes,
    i: int,
    n: int,
    path: list[bytes],
    root: bytes,
    leaves: list[bytes],
) -> bool:
    # A "mutation" that happens to describe another genuinely valid proof (e.g. swapping two equal path
    # elements) must not count as a false accept: ask the reference whether it is really a valid proof.
    if not (0 <= i < n <= len(leaves)) or h != leaves[i]:
        return False
    return _ref_path(i, leaves[:n]) == path and _ref_mth(leaves[:n]) == root


def test_mutated_inclusion_proof_is_rejected() -> None:
    v = _vectors()
    leaves = _vector_leaf_hashes()
    roots = _unhex(v["roots_by_size_hex"])
    checked = 0
    for case in v["inclusion_proofs"]:
        i, n, path = case["leaf_index"], case["tree_size"], _unhex(case["path_hex"])
        for what, args in _inclusion_mutations(leaves[i], i, n, path, roots):
            if _inclusion_still_valid(*args, leaves):
                continue
            assert not verify_inclusion(*args), (case, what)
            checked += 1
    assert checked > 300


def test_inclusion_proof_against_other_trees_root_is_rejected() -> None:
    leaves = _vector_leaf_hashes()
    roots = _unhex(_vectors()["roots_by_size_hex"])
    path = inclusion_proof(leaves[:5], 2)
    assert verify_inclusion(leaves[2], 2, 5, path, roots[5])
    for n in (3, 4, 6, 7, 8):
        assert not verify_inclusion(leaves[2], 2, 5, path, roots[n])


def test_verify_inclusion_returns_false_on_malformed_input_instead_of_raising() -> None:
    leaves = _vector_leaf_hashes()
    root = merkle_root(leaves)
    path = inclusion_proof(leaves, 3)
    assert verify_inclusion(leaves[3], 3, 8, path, root)
    assert verify_inclusion(bytearray(leaves[3]), 3, 8, [memoryview(p) for p in path], bytearray(root))
    bad_cases = [
        (leaves[3][:31], 3, 8, path, root),  # short leaf hash
        (leaves[3], 3, 8, path, root[:31]),  # short root
        (leaves[3], 3, 8, [path[0][:16], *path[1:]], root),  # short path element
        (leaves[3], 3, 8, [path[0] + b"\x00", *path[1:]], root),  # long path element
        (leaves[3], 3, 8, [None, *path[1:]], root),
        (leaves[3], 3, 8, None, root),  # not a sequence at all
        (leaves[3].hex(), 3, 8, path, root),  # hex str instead of bytes
        (leaves[3], "3", 8, path, root),
        (leaves[3], 3, 8.0, path, root),
        (leaves[3], True, 8, path, root),
        (leaves[3], 8, 8, path, root),  # index == size
        (leaves[3], 0, 0, [], EMPTY_ROOT),  # empty tree has no leaves
    ]
    for args in bad_cases:
        assert verify_inclusion(*args) is False, args  # type: ignore[arg-type]


def test_single_leaf_tree_inclusion_is_the_leaf_itself() -> None:
    h = _ref_leaf(b"only")
    assert inclusion_proof([h], 0) == []
    assert verify_inclusion(h, 0, 1, [], h)
    assert not verify_inclusion(h, 0, 1, [h], h)
    assert not verify_inclusion(h, 0, 1, [], _flip(h))


def test_inclusion_proof_rejects_out_of_range_index() -> None:
    leaves = _vector_leaf_hashes()
    for bad in (-1, 8, 100):
        with pytest.raises(ValueError, match="out of range"):
            inclusion_proof(leaves, bad)
    with pytest.raises(ValueError, match="out of range"):
        inclusion_proof([], 0)
    with pytest.raises(ValueError, match="out of range"):
        inclusion_proof(leaves, True)  # type: ignore[arg-type]


def test_tree_size_is_not_committed_by_the_root_alone() -> None:
    # RFC 9162 property, not a bug: the proof for leaf 0 of 3 also "verifies" against the size-3 root when
    # the size is claimed to be 4, because both trees put the leaf's path through the same node shapes. The
    # root does not encode the size, so (tree_size, root) must always come from the same signed seal. The
    # reference verifier agrees, which shows this is the RFC algorithm and not a deviation in ours.
    leaves = _vector_leaf_hashes()
    root3 = merkle_root(leaves[:3])
    path = inclusion_proof(leaves[:3], 0)
    assert verify_inclusion(leaves[0], 0, 4, path, root3)
    assert _ref_verify_inclusion(leaves[0], 0, 4, path, root3)
    proof = consistency_proof(leaves, 1, 3)
    assert verify_consistency(1, 4, merkle_root(leaves[:1]), root3, proof)
    assert _ref_verify_consistency(1, 4, merkle_root(leaves[:1]), root3, proof)
    # With the genuine size-4 root the same proofs fail.
    root4 = merkle_root(leaves[:4])
    assert not verify_inclusion(leaves[0], 0, 4, path, root4)
    assert not verify_consistency(1, 4, merkle_root(leaves[:1]), root4, proof)


def test_verifiers_agree_with_reference_on_proofs_presented_with_a_wrong_tree_size() -> None:
    leaves = _random_leaves(40, seed=3)
    roots = [_ref_mth(leaves[:n]) for n in range(41)]
    for n in range(1, 33):
        for i in range(n):
            path = inclusion_proof(leaves[:n], i)
            for wrong_n in range(max(1, n - 3), n + 4):
                for root in (roots[n], roots[wrong_n]):
                    expected = _ref_verify_inclusion(leaves[i], i, wrong_n, path, root)
                    assert verify_inclusion(leaves[i], i, wrong_n, path, root) is expected, (i, n, wrong_n)
        for m in range(1, n):
            proof = consistency_proof(leaves, m, n)
            for wrong_n in range(m + 1, n + 4):
                for root in (roots[n], roots[wrong_n]):
                    expected = _ref_verify_consistency(m, wrong_n, roots[m], root, proof)
                    assert verify_consistency(m, wrong_n, roots[m], root, proof) is expected, (m, n, wrong_n)


def test_every_inclusion_proof_for_sizes_1_to_64_matches_reference_and_verifies_both_ways() -> None:
    leaves = _random_leaves(64)
    for n in range(1, 65):
        tree = leaves[:n]
        root = _ref_mth(tree)
        assert merkle_root(tree) == root
        for i in range(n):
            path = inclusion_proof(tree, i)
            assert path == _ref_path(i, tree), (i, n)
            assert verify_inclusion(tree[i], i, n, path, root), (i, n)
            assert _ref_verify_inclusion(tree[i], i, n, path, root), (i, n)
            # Cheap negative in the same sweep: the neighbouring leaf must not verify at this index.
            if n > 1:
                other = tree[(i + 1) % n]
                assert not verify_inclusion(other, i, n, path, root), (i, n)


# ---------------------------------------------------------------------------------------------------------
# Consistency proofs
# ---------------------------------------------------------------------------------------------------------


def test_consistency_proofs_match_vectors_and_verify() -> None:
    v = _vectors()
    leaves = _vector_leaf_hashes()
    roots = _unhex(v["roots_by_size_hex"])
    assert v["consistency_proofs"]
    for case in v["consistency_proofs"]:
        m, n, proof = case["first"], case["second"], _unhex(case["proof_hex"])
        assert consistency_proof(leaves, m, n) == proof, case
        assert consistency_proof(leaves[:n], m, n) == proof, case
        assert _ref_subproof(m, leaves[:n], True) == proof, case
        assert verify_consistency(m, n, roots[m], roots[n], proof), case
        if m < n:
            assert _ref_verify_consistency(m, n, roots[m], roots[n], proof), case


def _consistency_mutations(m: int, n: int, roots: list[bytes], proof: list[bytes]):
    """Like _inclusion_mutations: a wrong size comes with the genuine root of that size."""
    r1, r2 = roots[m], roots[n]
    for j in range(len(proof)):
        flipped = [*proof[:j], _flip(proof[j], j % 32), *proof[j + 1 :]]
        yield f"flip byte in proof[{j}]", (m, n, r1, r2, flipped)
        yield f"drop proof[{j}]", (m, n, r1, r2, proof[:j] + proof[j + 1 :])
    for j in range(len(proof) + 1):
        yield f"insert at {j}", (m, n, r1, r2, [*proof[:j], _ref_leaf(b"extra"), *proof[j:]])
    yield "flipped first root", (m, n, _flip(r1), r2, proof)
    yield "flipped second root", (m, n, r1, _flip(r2, 31), proof)
    yield "roots swapped", (m, n, r2, r1, proof)
    for wm in (m - 1, m + 1, 0, -1):
        if wm != m:
            yield f"first {wm}", (wm, n, roots[wm] if 0 <= wm < len(roots) else r1, r2, proof)
    for wn in (n - 1, n + 1, 2 * n):
        if wn != n:
            yield f"second {wn}", (m, wn, r1, roots[wn] if wn < len(roots) else r2, proof)


def _consistency_still_valid(
    m: int,
    n: int,
    r1: bytes,
    r2: bytes,
    proof: list[bytes],
    leaves: list[bytes],
) -> bool:
    if not (1 <= m <= n <= len(leaves)):
        return False
    same_roots = _ref_mth(leaves[:m]) == r1 and _ref_mth(leaves[:n]) == r2
    return same_roots and _ref_subproof(m, leaves[:n], True) == proof


def test_mutated_consistency_proof_is_rejected() -> None:
    v = _vectors()
    leaves = _vector_leaf_hashes()
    roots = _unhex(v["roots_by_size_hex"])
    checked = 0
    for case in v["consistency_proofs"]:
        m, n, proof = case["first"], case["second"], _unhex(case["proof_hex"])
        for what, args in _consistency_mutations(m, n, roots, proof):
            if _consistency_still_valid(*args, leaves):
                continue
            assert not verify_consistency(*args), (case, what)
            checked += 1
    assert checked > 300


def test_consistency_of_equal_sizes_needs_empty_proof_and_equal_roots() -> None:
    leaves = _vector_leaf_hashes()
    r5 = merkle_root(leaves[:5])
    assert consistency_proof(leaves, 5, 5) == []
    assert verify_consistency(5, 5, r5, r5, [])
    assert not verify_consistency(5, 5, r5, _flip(r5), [])
    assert not verify_consistency(5, 5, r5, r5, [r5])


def test_consistency_from_empty_tree_is_rejected_and_not_generated() -> None:
    # Decision (documented in verify_consistency): size 0 is invalid input; RFC 9162 defines proofs for 0 < m.
    leaves = _vector_leaf_hashes()
    assert not verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert not verify_consistency(0, 3, EMPTY_ROOT, merkle_root(leaves[:3]), [])
    with pytest.raises(ValueError, match="1 <= first"):
        consistency_proof(leaves, 0, 3)


def test_consistency_proof_rejects_out_of_range_sizes() -> None:
    leaves = _vector_leaf_hashes()
    for first, second in ((0, 0), (-1, 3), (4, 3), (3, 9), (9, 9), (1, 0)):
        with pytest.raises(ValueError, match="1 <= first <= second"):
            consistency_proof(leaves, first, second)
    with pytest.raises(ValueError, match="must be an int"):
        consistency_proof(leaves, True, 3)  # type: ignore[arg-type]


def test_verify_consistency_returns_false_on_malformed_input_instead_of_raising() -> None:
    leaves = _vector_leaf_hashes()
    r3, r7 = merkle_root(leaves[:3]), merkle_root(leaves[:7])
    proof = consistency_proof(leaves, 3, 7)
    assert verify_consistency(3, 7, r3, r7, proof)
    assert verify_consistency(3, 7, bytearray(r3), memoryview(r7), [bytearray(p) for p in proof])
    bad_cases = [
        (3, 7, r3[:31], r7, proof),
        (3, 7, r3, r7 + b"\x00", proof),
        (3, 7, r3, r7, [proof[0][:31], *proof[1:]]),
        (3, 7, r3, r7, [None, *proof[1:]]),
        (3, 7, r3, r7, None),
        (3, 7, r3, r7, []),
        (3, 7, r3.hex(), r7, proof),
        ("3", 7, r3, r7, proof),
        (3, 7.0, r3, r7, proof),
        (True, 7, r3, r7, proof),
        (7, 3, r7, r3, proof),  # first > second
    ]
    for args in bad_cases:
        assert verify_consistency(*args) is False, args  # type: ignore[arg-type]


def test_every_consistency_proof_for_sizes_1_to_64_matches_reference_and_verifies_both_ways() -> None:
    leaves = _random_leaves(64, seed=9162)
    roots = [_ref_mth(leaves[:n]) for n in range(65)]
    for n in range(1, 65):
        for m in range(1, n + 1):
            proof = consistency_proof(leaves, m, n)
            assert proof == _ref_subproof(m, leaves[:n], True), (m, n)
            assert verify_consistency(m, n, roots[m], roots[n], proof), (m, n)
            if m < n:
                assert _ref_verify_consistency(m, n, roots[m], roots[n], proof), (m, n)
                # The same proof must not vouch for a forked history (last new leaf changed).
                forked = _ref_mth([*leaves[: n - 1], _flip(leaves[n - 1])])
                assert not verify_consistency(m, n, roots[m], forked, proof), (m, n)


def test_consistency_proof_does_not_verify_a_rewritten_prefix() -> None:
    leaves = _random_leaves(20, seed=7)
    rewritten = list(leaves)
    rewritten[2] = _ref_leaf(b"tampered")
    old_root = merkle_root(leaves[:10])
    # The server (honestly) proves consistency of the rewritten log against an old root it no longer matches.
    proof = consistency_proof(rewritten, 10, 20)
    assert not verify_consistency(10, 20, old_root, merkle_root(rewritten), proof)
    assert verify_consistency(10, 20, merkle_root(rewritten[:10]), merkle_root(rewritten), proof)


# ---------------------------------------------------------------------------------------------------------
# The audit chain example (docs/audit-log.md): hashes and root only; JCS canonicalisation is tested elsewhere.
# ---------------------------------------------------------------------------------------------------------


def test_audit_chain_example_event_hashes_and_root() -> None:
    example = _vectors()["audit_chain_example"]
    events = example["events"]
    assert events
    hashes: list[bytes] = []
    for item in events:
        h = leaf_hash(item["canonical_utf8"].encode("utf-8"))
        assert h.hex() == item["event_hash_hex"], item["event"]["seq"]
        hashes.append(h)
    assert merkle_root(hashes).hex() == example["merkle_root_hex"]
    assert _ref_mth(hashes).hex() == example["merkle_root_hex"]


def test_audit_chain_example_prev_hash_links_event_hashes() -> None:
    events = _vectors()["audit_chain_example"]["events"]
    prev = "0" * 64
    for item in events:
        assert item["event"]["prev_hash"] == prev
        prev = item["event_hash_hex"]


def test_audit_chain_example_events_are_provable_members_of_the_root() -> None:
    example = _vectors()["audit_chain_example"]
    hashes = [bytes.fromhex(item["event_hash_hex"]) for item in example["events"]]
    root = bytes.fromhex(example["merkle_root_hex"])
    for i, h in enumerate(hashes):
        assert verify_inclusion(h, i, len(hashes), inclusion_proof(hashes, i), root)
