"""Checking the inclusion and consistency proofs the service serves (``GET .../events/{seq}/proof`` and
``GET .../consistency``), optionally tied to signed reports and to the proven event's line."""

from __future__ import annotations

import argparse
from typing import Any

from verifier.inputs import at, hash_of, loads, read_json_file, report_object
from verifier.merkle import leaf_hash, verify_consistency, verify_inclusion
from verifier.outcome import CannotVerify, Outcome
from verifier.signatures import check_signature, load_keys


def _check_proof_fields(
    outcome: Outcome, proof: dict[str, Any], ints: tuple[str, ...], hashes: tuple[str, ...], path_field: str
) -> dict[str, Any] | None:
    values: dict[str, Any] = {}
    for name in ints:
        value = proof.get(name)
        if type(value) is not int or value < 0:
            outcome.fail(f"proof.{name}: missing or not a non-negative integer")
            return None
        values[name] = value
    for name in hashes:
        value = hash_of(proof.get(name))
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
        node = hash_of(item)
        if node is None:
            outcome.fail(f"proof.{path_field}[{index}]: not 64 lowercase hex digits")
            return None
        nodes.append(node)
    values[path_field] = nodes
    return values


def _anchor_reports(outcome: Outcome, proof: dict[str, Any], pairs: list[tuple[int, bytes]], args) -> None:
    """Each ``--report`` must be of the proof's session and state one of the proof's (tree size, root) pairs."""
    keys = load_keys(args.keys) if args.keys else None
    for path in args.report or ():
        report = report_object(read_json_file(path, "report"), path)
        label = f"report {report.get('id')}: "
        if report.get("session_id") != proof.get("session_id"):
            outcome.fail(f"{label}session_id: the report is of another session than the proof")
            continue
        size = at(report, "audit_integrity.tree_size")
        root = hash_of(report.get("merkle_root_hex"))
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


def run_proof(args: argparse.Namespace, outcome: Outcome) -> int:

    proof = read_json_file(args.proof, "proof")
    if not isinstance(proof, dict) or proof.get("type") not in ("inclusion", "consistency"):
        outcome.fail('proof.type: must be "inclusion" or "consistency"')
        return outcome.finish(f"proof {args.proof}")
    if not isinstance(proof.get("session_id"), str):
        outcome.fail("proof.session_id: missing")
    if proof["type"] == "inclusion":
        v = _check_proof_fields(
            outcome, proof, ("seq", "leaf_index", "tree_size"), ("leaf_hash_hex", "root_hex"), "path_hex"
        )
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
        v = _check_proof_fields(outcome, proof, ("first", "second"), ("first_root_hex", "second_root_hex"), "proof_hex")
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
    event = loads(line)
    if event.get("seq") != proof.get("seq") or event.get("session_id") != proof.get("session_id"):
        outcome.fail(f"event {path}: names another seq or session than the proof")
        return
    outcome.ok(f"event {path}: hashes to the proof's leaf (seq {event.get('seq')})")
