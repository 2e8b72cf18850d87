"""Helpers of the independent-verification tests (issue 6): downloading evidence over HTTP, running the offline
verifier, and the RFC 9162 reference implementation (written from the RFC alone, in tests/audit/test_merkle.py)."""

import io
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from django.test import Client

from tests.verifier import test_merkle as _rfc9162  # the reference implementation; shares nothing with it
from verifier import cli as verify

ref_leaf = _rfc9162._ref_leaf
ref_mth = _rfc9162._ref_mth
ref_path = _rfc9162._ref_path
ref_subproof = _rfc9162._ref_subproof
ref_verify_inclusion = _rfc9162._ref_verify_inclusion
ref_verify_consistency = _rfc9162._ref_verify_consistency

ROOT = Path(__file__).resolve().parents[2]
VERIFY_PY = ROOT / "audit" / "verify.py"

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


def fetch_evidence(client: Client, session_id: str, directory: Path, *, pdf: bool = False) -> Evidence:
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
    """Run the verifier's CLI in this process; returns (exit status, printed output)."""
    out = io.StringIO()
    code = verify.main([str(a) for a in args], out=out)
    return code, out.getvalue()


def run_verifier_process(*args: object, python_prelude: str = "", cwd: Path | None = None) -> tuple[int, str]:
    """Run ``audit/verify.py`` as its own process, the way an auditor does (``-I``: isolated, so neither the
    project nor PYTHONPATH is importable). ``python_prelude`` runs first (e.g. to hide an optional package)."""
    code = f"{python_prelude}\nimport runpy, sys\nsys.argv = ['verify.py', *sys.argv[1:]]\n"
    code += f"runpy.run_path({str(VERIFY_PY)!r}, run_name='__main__')"
    result = subprocess.run(
        [sys.executable, "-I", "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd or Path("/"),
        timeout=120,
    )
    return result.returncode, result.stdout + result.stderr


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
