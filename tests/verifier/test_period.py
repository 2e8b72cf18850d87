"""The offline check of a period report (``masker-verify period``, ``verifier/period.py``): an auditor downloads
the account report, the keys and every listed session's export over HTTP, and the verifier recomputes the period
root, each session's root and the summed figures -- and fails on a swapped session root, a removed session and an
edited total."""

import io
import json
from pathlib import Path

import pytest
from django.test import Client

from tests.reports.period_support import ACCOUNT_URL, RANGE, World, _tamper
from tests.verifier.support import download
from verifier import cli
from verifier.period import period_root

pytestmark = pytest.mark.django_db


def run(*args: object) -> tuple[int, str]:
    out = io.StringIO()
    code = cli.main(["period", *(str(a) for a in args)], out=out)
    return code, out.getvalue()


@pytest.fixture
def evidence(db, tmp_path: Path) -> dict[str, Path]:
    world = World()
    client = world.client()
    report = tmp_path / "report.json"
    report.write_bytes(download(client, f"{ACCOUNT_URL}?from={RANGE['from']}&to={RANGE['to']}"))
    exports = tmp_path / "exports"
    exports.mkdir()
    for entry in json.loads(report.read_bytes())["report"]["sessions"]:
        session_id = entry["session_id"]
        (exports / f"masker-events-{session_id}.ndjson").write_bytes(
            download(client, f"/api/v1/sessions/{session_id}/events")
        )
    keys = tmp_path / "keys.json"
    keys.write_bytes(download(Client(), "/api/v1/keys"))
    return {"report": report, "exports": exports, "keys": keys, "dir": tmp_path}


def edited(evidence: dict[str, Path], edit) -> Path:
    document = json.loads(evidence["report"].read_bytes())
    edit(document["report"])
    target = evidence["dir"] / "edited.json"
    target.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return target


def test_period_report_and_its_sessions_exports_verify(evidence):
    code, out = run(evidence["report"], "--events-dir", evidence["exports"], "--keys", evidence["keys"])
    assert code == 0, out
    assert "OK      merkle_root_hex" in out
    assert "OK      sessions: every listed session's export re-hashed" in out
    assert "OK      figures: 19 summed report figures agree" in out
    assert "OK      report.signature: Ed25519" in out
    assert out.rstrip().endswith("(signature NOT checked)") is False


def test_without_exports_the_root_and_signature_are_checked(evidence):
    code, out = run(evidence["report"], "--keys", evidence["keys"])
    assert code == 0, out
    assert "sessions:" not in out


def test_a_swapped_session_root_fails(evidence):
    def swap(report):
        first, second = report["sessions"][0], report["sessions"][1]
        first["merkle_root_hex"], second["merkle_root_hex"] = second["merkle_root_hex"], first["merkle_root_hex"]

    code, out = run(edited(evidence, swap), "--events-dir", evidence["exports"], "--keys", evidence["keys"])
    assert code == 1
    assert "FAIL    report.merkle_root_hex: report says" in out
    assert out.count("].merkle_root_hex: report says") == 2
    assert "FAIL    report.signature: does not verify" in out


def test_a_swapped_session_root_fails_on_the_period_root_alone(evidence):
    def swap(report):
        first, second = report["sessions"][0], report["sessions"][1]
        first["merkle_root_hex"], second["merkle_root_hex"] = second["merkle_root_hex"], first["merkle_root_hex"]

    code, out = run(edited(evidence, swap))
    assert code == 1
    assert "FAIL    report.merkle_root_hex" in out


def test_a_removed_session_fails(evidence):
    removed = {}

    def remove(report):
        removed.update(report["sessions"].pop(2))

    code, out = run(edited(evidence, remove), "--events-dir", evidence["exports"], "--keys", evidence["keys"])
    assert code == 1
    assert "FAIL    report.merkle_root_hex" in out
    assert "FAIL    report.summary.total_sessions: report says 6, events give 5" in out
    assert f"masker-events-{removed['session_id']}.ndjson: an export in" in out
    assert "FAIL    report.signature" in out


def test_a_removed_session_with_its_export_and_a_recomputed_root_still_fails_the_figures(evidence):
    """Someone who drops a session, its export, and recomputes the period root is caught by the totals (and by
    the signature)."""
    removed = {}

    def remove(report):
        removed.update(report["sessions"].pop(2))
        report["summary"]["total_sessions"] -= 1
        report["merkle_root_hex"] = period_root(
            (e["session_id"], e["tree_size"], e["merkle_root_hex"]) for e in report["sessions"]
        ).hex()

    target = edited(evidence, remove)
    (evidence["exports"] / f"masker-events-{removed['session_id']}.ndjson").unlink()
    code, out = run(target, "--events-dir", evidence["exports"])
    assert code == 1
    assert "FAIL    report.summary.total_events: report says" in out
    assert "OK      merkle_root_hex" in out  # the root alone cannot tell: the figures and the signature do


@pytest.mark.parametrize(
    "path", [("summary", "total_events"), ("summary", "alert_count"), ("baa_chain", "egress_count")]
)
def test_an_edited_total_fails(evidence, path):
    def edit(report):
        report[path[0]][path[1]] += 1

    code, out = run(edited(evidence, edit), "--events-dir", evidence["exports"], "--keys", evidence["keys"])
    assert code == 1
    assert f"FAIL    report.{'.'.join(path)}: report says" in out
    assert "FAIL    report.signature: does not verify" in out


def test_an_altered_export_fails(evidence):
    export = sorted(evidence["exports"].iterdir())[0]
    lines = export.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"turn":', b'"turn": ', 1)
    export.write_bytes(b"".join(lines))
    code, out = run(evidence["report"], "--events-dir", evidence["exports"])
    assert code == 1
    assert "its export does not verify" in out


def test_a_report_with_a_broken_session_verifies_as_issued(db, tmp_path):
    """A broken session is listed with a null root: the period root covers that, and the verifier says so."""
    world = World()
    _tamper(world.inside[3], 2)
    report = tmp_path / "report.json"
    report.write_bytes(download(world.client(), f"{ACCOUNT_URL}?from={RANGE['from']}&to={RANGE['to']}"))
    code, out = run(report)
    assert code == 0, out
    assert json.loads(report.read_bytes())["report"]["summary"]["verdict"] == "integrity_failed"


def test_a_missing_report_file_cannot_be_checked(tmp_path):
    code, out = run(tmp_path / "nothing.json")
    assert code == 2
    assert "ERROR   cannot read report" in out
