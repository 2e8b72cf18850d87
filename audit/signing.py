"""Ed25519 signatures over RFC 8785 bytes, for reports and session seals (SPEC §6).

The current private key comes from ``MASKER_SIGNING_KEY`` (PEM text), or from a PEM file
(``MASKER_SIGNING_KEY_FILE``, default ``<MASKER_KEYS_DIR>/signing-key.pem``). A development key is created on
first use when DEBUG is on (or ``MASKER_CREATE_DEV_KEY=1``); otherwise a missing key is a configuration error.
Retired public keys (PEM files in ``<MASKER_KEYS_DIR>/retired/``) stay published so old reports still verify.
The key id is ``ed25519-`` plus the first 16 hex digits of SHA-256 over the raw 32-byte public key.
"""

import base64
import contextlib
import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from audit.canonical import canonical_bytes

ALG = "Ed25519"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key: Ed25519PublicKey) -> str:
    return "ed25519-" + hashlib.sha256(raw_public(public_key)).hexdigest()[:16]


@dataclass(frozen=True)
class SigningKey:
    private_key: Ed25519PrivateKey
    kid: str


def _key_file() -> Path:
    return Path(settings.MASKER_SIGNING_KEY_FILE or Path(settings.MASKER_KEYS_DIR) / "signing-key.pem")


def _retired_dir() -> Path:
    return Path(settings.MASKER_KEYS_DIR) / "retired"


def _create_dev_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)


@lru_cache(maxsize=1)
def current_key() -> SigningKey:
    """The key that signs new reports and seals (cached per process; ``reset_key_cache`` after rotation)."""
    if settings.MASKER_SIGNING_KEY:
        pem = settings.MASKER_SIGNING_KEY.encode()
    else:
        path = _key_file()
        if not path.exists():
            if not (settings.DEBUG or os.environ.get("MASKER_CREATE_DEV_KEY") == "1"):
                raise ImproperlyConfigured(f"No signing key: set MASKER_SIGNING_KEY or create {path}")
            with contextlib.suppress(FileExistsError):  # another process created it first
                _create_dev_key(path)
        pem = path.read_bytes()
    private_key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(private_key, Ed25519PrivateKey):
        raise ImproperlyConfigured("The signing key must be an Ed25519 private key")
    return SigningKey(private_key=private_key, kid=key_id(private_key.public_key()))


def reset_key_cache() -> None:
    current_key.cache_clear()


def retired_public_keys() -> list[Ed25519PublicKey]:
    keys = []
    directory = _retired_dir()
    if directory.is_dir():
        for path in sorted(directory.glob("*.pem")):
            key = serialization.load_pem_public_key(path.read_bytes())
            if isinstance(key, Ed25519PublicKey):
                keys.append(key)
    return keys


def rotate_key() -> tuple[str, str]:
    """Retire the file-based current key (its public half stays published) and create a new one.

    Returns (old kid, new kid). Keys given through ``MASKER_SIGNING_KEY`` are rotated by the operator instead.
    """
    if settings.MASKER_SIGNING_KEY:
        raise ImproperlyConfigured("MASKER_SIGNING_KEY is set: rotate it in the environment, retire the old key")
    old = current_key()
    retired = _retired_dir()
    retired.mkdir(parents=True, exist_ok=True)
    (retired / f"{old.kid}.pem").write_bytes(
        old.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    path = _key_file()
    path.unlink()
    _create_dev_key(path)
    reset_key_cache()
    return old.kid, current_key().kid


def sign_object(obj: dict[str, Any]) -> dict[str, str]:
    """``{"alg", "kid", "sig"}`` over the RFC 8785 bytes of ``obj`` (which must not contain ``signature``)."""
    if "signature" in obj:
        raise ValueError("sign the object without its signature field")
    key = current_key()
    signature = key.private_key.sign(canonical_bytes(obj))
    return {"alg": ALG, "kid": key.kid, "sig": b64url(signature)}


def jwks() -> dict[str, list[dict[str, str]]]:
    """Current and retired public keys as a JWKS of RFC 8037 OKP keys."""
    current = current_key().private_key.public_key()
    entries = [(current, "current")]
    seen = {key_id(current)}
    for key in retired_public_keys():
        if key_id(key) not in seen:
            seen.add(key_id(key))
            entries.append((key, "retired"))
    return {
        "keys": [
            {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw_public(k)), "kid": key_id(k), "use": "sig", "status": s}
            for k, s in entries
        ]
    }
