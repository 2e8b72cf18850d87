"""Evidence bundles: one zip an auditor takes away with a signed period report and everything needed to check it
offline with one command (``python3 masker-verify.pyz bundle evidence.zip``).

What a bundle holds, the manifest's shape and the ``sessions.ndjson`` line are defined by the verifier
(``verifier.bundle``), which checks them; this module writes them from the service's own parts: the events export
of ``GET /api/v1/sessions/{id}/events`` (``audit.export``), the JWKS of ``GET /api/v1/keys`` (``audit.signing``,
rendered as that view renders it), the verifier archive of ``GET /api/v1/verifier/masker-verify.pyz`` and the
report signature (``audit.signing.sign_object``) for ``MANIFEST.json``.

Memory: entries are written to the zip as they are produced (ZIP64 on), each session's export straight from the
database cursor, so a bundle of millions of events holds one export block and one small entry per file.
"""

import hashlib
import zipfile
from collections.abc import Iterable, Iterator
from datetime import UTC
from typing import Any, BinaryIO

import orjson
from rest_framework.renderers import JSONRenderer

from audit.export import iter_event_lines
from audit.models import Session
from audit.signing import jwks, sign_object
from audit.verifier_download import verifier_archive
from reports.period import PeriodReport
from verifier import PROG
from verifier.bundle import (
    KEYS,
    MANIFEST,
    README,
    REPORT_JSON,
    REPORT_PDF,
    SESSIONS,
    VERIFIER,
    export_name,
    manifest_body,
    session_line,
)

SESSION_BATCH = 500  # sessions fetched per query (only id and account), in the report's order


class _BundleWriter:
    """Writes zip entries, recording each one's name, size and SHA-256 for the manifest."""

    def __init__(self, archive: zipfile.ZipFile, date_time: tuple[int, int, int, int, int, int]):
        self.archive = archive
        self.date_time = date_time
        self.files: list[dict[str, Any]] = []

    def _info(self, name: str) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, date_time=self.date_time)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        return info

    def stream(self, name: str, blocks: Iterable[bytes]) -> None:
        """One entry written block by block as ``blocks`` yields them (ZIP64: an export may pass 4 GiB)."""
        sha = hashlib.sha256()
        size = 0
        with self.archive.open(self._info(name), "w", force_zip64=True) as entry:
            for block in blocks:
                entry.write(block)
                sha.update(block)
                size += len(block)
        self.files.append({"name": name, "size": size, "sha256": sha.hexdigest()})

    def add(self, name: str, data: bytes, *, listed: bool = True) -> None:
        """One entry of ``data``; ``listed=False`` for the manifest, which lists the others."""
        self.archive.writestr(self._info(name), data)
        if listed:
            self.files.append({"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})


def keys_document() -> bytes:
    """The body of ``GET /api/v1/keys``: the JWKS as that view's renderer writes it."""
    return JSONRenderer().render(jwks())


def _sessions(report: PeriodReport) -> Iterator[tuple[Session, int]]:
    """Each listed session (only the account's) with the tree size the report covers, in the report's order."""
    entries = report.sessions
    for offset in range(0, len(entries), SESSION_BATCH):
        batch = entries[offset : offset + SESSION_BATCH]
        rows = Session.objects.filter(account_id=report.account_id, id__in=[e["session_id"] for e in batch])
        found = {session.id: session for session in rows.only("id", "account_id")}
        for entry in batch:
            session = found.get(entry["session_id"])
            if session is None:
                raise ValueError("the report lists a session that is not its account's")
            yield session, entry["tree_size"]


def readme_text(report: PeriodReport) -> str:
    """``README.txt``: what the bundle holds and how to check it. Identifiers only, never an event's content."""
    window = report.window
    return f"""Masker evidence bundle
======================

Report {report.id} ({report.scope} scope), sessions started in [{window.from_text}, {window.to_text}):
{len(report.sessions)} session(s), {report.total_events} event(s), period root {report.merkle_root_hex}.

Check it (Python 3.11 or newer, nothing to install, no network):

    unzip masker-verify.pyz from this bundle (or download it from /api/v1/verifier/masker-verify.pyz), then
    {PROG} bundle evidence.zip --keys keys-you-trust.json

Without --keys the signatures are checked against this bundle's own keys.json. That shows the bundle is whole
and self-consistent, not who signed it: compare the key ids the verifier prints with the keys your organisation
received from Masker through another channel, or pass those keys with --keys.

What the command checks (exit 0: verified; 1: failed, every problem named; 2: cannot check):
- MANIFEST.json's Ed25519 signature, and that it names this report (id, scope, window, period root);
- every file's size and SHA-256 against MANIFEST.json; no file missing, none added;
- report.json's own signature, and that report.pdf attaches the same report;
- sessions.ndjson holds the report's sessions, one line each;
- each session's export (events/<session_id>.ndjson): every event re-hashed, the hash chain linked, the
  Merkle root over the first tree_size events equal to the report's;
- the period root recomputed from the sessions, and every figure the report sums over them.

Files:
- report.json, report.pdf: the signed period report (the PDF attaches the same JSON);
- sessions.ndjson: the report's sessions, one JSON object a line;
- events/<session_id>.ndjson: each session's audit-log export, as GET /api/v1/sessions/{{id}}/events serves it;
- keys.json: the service's public keys (GET /api/v1/keys);
- masker-verify.pyz: the offline verifier (standard-library Python, one file);
- MANIFEST.json: every other file's name, size and SHA-256, signed like a report.
"""


def write_bundle(out: BinaryIO, report: PeriodReport, *, report_json: bytes, report_pdf: bytes | None) -> None:
    """Write the evidence bundle of a signed period report to ``out`` (any writable binary stream; seeking is
    not needed). ``report_json``/``report_pdf``: the report as issued (``render_period_json``, the period PDF).
    Each session's export is streamed from the database into its entry up to the tree size the report covers."""
    if report.signature is None:
        raise ValueError("a bundle holds a signed report: sign it first (sign_period_report)")
    body = report.as_json()
    if orjson.loads(report_json) != {"report": body}:
        raise ValueError("report_json is not this report as issued (render_period_json)")
    generated = report.generated_at.astimezone(UTC)
    stamp = (generated.year, generated.month, generated.day, generated.hour, generated.minute, generated.second)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        writer = _BundleWriter(archive, stamp)
        writer.add(REPORT_JSON, report_json)
        if report_pdf is not None:
            writer.add(REPORT_PDF, report_pdf)
        writer.stream(SESSIONS, (session_line(entry) for entry in report.sessions))
        for session, size in _sessions(report):
            writer.stream(export_name(session.id), iter_event_lines(session, size=size))
        writer.add(KEYS, keys_document())
        writer.add(VERIFIER, verifier_archive().content)
        writer.add(README, readme_text(report).encode("utf-8"))
        manifest = manifest_body(body, writer.files)
        manifest["signature"] = sign_object(manifest)
        writer.add(MANIFEST, orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n", listed=False)
