"""Evidence bundles: one zip holding a period report and everything needed to check it offline, and the check
(``python3 masker-verify.pyz bundle evidence.zip [--keys keys.json]``).

A bundle holds ``report.json`` (and ``report.pdf``), ``sessions.ndjson`` (the report's ``sessions``, one RFC 8785
line each), ``events/<session_id>.ndjson`` (each listed session's export, up to the report's ``tree_size``),
``keys.json`` (the JWKS of ``GET /api/v1/keys``), ``masker-verify.pyz``, ``README.txt``, and ``MANIFEST.json``:
every other file's name, size and SHA-256 and the report's identity, signed like a report (Ed25519 over the RFC
8785 bytes of the manifest without ``signature``).

The names, the manifest's shape and the ``sessions.ndjson`` line are defined here and nowhere else: the server
(``reports.bundle``) imports them, so what it writes and what an auditor checks come from the same code.

Keys: without ``--keys`` the signatures are checked against the bundle's own ``keys.json``. That proves the bundle
is whole and self-consistent, not who signed it: anyone can put their own key beside their own signature. The
verifier says which keys it used; pin the keys your organisation received from Masker with ``--keys``.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections import Counter
from typing import Any

from verifier.canonical import canonical_bytes
from verifier.inputs import MISSING, at, hash_of, loads, report_object
from verifier.outcome import CannotVerify, Outcome
from verifier.pdfread import PdfDocument, PdfError
from verifier.period import Exports, verify_period_report
from verifier.signatures import Keys, check_signature, keys_of, load_keys

BUNDLE_SCHEMA = "masker.bundle.v1"
MANIFEST = "MANIFEST.json"
REPORT_JSON = "report.json"
REPORT_PDF = "report.pdf"
SESSIONS = "sessions.ndjson"
KEYS = "keys.json"
VERIFIER = "masker-verify.pyz"
README = "README.txt"
EVENTS_DIR = "events/"
REQUIRED = (REPORT_JSON, SESSIONS, KEYS, VERIFIER, README)
READ_BLOCK = 1024 * 1024


def export_name(session_id: str) -> str:
    """A session's export inside a bundle."""
    return f"{EVENTS_DIR}{session_id}.ndjson"


def session_line(entry: dict[str, Any]) -> bytes:
    """One line of ``sessions.ndjson``: the RFC 8785 bytes of a report's ``sessions`` entry and a newline."""
    return canonical_bytes(entry) + b"\n"


def manifest_report(report: dict[str, Any]) -> dict[str, Any]:
    """The report's identity as the manifest names it: id, scope, account, agent, window, time, period root."""
    agent = at(report, "cover.agent")
    return {
        "id": report.get("id"),
        "scope": report.get("scope"),
        "account_id": at(report, "cover.account.id"),
        "agent_id": agent.get("id") if isinstance(agent, dict) else None,
        "time_window": at(report, "cover.time_window"),
        "generated_at": report.get("generated_at"),
        "merkle_root_hex": report.get("merkle_root_hex"),
    }


def manifest_body(report: dict[str, Any], files: list[dict[str, Any]]) -> dict[str, Any]:
    """The unsigned manifest: ``files`` are ``{"name", "size", "sha256"}`` in the bundle's order."""
    return {"schema": BUNDLE_SCHEMA, "report": manifest_report(report), "files": files}


# --- the check ------------------------------------------------------------------------------------------------------


def _read(archive: zipfile.ZipFile, name: str) -> bytes:
    with archive.open(name) as handle:
        return handle.read()


def _digest(archive: zipfile.ZipFile, name: str) -> tuple[int, str]:
    """(size, SHA-256 hex) of a member, read in blocks: an events export may be gigabytes."""
    sha = hashlib.sha256()
    size = 0
    with archive.open(name) as handle:
        while block := handle.read(READ_BLOCK):
            sha.update(block)
            size += len(block)
    return size, sha.hexdigest()


def _json_member(outcome: Outcome, archive: zipfile.ZipFile, name: str, present: set[str]) -> Any:
    if name not in present:
        return MISSING
    try:
        return loads(_read(archive, name))
    except (ValueError, UnicodeDecodeError) as exc:
        outcome.fail(f"{name}: not valid JSON ({exc})")
    except (zipfile.BadZipFile, OSError) as exc:
        outcome.fail(f"{name}: cannot be read from the zip ({exc})")
    return MISSING


def _listed_files(outcome: Outcome, manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    files = manifest.get("files")
    if not isinstance(files, list):
        outcome.fail(f"{MANIFEST}.files: missing or not a list")
        return {}
    listed: dict[str, dict[str, Any]] = {}
    for index, entry in enumerate(files):
        where = f"{MANIFEST}.files[{index}]"
        if not isinstance(entry, dict):
            outcome.fail(f"{where}: not an object")
            continue
        name, size = entry.get("name"), entry.get("size")
        if not isinstance(name, str) or name == MANIFEST:
            outcome.fail(f"{where}.name: missing, or names the manifest itself")
            continue
        if type(size) is not int or size < 0 or hash_of(entry.get("sha256")) is None:
            outcome.fail(f"{where} ({name}): size or sha256 missing or malformed")
        if name in listed:
            outcome.fail(f"{where}: {name} is listed twice")
        listed[name] = entry
    return listed


def _check_files(outcome: Outcome, archive: zipfile.ZipFile, manifest: dict[str, Any]) -> set[str]:
    """Every listed file present with its size and SHA-256, nothing unlisted, each name once. Returns the names
    present (the manifest aside)."""
    listed = _listed_files(outcome, manifest)
    start = outcome.problems
    counts = Counter(info.filename for info in archive.infolist())
    for name, count in sorted(counts.items()):
        if count > 1:
            outcome.fail(f"{name}: the zip holds {count} entries of that name (a reader would see only one)")
    present = set(counts) - {MANIFEST}
    for name in sorted(present - set(listed)):
        outcome.fail(f"{name}: in the bundle but not listed in {MANIFEST} (an added file)")
    for name in sorted(set(listed) - present):
        outcome.fail(f"{name}: listed in {MANIFEST} but missing from the bundle (a removed file)")
    for name in REQUIRED:
        if name not in listed:
            outcome.fail(f"{name}: every bundle holds one; {MANIFEST} does not list it")
    for name in sorted(present & set(listed)):
        entry = listed[name]
        try:
            size, sha256 = _digest(archive, name)
        except (zipfile.BadZipFile, OSError) as exc:  # a damaged entry: its CRC or its compressed data
            outcome.fail(f"{name}: cannot be read from the zip ({exc})")
            continue
        if size != entry.get("size") or sha256 != entry.get("sha256"):
            outcome.fail(
                f"{name}: SHA-256 {sha256} ({size} bytes), {MANIFEST} lists {entry.get('sha256')} "
                f"({entry.get('size')} bytes): the file was changed after the bundle was signed"
            )
    if outcome.problems == start:
        outcome.ok(
            f"files: the {len(listed)} file(s) {MANIFEST} lists are present, each with its size and SHA-256; "
            "no other file"
        )
    return present


def _keys(outcome: Outcome, archive: zipfile.ZipFile, present: set[str], pinned: str | None) -> Keys | None:
    """The keys the signatures are checked against (``--keys``, else the bundle's ``keys.json``), said aloud."""
    document = _json_member(outcome, archive, KEYS, present)
    own: Keys | None = None
    if document is not MISSING:
        try:
            own = keys_of(document, f"the bundle's {KEYS}")
        except CannotVerify as exc:
            outcome.fail(str(exc))
    if pinned is not None:
        keys = load_keys(pinned)
        outcome.info(f"keys: checking signatures against --keys {pinned}: {_kids(keys)}")
        unknown = sorted({str(k.get("kid")) for k in own or ()} - {str(k.get("kid")) for k in keys})
        if unknown:
            outcome.info(f"keys: the bundle's {KEYS} also lists {', '.join(unknown)}, not in --keys (not trusted)")
        return keys
    if own is not None:
        outcome.warn(
            f"keys: checking signatures against the bundle's own {KEYS} ({_kids(own)}): this shows the bundle is "
            "whole and self-consistent, not who signed it; compare these kids with the keys your organisation "
            f"received from Masker, or pass them with --keys"
        )
    return own


def _kids(keys: Keys) -> str:
    return ", ".join(f"{k.get('kid')} ({k.get('status') or 'status not given'})" for k in keys) or "no keys"


def _check_identity(outcome: Outcome, manifest: dict[str, Any], report: dict[str, Any]) -> None:
    stated = manifest.get("report")
    expected = manifest_report(report)
    if not isinstance(stated, dict):
        outcome.fail(f"{MANIFEST}.report: missing or not an object")
        return
    start = outcome.problems
    for key in sorted(set(stated) | set(expected)):
        says, gives = stated.get(key), expected.get(key)
        if canonical_bytes(says) != canonical_bytes(gives):
            outcome.fail(
                f"{MANIFEST}.report.{key}: manifest says {json.dumps(says)}, {REPORT_JSON} says {json.dumps(gives)}"
            )
    if outcome.problems == start:
        outcome.ok(
            f"{MANIFEST}: names report {expected['id']} ({expected['scope']}, period root "
            f"{expected['merkle_root_hex']})"
        )


def _check_sessions_file(outcome: Outcome, archive: zipfile.ZipFile, report: dict[str, Any]) -> None:
    """``sessions.ndjson`` holds the report's ``sessions``, one line each, in order."""
    sessions = report.get("sessions")
    if not isinstance(sessions, list):
        return  # the period check names it
    start = outcome.problems
    count = 0
    with archive.open(SESSIONS) as handle:
        for count, line in enumerate(handle, start=1):
            if count > len(sessions):
                continue  # counted, and named below
            entry = sessions[count - 1]
            try:
                same = isinstance(entry, dict) and session_line(loads(line)) == session_line(entry)
            except (ValueError, UnicodeDecodeError):
                same = False
            if not same:
                outcome.fail(f"{SESSIONS} line {count}: is not report.sessions[{count - 1}]")
    if count != len(sessions):
        outcome.fail(f"{SESSIONS}: {count} line(s), the report lists {len(sessions)} session(s)")
    if outcome.problems == start:
        outcome.ok(f"{SESSIONS}: the report's {len(sessions)} session(s), one line each")


def _check_pdf(outcome: Outcome, archive: zipfile.ZipFile, report: dict[str, Any]) -> None:
    """``report.pdf`` attaches this same report (its pages render it; the JSON is what is checked)."""
    try:
        files = PdfDocument(_read(archive, REPORT_PDF)).embedded_files()
    except (PdfError, ValueError, TypeError, AttributeError, RecursionError, zipfile.BadZipFile, OSError) as exc:
        outcome.fail(f"{REPORT_PDF}: not a PDF this verifier can read ({exc})")
        return
    attached = [data for name, data in files if name.lower().endswith(".json")]
    try:
        objects = [report_object(loads(data), REPORT_PDF) for data in attached]
    except (ValueError, UnicodeDecodeError, CannotVerify):
        objects = []
    if len(objects) != 1 or canonical_bytes(objects[0]) != canonical_bytes(report):
        outcome.fail(f"{REPORT_PDF}: does not attach {REPORT_JSON}'s report (the PDF renders another report)")
    else:
        outcome.ok(f"{REPORT_PDF}: attaches {REPORT_JSON}'s report")


def verify_bundle(outcome: Outcome, path: str, pinned_keys: str | None) -> str:
    """Check the evidence bundle at ``path`` into ``outcome``; returns the verdict's subject."""
    try:
        archive = zipfile.ZipFile(path)
    except OSError as exc:
        raise CannotVerify(f"cannot read bundle {path}: {exc.strerror or exc}") from None
    except zipfile.BadZipFile:
        raise CannotVerify(f"{path} is not a zip file (an evidence bundle is one)") from None
    with archive:
        return _verify_archive(outcome, archive, path, pinned_keys)


def _verify_archive(outcome: Outcome, archive: zipfile.ZipFile, path: str, pinned_keys: str | None) -> str:
    subject = f"evidence bundle {path}"
    names = {info.filename for info in archive.infolist()}
    manifest = _json_member(outcome, archive, MANIFEST, names)
    if not isinstance(manifest, dict):
        outcome.fail(f"{MANIFEST}: missing or not an object: nothing in the bundle can be trusted without it")
        return subject
    if manifest.get("schema") != BUNDLE_SCHEMA:
        outcome.fail(f"{MANIFEST}.schema: {json.dumps(manifest.get('schema'))}, this verifier checks {BUNDLE_SCHEMA}")
    present = _check_files(outcome, archive, manifest)
    keys = _keys(outcome, archive, present, pinned_keys)
    check_signature(outcome, manifest, keys, f"{MANIFEST} ")
    document = _json_member(outcome, archive, REPORT_JSON, present)
    try:
        report = report_object(document, REPORT_JSON) if document is not MISSING else None
    except CannotVerify as exc:
        outcome.fail(str(exc))
        report = None
    if report is None:
        outcome.fail(f"{REPORT_JSON}: no report to check")
        return subject
    subject = f"evidence bundle {path}: {report.get('scope')} report {report.get('id')}"
    if pinned_keys is None and keys is not None:
        subject += f" (signatures checked against the bundle's own {KEYS}; pin trusted keys with --keys)"
    _check_identity(outcome, manifest, report)
    if SESSIONS in present:
        _check_sessions_file(outcome, archive, report)
    if REPORT_PDF in present:
        _check_pdf(outcome, archive, report)
    exports = Exports(
        where=f"the bundle's {EVENTS_DIR}",
        names=frozenset(name for name in present if name.startswith(EVENTS_DIR)),
        name_of=export_name,
        open=archive.open,
    )
    verify_period_report(outcome, report, exports, keys)
    return subject
