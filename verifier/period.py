"""Checking a period report (scope ``agent`` or ``account``): its signature, its period root recomputed from its
``sessions``, and -- given a folder of the sessions' event exports (``masker-events-<session>.ndjson``, as
``GET /api/v1/sessions/{id}/events`` names them) -- every session's root and the figures summed over them.

The period leaf is defined here and nowhere else: the server imports ``period_leaf_hash`` (``reports.period``), so
the roots it signs and the ones an auditor recomputes come from the same code.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO, Any

from verifier.canonical import canonical_bytes
from verifier.events import ALERT_TYPES, EventsWalk
from verifier.inputs import at, hash_of
from verifier.merkle import MerkleAccumulator, leaf_hash
from verifier.outcome import CannotVerify, Outcome
from verifier.report import SCHEMA_V1, compare
from verifier.signatures import Keys, check_signature

PERIOD_SCOPES = ("agent", "account")


# Strings that RFC 8785 writes as they are, between quotes (no escapes): ids and hex digests.
_VERBATIM = re.compile(r"[0-9A-Za-z_-]*\Z")


def period_leaf_bytes(session_id: str, tree_size: int, merkle_root_hex: str | None) -> bytes:
    """RFC 8785 bytes of ``{"merkle_root_hex", "session_id", "tree_size"}``: the period root's leaf data. Ids, hex
    roots and sizes below 2^53 are written straight into the one shape (a period report has a leaf per session);
    anything else goes through ``canonical_bytes``."""
    if (
        type(session_id) is str
        and _VERBATIM.match(session_id)
        and type(tree_size) is int
        and 0 <= tree_size < 2**53
        and (merkle_root_hex is None or (type(merkle_root_hex) is str and _VERBATIM.match(merkle_root_hex)))
    ):
        root = "null" if merkle_root_hex is None else f'"{merkle_root_hex}"'
        return f'{{"merkle_root_hex":{root},"session_id":"{session_id}","tree_size":{tree_size}}}'.encode("ascii")
    return canonical_bytes({"merkle_root_hex": merkle_root_hex, "session_id": session_id, "tree_size": tree_size})


def period_leaf_hash(session_id: str, tree_size: int, merkle_root_hex: str | None) -> bytes:
    return leaf_hash(period_leaf_bytes(session_id, tree_size, merkle_root_hex))


def period_root(sessions: Iterable[tuple[str, int, str | None]]) -> bytes:
    """The RFC 9162 root over the sessions' leaves, in the given order (SHA-256("") when there are none)."""
    accumulator = MerkleAccumulator()
    for session_id, tree_size, root in sessions:
        accumulator.append(period_leaf_hash(session_id, tree_size, root))
    return accumulator.root()


# Figures summed over the verified sessions: report path -> the figure of one session's walk (``reports.tally.Tally``).
SUMMED = (
    "summary.total_events",
    "summary.total_redactions",
    "summary.redactions_by_action",
    "redactions_by_kind",
    "redactions_by_pass",
    "pci_dss.detections",
    "pci_dss.luhn_valid",
    "pci_dss.masked_before_egress",
    "pci_dss.alert_count",
    "leak_detection.rehydrations",
    "leak_detection.rehydration_failure_count",
    "leak_detection.residual_leak_count",
    "leak_detection.detection_degraded_count",
    "baa_chain.egress_count",
    "baa_chain.alert_count",
    "retention_attestation.payloads_persisted",
    "retention_attestation.payloads_by_what",
)


def _add(total: Any, value: Any) -> Any:
    if isinstance(value, dict):
        total = dict(total or {})
        for key, count in value.items():
            total[key] = total.get(key, 0) + count
        return total
    return (total or 0) + value


def _entries(outcome: Outcome, report: dict[str, Any]) -> list[tuple[str, int, str | None, dict[str, Any]]]:
    sessions = report.get("sessions")
    if not isinstance(sessions, list):
        outcome.fail("report.sessions: missing or not a list")
        return []
    entries = []
    for index, entry in enumerate(sessions):
        where = f"report.sessions[{index}]"
        if not isinstance(entry, dict):
            outcome.fail(f"{where}: not an object")
            continue
        session_id, size, root = entry.get("session_id"), entry.get("tree_size"), entry.get("merkle_root_hex")
        if not isinstance(session_id, str) or type(size) is not int or size < 0:
            outcome.fail(f"{where}: session_id or tree_size missing or malformed")
            continue
        if root is not None and hash_of(root) is None:
            outcome.fail(f"{where}.merkle_root_hex: not 64 lowercase hex digits")
        entries.append((session_id, size, root, entry))
    ids = [e[0] for e in entries]
    if ids != sorted(ids) or len(set(ids)) != len(ids):
        outcome.fail("report.sessions: not in session-id order, or a session is listed twice")
    return entries


@dataclass(frozen=True)
class Exports:
    """Where the sessions' exports are: a folder (``exports_in_folder``) or a bundle's ``events/``
    (``verifier.bundle``). ``where`` names the place in messages; ``names`` are the exports present; ``name_of``
    gives a session's export name; ``open`` opens one by name for reading bytes (the caller closes it)."""

    where: str
    names: frozenset[str]
    name_of: Callable[[str], str]
    open: Callable[[str], IO[bytes]]


def folder_export_name(session_id: str) -> str:
    """How ``GET /api/v1/sessions/{id}/events`` names a session's export."""
    return f"masker-events-{session_id}.ndjson"


def exports_in_folder(events_dir: str) -> Exports:
    """The ``*.ndjson`` exports in a folder, named as downloaded; ``CannotVerify`` if it cannot be read."""
    try:
        present = frozenset(name for name in os.listdir(events_dir) if name.endswith(".ndjson"))
    except OSError as exc:
        raise CannotVerify(f"cannot read the events folder {events_dir}: {exc.strerror}") from None
    return Exports(
        where=events_dir,
        names=present,
        name_of=folder_export_name,
        open=lambda name: open(os.path.join(events_dir, name), "rb"),
    )


def verify_period_report(outcome: Outcome, report: dict[str, Any], exports: Exports | None, keys: Keys | None) -> None:
    """Check a period report: schema and scope, the period root from ``sessions``, and with ``exports`` each
    session's export (root, size, chain) and the figures summed over them. Problems go to ``outcome``."""
    if report.get("schema") != SCHEMA_V1:
        outcome.fail(f"report.schema: {json.dumps(report.get('schema'))}, this verifier checks {SCHEMA_V1}")
    if report.get("scope") not in PERIOD_SCOPES:
        outcome.fail(f"report.scope: {json.dumps(report.get('scope'))} is not a period scope (agent, account)")
    entries = _entries(outcome, report)
    start = outcome.problems
    root = period_root((session_id, size, root) for session_id, size, root, _ in entries)
    compare(outcome, report, "merkle_root_hex", root.hex(), required=True)
    compare(outcome, report, "summary.total_sessions", len(entries), required=True)
    if outcome.problems == start:
        outcome.ok(f"merkle_root_hex {root.hex()}: the period root of the {len(entries)} listed session(s)")
    if exports is not None:
        _verify_exports(outcome, report, entries, exports)
    check_signature(outcome, report, keys, "report.")


def _verify_exports(outcome: Outcome, report: dict[str, Any], entries: list, exports: Exports) -> None:
    present = exports.names
    start = outcome.problems
    totals: dict[str, Any] = {}
    alerts = dict.fromkeys((*ALERT_TYPES, "integrity_broken"), 0)
    listed = set()
    for session_id, size, root, entry in entries:
        name = exports.name_of(session_id)
        listed.add(name)
        if entry.get("integrity") == "broken" or root is None:
            alerts["integrity_broken"] += 1
            outcome.info(f"session {session_id}: listed as broken (seq {entry.get('broken_seq')}); not recomputed")
            continue
        if name not in present:
            outcome.fail(f"session {session_id}: no export {name} in {exports.where}")
            continue
        walk = EventsWalk(Outcome(io.StringIO()), session_id=session_id, limit=size)  # its own lines unprinted
        with exports.open(name) as handle:
            walk.feed_file(handle)
        covered_size, covered_root, _ = walk.covered()
        if walk.outcome.problems or covered_size != size:
            outcome.fail(f"session {session_id}: its export does not verify ({walk.outcome.problems} problem(s))")
            continue
        if covered_root.hex() != root:
            outcome.fail(
                f"report.sessions[{session_id}].merkle_root_hex: report says {root}, events give {covered_root.hex()}"
            )
        figures = walk.tally.figures()
        if entry.get("alerts") != figures["summary.alert_count"]:
            outcome.fail(
                f"report.sessions[{session_id}].alerts: report says {entry.get('alerts')}, "
                f"events give {figures['summary.alert_count']}"
            )
        for path in SUMMED:
            totals[path] = _add(totals.get(path), figures[path])
        for kind, count in figures["summary.alerts_by_type"].items():
            alerts[kind] += count
    for name in sorted(present - listed):
        outcome.fail(f"{name}: an export in {exports.where} of a session the report does not list")
    if outcome.problems == start:
        outcome.ok("sessions: every listed session's export re-hashed; its root and size match the report")
    start = outcome.problems
    for path in SUMMED:
        empty: Any = {} if isinstance(at(report, path), dict) else 0
        compare(outcome, report, path, totals.get(path, empty), required=True)
    compare(outcome, report, "summary.alerts_by_type", alerts, required=True)
    compare(outcome, report, "summary.alert_count", sum(alerts.values()), required=True)
    if outcome.problems == start:
        outcome.ok(f"figures: {len(SUMMED) + 2} summed report figures agree with the sessions' events")
