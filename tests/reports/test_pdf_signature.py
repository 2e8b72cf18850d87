"""The PAdES signature PDF readers check: intact, over the whole file, by the configured certificate; the PDF stays
PDF/A-3b (markers) and keeps the embedded signed JSON, which the offline verifier accepts."""

import io
import json
import time

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.utils import timezone
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext
from weasyprint import HTML

from reports.domain import build_session_report, sign_report
from reports.pdf_signing import pdf_signing_certificate_pem, sign_pdf
from reports.rendering import render_report_html, render_report_json, render_report_pdf
from tests.reports.report_support import pdf_attachments, pdf_reader, verify_report_signature


def _trusting_the_service() -> ValidationContext:
    der = x509.load_pem_x509_certificate(pdf_signing_certificate_pem()).public_bytes(serialization.Encoding.DER)
    return ValidationContext(trust_roots=[asn1_x509.Certificate.load(der)])


def test_pdf_signature_is_intact_covers_the_whole_file_and_keeps_pdf_a_and_the_signed_json(seeded):
    session = seeded.sessions[2]
    report = sign_report(build_session_report(session, generated_at=timezone.now()))
    pdf = render_report_pdf(report)

    (embedded_signature,) = PdfFileReader(io.BytesIO(pdf)).embedded_signatures
    status = validate_pdf_signature(embedded_signature, _trusting_the_service())
    assert status.intact and status.valid and status.trusted
    assert status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    assert status.md_algorithm == "sha256"
    assert embedded_signature.sig_object["/SubFilter"] == "/ETSI.CAdES.detached"  # PAdES
    assert report.id in embedded_signature.sig_object["/Reason"]

    reader = pdf_reader(pdf)
    xmp = reader.trailer["/Root"]["/Metadata"].get_object().get_data().decode()
    assert 'pdfaid:part="3"' in xmp and 'pdfaid:conformance="B"' in xmp
    (embedded,) = pdf_attachments(pdf).values()
    assert embedded == render_report_json(report)
    verify_report_signature(json.loads(embedded)["report"])


def test_a_pdf_changed_after_signing_no_longer_validates(seeded):
    pdf = render_report_pdf(sign_report(build_session_report(seeded.sessions[0], generated_at=timezone.now())))
    tampered = bytearray(pdf)
    tampered[len(pdf) // 3] ^= 0x01  # one bit in the body the signature covers (the signature is appended)
    (embedded_signature,) = PdfFileReader(io.BytesIO(bytes(tampered)), strict=False).embedded_signatures
    status = validate_pdf_signature(embedded_signature, _trusting_the_service())
    assert not status.intact


def test_signing_adds_well_under_a_second(seeded):
    report = sign_report(build_session_report(seeded.sessions[0], generated_at=timezone.now()))
    render_report_pdf(report)  # warms the signer (key and certificate read once per process)
    unsigned = HTML(string=render_report_html(report)).write_pdf(pdf_variant="pdf/a-3b")
    started = time.perf_counter()
    signed = sign_pdf(unsigned, reason="timing")
    assert time.perf_counter() - started < 0.5
    assert signed.startswith(unsigned)  # an incremental update: the signed bytes are the rendered ones, plus
