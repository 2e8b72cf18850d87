"""The PAdES signature on every report PDF, so that a PDF reader shows "signed, unmodified since signing".

The report's own integrity is the Ed25519 signature of the embedded JSON (``audit.signing``), which only a Masker
verifier reads. A PDF reader checks a CMS signature over the file's bytes instead: pyHanko adds one as an
incremental update (PAdES B-B; B-T with an RFC 3161 timestamp when ``MASKER_TSA_URL`` is set), which leaves the
PDF/A-3b markers and the embedded JSON untouched.

Where the signing key and certificate come from:

- production: ``MASKER_PDF_SIGNING_KEY_FILE`` (PEM private key, RSA or ECDSA, unencrypted) and
  ``MASKER_PDF_SIGNING_CERT_FILE`` (PEM: the signing certificate first, then its chain, which is embedded);
- development (DEBUG on, or ``MASKER_CREATE_DEV_KEY=1``): when neither is set, ``pdf-signing-key.pem`` and a
  self-signed ``pdf-signing-cert.pem`` are created in ``MASKER_KEYS_DIR`` on first use, next to the Ed25519 key.
  A reader shows such a signature as intact but from an unknown signer until the certificate is trusted.
"""

import contextlib
import io
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers, timestamps
from pyhanko_certvalidator.registry import SimpleCertificateStore

DEV_KEY_NAME = "pdf-signing-key.pem"
DEV_CERT_NAME = "pdf-signing-cert.pem"
FIELD_NAME = "MaskerReportSignature"
DEV_SUBJECT = "Masker Compliance report signing (development)"


def _paths() -> tuple[Path, Path, bool]:
    """(key file, certificate file, whether they are the development pair)."""
    key_file, cert_file = settings.MASKER_PDF_SIGNING_KEY_FILE, settings.MASKER_PDF_SIGNING_CERT_FILE
    if key_file or cert_file:
        if not (key_file and cert_file):
            raise ImproperlyConfigured("Set both MASKER_PDF_SIGNING_KEY_FILE and MASKER_PDF_SIGNING_CERT_FILE")
        return Path(key_file), Path(cert_file), False
    keys_dir = Path(settings.MASKER_KEYS_DIR)
    return keys_dir / DEV_KEY_NAME, keys_dir / DEV_CERT_NAME, True


def _create_dev_pair(key_path: Path, cert_path: Path) -> None:
    """An ECDSA P-256 key and a self-signed certificate for it (10 years), written once (never overwritten)."""
    private_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, DEV_SUBJECT),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Masker Compliance"),
        ]
    )
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(private_key, hashes.SHA256())
    )
    key_path.parent.mkdir(parents=True, exist_ok=True)
    key_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # The certificate is written first: a reader of the pair waits for the key, which then has its certificate.
    for path, data, mode in (
        (cert_path, certificate.public_bytes(serialization.Encoding.PEM), 0o644),
        (key_path, key_pem, 0o600),
    ):
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)


def _load_signer(key_path: Path, cert_path: Path) -> signers.SimpleSigner:
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        certificates = x509.load_pem_x509_certificates(cert_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ImproperlyConfigured(
            f"The PDF signing key or certificate cannot be read ({type(exc).__name__})"
        ) from None
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if key.public_key().public_bytes(*spki) != certificates[0].public_key().public_bytes(*spki):
        raise ImproperlyConfigured("The PDF signing certificate (the first in its file) is not for the signing key")
    der_key = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    chain = [asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)) for cert in certificates]
    return signers.SimpleSigner(
        signing_cert=chain[0],
        signing_key=asn1_keys.PrivateKeyInfo.load(der_key),
        cert_registry=SimpleCertificateStore.from_certs(chain[1:]),
    )


_lock = threading.Lock()
_cached: tuple[tuple, signers.SimpleSigner] | None = None


def pdf_signer() -> signers.SimpleSigner:
    """The signer for report PDFs, cached per process and re-read when its files change."""
    global _cached
    key_path, cert_path, development = _paths()
    if development and not key_path.exists():
        if not (settings.DEBUG or os.environ.get("MASKER_CREATE_DEV_KEY") == "1"):
            raise ImproperlyConfigured(
                "No PDF signing key: set MASKER_PDF_SIGNING_KEY_FILE and MASKER_PDF_SIGNING_CERT_FILE"
            )
        _create_dev_pair(key_path, cert_path)
    try:
        source = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in (key_path, cert_path))
    except FileNotFoundError:
        raise ImproperlyConfigured(f"The PDF signing key or certificate file is missing ({key_path.parent})") from None
    cached = _cached
    if cached is not None and cached[0] == source:
        return cached[1]
    with _lock:
        signer = _load_signer(key_path, cert_path)
        _cached = (source, signer)
    return signer


def pdf_signing_certificate_pem() -> bytes:
    """The certificate report PDFs are signed with (PEM): what to trust in a PDF reader or a validator."""
    return x509.load_der_x509_certificate(pdf_signer().signing_cert.dump()).public_bytes(serialization.Encoding.PEM)


def _timestamper() -> timestamps.TimeStamper | None:
    url = settings.MASKER_TSA_URL
    return timestamps.HTTPTimeStamper(url, timeout=10) if url else None


class _MetadataKeepingWriter(IncrementalPdfFileWriter):
    """An incremental writer that leaves the document's XMP packet and Info dictionary as WeasyPrint wrote them:
    pyHanko would otherwise write a new XMP packet without the PDF/A-3b identification and creation date."""

    def _update_meta(self) -> None:
        return None


def sign_pdf(pdf: bytes, *, reason: str) -> bytes:
    """``pdf`` with a PAdES signature over the whole file (an invisible signature field, incremental update)."""
    writer = _MetadataKeepingWriter(io.BytesIO(pdf), strict=False)
    meta = signers.PdfSignatureMetadata(
        field_name=FIELD_NAME,
        subfilter=fields.SigSeedSubFilter.PADES,
        md_algorithm="sha256",
        reason=reason,
        location="Masker Compliance",
        use_pades_lta=False,
    )
    signer, timestamper = pdf_signer(), _timestamper()
    # Reserving the signature's room up front spares pyHanko a dry-run signature to measure it (half the cost):
    # the certificates it embeds, the signature and signed attributes, and a timestamp token with its chain.
    certificates = sum(len(cert.dump()) for cert in (signer.signing_cert, *signer.cert_registry))
    needed = 4096 + certificates + (16384 if timestamper else 0)
    reserved = -(-needed // 512) * 512  # pyHanko needs an even count: round up to whole 512-byte blocks

    output = io.BytesIO()
    signers.PdfSigner(meta, signer=signer, timestamper=timestamper).sign_pdf(
        writer, bytes_reserved=reserved, output=output
    )
    return output.getvalue()
