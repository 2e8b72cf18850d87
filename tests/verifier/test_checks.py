"""What the offline verifier checks beyond the figures: the walk's rules (first event, valid events, nothing after
the end, timestamps), the seal a report carries, signed receipts, and the figures printed on a PDF's pages."""

import base64
import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import rfc8785
import weasyprint
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.db import connection

from audit.models import AuditEvent, Session
from audit.signing import key_id, sign_object
from audit.timestamps import format_ts
from audit.writing import append_events, end_session, start_receipt
from reports.rendering import LocalAssetFetcher, assets_dir, render_report_html, render_report_json
from tests.audit.api_support import mixed_batch
from tests.conftest import append_only_guard_lifted
from tests.verifier.support import (
    Evidence,
    download,
    edit_report,
    fetch_evidence,
    issued_report,
    read_lines,
    run_verifier,
    write_lines,
)
from verifier.merkle import leaf_hash, merkle_root
from verifier.pdfread import PdfDocument


@pytest.fixture
def evidence(seeded, acme_client, tmp_path) -> Evidence:
    """The downloads of the seeded intake call (sealed)."""
    return fetch_evidence(acme_client, seeded.session("call-intake-0001").id, tmp_path / "evidence")


def _report(evidence: Evidence, *, report: Path | None = None, events: Path | None = None) -> tuple[int, str]:
    return run_verifier(
        "report", report or evidence.report, "--events", events or evidence.events, "--keys", evidence.keys
    )


def _fails(result: tuple[int, str], *expected: str) -> str:
    code, out = result
    assert code == 1, out
    for text in expected:
        assert text in out, (text, out)
    return out


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _resign(report: dict) -> None:
    """Sign the edited report with the service's key, so only what the test changed can fail."""
    report.pop("signature", None)
    report["signature"] = sign_object(report)


def _rechain(events: list[dict]) -> list[bytes]:
    """NDJSON lines of ``events`` with every ``prev_hash`` linking, as the service would have written them."""
    lines, prev = [], "0" * 64
    for event in events:
        data = rfc8785.dumps({**event, "prev_hash": prev})
        prev = leaf_hash(data).hex()
        lines.append(data + b"\n")
    return lines


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in read_lines(path)]


# --- the walk -----------------------------------------------------------------------------------------------------


def test_the_seeded_report_with_its_signed_seal_verifies(evidence):
    code, out = _report(evidence)
    assert code == 0, out
    assert "report.audit_integrity.seal.signature: Ed25519, key" in out
    assert "the seal's size, root and head are the report's and the log's, which ends with session.ended" in out


def test_a_log_whose_first_event_is_not_session_started_fails(evidence, tmp_path):
    events = _events(evidence.events)
    first = {**events[1], "seq": 0, "ts": events[0]["ts"]}
    rest = [{**event, "seq": seq} for seq, event in enumerate(events[2:], start=1)]
    lines = _rechain([first, *rest])
    out = _fails(_report(evidence, events=write_lines(tmp_path / "e.ndjson", lines)))
    assert f"line 1 (seq 0): the log does not start with session.started (seq 0 is {first['kind']})" in out


def test_a_start_naming_another_policy_than_the_report_shows_fails(evidence, tmp_path):
    def other_policy(report):
        report["policy_snapshot"] += "\n# edited\n"
        _resign(report)

    report = edit_report(evidence.report, tmp_path / "r.json", other_policy)
    _fails(_report(evidence, report=report), "session.started's policy.sha256 is not the SHA-256 of the report's")


def test_a_start_naming_another_agent_than_the_report_fails(evidence, tmp_path):
    def other_agent(report):
        report["cover"]["agent"]["id"] = "agt_01M8QDDVJ935894GACXVG0M27Y"
        _resign(report)

    report = edit_report(evidence.report, tmp_path / "r.json", other_agent)
    _fails(_report(evidence, report=report), "session.started names another agent than the report (cover.agent.id)")


def test_an_event_after_session_ended_fails_naming_its_seq(evidence, tmp_path):
    events = _events(evidence.events)
    end = len(events) - 1
    assert events[end]["kind"] == "session.ended"
    extra = {**events[2], "seq": end + 1, "id": "evt_01M8QDDVKJM1RYQ2H0K161K0ZZ", "ts": events[end]["ts"]}
    lines = [*read_lines(evidence.events), *_rechain([*events, extra])[-1:]]
    out = _fails(_report(evidence, events=write_lines(tmp_path / "e.ndjson", lines)))
    assert f"line {end + 2} (seq {end + 1}): event after session.ended (seq {end})" in out
    assert "the report says the session is sealed" in out


def test_a_sealed_report_whose_log_does_not_end_with_session_ended_fails(seeded, acme_client, tmp_path):
    session = seeded.session("call-intake-0001")
    evidence = fetch_evidence(acme_client, session.id, tmp_path / "e")
    events = _events(evidence.events)[:-1]  # the log without its session.ended...
    lines = _rechain(events)
    root = merkle_root(leaf_hash(line[:-1]) for line in lines).hex()
    head = leaf_hash(lines[-1][:-1]).hex()
    seal = {
        "session_id": session.id,
        "tree_size": len(lines),
        "merkle_root_hex": root,
        "chain_head_hex": head,
        "sealed_at": session.seal["sealed_at"],
    }
    signed_seal = {**seal, "signature": sign_object(seal)}  # ...sealed and signed by the service's key

    def sealed_short(report):
        report["merkle_root_hex"] = root
        report["audit_integrity"].update(tree_size=len(lines), last_seq=len(lines) - 1, chain_head_hex=head)
        report["audit_integrity"]["seal"].update(
            {k: signed_seal[k] for k in ("tree_size", "merkle_root_hex", "chain_head_hex", "signature")}
        )
        report["summary"]["total_events"] = len(lines)
        report["cover"]["session"]["status"] = "active"
        _resign(report)

    report = edit_report(evidence.report, tmp_path / "r.json", sealed_short)
    out = _fails(
        _report(evidence, report=report, events=write_lines(tmp_path / "e.ndjson", lines)),
        f"a sealed log ends with session.ended at seq {len(lines) - 1} (tree_size - 1); this log holds no "
        "session.ended",
    )
    assert "report.audit_integrity.seal.signature: Ed25519" in out
    assert out.count("FAIL") == 1, out


def test_an_event_of_the_wrong_json_type_fails_naming_the_field(evidence, tmp_path):
    events = _events(evidence.events)
    index = next(i for i, e in enumerate(events) if e["kind"] == "phi.redacted")
    events[index] = {**events[index], "turn": str(events[index]["turn"])}
    out = _fails(_report(evidence, events=write_lines(tmp_path / "e.ndjson", _rechain(events))))
    assert f"line {index + 1} (seq {index}): not a valid v1 event: turn: must be a JSON integer" in out
    events[index] = {**events[index], "turn": 1, "note": "x"}
    out = _fails(_report(evidence, events=write_lines(tmp_path / "e.ndjson", _rechain(events))))
    assert "1 unknown field(s): not part of a v1 phi.redacted event" in out
    assert '"x"' not in out and "note" not in out  # the verifier never prints event contents


def test_an_event_more_than_five_minutes_before_the_start_fails(evidence, tmp_path):
    events = _events(evidence.events)
    events[3]["ts"] = "2020-01-01T00:00:00.000Z"
    out = _fails(_report(evidence, events=write_lines(tmp_path / "e.ndjson", _rechain(events))))
    assert "line 4 (seq 3): ts is more than 5 minutes before the session's start (seq 0)" in out


# --- the seal -----------------------------------------------------------------------------------------------------


def test_a_seal_signed_by_an_unknown_key_fails(seeded, evidence, tmp_path):
    rogue = Ed25519PrivateKey.generate()
    session = seeded.session("call-intake-0001")

    def rogue_seal(report):
        seal = report["audit_integrity"]["seal"]
        signed = {
            "session_id": session.id,
            **{k: seal[k] for k in ("tree_size", "merkle_root_hex", "chain_head_hex", "sealed_at")},
        }
        kid = key_id(rogue.public_key())
        seal["signature"] = {"alg": "Ed25519", "kid": kid, "sig": _b64url(rogue.sign(rfc8785.dumps(signed)))}
        seal["signature_kid"] = kid
        _resign(report)

    report = edit_report(evidence.report, tmp_path / "r.json", rogue_seal)
    out = _fails(_report(evidence, report=report), "report.audit_integrity.seal.signature: kid")
    assert "is not a published key" in out
    assert "report.signature: Ed25519" in out  # the report itself is signed by the service


@pytest.mark.parametrize("field", ["tree_size", "merkle_root_hex", "chain_head_hex", "sealed_at"])
def test_a_seal_field_changed_after_signing_fails(evidence, tmp_path, field):
    def change(report):
        seal = report["audit_integrity"]["seal"]
        if field == "tree_size":
            seal[field] += 1
        else:
            seal[field] = seal[field][:-1] + ("1" if seal[field][-1] != "1" else "2")
        _resign(report)

    report = edit_report(evidence.report, tmp_path / "r.json", change)
    _fails(_report(evidence, report=report), "report.audit_integrity.seal.signature: does not verify with key")


def test_a_sealed_report_without_the_seal_signature_fails(evidence, tmp_path):
    def unsigned(report):
        del report["audit_integrity"]["seal"]["signature"]
        _resign(report)

    report = edit_report(evidence.report, tmp_path / "r.json", unsigned)
    _fails(_report(evidence, report=report), "report.audit_integrity.seal.signature: missing")


# --- receipts -----------------------------------------------------------------------------------------------------


def _receipt(session: Session, size: int, *, issued_at: str = "2026-11-20T14:00:41.500Z") -> dict:
    """The signed tree head the service answers a write with, for the log's first ``size`` events."""
    hashes = list(
        AuditEvent.objects.filter(session=session, seq__lt=size).order_by("seq").values_list("event_hash", flat=True)
    )
    head = {
        "session_id": session.id,
        "tree_size": size,
        "merkle_root_hex": merkle_root(bytes.fromhex(h) for h in hashes).hex(),
        "chain_head_hex": hashes[-1],
        "issued_at": issued_at,
    }
    return {**head, "signature": sign_object(head)}


def _write_receipts(path: Path, receipts: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in receipts))
    return path


def test_receipts_of_a_real_session_verify_one_line_each(seeded, evidence, tmp_path):
    session = seeded.session("call-intake-0001")
    receipts = [_receipt(session, size) for size in (1, 5, session.tree_size)]
    path = _write_receipts(tmp_path / "receipts.ndjson", receipts)
    code, out = run_verifier("receipts", path, evidence.events, "--keys", evidence.keys)
    assert code == 0, out
    for line, size in enumerate((1, 5, session.tree_size), start=1):
        assert f"OK      receipt line {line} (tree_size {size}, " in out
    assert out.count("the events extend it") == 3


def test_a_receipt_detects_a_rewrite_of_the_events_it_covers(seeded, acme_client, tmp_path):
    session = seeded.session("call-live-0006")  # an open call: the proxy keeps appending
    later = [
        {**e, "ts": format_ts(session.started_at + timedelta(minutes=1, seconds=i))}
        for i, e in enumerate(mixed_batch(1, 6))
    ]
    append_events(session, later)
    session.refresh_from_db()
    sizes = (2, 3, 4, session.tree_size)
    receipts = [_receipt(session, size) for size in sizes]
    # Someone with database access rewrites event 3 and re-chains everything after it.
    rows = list(AuditEvent.objects.filter(session=session).order_by("seq"))
    prev = rows[2].event_hash
    with append_only_guard_lifted(), connection.cursor() as cursor:
        for row in rows[3:]:
            event = json.loads(row.canonical)
            if row.seq == 3:
                event["entity_kind"] = "SSN" if event.get("entity_kind") != "SSN" else "NAME"
            event["prev_hash"] = prev
            canonical = rfc8785.dumps(event)
            prev = leaf_hash(canonical).hex()
            cursor.execute(
                f"UPDATE {AuditEvent._meta.db_table} SET canonical = %s, prev_hash = %s, event_hash = %s WHERE id = %s",
                [canonical.decode(), event["prev_hash"], prev, row.id],
            )
    events = tmp_path / "events.ndjson"  # the export is raw evidence: it serves the rewritten rows
    events.write_bytes(download(acme_client, f"/api/v1/sessions/{session.id}/events"))
    keys = tmp_path / "keys.json"
    keys.write_bytes(download(acme_client, "/api/v1/keys"))
    path = _write_receipts(tmp_path / "receipts.ndjson", receipts)
    code, out = run_verifier("receipts", path, events, "--keys", keys)
    assert code == 1, out
    assert "events: " in out and "every prev_hash links" in out  # the rewritten log is internally consistent
    assert "OK      receipt line 1 (tree_size 2, " in out
    assert "OK      receipt line 2 (tree_size 3, " in out  # seqs 0-2: untouched
    for line, size in ((3, 4), (4, session.tree_size)):
        assert (
            f'FAIL    receipt line {line} (tree_size {size}, issued_at "2026-11-20T14:00:41.500Z"): the first {size} '
            "events have another root or head than the receipt signs: the log was rewritten" in out
        ), out


def test_the_receipts_the_service_answers_writes_with_verify_against_the_export(seeded, acme_client, tmp_path):
    session = seeded.session("call-live-0006")  # an open call
    batch = [
        {**e, "ts": format_ts(session.started_at + timedelta(minutes=1, seconds=i))}
        for i, e in enumerate(mixed_batch(1, 5))
    ]
    receipts = [start_receipt(session)]
    receipts.append(append_events(session, batch[:2])[1])
    receipts.append(append_events(session, batch[2:])[1])
    receipts.append(end_session(session, status="ok", now=session.started_at + timedelta(minutes=3)))
    events = tmp_path / "events.ndjson"
    events.write_bytes(download(acme_client, f"/api/v1/sessions/{session.id}/events"))
    keys = tmp_path / "keys.json"
    keys.write_bytes(download(acme_client, "/api/v1/keys"))
    code, out = run_verifier("receipts", _write_receipts(tmp_path / "r.ndjson", receipts), events, "--keys", keys)
    assert code == 0, out
    sizes = [receipt["tree_size"] for receipt in receipts]
    assert sizes == sorted(sizes) and sizes[-1] == len(read_lines(events))
    assert out.count("the events extend it (same root and head)") == 4


def test_a_receipt_beyond_the_log_or_by_an_unknown_key_fails(seeded, evidence, tmp_path):
    session = seeded.session("call-intake-0001")
    good = _receipt(session, 3)
    longer = {**good, "tree_size": session.tree_size + 1}
    longer["signature"] = sign_object({k: v for k, v in longer.items() if k != "signature"})
    rogue = Ed25519PrivateKey.generate()
    forged = {k: v for k, v in good.items() if k != "signature"}
    forged["signature"] = {
        "alg": "Ed25519",
        "kid": key_id(rogue.public_key()),
        "sig": _b64url(rogue.sign(rfc8785.dumps(forged))),
    }
    path = _write_receipts(tmp_path / "receipts.ndjson", [good, longer, forged])
    code, out = run_verifier("receipts", path, evidence.events, "--keys", evidence.keys)
    assert code == 1, out
    assert "OK      receipt line 1 (tree_size 3, " in out
    assert f"receipt line 2 (tree_size {session.tree_size + 1}, " in out
    assert f"the events file holds only {session.tree_size} event(s)" in out
    assert "receipt line 3 (tree_size 3, " in out and "is not a published key" in out


# --- the PDF's printed figures ------------------------------------------------------------------------------------


def _pdf_of(html_report, attached_report, path: Path) -> Path:
    """A PDF laid out by the real renderer from ``html_report``, attaching ``attached_report``'s signed JSON."""
    attachment = weasyprint.Attachment(
        string=render_report_json(attached_report),
        name=f"masker-report-{attached_report.session_id}.json",
        relationship="Data",
    )
    document = weasyprint.HTML(
        string=render_report_html(html_report),
        base_url=assets_dir().resolve().as_uri() + "/",
        url_fetcher=LocalAssetFetcher(assets_dir()),
    )
    path.write_bytes(document.write_pdf(pdf_variant="pdf/a-3b", attachments=[attachment]))
    return path


def test_the_pdf_check_prints_one_line_per_comparison(seeded, acme_client, tmp_path):
    evidence = fetch_evidence(acme_client, seeded.session("call-intake-0001").id, tmp_path / "e", pdf=True)
    code, out = run_verifier("pdf", evidence.pdf, "--events", evidence.events, "--keys", evidence.keys)
    assert code == 0, out
    for text in (
        "pdf: every page (",
        "shows the attached report's report id rep_",
        "shows the attached report's merkle_root_hex",
        "pdf: the pages show the attached report's signature.sig",
        "pdf: printed executive summary figures match the attached report (summary.total_events ",
        "pdf: printed Safe Harbor coverage match the attached report (safe_harbor.coverage_percent ",
        "pdf: printed redaction total (section 8) match the attached report",
    ):
        assert text in out, (text, out)


def test_a_pdf_whose_printed_figures_differ_from_its_signed_json_fails(seeded, tmp_path):
    signed = issued_report(seeded.session("call-intake-0001"))
    printed = replace(signed, summary=replace(signed.summary, total_redactions=signed.summary.total_redactions + 1))
    directory = tmp_path / "e"
    directory.mkdir()
    pdf = _pdf_of(printed, signed, directory / "altered.pdf")
    events = directory / "events.ndjson"
    events.write_bytes(
        b"".join(
            row.encode() + b"\n"
            for row in AuditEvent.objects.filter(session=seeded.session("call-intake-0001"))
            .order_by("seq")
            .values_list("canonical", flat=True)
        )
    )
    code, out = run_verifier("pdf", pdf, "--events", events)
    assert code == 1, out
    stated, shown = signed.summary.total_redactions, signed.summary.total_redactions + 1
    assert f"pdf: the pages print summary.total_redactions as {shown}, the attached report says {stated}" in out
    assert "OK      events: " in out  # the attached report itself still checks out against the log


def test_the_pdf_and_the_console_say_where_the_offline_verifier_is(seeded, acme_client, tmp_path):
    session = seeded.session("call-intake-0001")
    evidence = fetch_evidence(acme_client, session.id, tmp_path / "e", pdf=True)
    document = PdfDocument(evidence.pdf.read_bytes())
    text = "".join("".join(document.page_text(page).split()) for page in document.pages())
    assert "Downloadtheofflineverifier" in text and "GET/api/v1/verifier/masker-verify.pyz" in text
    assert f"python3masker-verify.pyzreportmasker-report-{session.id}.json--events" in text
    page = acme_client.get(f"/sessions/{session.id}/")
    assert page.status_code == 200
    assert b'href="/api/v1/verifier/masker-verify.pyz"' in page.content
    assert b"Download the offline verifier" in page.content
