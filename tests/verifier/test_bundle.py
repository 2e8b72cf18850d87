"""Evidence bundles end to end: a real period report over the period cast, written into one zip by
``reports.bundle.write_bundle`` (real exports, keys, verifier archive, signed manifest), checked by the real offline
verifier (``masker-verify.pyz bundle``) in this process and as the bundled ``masker-verify.pyz`` in its own
process; and every kind of tampering it must name: an edited export, a removed export, an added file, a manifest
or a whole bundle signed by a key the auditor does not trust, an edited report figure."""

import hashlib
import io
import json
import zipfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.test import Client

from audit.canonical import canonical_bytes
from audit.signing import b64url, jwk_of, key_id
from reports.bundle import write_bundle
from reports.period import build_period_report, render_period_json, sign_period_report
from reports.period_rendering import render_period_pdf
from tests.reports.period_support import WINDOW, World, _tamper
from tests.verifier.support import download, flip_byte, run_pyz, run_verifier
from verifier.bundle import MANIFEST, export_name

pytestmark = pytest.mark.django_db
GENERATED_AT = datetime(2026, 4, 2, 12, 0, tzinfo=UTC)


def issue(world: World):
    """The account's signed period report over the March window, as the service issues it."""
    return sign_period_report(build_period_report(world.account, window=WINDOW, generated_at=GENERATED_AT))


def bundle_of(report, target: Path, *, pdf: bool = False) -> Path:
    with target.open("wb") as out:
        write_bundle(
            out,
            report,
            report_json=render_period_json(report),
            report_pdf=render_period_pdf(report) if pdf else None,
        )
    return target


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def rewrite(source: Path, target: Path, files: dict[str, bytes]) -> Path:
    """A new zip holding ``files`` (what someone who unpacks, edits and re-zips a bundle produces)."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return target


def stranger() -> tuple[Ed25519PrivateKey, dict]:
    """A fresh key the service never published, and its JWK."""
    key = Ed25519PrivateKey.generate()
    return key, jwk_of(key.public_key(), "current")


def signed_by(key: Ed25519PrivateKey, document: dict) -> dict:
    body = {name: value for name, value in document.items() if name != "signature"}
    sig = key.sign(canonical_bytes(body))
    return {**body, "signature": {"alg": "Ed25519", "kid": key_id(key.public_key()), "sig": b64url(sig)}}


def relisted(files: dict[str, bytes], key: Ed25519PrivateKey) -> dict[str, bytes]:
    """``files`` with MANIFEST.json's sizes and hashes brought up to date and re-signed by ``key``."""
    manifest = json.loads(files[MANIFEST])
    for entry in manifest["files"]:
        data = files[entry["name"]]
        entry["size"] = len(data)
        entry["sha256"] = hashlib.sha256(data).hexdigest()
    return {**files, MANIFEST: json.dumps(signed_by(key, manifest), indent=2).encode()}


@pytest.fixture
def world(db) -> World:
    return World()


@pytest.fixture
def report(world):
    return issue(world)


@pytest.fixture
def bundle(report, tmp_path) -> Path:
    return bundle_of(report, tmp_path / "evidence.zip")


@pytest.fixture
def trusted_keys(tmp_path) -> Path:
    """The keys the auditor received from the service itself (GET /api/v1/keys), not from the bundle."""
    path = tmp_path / "trusted-keys.json"
    path.write_bytes(download(Client(), "/api/v1/keys"))
    return path


def test_a_bundle_with_its_pdf_verifies_in_process_and_with_its_own_verifier(report, tmp_path, trusted_keys):
    bundle = bundle_of(report, tmp_path / "evidence.zip", pdf=True)
    code, out = run_verifier("bundle", bundle, "--keys", trusted_keys)
    assert code == 0, out
    for line in (
        "OK      files: the 12 file(s) MANIFEST.json lists are present, each with its size and SHA-256; no other file",
        "OK      MANIFEST.json signature: Ed25519, key ",
        f"OK      MANIFEST.json: names report {report.id} (account, period root {report.merkle_root_hex})",
        "OK      sessions.ndjson: the report's 6 session(s), one line each",
        "OK      report.pdf: attaches report.json's report",
        f"OK      merkle_root_hex {report.merkle_root_hex}: the period root of the 6 listed session(s)",
        "OK      sessions: every listed session's export re-hashed; its root and size match the report",
        "OK      figures: 19 summed report figures agree with the sessions' events",
        "OK      report.signature: Ed25519",
        f"NOTE    keys: checking signatures against --keys {trusted_keys}: ",
    ):
        assert line in out, line
    assert out.rstrip().splitlines()[-1] == f"VERIFIED: evidence bundle {bundle}: account report {report.id}"

    pyz = tmp_path / "masker-verify.pyz"
    pyz.write_bytes(members(bundle)["masker-verify.pyz"])
    code, out = run_pyz(pyz, "bundle", bundle)
    assert code == 0, out
    assert "WARNING keys: checking signatures against the bundle's own keys.json" in out
    unpinned = "(signatures checked against the bundle's own keys.json; pin trusted keys with --keys)"
    assert out.rstrip().endswith(unpinned)


def test_the_bundle_holds_what_the_api_serves(world, report, bundle):
    """Exports, keys and verifier are the service's own bytes, not a second encoding of them."""
    files = members(bundle)
    client = world.client()
    assert files["keys.json"] == download(Client(), "/api/v1/keys")
    assert files["masker-verify.pyz"] == download(Client(), "/api/v1/verifier/masker-verify.pyz")
    assert files["report.json"] == render_period_json(report)
    for entry in report.sessions:
        served = download(client, f"/api/v1/sessions/{entry['session_id']}/events")
        assert files[export_name(entry["session_id"])] == served  # every session ended or idle since: whole logs
    lines = files["sessions.ndjson"].splitlines()
    assert [json.loads(line) for line in lines] == report.sessions
    manifest = json.loads(files[MANIFEST])
    assert [e["name"] for e in manifest["files"]] == [n for n in files if n != MANIFEST]
    assert manifest["report"]["time_window"] == {"from": "2026-03-01T00:00:00.000Z", "to": "2026-04-01T00:00:00.000Z"}
    readme = files["README.txt"].decode()
    assert "python3 masker-verify.pyz bundle evidence.zip" in readme
    for session in world.inside:  # identifiers only: no external reference, no event content
        assert session.external_ref not in readme


def test_an_edited_byte_of_an_export_fails(report, bundle, tmp_path, trusted_keys):
    files = members(bundle)
    name = export_name(report.sessions[1]["session_id"])
    files[name] = flip_byte(files[name], files[name].index(b'"turn":') + 2)
    code, out = run_verifier("bundle", rewrite(bundle, tmp_path / "edited.zip", files), "--keys", trusted_keys)
    assert code == 1
    assert f"FAIL    {name}: SHA-256 " in out
    assert "the file was changed after the bundle was signed" in out
    assert f"FAIL    session {report.sessions[1]['session_id']}: its export does not verify" in out
    assert "NOT VERIFIED: evidence bundle" in out


def test_a_removed_export_fails(report, bundle, tmp_path, trusted_keys):
    files = members(bundle)
    name = export_name(report.sessions[2]["session_id"])
    del files[name]
    code, out = run_verifier("bundle", rewrite(bundle, tmp_path / "removed.zip", files), "--keys", trusted_keys)
    assert code == 1
    assert f"FAIL    {name}: listed in MANIFEST.json but missing from the bundle (a removed file)" in out
    assert f"FAIL    session {report.sessions[2]['session_id']}: no export {name} in the bundle's events/" in out


def test_an_added_file_fails(bundle, tmp_path):
    files = members(bundle)
    files["events/extra.ndjson"] = b"{}\n"
    code, out = run_verifier("bundle", rewrite(bundle, tmp_path / "added.zip", files))
    assert code == 1
    assert "FAIL    events/extra.ndjson: in the bundle but not listed in MANIFEST.json (an added file)" in out


@pytest.mark.parametrize("pinned", [False, True])
def test_a_manifest_signed_by_an_unknown_key_fails(bundle, tmp_path, trusted_keys, pinned):
    key, _ = stranger()
    files = members(bundle)
    files[MANIFEST] = json.dumps(signed_by(key, json.loads(files[MANIFEST]))).encode()
    keys = ["--keys", trusted_keys] if pinned else []
    code, out = run_verifier("bundle", rewrite(bundle, tmp_path / "resigned.zip", files), *keys)
    assert code == 1
    assert f'FAIL    MANIFEST.json signature: kid "{key_id(key.public_key())}" is not a published key' in out


def test_a_bundle_re_signed_throughout_with_its_own_keys_is_caught_only_by_pinned_keys(report, bundle, tmp_path):
    """Someone who edits a figure, re-signs the report and the manifest with their own key and swaps keys.json
    makes a self-consistent bundle: the verifier says it checked the bundle's own keys, and --keys catches it."""
    key, jwk = stranger()
    files = members(bundle)
    document = json.loads(files["report.json"])
    document["report"] = signed_by(key, document["report"])
    files["report.json"] = json.dumps(document, indent=2).encode()
    files["keys.json"] = json.dumps({"keys": [jwk]}).encode()
    forged = rewrite(bundle, tmp_path / "forged.zip", relisted(files, key))
    code, out = run_verifier("bundle", forged)
    assert code == 0, out
    assert f"against the bundle's own keys.json ({jwk['kid']} (current))" in out

    trusted = tmp_path / "trusted.json"
    trusted.write_bytes(download(Client(), "/api/v1/keys"))
    code, out = run_verifier("bundle", forged, "--keys", trusted)
    assert code == 1
    assert f"NOTE    keys: the bundle's keys.json also lists {jwk['kid']}, not in --keys (not trusted)" in out
    assert "FAIL    MANIFEST.json signature: kid" in out
    assert "FAIL    report.signature: kid" in out


def test_an_edited_figure_with_the_manifest_untouched_fails(bundle, tmp_path, trusted_keys):
    files = members(bundle)
    document = json.loads(files["report.json"])
    document["report"]["summary"]["total_events"] += 1
    files["report.json"] = json.dumps(document, indent=2).encode()
    code, out = run_verifier("bundle", rewrite(bundle, tmp_path / "figure.zip", files), "--keys", trusted_keys)
    assert code == 1
    assert "FAIL    report.json: SHA-256 " in out
    assert "FAIL    report.summary.total_events: report says" in out
    assert "FAIL    report.signature: does not verify" in out


def test_an_edited_figure_with_a_relisted_manifest_signed_by_an_unknown_key_fails(bundle, tmp_path, trusted_keys):
    key, _ = stranger()
    files = members(bundle)
    document = json.loads(files["report.json"])
    document["report"]["baa_chain"]["egress_count"] -= 1
    files["report.json"] = json.dumps(document, indent=2).encode()
    edited = rewrite(bundle, tmp_path / "figure.zip", relisted(files, key))
    for keys in ([], ["--keys", trusted_keys]):
        code, out = run_verifier("bundle", edited, *keys)
        assert code == 1
        assert "OK      files: " in out  # the hashes were brought up to date: the signatures and figures catch it
        assert "FAIL    MANIFEST.json signature: kid" in out
        assert "FAIL    report.baa_chain.egress_count: report says" in out
        assert "FAIL    report.signature: does not verify" in out


def test_a_report_with_a_broken_session_bundles_and_verifies_as_issued(world, tmp_path):
    """A broken session is listed with a null root and its export is still in the bundle, as evidence."""
    _tamper(world.inside[3], 2)
    report = issue(world)
    assert report.verdict == "integrity_failed"
    bundle = bundle_of(report, tmp_path / "broken.zip")
    assert export_name(world.inside[3].id) in members(bundle)
    code, out = run_verifier("bundle", bundle)
    assert code == 0, out
    assert f"NOTE    session {world.inside[3].id}: listed as broken" in out


def test_not_a_zip_cannot_be_checked(tmp_path):
    path = tmp_path / "evidence.zip"
    path.write_bytes(b"not a zip")
    code, out = run_verifier("bundle", path)
    assert code == 2
    assert "is not a zip file" in out


def test_write_bundle_needs_a_signed_report(world):
    report = build_period_report(world.account, window=WINDOW, generated_at=GENERATED_AT)
    with pytest.raises(ValueError, match="signed report"):
        write_bundle(io.BytesIO(), report, report_json=render_period_json(report), report_pdf=None)


def test_a_sessions_file_that_is_not_the_reports_sessions_fails(bundle, tmp_path):
    files = members(bundle)
    lines = files["sessions.ndjson"].splitlines(keepends=True)
    files["sessions.ndjson"] = b"".join(lines[:2] + lines[3:])
    code, out = run_verifier("bundle", rewrite(bundle, tmp_path / "sessions.zip", files))
    assert code == 1
    assert "FAIL    sessions.ndjson line 3: is not report.sessions[2]" in out
    assert "FAIL    sessions.ndjson: 5 line(s), the report lists 6 session(s)" in out


def test_write_bundle_takes_only_the_reports_own_json_and_its_accounts_sessions(world, report):
    with pytest.raises(ValueError, match="not this report"):
        write_bundle(io.BytesIO(), report, report_json=render_period_json(issue(world)), report_pdf=None)
    elsewhere = replace(report, account_id=world.other.id)
    with pytest.raises(ValueError, match="not its account's"):
        write_bundle(io.BytesIO(), elsewhere, report_json=render_period_json(elsewhere), report_pdf=None)
