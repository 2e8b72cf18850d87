"""The offline verifier as one file: ``masker-verify.pyz``, a zip application of the ``verifier`` package.

Built from the package's sources the server runs with, so the file an auditor downloads is exactly the verifier
this release ships. The bytes are reproducible: files in sorted order, fixed timestamps and permissions, so the
same sources always give the same archive and the same SHA-256 (served as ``X-Content-SHA256``). Built once per
process, on first request.
"""

import hashlib
import io
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import verifier

FILENAME = "masker-verify.pyz"
_SHEBANG = b"#!/usr/bin/env python3\n"
_MAIN = b"import sys\n\nfrom verifier.cli import main\n\nsys.exit(main())\n"
_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


@dataclass(frozen=True)
class VerifierArchive:
    content: bytes
    sha256: str


def _entry(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)


def build_verifier_pyz() -> bytes:
    """The archive's bytes: ``__main__.py`` (runs ``verifier.cli.main``) and every ``verifier/*.py``, behind a
    ``python3`` shebang. ``python3 masker-verify.pyz --help`` runs it."""
    package = Path(verifier.__file__).parent
    buffer = io.BytesIO()
    buffer.write(_SHEBANG)
    with zipfile.ZipFile(buffer, "w") as archive:
        _entry(archive, "__main__.py", _MAIN)
        for path in sorted(package.glob("*.py")):
            _entry(archive, f"verifier/{path.name}", path.read_bytes())
    return buffer.getvalue()


@cache
def verifier_archive() -> VerifierArchive:
    """The archive of this process's verifier sources, built on first use."""
    content = build_verifier_pyz()
    return VerifierArchive(content=content, sha256=hashlib.sha256(content).hexdigest())
