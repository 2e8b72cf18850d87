"""The PAdES signature PDF readers check: intact, over the whole file, by the configured certificate; the PDF stays
PDF/A-3b (markers) and keeps the embedded signed JSON, which the offline verifier accepts."""

import io
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from asn1crypto import keys as asn1_keys
from asn1crypto import tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.utils import timezone
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext
from weasyprint import HTML

from reports.domain import build_session_report, sign_report
from reports.pdf_signing import pdf_signer, pdf_signing_certificate_pem, sign_pdf
from reports.rendering import render_report_html, render_report_json, render_report_pdf
from tests.reports.report_support import pdf_attachments, pdf_reader, verify_report_signature


def _trusting_the_service(*others: asn1_x509.Certificate) -> ValidationContext:
    der = x509.load_pem_x509_certificate(pdf_signing_certificate_pem()).public_bytes(serialization.Encoding.DER)
    return ValidationContext(trust_roots=[asn1_x509.Certificate.load(der), *others])


def test_pdf_signature_is_intact_covers_the_whole_file_and_keeps_pdf_a_and_the_signed_json(seeded):
    session = seeded.session("call-rehydration-0003")
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
    pdf = render_report_pdf(
        sign_report(build_session_report(seeded.session("call-intake-0001"), generated_at=timezone.now()))
    )
    tampered = bytearray(pdf)
    tampered[len(pdf) // 3] ^= 0x01  # one bit in the body the signature covers (the signature is appended)
    (embedded_signature,) = PdfFileReader(io.BytesIO(bytes(tampered)), strict=False).embedded_signatures
    status = validate_pdf_signature(embedded_signature, _trusting_the_service())
    assert not status.intact


def test_signing_adds_well_under_a_second(seeded):
    report = sign_report(build_session_report(seeded.session("call-intake-0001"), generated_at=timezone.now()))
    render_report_pdf(report)  # warms the signer (key and certificate read once per process)
    unsigned = HTML(string=render_report_html(report)).write_pdf(pdf_variant="pdf/a-3b")
    started = time.perf_counter()
    signed = sign_pdf(unsigned, reason="timing")
    assert time.perf_counter() - started < 0.5
    assert signed.startswith(unsigned)  # an incremental update: the signed bytes are the rendered ones, plus


@pytest.fixture
def local_tsa():
    """An RFC 3161 timestamping authority on 127.0.0.1 (pyHanko's DummyTimeStamper behind an HTTP server), and its
    certificate (extended key usage timeStamping)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # pyHanko's test TSA signs with RSA only
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test TSA")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .sign(key, hashes.SHA256())
    )
    tsa_cert = asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))
    tsa_key = asn1_keys.PrivateKeyInfo.load(
        key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    stamper = DummyTimeStamper(tsa_cert=tsa_cert, tsa_key=tsa_key)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            request = tsp.TimeStampReq.load(self.rfile.read(int(self.headers["Content-Length"])))
            body = stamper.request_tsa_response(request).dump()
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", tsa_cert
    server.shutdown()
    server.server_close()


def test_with_a_timestamping_authority_the_signature_carries_a_trusted_time(seeded, settings, local_tsa):
    settings.MASKER_TSA_URL, tsa_cert = local_tsa
    pdf = render_report_pdf(
        sign_report(build_session_report(seeded.session("call-intake-0001"), generated_at=timezone.now()))
    )
    (embedded_signature,) = PdfFileReader(io.BytesIO(pdf)).embedded_signatures
    status = validate_pdf_signature(embedded_signature, _trusting_the_service(tsa_cert))
    assert status.intact and status.valid and status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    assert status.timestamp_validity is not None  # PAdES B-T
    assert status.timestamp_validity.intact and status.timestamp_validity.valid and status.timestamp_validity.trusted
    assert abs(status.timestamp_validity.timestamp - datetime.now(UTC)) < timedelta(minutes=5)


def test_signing_works_whatever_the_length_of_the_certificate(settings, tmp_path):
    # The room reserved for the signature depends on the certificates' length; an odd length must still sign.
    lengths = set()
    for attempt in range(40):
        settings.MASKER_KEYS_DIR = tmp_path / str(attempt)
        signer = pdf_signer()
        length = len(signer.signing_cert.dump())
        if length % 2 in lengths:
            continue
        lengths.add(length % 2)
        signed = sign_pdf(HTML(string="<p>report</p>").write_pdf(pdf_variant="pdf/a-3b"), reason="parity")
        (embedded_signature,) = PdfFileReader(io.BytesIO(signed)).embedded_signatures
        assert validate_pdf_signature(embedded_signature, _trusting_the_service()).intact
        if lengths == {0, 1}:
            return
    pytest.fail(f"no certificate of each parity in 40 tries: {lengths}")
