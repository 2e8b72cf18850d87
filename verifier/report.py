"""Checking a session report against its event export, its signature and the seal it carries."""

from __future__ import annotations

import json
from typing import IO, Any

from verifier.events import REQUIRED_FIGURES, EventsWalk, policy_sha256
from verifier.inputs import MISSING, at, close_binary, hash_of, open_binary, same
from verifier.outcome import Outcome
from verifier.signatures import Keys, check_signature, load_keys

SCHEMA_V1 = "masker.audit.v1"
SEAL_SIGNED_FIELDS = ("tree_size", "merkle_root_hex", "chain_head_hex", "sealed_at")


def compare(outcome: Outcome, report: dict[str, Any], path: str, computed: Any, *, required: bool) -> bool:
    """Compare one report figure with its recomputed value; report and return whether it matches."""
    stated = at(report, path)
    if stated is MISSING:
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
            if not same(says, gives):
                outcome.fail(f"report.{path}.{key}: report says {json.dumps(says)}, events give {json.dumps(gives)}")
                good = False
        return good
    if not same(stated, computed):
        outcome.fail(f"report.{path}: report says {json.dumps(stated)}, events give {json.dumps(computed)}")
        return False
    return True


def verify_report(outcome: Outcome, report: dict[str, Any], events: IO[bytes], keys: Keys | None) -> None:
    """Check a report object against the NDJSON events, its seal and, with keys, its signatures. Problems go to
    ``outcome``."""
    if report.get("schema") != SCHEMA_V1:
        outcome.fail(f"report.schema: {json.dumps(report.get('schema'))}, this verifier checks {SCHEMA_V1}")
    session_id = report.get("session_id")
    if not isinstance(session_id, str):
        outcome.fail("report.session_id: missing")
        session_id = None
    tree_size = at(report, "audit_integrity.tree_size")
    if type(tree_size) is not int or tree_size < 0:
        outcome.fail("report.audit_integrity.tree_size: missing or not a non-negative integer")
        tree_size = None
    agent_id = at(report, "cover.agent.id")
    snapshot = report.get("policy_snapshot")
    if not isinstance(snapshot, str):
        outcome.fail("report.policy_snapshot: missing or not the policy's text")
    seal = at(report, "audit_integrity.seal")
    sealed = isinstance(seal, dict) and seal.get("status") == "sealed"

    start = outcome.problems
    walk = EventsWalk(
        outcome,
        session_id=session_id,
        limit=tree_size,
        agent_id=agent_id if isinstance(agent_id, str) else None,
        policy_sha256=policy_sha256(snapshot) if isinstance(snapshot, str) else None,
    )
    walk.feed_file(events)
    if walk.crlf:
        return
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
            f"(the call continued after the report); the report was checked against the first {tree_size}, every "
            "line was checked"
        )
    if outcome.problems == start:
        outcome.ok(
            f"events: {walk.lines} line(s) re-hashed, seq 0..{walk.lines - 1} gapless, every prev_hash links, "
            "every event a valid v1 event of this session, starting with session.started"
        )
    start = outcome.problems
    if tree_size is not None and size != tree_size:
        outcome.fail(
            f"report.audit_integrity.tree_size: report says {tree_size}, events give {size} "
            "(lines are missing: was the file truncated?)"
        )
    compare(outcome, report, "merkle_root_hex", root.hex(), required=True)
    compare(outcome, report, "audit_integrity.chain_head_hex", head, required=True)
    compare(outcome, report, "audit_integrity.first_seq", 0 if size else None, required=False)
    compare(outcome, report, "audit_integrity.last_seq", size - 1 if size else None, required=False)
    if outcome.problems == start:
        outcome.ok(f"merkle_root_hex {root.hex()}: matches the report (tree_size {size}, chain head {head[:16]}…)")
    check_seal(outcome, report, keys, walked=(size, root.hex(), head), ended_seq=walk.ended_seq)
    start = outcome.problems
    figures = walk.tally.figures()
    for path, computed in figures.items():
        compare(outcome, report, path, computed, required=path in REQUIRED_FIGURES)
    if outcome.problems == start:
        outcome.ok(f"figures: {len(figures)} report figures (counts, by kind/pass/action, alerts) agree with the log")
    check_signature(outcome, report, keys, "report.")


def check_seal(
    outcome: Outcome,
    report: dict[str, Any],
    keys: Keys | None,
    *,
    walked: tuple[int, str, str] | None,
    ended_seq: int | None,
) -> None:
    """The report's ``audit_integrity.seal``. Sealed: its signature (over ``session_id`` and the signed fields)
    verifies under a published key, its size, root and head are the report's and the walked log's
    (``walked`` = (size, root hex, head hex)), and the log ends with ``session.ended`` at ``tree_size - 1``.
    Open: the events the report covers hold no ``session.ended`` (a later export of the same call may)."""
    label = "report.audit_integrity.seal"
    seal = at(report, "audit_integrity.seal")
    if not isinstance(seal, dict):
        outcome.fail(f"{label}: missing or not an object")
        return
    status = seal.get("status")
    if status == "open":
        covered = at(report, "audit_integrity.tree_size")
        if ended_seq is not None and type(covered) is int and ended_seq < covered:
            outcome.fail(f"{label}.status: the report says open, but the log ends with session.ended (seq {ended_seq})")
        else:
            outcome.ok(f"{label}: the session is open (not sealed); the report covers the events logged so far")
        return
    if status != "sealed":
        outcome.fail(f'{label}.status: must be "sealed" or "open"')
        return
    start = outcome.problems
    signed = {"session_id": report.get("session_id")}
    for name in SEAL_SIGNED_FIELDS:
        if name not in seal:
            outcome.fail(f"{label}.{name}: missing (a sealed report carries the whole signed seal)")
        signed[name] = seal.get(name)
    if not isinstance(seal.get("signature"), dict):
        outcome.fail(f"{label}.signature: missing (a sealed report carries the seal's signature)")
        return
    signed["signature"] = seal["signature"]
    if seal.get("signature_kid", seal["signature"].get("kid")) != seal["signature"].get("kid"):
        outcome.fail(f"{label}.signature_kid: is not the kid of the seal's signature")
    check_signature(outcome, signed, keys, f"{label}.")
    tree_size, root, head = seal.get("tree_size"), seal.get("merkle_root_hex"), seal.get("chain_head_hex")
    if type(tree_size) is not int or hash_of(root) is None or hash_of(head) is None:
        outcome.fail(f"{label}: tree_size, merkle_root_hex or chain_head_hex is malformed")
        return
    for name, value, path in (
        ("tree_size", tree_size, "audit_integrity.tree_size"),
        ("merkle_root_hex", root, "merkle_root_hex"),
        ("chain_head_hex", head, "audit_integrity.chain_head_hex"),
    ):
        if not same(at(report, path), value):
            outcome.fail(f"{label}.{name}: the seal signs another value than the report's {path}")
    if walked is not None:
        names = ("tree_size", "merkle_root_hex", "chain_head_hex")
        for name, value, found in zip(names, (tree_size, root, head), walked, strict=True):
            if not same(found, value):
                outcome.fail(f"{label}.{name}: the seal signs another value than the walked log gives")
        if ended_seq is None or ended_seq != tree_size - 1:
            where = "holds no session.ended" if ended_seq is None else f"has session.ended at seq {ended_seq}"
            outcome.fail(
                f"{label}: a sealed log ends with session.ended at seq {tree_size - 1} (tree_size - 1); this log "
                f"{where}"
            )
    if outcome.problems == start:
        outcome.ok(
            f"{label}: sealed at tree_size {tree_size}; the seal's size, root and head are the report's"
            + (" and the log's, which ends with session.ended" if walked is not None else "")
        )


def check_report_files(outcome: Outcome, report: dict[str, Any], *, events: str, keys: str | None) -> int:
    """``verify_report`` with the events and keys read from files (``events`` ``-``: standard input); prints the
    verdict and returns the exit status."""
    loaded = load_keys(keys) if keys else None
    stream = open_binary(events, "events file")
    try:
        verify_report(outcome, report, stream, loaded)
    finally:
        close_binary(stream)
    return outcome.finish(f"report {report.get('id')} of session {report.get('session_id')}")
