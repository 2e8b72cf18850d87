"""Inclusion and consistency proofs end to end: served over HTTP, checked by the offline
verifier's ``proof`` subcommand and by the RFC 9162 reference implementation of tests/verifier/test_merkle.py, which
shares no code with audit/. Mutated proofs fail both."""

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client

from audit.writing import append_events, end_session, start_session
from tests.audit.api_support import mixed_batch
from tests.conftest import T0
from tests.verifier.support import (
    download,
    fetch_evidence,
    flip_byte,
    read_lines,
    ref_leaf,
    ref_mth,
    ref_path,
    ref_subproof,
    ref_verify_consistency,
    ref_verify_inclusion,
    run_verifier,
)

SIZE = 1000


@pytest.fixture
def alice_client(alice) -> Client:
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def big_session(agent):
    """A sealed session of exactly 1,000 events: session.started, 998 appended, session.ended."""
    session, _ = start_session(agent, external_ref="call-1000", started_at=T0)
    for lo in range(1, SIZE - 1, 500):
        append_events(session, mixed_batch(lo, min(500, SIZE - 1 - lo)))
    end_session(session, status="ok", now=T0 + timedelta(hours=1))
    assert session.tree_size == SIZE
    return session


@pytest.fixture
def leaves(alice_client, big_session) -> list[bytes]:
    """Leaf hashes recomputed from the NDJSON export (not from the server's stored hashes)."""
    lines = download(alice_client, f"/api/v1/sessions/{big_session.id}/events").split(b"\n")
    assert lines.pop() == b""
    return [ref_leaf(line) for line in lines]


def _hex(nodes: list[bytes]) -> list[str]:
    return [node.hex() for node in nodes]


def _unhex(items: list[str]) -> list[bytes]:
    return [bytes.fromhex(item) for item in items]


def _check_with_cli(proof: dict, path: Path, *extra) -> tuple[int, str]:
    path.write_text(json.dumps(proof))
    return run_verifier("proof", path, *extra)


def test_inclusion_proof_of_every_event_of_a_1000_event_session_verifies(alice_client, big_session, leaves, tmp_path):
    root = ref_mth(leaves)
    assert root.hex() == big_session.merkle_root_hex
    for seq in range(SIZE):
        proof = json.loads(download(alice_client, f"/api/v1/sessions/{big_session.id}/events/{seq}/proof"))
        assert proof["tree_size"] == SIZE and proof["root_hex"] == root.hex()
        assert proof["leaf_hash_hex"] == leaves[seq].hex()
        assert proof["path_hex"] == _hex(ref_path(seq, leaves))
        assert ref_verify_inclusion(leaves[seq], seq, SIZE, _unhex(proof["path_hex"]), root)
        code, out = _check_with_cli(proof, tmp_path / "proof.json")
        assert code == 0, (seq, out)
    assert f"inclusion: event seq {SIZE - 1}" in out


def test_inclusion_proofs_against_earlier_tree_sizes_verify(alice_client, big_session, leaves, tmp_path):
    for tree_size in (1, 2, 3, 7, 8, 9, 64, 100, 511, 512, 513, 999):
        root = ref_mth(leaves[:tree_size])
        for seq in sorted({0, tree_size // 2, tree_size - 1}):
            url = f"/api/v1/sessions/{big_session.id}/events/{seq}/proof?tree_size={tree_size}"
            proof = json.loads(download(alice_client, url))
            assert proof["root_hex"] == root.hex()
            assert ref_verify_inclusion(leaves[seq], seq, tree_size, _unhex(proof["path_hex"]), root)
            code, out = _check_with_cli(proof, tmp_path / "proof.json")
            assert code == 0, (seq, tree_size, out)


SIZES = (1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 100, 255, 256, 257, 500, 511, 512, 513, 998, 999, 1000)


def test_consistency_proofs_between_many_size_pairs_verify(alice_client, big_session, leaves, tmp_path):
    pairs = [(first, second) for first in SIZES for second in SIZES if first <= second]
    assert len(pairs) > 200
    for first, second in pairs:
        url = f"/api/v1/sessions/{big_session.id}/consistency?first={first}&second={second}"
        proof = json.loads(download(alice_client, url))
        first_root, second_root = ref_mth(leaves[:first]), ref_mth(leaves[:second])
        assert (proof["first_root_hex"], proof["second_root_hex"]) == (first_root.hex(), second_root.hex())
        assert proof["proof_hex"] == _hex(ref_subproof(first, leaves[:second], True))
        if first < second:
            assert ref_verify_consistency(first, second, first_root, second_root, _unhex(proof["proof_hex"]))
        else:
            assert proof["proof_hex"] == []
        code, out = _check_with_cli(proof, tmp_path / "proof.json")
        assert code == 0, (first, second, out)


def _inclusion_mutations(proof: dict, leaves: list[bytes]):
    """Each mutation must be refused. A changed tree size comes with the genuine root *of that size* (a replayed
    tree head): RFC 9162 roots do not commit to their size, so a size changed alone is caught by anchoring the proof
    to a signed report instead (test_a_proof_with_another_tree_size_fails_against_the_signed_report)."""
    path = proof["path_hex"]
    for j in range(len(path)):
        flipped = list(path)
        flipped[j] = flip_byte(bytes.fromhex(path[j]), j % 32).hex()
        yield f"flip path[{j}]", {**proof, "path_hex": flipped}
        yield f"drop path[{j}]", {**proof, "path_hex": path[:j] + path[j + 1 :]}
    yield "extra node", {**proof, "path_hex": [*path, "00" * 32]}
    if len(path) >= 2:
        yield "swap path[0] and path[1]", {**proof, "path_hex": [path[1], path[0], *path[2:]]}
    yield "other leaf", {**proof, "leaf_hash_hex": flip_byte(bytes.fromhex(proof["leaf_hash_hex"]), 0).hex()}
    yield "other root", {**proof, "root_hex": flip_byte(bytes.fromhex(proof["root_hex"]), 31).hex()}
    for index in (proof["leaf_index"] + 1, proof["leaf_index"] - 1):
        if 0 <= index < proof["tree_size"]:
            yield f"leaf index {index}", {**proof, "leaf_index": index, "seq": index}
    for size in (proof["tree_size"] - 1, proof["tree_size"] - 2):
        if proof["leaf_index"] < size:
            yield f"tree size {size}", {**proof, "tree_size": size, "root_hex": ref_mth(leaves[:size]).hex()}
    yield "leaf_index differs from seq", {**proof, "leaf_index": proof["seq"] + 1}


def test_mutated_inclusion_proofs_fail(alice_client, big_session, leaves, tmp_path):
    for seq in (0, 1, 500, 998, 999):
        proof = json.loads(download(alice_client, f"/api/v1/sessions/{big_session.id}/events/{seq}/proof"))
        for label, mutated in _inclusion_mutations(proof, leaves):
            code, out = _check_with_cli(mutated, tmp_path / "mutated.json")
            assert code == 1, (seq, label, out)
            assert "FAIL    proof" in out
            assert (
                not ref_verify_inclusion(
                    bytes.fromhex(mutated["leaf_hash_hex"]),
                    mutated["leaf_index"],
                    mutated["tree_size"],
                    _unhex(mutated["path_hex"]),
                    bytes.fromhex(mutated["root_hex"]),
                )
                or mutated["leaf_index"] != mutated["seq"]
            ), (seq, label)


def _consistency_mutations(proof: dict, leaves: list[bytes]):
    nodes = proof["proof_hex"]
    for j in range(len(nodes)):
        flipped = list(nodes)
        flipped[j] = flip_byte(bytes.fromhex(nodes[j]), 7).hex()
        yield f"flip proof[{j}]", {**proof, "proof_hex": flipped}
        yield f"drop proof[{j}]", {**proof, "proof_hex": nodes[:j] + nodes[j + 1 :]}
    yield "extra node", {**proof, "proof_hex": [*nodes, "11" * 32]}
    yield "other first root", {**proof, "first_root_hex": "22" * 32}
    yield "other second root", {**proof, "second_root_hex": "33" * 32}
    first, second = proof["first"], proof["second"]
    if first > 1:
        yield "first - 1", {**proof, "first": first - 1, "first_root_hex": ref_mth(leaves[: first - 1]).hex()}
    if second - 1 > first:
        yield "second - 1", {**proof, "second": second - 1, "second_root_hex": ref_mth(leaves[: second - 1]).hex()}
    yield "first 0", {**proof, "first": 0}
    yield "first above second", {**proof, "first": second + 1}


def test_mutated_consistency_proofs_fail(alice_client, big_session, leaves, tmp_path):
    for first, second in ((1, 1000), (3, 7), (255, 257), (500, 999), (512, 1000), (998, 999)):
        url = f"/api/v1/sessions/{big_session.id}/consistency?first={first}&second={second}"
        proof = json.loads(download(alice_client, url))
        for label, mutated in _consistency_mutations(proof, leaves):
            code, out = _check_with_cli(mutated, tmp_path / "mutated.json")
            assert code == 1, (first, second, label, out)
            if 0 < mutated["first"] <= mutated["second"]:
                assert not ref_verify_consistency(
                    mutated["first"],
                    mutated["second"],
                    bytes.fromhex(mutated["first_root_hex"]),
                    bytes.fromhex(mutated["second_root_hex"]),
                    _unhex(mutated["proof_hex"]),
                ), (first, second, label)


def test_a_proof_with_another_tree_size_fails_against_the_signed_report(alice_client, big_session, tmp_path):
    evidence = fetch_evidence(alice_client, big_session.id, tmp_path / "e")
    proof = json.loads(download(alice_client, f"/api/v1/sessions/{big_session.id}/events/0/proof"))
    resized = {**proof, "tree_size": SIZE - 1}  # the same path and root happen to fit a tree of 999 too
    code, out = _check_with_cli(resized, tmp_path / "resized.json")
    assert code == 0 and "pass --report" in out  # the bare proof cannot tell (RFC 9162 roots omit the size)...
    code, out = _check_with_cli(resized, tmp_path / "resized.json", "--report", evidence.report)
    assert code == 1  # ...the signed report, which states size and root together, can
    assert f"tree_size {SIZE} / merkle_root_hex {big_session.merkle_root_hex}: not what the proof proves" in out


def test_malformed_proof_documents_fail_naming_the_field(tmp_path):
    good = {
        "type": "inclusion",
        "session_id": "sess_x",
        "seq": 0,
        "leaf_index": 0,
        "tree_size": 1,
        "leaf_hash_hex": "00" * 32,
        "path_hex": [],
        "root_hex": "00" * 32,
    }
    cases = [
        ({**good, "type": "other"}, "proof.type"),
        ({**good, "seq": "0"}, "proof.seq"),
        ({**good, "tree_size": -1}, "proof.tree_size"),
        ({**good, "root_hex": "AB" * 32}, "proof.root_hex"),
        ({**good, "path_hex": ["00" * 31]}, "proof.path_hex[0]"),
        ({**good, "path_hex": "00"}, "proof.path_hex"),
    ]
    for document, field in cases:
        code, out = _check_with_cli(document, tmp_path / "bad.json")
        assert code == 1, (field, out)
        assert f"FAIL    {field}" in out


def test_a_mid_call_report_is_proven_a_prefix_of_the_final_report(alice_client, agent, tmp_path):
    session, _ = start_session(agent, external_ref="call-midway", started_at=T0)
    append_events(session, mixed_batch(1, 40))
    mid = fetch_evidence(alice_client, session.id, tmp_path / "mid")
    append_events(session, mixed_batch(41, 60))
    end_session(session, status="ok", now=T0 + timedelta(hours=1))
    final = fetch_evidence(alice_client, session.id, tmp_path / "final")
    m = json.loads(mid.report.read_bytes())["report"]["audit_integrity"]["tree_size"]
    n = json.loads(final.report.read_bytes())["report"]["audit_integrity"]["tree_size"]
    assert (m, n) == (41, 102)
    proof_file = tmp_path / "consistency.json"
    proof_file.write_bytes(download(alice_client, f"/api/v1/sessions/{session.id}/consistency?first={m}&second={n}"))
    code, out = run_verifier(
        "proof", proof_file, "--report", mid.report, "--report", final.report, "--keys", final.keys
    )
    assert code == 0, out
    assert "consistency: the tree of 41 events" in out
    assert out.count("signature: Ed25519") == 2
    # The mid-call report still verifies against the final, longer export.
    code, out = run_verifier("report", mid.report, "--events", final.events, "--keys", final.keys)
    assert code == 0, out
    # A report the proof does not cover fails the anchoring.
    other_proof = tmp_path / "other.json"
    other_proof.write_bytes(download(alice_client, f"/api/v1/sessions/{session.id}/consistency?first=40&second={n}"))
    code, out = run_verifier("proof", other_proof, "--report", mid.report)
    assert code == 1
    assert "tree_size 41 / merkle_root_hex" in out and "not what the proof proves" in out


def test_inclusion_proof_ties_an_event_line_to_a_signed_report(alice_client, big_session, tmp_path):
    evidence = fetch_evidence(alice_client, big_session.id, tmp_path / "e")
    line = read_lines(evidence.events)[123]
    event_file = tmp_path / "event.json"
    event_file.write_bytes(line)
    proof_file = tmp_path / "proof.json"
    proof_file.write_bytes(download(alice_client, f"/api/v1/sessions/{big_session.id}/events/123/proof"))
    code, out = run_verifier(
        "proof", proof_file, "--report", evidence.report, "--keys", evidence.keys, "--event", event_file
    )
    assert code == 0, out
    assert "hashes to the proof's leaf (seq 123)" in out
    event_file.write_bytes(read_lines(evidence.events)[124])
    code, out = run_verifier("proof", proof_file, "--event", event_file)
    assert code == 1
    assert "its hash is not the proof's leaf_hash_hex" in out
