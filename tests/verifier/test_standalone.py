"""The verifier stands alone: it imports only the standard library, its own copies of the service's rules agree
with the service, and the one-file ``masker-verify.pyz`` served by the API runs outside the checkout, on the
oldest Python the README promises."""

import ast
import glob
import hashlib
import io
import json
import random
import shutil
import struct
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import pytest
import rfc8785
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.test import Client

from audit import events as service_events
from audit.demo import seed_demo
from audit.policy import policy_sha256 as service_policy_sha256
from audit.timestamps import MAX_SKEW
from audit.verifier_download import build_verifier_pyz
from masker.models import Membership
from tests.verifier.support import fetch_evidence, run_pyz
from verifier import canonical, ed25519
from verifier import events as verifier_events

PACKAGE = Path(verifier_events.__file__).parent
ROOT = PACKAGE.parent
SERVICE_PACKAGES = {"django", "rest_framework", "audit", "reports", "masker", "tests"}
THIRD_PARTY = {"rfc8785", "cryptography", "pypdf", "yaml", "msgspec", "orjson"}


def test_every_verifier_module_imports_only_the_standard_library_and_itself():
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path.name}: relative import"
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top == "verifier" or top in sys.stdlib_module_names or top == "__future__", (path.name, name)


def test_the_package_loads_in_a_python_that_has_only_the_standard_library():
    # -I: no PYTHONPATH, no user site; -S: no site-packages at all, so any third-party import would fail.
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
        "import verifier.cli, verifier.pdf, verifier.receipts, verifier.proofs, verifier.report\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(SERVICE_PACKAGES | THIRD_PARTY)!r})\n"
        "print(bad)\n"
    )
    result = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# --- the copies agree with the service ----------------------------------------------------------------------------


def test_canonical_bytes_agree_with_the_rfc8785_package():
    rng = random.Random(8785)
    values: list = [0.0, -0.0, 1.0, 1e-05, 1e-7, 1e21, 1e20, 5e-324, 1.7976931348623157e308, 0.1, 96.9, 2**53 - 1]
    values += [rng.random() * 10 ** rng.randint(-30, 30) for _ in range(3000)]
    values += [x for x in (struct.unpack("d", rng.randbytes(8))[0] for _ in range(3000)) if x == x and abs(x) != 1e999]
    values.append(
        {
            "\u20ac": 1,
            "\r": 2,
            "a\u0001\x7f": "\U0001f600 \u2028",
            "é": [None, True, False, -5],
            "\U0001f600": 1,
            "\ufb01": 2,
            "x": {"b": 1.5, "a": []},
        }
    )
    for value in values:
        assert canonical.canonical_bytes(value) == rfc8785.dumps(value), value
    for bad, why in ((2**53, "I-JSON range"), (float("nan"), "NaN"), ({1: 2}, "not a string")):
        with pytest.raises(ValueError, match=why):
            canonical.canonical_bytes(bad)


def test_canonical_bytes_of_a_real_report_agree_with_the_rfc8785_package(seeded, acme_client, tmp_path):
    evidence = fetch_evidence(acme_client, seeded.session("call-intake-0001").id, tmp_path)
    report = json.loads(evidence.report.read_bytes())["report"]
    assert canonical.canonical_bytes(report) == rfc8785.dumps(report)


GROUP_ORDER = 2**252 + 27742317777372353535851937790883648493
RFC8032_VECTORS = [  # RFC 8032 §7.1, tests 1-3: (public key, message, signature)
    (
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
]


def test_ed25519_verifies_the_rfc8032_vectors_and_rejects_them_altered():
    for public, message, signature in RFC8032_VECTORS:
        key, msg, sig = bytes.fromhex(public), bytes.fromhex(message), bytes.fromhex(signature)
        assert ed25519.verify(key, msg, sig)
        assert not ed25519.verify(key, msg + b"x", sig)
        assert not ed25519.verify(key, msg, sig[:-1] + bytes([sig[-1] ^ 1]))


def test_ed25519_agrees_with_the_cryptography_package():
    rng = random.Random(25519)
    for _ in range(25):
        private = Ed25519PrivateKey.generate()
        public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        message = rng.randbytes(rng.randint(0, 300))
        signature = private.sign(message)
        candidates = [
            signature,
            signature[:32] + bytes(32),  # S = 0
            bytes([signature[0] ^ 4]) + signature[1:],  # R changed
            signature[:40] + bytes([signature[40] ^ 1]) + signature[41:],  # S changed
            signature[:32] + (int.from_bytes(signature[32:], "little") + GROUP_ORDER).to_bytes(32, "little"),  # S + L
            rng.randbytes(64),
        ]
        for candidate in candidates:
            try:
                private.public_key().verify(candidate, message)
                expected = True
            except Exception:
                expected = False
            assert ed25519.verify(public, message, candidate) is expected
    assert not ed25519.verify(b"\xff" * 32, b"m", bytes(64))
    assert not ed25519.verify(b"short", b"m", bytes(64))


def test_the_start_skew_agrees_with_the_service():
    assert verifier_events.START_SKEW == MAX_SKEW


def test_policy_sha256_agrees_with_the_service():
    for text in ("", "name: healthcare-default\nversion: 3\n", "é ü \U0001f600\r\n", "x" * 10_000):
        assert verifier_events.policy_sha256(text) == service_policy_sha256(text)


def test_event_fields_and_their_json_types_agree_with_the_service_schema():
    assert set(verifier_events.KIND_FIELDS) == set(service_events.KIND_FIELDS)
    assert set(verifier_events.COMMON_FIELDS) == set(service_events.COMMON_FIELDS)
    for name, expected in verifier_events.COMMON_FIELDS.items():
        schema = service_events.COMMON_FIELDS[name]
        found = type(schema["const"]) if "const" in schema else service_events.field_type(name)
        assert found is expected, name
    for kind, fields in verifier_events.KIND_FIELDS.items():
        assert set(fields) == set(service_events.KIND_FIELDS[kind]), kind
        for name, expected in fields.items():
            assert service_events.field_type(name) is expected, (kind, name)
        assert verifier_events.OPTIONAL_FIELDS.get(kind, set()) == service_events.OPTIONAL_FIELDS.get(kind, set())
    policy = service_events.KIND_FIELDS["session.started"]["policy"]
    assert set(verifier_events.POLICY_FIELDS) == set(policy["properties"]) == set(policy["required"])


# --- the one file -------------------------------------------------------------------------------------------------


def test_the_archive_is_reproducible_and_holds_only_the_verifier():
    first, second = build_verifier_pyz(), build_verifier_pyz()
    assert first == second
    assert first.startswith(b"#!/usr/bin/env python3\n")
    names = zipfile.ZipFile(io.BytesIO(first)).namelist()
    assert names == ["__main__.py", *sorted(f"verifier/{p.name}" for p in PACKAGE.glob("*.py"))]


def test_the_verifier_download_is_public_and_documented(db):
    response = Client().get("/api/v1/verifier/masker-verify.pyz")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == 'attachment; filename="masker-verify.pyz"'
    assert response["X-Content-SHA256"] == hashlib.sha256(response.content).hexdigest()
    assert response.content == build_verifier_pyz()
    schema = Client().get("/api/v1/schema", {"format": "json"}, HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    operation = json.loads(schema.content)["paths"]["/api/v1/verifier/masker-verify.pyz"]["get"]
    assert operation["operationId"] == "verifier_download"


def _login_client(account) -> Client:
    client = Client()
    client.force_login(Membership.objects.filter(account=account).select_related("user").first().user)
    return client


def test_the_pyz_downloaded_from_a_live_server_verifies_a_real_report_outside_the_checkout(
    live_db, live_server, tmp_path
):
    world = seed_demo()
    with urllib.request.urlopen(f"{live_server.url}/api/v1/verifier/masker-verify.pyz") as response:  # no login
        pyz = tmp_path / "masker-verify.pyz"
        pyz.write_bytes(response.read())
    session = world.sessions[0]
    evidence = fetch_evidence(_login_client(world.account), session.id, tmp_path / "evidence", pdf=True)
    system_python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
    for command, document in (("report", evidence.report), ("pdf", evidence.pdf)):
        code, out = run_pyz(
            pyz, command, document, "--events", evidence.events, "--keys", evidence.keys, python=system_python
        )
        assert code == 0, out
        assert "VERIFIED: report rep_" in out and "NOT checked" not in out
        assert "report.audit_integrity.seal.signature: Ed25519" in out
    code, out = run_pyz(pyz, "--help", python=system_python)
    assert code == 0 and "usage: python3 masker-verify.pyz" in out


def _oldest_promised_python() -> str:
    """An interpreter of Python 3.11, the oldest the README promises."""
    pyenv = sorted(glob.glob(str(Path.home() / ".pyenv/versions/3.11*/bin/python3.11")))
    candidates = [shutil.which("python3.11"), "/usr/bin/python3.11", *pyenv]
    for candidate in filter(None, candidates):
        result = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True, check=False
        )
        if result.returncode == 0 and result.stdout.strip() == "(3, 11)":
            return candidate
    pytest.fail("no Python 3.11 interpreter found (the README promises the verifier runs on 3.11)")


def test_the_pyz_runs_under_the_oldest_python_the_readme_promises(seeded, acme_client, tmp_path):
    evidence = fetch_evidence(acme_client, seeded.session("call-intake-0001").id, tmp_path / "evidence")
    pyz = tmp_path / "masker-verify.pyz"
    pyz.write_bytes(build_verifier_pyz())
    python = _oldest_promised_python()
    code, out = run_pyz(
        pyz, "report", evidence.report, "--events", evidence.events, "--keys", evidence.keys, python=python
    )
    assert code == 0, out
    assert "VERIFIED: report rep_" in out
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "Python 3.11 or newer" in readme
