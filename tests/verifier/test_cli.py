"""The offline verifier against real downloads: every seeded session's JSON report, PDF report and NDJSON export
verify; any change to the events or the report fails, naming what failed."""

import base64
import itertools
import json
from datetime import timedelta
from io import BytesIO
from pathlib import Path

import pytest
import rfc8785
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command
from pypdf import PdfReader, PdfWriter

from audit import signing
from audit.events import EVENT_KINDS
from audit.events import event_alert as service_event_alert
from audit.timestamps import format_ts
from audit.writing import append_events, end_session
from tests.audit.api_support import mixed_batch
from tests.verifier.support import (
    Evidence,
    edit_report,
    fetch_evidence,
    flip_byte,
    read_lines,
    run_verifier,
    run_verifier_process,
    write_lines,
)
from verifier.events import event_alert


@pytest.fixture
def evidence(seeded, acme_client, tmp_path) -> Evidence:
    """The downloads of the seeded intake call (the longest, sealed)."""
    return fetch_evidence(acme_client, seeded.session("call-intake-0001").id, tmp_path / "evidence")


def _verify(evidence: Evidence, *, events: Path | None = None, report: Path | None = None, keys=True):
    args = ["report", report or evidence.report, "--events", events or evidence.events]
    if keys:
        args += ["--keys", evidence.keys]
    return run_verifier(*args)


def _assert_fails(result: tuple[int, str], *expected: str) -> str:
    code, out = result
    assert code == 1, out
    assert "NOT VERIFIED" in out
    for text in expected:
        assert text in out, (text, out)
    return out


# --- acceptance 1: round trip -------------------------------------------------------------------------------------


def test_every_seeded_session_verifies_from_its_json_report_pdf_report_and_events(
    seeded, acme_client, globex_client, tmp_path
):
    for client, sessions in ((acme_client, seeded.sessions), (globex_client, seeded.other_sessions)):
        for session in sessions:
            evidence = fetch_evidence(client, session.id, tmp_path / session.id, pdf=True)
            for kind, document in (("report", evidence.report), ("pdf", evidence.pdf)):
                code, out = run_verifier(kind, document, "--events", evidence.events, "--keys", evidence.keys)
                assert code == 0, (session.external_ref, kind, out)
                assert "VERIFIED: report rep_" in out and "NOT checked" not in out
                assert f"Ed25519, key {signing.current_key().kid} (current)" in out
            report = json.loads(evidence.report.read_bytes())["report"]
            assert f"tree_size {report['audit_integrity']['tree_size']}" in out
            assert f"merkle_root_hex {report['merkle_root_hex']}: matches the report" in out


def test_flipping_any_byte_of_any_line_fails_naming_the_line(seeded, acme_client, tmp_path):
    for session in seeded.sessions:
        evidence = fetch_evidence(acme_client, session.id, tmp_path / session.id)
        lines = read_lines(evidence.events)
        for index, line in enumerate(lines):
            for position in sorted({0, len(line) // 3, len(line) // 2, len(line) - 2}):
                tampered = [*lines[:index], flip_byte(line, position), *lines[index + 1 :]]
                events = write_lines(tmp_path / "tampered.ndjson", tampered)
                out = _assert_fails(_verify(evidence, events=events))
                if index < len(lines) - 1:
                    # Named directly (bad JSON, wrong seq or session) or by the next line's broken link.
                    assert f"line {index + 1} " in out or f"line {index + 1}:" in out, out
                else:
                    # The last line has no successor: the signed chain head and root catch it.
                    assert "report.audit_integrity.chain_head_hex" in out or f"line {index + 1}" in out, out
                assert "report.merkle_root_hex" in out or f"line {index + 1}" in out


def test_dropping_any_line_fails(evidence, tmp_path):
    lines = read_lines(evidence.events)
    for index in range(len(lines)):
        events = write_lines(tmp_path / "dropped.ndjson", lines[:index] + lines[index + 1 :])
        expected = f"line {index + 1}: seq {index + 1} where seq {index} was expected"
        if index == len(lines) - 1:
            expected = f"report.audit_integrity.tree_size: report says {len(lines)}, events give {len(lines) - 1}"
        _assert_fails(_verify(evidence, events=events), expected)


def test_reordering_two_lines_fails(evidence, tmp_path):
    lines = read_lines(evidence.events)
    for a, b in [*itertools.pairwise(range(len(lines))), (0, len(lines) - 1), (2, 9)]:
        swapped = list(lines)
        swapped[a], swapped[b] = swapped[b], swapped[a]
        events = write_lines(tmp_path / "swapped.ndjson", swapped)
        _assert_fails(_verify(evidence, events=events), f"line {a + 1}: seq {b} where seq {a} was expected")


def test_truncating_the_file_anywhere_fails(evidence, tmp_path):
    data = evidence.events.read_bytes()
    events = tmp_path / "truncated.ndjson"
    for cut in [*range(0, len(data), 89), len(data) - 1]:
        events.write_bytes(data[:cut])
        code, out = _verify(evidence, events=events)
        assert code == 1, (cut, out)
        assert "truncated" in out or "the file is empty" in out, out


FIGURES = [
    ("merkle_root_hex", lambda r: r.update(merkle_root_hex="ab" * 32)),
    (
        "audit_integrity.tree_size",
        lambda r: r["audit_integrity"].update(tree_size=r["audit_integrity"]["tree_size"] - 1),
    ),
    ("audit_integrity.chain_head_hex", lambda r: r["audit_integrity"].update(chain_head_hex="0" * 64)),
    ("summary.total_events", lambda r: r["summary"].update(total_events=r["summary"]["total_events"] + 1)),
    ("summary.total_redactions", lambda r: r["summary"].update(total_redactions=r["summary"]["total_redactions"] - 1)),
    ("summary.alert_count", lambda r: r["summary"].update(alert_count=r["summary"]["alert_count"] + 1)),
    ("redactions_by_kind.NAME", lambda r: r["redactions_by_kind"].update(NAME=r["redactions_by_kind"]["NAME"] + 1)),
    ("redactions_by_kind.SSN", lambda r: r["redactions_by_kind"].update(SSN=1)),
    ("redactions_by_pass.ner", lambda r: r["redactions_by_pass"].update(ner=r["redactions_by_pass"]["ner"] - 1)),
    ("baa_chain.egress_count", lambda r: r["baa_chain"].update(egress_count=0)),
    ("audit_integrity.seal.merkle_root_hex", lambda r: r["audit_integrity"]["seal"].update(merkle_root_hex="0" * 64)),
    ("summary.total_events", lambda r: r["summary"].update(total_events=True)),
]


@pytest.mark.parametrize(("field", "edit"), FIGURES, ids=[f for f, _ in FIGURES])
def test_changing_one_figure_in_the_report_fails_naming_it(evidence, tmp_path, field, edit):
    report = edit_report(evidence.report, tmp_path / "edited.json", edit)
    # Without keys the figure is caught by recomputing it from the events...
    _assert_fails(_verify(evidence, report=report, keys=False), f"report.{field}: ")
    # ...and with keys the signature fails as well.
    _assert_fails(_verify(evidence, report=report), f"report.{field}: ", "report.signature: does not verify")


def test_a_missing_figure_fails(evidence, tmp_path):
    report = edit_report(evidence.report, tmp_path / "edited.json", lambda r: r["summary"].pop("total_redactions"))
    _assert_fails(_verify(evidence, report=report, keys=False), "report.summary.total_redactions: missing")


# --- acceptance 3: signatures -------------------------------------------------------------------------------------


def test_changing_a_field_that_is_no_figure_fails_the_signature(evidence, tmp_path):
    report = edit_report(evidence.report, tmp_path / "edited.json", lambda r: r["cover"]["agent"].update(name="X"))
    _assert_fails(_verify(evidence, report=report), "report.signature: does not verify with key")
    # Without keys only the figures can be checked: it says loudly that the signature was not.
    code, out = _verify(evidence, report=report, keys=False)
    assert code == 0
    assert "WARNING report.signature NOT checked" in out
    assert out.rstrip().endswith("(signature NOT checked)")


def test_report_signed_by_an_unknown_key_fails(seeded, acme_client, tmp_path, settings):
    published = fetch_evidence(acme_client, seeded.session("call-intake-0001").id, tmp_path / "published")
    signing.retire_public_key(signing.current_key().public_key)  # the seals it signed keep verifying
    rogue = Ed25519PrivateKey.generate()
    settings.MASKER_SIGNING_KEY = rogue.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    signed_by_rogue = fetch_evidence(acme_client, seeded.session("call-intake-0001").id, tmp_path / "rogue")
    rogue_kid = signing.key_id(rogue.public_key())
    out = _assert_fails(
        _verify(published, report=signed_by_rogue.report), f'report.signature: kid "{rogue_kid}" is not a published key'
    )
    assert published.keys.read_text() != signed_by_rogue.keys.read_text()
    assert "events: " in out  # everything else was still checked


def test_report_re_signed_by_another_key_under_the_published_kid_fails(evidence, tmp_path):
    forger = Ed25519PrivateKey.generate()

    def forge(report):
        report["summary"]["verdict"] = "no_alerts"
        unsigned = {k: v for k, v in report.items() if k != "signature"}
        sig = forger.sign(rfc8785.dumps(unsigned))
        report["signature"]["sig"] = base64.urlsafe_b64encode(sig).rstrip(b"=").decode()

    report = edit_report(evidence.report, tmp_path / "forged.json", forge)
    _assert_fails(_verify(evidence, report=report), "report.signature: does not verify with key")


@pytest.fixture
def keys_dir(settings, tmp_path):
    settings.MASKER_KEYS_DIR = tmp_path / "keys"
    settings.MASKER_SIGNING_KEY = ""
    settings.MASKER_SIGNING_KEY_FILE = ""
    signing.reset_key_cache()
    yield
    signing.reset_key_cache()


def test_reports_signed_before_a_rotation_verify_with_the_published_old_key(keys_dir, seeded, acme_client, tmp_path):
    session_id = seeded.session("call-intake-0001").id
    before = fetch_evidence(acme_client, session_id, tmp_path / "before", pdf=True)
    old_kid = json.loads(before.report.read_bytes())["report"]["signature"]["kid"]
    call_command("rotate_signing_key")
    after = fetch_evidence(acme_client, session_id, tmp_path / "after")
    new_kid = json.loads(after.report.read_bytes())["report"]["signature"]["kid"]
    assert new_kid != old_kid
    statuses = {k["kid"]: k["status"] for k in json.loads(after.keys.read_bytes())["keys"]}
    assert statuses == {new_kid: "current", old_kid: "retired"}
    for kind, document in (("report", before.report), ("pdf", before.pdf), ("report", after.report)):
        code, out = run_verifier(kind, document, "--events", after.events, "--keys", after.keys)
        assert code == 0, out
    code, out = run_verifier("report", before.report, "--events", after.events, "--keys", after.keys)
    assert f"key {old_kid} (retired)" in out
    # The keys published before the rotation do not know the new key.
    stale_keys = run_verifier("report", after.report, "--events", after.events, "--keys", before.keys)
    _assert_fails(stale_keys, f'kid "{new_kid}" is not a published key')


# --- the PDF ------------------------------------------------------------------------------------------------------


def test_pdf_without_its_json_attachment_fails(seeded, acme_client, tmp_path):
    evidence = fetch_evidence(acme_client, seeded.session("call-intake-0001").id, tmp_path / "e", pdf=True)
    writer = PdfWriter()
    for page in PdfReader(evidence.pdf).pages:
        writer.add_page(page)
    stripped = tmp_path / "stripped.pdf"
    with stripped.open("wb") as handle:
        writer.write(handle)
    code, out = run_verifier("pdf", stripped, "--events", evidence.events, "--keys", evidence.keys)
    assert code == 1
    assert "pdf: no JSON report attached" in out


def test_pdf_whose_pages_show_another_report_than_its_attachment_fails(seeded, acme_client, tmp_path):
    shown = fetch_evidence(acme_client, seeded.session("call-intake-0001").id, tmp_path / "shown", pdf=True)
    attached = fetch_evidence(acme_client, seeded.session("call-payment-0002").id, tmp_path / "attached")
    writer = PdfWriter()
    for page in PdfReader(shown.pdf).pages:
        writer.add_page(page)
    writer.add_attachment(f"masker-report-{seeded.session('call-payment-0002').id}.json", attached.report.read_bytes())
    mixed = BytesIO()
    writer.write(mixed)
    path = tmp_path / "mixed.pdf"
    path.write_bytes(mixed.getvalue())
    code, out = run_verifier("pdf", path, "--events", attached.events, "--keys", attached.keys)
    assert code == 1
    assert "do not show the attached report's report id" in out
    assert "do not show the attached report's merkle_root_hex" in out


# --- the CLI as an auditor runs it --------------------------------------------------------------------------------


def test_events_can_be_piped_on_standard_input(evidence):
    code, out = run_verifier_process(
        "report", evidence.report, "--events", "-", "--keys", evidence.keys, stdin=evidence.events.read_bytes()
    )
    assert code == 0, out


def test_events_converted_to_crlf_fail_once_naming_the_line_endings(evidence, tmp_path):
    events = tmp_path / "crlf.ndjson"
    events.write_bytes(evidence.events.read_bytes().replace(b"\n", b"\r\n"))
    out = _assert_fails(_verify(evidence, events=events), "the file has CRLF line endings; the export uses LF")
    assert out.count("FAIL") == 1, out


def test_a_mid_call_report_verifies_against_a_later_longer_export(seeded, acme_client, tmp_path):
    live = seeded.session("call-live-0006")  # call-live-0006: still open
    before = fetch_evidence(acme_client, live.id, tmp_path / "before")
    later = [dict(event, ts=format_ts(live.started_at + timedelta(seconds=60))) for event in mixed_batch(1, 4)]
    append_events(live, later)
    end_session(live, status="ok", now=live.started_at + timedelta(minutes=2))
    after = fetch_evidence(acme_client, live.id, tmp_path / "after")
    code, out = run_verifier("report", before.report, "--events", after.events, "--keys", after.keys)
    assert code == 0, out
    assert "the file holds 5 event(s) after the report's tree_size" in out


def test_a_report_with_duplicate_keys_is_refused(evidence, tmp_path):
    text = evidence.report.read_text()
    duplicated = tmp_path / "dup.json"
    duplicated.write_text(text.replace('"scope": "session",', '"scope": "session", "scope": "agent",', 1))
    code, out = _verify(evidence, report=duplicated)
    assert code == 2
    assert "is not valid JSON: duplicate key" in out


def test_unreadable_inputs_exit_2_without_a_verdict(evidence, tmp_path):
    code, out = _verify(evidence, events=tmp_path / "missing.ndjson")
    assert code == 2 and "cannot read events file" in out and "VERIFIED" not in out
    not_jwks = tmp_path / "keys.json"
    not_jwks.write_text('{"kid": 1}')
    code, out = run_verifier("report", evidence.report, "--events", evidence.events, "--keys", not_jwks)
    assert code == 2 and "is not a JWKS" in out


def test_the_verifiers_alert_rule_agrees_with_the_service(db):
    cases = [{}, {"baa": True}, {"baa": False}, {"masked_before_egress": True}, {"masked_before_egress": False}]
    for kind in EVENT_KINDS:
        for fields in cases:
            assert event_alert(kind, fields) == service_event_alert(kind, fields), (kind, fields)
