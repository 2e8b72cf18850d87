"""Helpers of the offline verifier's tests: downloading evidence over HTTP, running the verifier (in this process
or as the downloaded ``masker-verify.pyz`` outside the checkout), and the RFC 9162 reference implementation
(written from the RFC alone, in tests/verifier/test_merkle.py)."""

import io
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.test import Client
from django.utils import timezone

from audit.models import Session
from audit.verifier_download import build_verifier_pyz
from reports.session_report import build_session_report, sign_report
from tests.verifier import test_merkle as _rfc9162  # the reference implementation; shares nothing with verifier/
from verifier import cli

ref_leaf = _rfc9162._ref_leaf
ref_mth = _rfc9162._ref_mth
ref_path = _rfc9162._ref_path
ref_subproof = _rfc9162._ref_subproof
ref_verify_inclusion = _rfc9162._ref_verify_inclusion
ref_verify_consistency = _rfc9162._ref_verify_consistency

__all__ = [
    "ref_leaf",
    "ref_mth",
    "ref_path",
    "ref_subproof",
    "ref_verify_consistency",
    "ref_verify_inclusion",
]


def download(client: Client, url: str, **headers) -> bytes:
    """GET ``url`` and return the body (streamed or not); fails the test on any status but 200."""
    response = client.get(url, **headers)
    assert response.status_code == 200, (url, response.status_code, getattr(response, "content", b"")[:300])
    return b"".join(response.streaming_content) if response.streaming else response.content


@dataclass(frozen=True)
class Evidence:
    """What an auditor downloads for one session, saved as files."""

    report: Path
    events: Path
    keys: Path
    pdf: Path | None = None


def issued_report(session: Session):
    """The session's signed report as the service issues it (the real domain), without going through HTTP."""
    return sign_report(build_session_report(session, generated_at=timezone.now()))


def fetch_evidence(client: Client, session_id: str, directory: Path, *, pdf: bool = False) -> Evidence:
    """Download a session's report (JSON, and PDF if asked), events and keys into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    base = f"/api/v1/sessions/{session_id}"
    report = directory / f"masker-report-{session_id}.json"
    report.write_bytes(download(client, f"{base}/report"))
    events = directory / f"masker-events-{session_id}.ndjson"
    events.write_bytes(download(client, f"{base}/events"))
    keys = directory / "keys.json"
    keys.write_bytes(download(Client(), "/api/v1/keys"))  # public: fetched without credentials
    pdf_path = None
    if pdf:
        pdf_path = directory / f"masker-report-{session_id}.pdf"
        pdf_path.write_bytes(download(client, f"{base}/report?format=pdf"))
    return Evidence(report=report, events=events, keys=keys, pdf=pdf_path)


def run_verifier(*args: object) -> tuple[int, str]:
    """Run the verifier's command line in this process; returns (exit status, printed output)."""
    out = io.StringIO()
    code = cli.main([str(a) for a in args], out=out)
    return code, out.getvalue()


def run_pyz(pyz: Path, *args: object, python: str = sys.executable, stdin: bytes | None = None) -> tuple[int, str]:
    """Run ``pyz`` the way an auditor does: its own process, isolated (``-I``: neither the checkout nor PYTHONPATH
    importable), from an empty temporary directory outside the checkout."""
    with tempfile.TemporaryDirectory(prefix="auditor-") as cwd:
        result = subprocess.run(
            [python, "-I", str(pyz), *map(str, args)],
            capture_output=True,
            cwd=cwd,
            input=stdin,
            timeout=120,
            check=False,
        )
    return result.returncode, (result.stdout + result.stderr).decode("utf-8")


def run_verifier_process(*args: object, python: str = sys.executable, stdin: bytes | None = None) -> tuple[int, str]:
    """Build ``masker-verify.pyz`` into a temporary directory and run it (``run_pyz``)."""
    with tempfile.TemporaryDirectory(prefix="verifier-") as directory:
        pyz = Path(directory) / "masker-verify.pyz"
        pyz.write_bytes(build_verifier_pyz())
        return run_pyz(pyz, *args, python=python, stdin=stdin)


def read_lines(path: Path) -> list[bytes]:
    """The NDJSON file's lines, each with its newline."""
    return path.read_bytes().splitlines(keepends=True)


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(lines))
    return path


def edit_report(source: Path, target: Path, edit) -> Path:
    """Write ``target``: the report of ``source`` after ``edit(report_object)``, indented as the API does."""
    document = json.loads(source.read_bytes())
    edit(document["report"])
    target.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return target


def flip_byte(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]
