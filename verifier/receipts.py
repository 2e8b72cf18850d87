"""Checking signed receipts (signed tree heads) against an event export.

Every start, append and end answers with a receipt ``{session_id, tree_size, merkle_root_hex, chain_head_hex,
issued_at, signature}``: the service's signed word that the session's log had that size, root and head. Whoever
kept receipts can later check that the log still extends each of them: its first ``tree_size`` events must have
that root and that head. A log rewritten after a receipt was issued fails here, naming the receipt.
"""

from __future__ import annotations

import json
from typing import IO, Any

from verifier.events import EventsWalk
from verifier.inputs import hash_of, loads, same
from verifier.outcome import Outcome
from verifier.signatures import Keys, describe_key, signature_problem

RECEIPT_FIELDS = ("session_id", "tree_size", "merkle_root_hex", "chain_head_hex", "issued_at", "signature")


def read_receipts(outcome: Outcome, stream: IO[bytes]) -> list[tuple[int, dict[str, Any]]]:
    """(line number, receipt) for each well-formed line; a malformed line is a failure naming it."""
    receipts = []
    for number, raw in enumerate(stream, start=1):
        if not raw.strip():
            continue
        try:
            receipt = loads(raw)
        except (ValueError, UnicodeDecodeError):
            outcome.fail(f"receipt line {number}: not valid JSON")
            continue
        if not isinstance(receipt, dict):
            outcome.fail(f"receipt line {number}: not a JSON object")
            continue
        missing = [name for name in RECEIPT_FIELDS if name not in receipt]
        extra = sorted(set(receipt) - set(RECEIPT_FIELDS))
        size = receipt.get("tree_size")
        if missing or extra:
            what = f"missing {', '.join(missing)}" if missing else f"{len(extra)} unknown field(s)"
            outcome.fail(f"receipt line {number}: not a receipt ({what})")
        elif type(size) is not int or size < 0:
            outcome.fail(f"receipt line {number}: tree_size is not a non-negative integer")
        elif hash_of(receipt.get("merkle_root_hex")) is None or hash_of(receipt.get("chain_head_hex")) is None:
            outcome.fail(f"receipt line {number}: merkle_root_hex or chain_head_hex is not 64 lowercase hex digits")
        else:
            receipts.append((number, receipt))
    return receipts


def verify_receipts(outcome: Outcome, receipts_stream: IO[bytes], events: IO[bytes], keys: Keys) -> None:
    """Each receipt: signed by a published key, of the events' session, and extended by the events (their prefix
    of ``tree_size`` events has the receipt's root and head). One line per receipt; the events are walked once,
    with every check of an events walk."""
    receipts = read_receipts(outcome, receipts_stream)
    if not receipts and not outcome.problems:
        outcome.fail("receipts: the file holds no receipt")
    sessions = {receipt["session_id"] for _, receipt in receipts}
    session_id = next(iter(sessions)) if len(sessions) == 1 else None
    start = outcome.problems
    walk = EventsWalk(outcome, session_id=session_id, checkpoints={r["tree_size"] for _, r in receipts})
    walk.feed_file(events)
    if walk.crlf:
        return
    if outcome.problems == start:
        outcome.ok(f"events: {walk.lines} line(s) re-hashed, gapless, every prev_hash links, every event valid")
    for number, receipt in receipts:
        size = receipt["tree_size"]
        label = f"receipt line {number} (tree_size {size}, issued_at {json.dumps(receipt['issued_at'])})"
        problem, jwk = signature_problem(receipt, keys)
        if problem is not None:
            outcome.fail(f"{label}: {problem}")
            continue
        if receipt["session_id"] != walk.session_id:
            outcome.fail(f"{label}: names another session than the events")
            continue
        if size not in walk.prefixes:
            outcome.fail(
                f"{label}: the events file holds only {walk.lines} event(s): the log is shorter than "
                "the receipt says it was"
            )
            continue
        root, head = walk.prefixes[size]
        if not same(root.hex(), receipt["merkle_root_hex"]) or not same(head, receipt["chain_head_hex"]):
            outcome.fail(
                f"{label}: the first {size} events have another root or head than the receipt signs: the log was "
                "rewritten after this receipt was issued"
            )
            continue
        outcome.ok(f"{label}: signed by {describe_key(jwk or {})}; the events extend it (same root and head)")
