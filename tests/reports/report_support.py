"""Helpers for the report tests: reading PDFs back (pdftotext, pypdf) and the audit schema validator."""

import base64
import io
import json
import subprocess
import tempfile
from datetime import datetime, timedelta
from functools import cache

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from jsonschema import Draft202012Validator
from pypdf import PdfReader

from audit.signing import jwks
from audit.timestamps import format_ts
from reports.views import SCHEMA_FILE
from tests.conftest import T0

REPORT_ID = r"rep_[0-9A-HJKMNP-TV-Z]{26}"

# Policies for the Safe Harbor matrix tests (besides audit.demo's full default and audio clinic policies).
DATES_PARTIAL = """\
name: dates-partial
version: 1
media: text
entities:
  NAME: {enabled: true, action: tokenize}
  DOB: {enabled: true, action: tokenize}
  DATE: {enabled: false, action: tokenize}
  ADDRESS: {enabled: true, action: redact}
  PHONE: {enabled: true, action: tokenize}
"""

PASSTHROUGH = """\
name: passthrough-kinds
version: 2
media: text
entities:
  NAME: {enabled: true, action: passthrough}
  PHONE: {enabled: true, action: passthrough}
  EMAIL: {enabled: true, action: tokenize}
  ACCOUNT: {enabled: true, action: tokenize}
  CREDIT_CARD: {enabled: true, action: passthrough}
  OTHER_ID: {enabled: true, action: passthrough}
"""

AUDIO_NOT_KEPT = """\
name: audio-not-kept
version: 1
media: audio
audio: {retained: false, forwarded: false}
entities:
  NAME: {enabled: true, action: tokenize}
"""

AUDIO_FORWARDED = AUDIO_NOT_KEPT.replace("forwarded: false", "forwarded: true")


@cache
def schema_validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


# The 18 HIPAA Safe Harbor categories (45 CFR 164.514(b)(2)(i)) as the schema keys them, in order: written out
# here, not imported from the code under test.
SAFE_HARBOR_KEYS = (
    "A_names",
    "B_geo",
    "C_dates",
    "D_phone",
    "E_fax",
    "F_email",
    "G_ssn",
    "H_mrn",
    "I_health_plan",
    "J_account",
    "K_license",
    "L_vehicle",
    "M_device",
    "N_url",
    "O_ip",
    "P_biometric",
    "Q_photo",
    "R_other",
)


def schema_errors(document: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in schema_validator().iter_errors(document)]


def pdf_text(pdf: bytes, *, page: int | None = None, layout: bool = True) -> str:
    """Text of the PDF (or of one 1-based page) as pdftotext extracts it, layout kept (or in reading order)."""
    with tempfile.NamedTemporaryFile(suffix=".pdf") as handle:
        handle.write(pdf)
        handle.flush()
        pages = ["-f", str(page), "-l", str(page)] if page else []
        return subprocess.run(
            ["pdftotext", *(["-layout"] if layout else []), *pages, handle.name, "-"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout


def pdf_reader(pdf: bytes) -> PdfReader:
    return PdfReader(io.BytesIO(pdf))


def pdf_attachments(pdf: bytes) -> dict[str, bytes]:
    return {name: contents[0] for name, contents in pdf_reader(pdf).attachments.items()}


def public_key_of(kid: str):
    """The published Ed25519 public key with this kid (from the same JWKS the API serves)."""
    for key in jwks()["keys"]:
        if key["kid"] == kid:
            raw = base64.urlsafe_b64decode(key["x"] + "=" * (-len(key["x"]) % 4))
            return Ed25519PublicKey.from_public_bytes(raw)
    raise LookupError(kid)


def verify_report_signature(report: dict) -> None:
    """Raises ``cryptography.exceptions.InvalidSignature`` unless ``signature`` covers the rest of the report."""
    signature = report["signature"]
    unsigned = {key: value for key, value in report.items() if key != "signature"}
    sig = base64.urlsafe_b64decode(signature["sig"] + "=" * (-len(signature["sig"]) % 4))
    public_key_of(signature["kid"]).verify(sig, rfc8785.dumps(unsigned))


def many_events(n: int, *, start: datetime = T0) -> list[dict]:
    """A batch of ``n`` client events: redactions, egress, rehydrations, with an occasional leak."""
    events = []
    for i in range(n):
        ts, turn = format_ts(start + timedelta(milliseconds=10 * i)), i // 5
        r = i % 5
        if r < 3:
            events.append(
                {
                    "ts": ts,
                    "kind": "phi.redacted",
                    "turn": turn,
                    "pass": "regex",
                    "entity_kind": "PHONE",
                    "span": [0, 9],
                    "action": "tokenize",
                    "token_kind": "MSKV1",
                    "kid": "K",
                }
            )
        elif r == 3:
            events.append(
                {
                    "ts": ts,
                    "kind": "egress.forwarded",
                    "turn": turn,
                    "hop": "llm",
                    "vendor": "openai",
                    "baa": True,
                    "retention_days": 0,
                }
            )
        elif i % 100 == 4:
            events.append({"ts": ts, "kind": "leak.detected", "turn": turn, "entity_kind": "PHONE", "stage": "egress"})
        else:
            events.append(
                {"ts": ts, "kind": "phi.rehydrated", "turn": turn, "entity_kind": "PHONE", "token_kind": "MSKV1"}
            )
    return events
