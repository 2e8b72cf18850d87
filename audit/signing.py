"""Ed25519 signatures over RFC 8785 bytes, for reports and session seals (docs/audit-log.md, signatures).

Where the current private key comes from, first match wins:

1. ``MASKER_SIGNING_KEY``: PKCS#8 PEM text, or the raw 32-byte private key (seed) in base64url or base64;
2. a PEM file: ``MASKER_SIGNING_KEY_FILE``, default ``<MASKER_KEYS_DIR>/signing-key.pem``. When it does not exist
   and DEBUG is on (or ``MASKER_CREATE_DEV_KEY=1``), a development key is created there (mode 0600) on first use;
   otherwise a missing key is a configuration error, never a silent fresh key.

Retired public keys (PEM files in ``<MASKER_KEYS_DIR>/retired/``) stay published in the JWKS, so reports signed
before a rotation still verify. The key id is ``ed25519-`` plus the first 16 hex digits of SHA-256 over the raw
32-byte public key: a hash of the public key, so anyone holding the key can recompute it.

The loaded key is cached per process and re-read when its source changes (the key file's inode, size or mtime, or
the environment value): after ``rotate_key`` in one process (``manage.py rotate_signing_key``), every other
worker signs with the new key and publishes it from its next request on, instead of serving a JWKS that lacks the
key its neighbours sign with.
"""

import base64
import binascii
import contextlib
import hashlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from audit.canonical import canonical_bytes

ALG = "Ed25519"


def b64url(data: bytes) -> str:
    """base64url without padding (RFC 7515 §2), as in JWK ``x`` and in ``signature.sig``."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key: Ed25519PublicKey) -> str:
    """``ed25519-`` + the first 16 hex digits of SHA-256(raw public key)."""
    return "ed25519-" + hashlib.sha256(raw_public(public_key)).hexdigest()[:16]


def public_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True)
class SigningKey:
    private_key: Ed25519PrivateKey
    kid: str

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()


def _key_file() -> Path:
    return Path(settings.MASKER_SIGNING_KEY_FILE or Path(settings.MASKER_KEYS_DIR) / "signing-key.pem")


def _retired_dir() -> Path:
    return Path(settings.MASKER_KEYS_DIR) / "retired"


def _private_pem(private_key: Ed25519PrivateKey) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``data``; raises ``FileExistsError`` if it exists (never overwrites a key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _create_dev_key(path: Path) -> None:
    _write_new(path, _private_pem(Ed25519PrivateKey.generate()), 0o600)


def _parse_private(material: bytes, origin: str) -> Ed25519PrivateKey:
    """An Ed25519 private key from PEM, or from a base64url/base64 raw 32-byte seed. Errors never echo the key."""
    text = material.strip()
    try:
        if text.startswith(b"-----BEGIN"):
            key = serialization.load_pem_private_key(text, password=None)
        else:
            padded = text + b"=" * (-len(text) % 4)
            seed = base64.b64decode(padded.replace(b"-", b"+").replace(b"_", b"/"), validate=True)
            if len(seed) != 32:
                raise ValueError("not 32 bytes")
            key = Ed25519PrivateKey.from_private_bytes(seed)
    except (ValueError, TypeError, binascii.Error):
        raise ImproperlyConfigured(
            f"{origin} is not a usable Ed25519 private key (expected unencrypted PKCS#8 PEM or a base64url 32-byte "
            "seed)"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ImproperlyConfigured(f"{origin} must be an Ed25519 private key")
    return key


_cache_lock = threading.Lock()
_cached: tuple[tuple, SigningKey] | None = None


def _source() -> tuple:
    """What identifies the current key material without reading it: the env value, or the file's identity."""
    if settings.MASKER_SIGNING_KEY:
        return ("env", settings.MASKER_SIGNING_KEY)
    path = _key_file()
    try:
        st = path.stat()
    except FileNotFoundError:
        return ("missing", str(path))
    return ("file", str(path), st.st_ino, st.st_size, st.st_mtime_ns)


def _load(source: tuple) -> SigningKey:
    if source[0] == "env":
        private_key = _parse_private(source[1].encode(), "MASKER_SIGNING_KEY")
    else:
        path = _key_file()
        if source[0] == "missing":
            if not (settings.DEBUG or os.environ.get("MASKER_CREATE_DEV_KEY") == "1"):
                raise ImproperlyConfigured(f"No signing key: set MASKER_SIGNING_KEY or create {path}")
            with contextlib.suppress(FileExistsError):  # another process created it first
                _create_dev_key(path)
        private_key = _parse_private(path.read_bytes(), f"The signing key file {path}")
    return SigningKey(private_key=private_key, kid=key_id(private_key.public_key()))


def current_key() -> SigningKey:
    """The key that signs new reports and seals. Cached per process; re-read when its source changes."""
    global _cached
    source = _source()
    cached = _cached
    if cached is not None and cached[0] == source:
        return cached[1]
    with _cache_lock:
        key = _load(source)
        # A dev key just created changes the source (missing -> file): cache under the file's identity.
        _cached = (_source() if source[0] == "missing" else source, key)
    return key


def reset_key_cache() -> None:
    """Forget the cached key (tests that swap settings; not needed after a rotation, which changes the file)."""
    global _cached, _published
    _cached = _published = None


def retired_public_keys() -> list[Ed25519PublicKey]:
    """The public keys in ``<MASKER_KEYS_DIR>/retired/*.pem``, by file name. A file that is not an Ed25519 public
    key is a configuration error: silently dropping it would unpublish a key that old reports need."""
    keys = []
    directory = _retired_dir()
    if directory.is_dir():
        for path in sorted(directory.glob("*.pem")):
            try:
                key = serialization.load_pem_public_key(path.read_bytes())
            except ValueError:
                raise ImproperlyConfigured(f"Retired key {path.name} is not a PEM public key") from None
            if not isinstance(key, Ed25519PublicKey):
                raise ImproperlyConfigured(f"Retired key {path.name} is not an Ed25519 public key")
            keys.append(key)
    return keys


def retire_public_key(public_key: Ed25519PublicKey) -> Path:
    """Publish ``public_key`` as retired (``retired/<kid>.pem``); idempotent. Returns the file."""
    path = _retired_dir() / f"{key_id(public_key)}.pem"
    with contextlib.suppress(FileExistsError):
        _write_new(path, public_pem(public_key), 0o644)
    return path


def rotate_key() -> tuple[str, str]:
    """Retire the file-based current key (its public half stays published) and switch to a new one.

    Order matters for a crash at any point: the old public key is published first, then the new private key is
    written beside the key file and moved over it atomically (``os.replace``), so the key file always holds a
    whole key and no key that ever signed goes unpublished. Returns (old kid, new kid).

    A key given through ``MASKER_SIGNING_KEY`` is rotated by the operator instead (retire the current key with
    ``manage.py rotate_signing_key --retire-current``, then replace the variable); this raises
    ``ImproperlyConfigured`` then.
    """
    if settings.MASKER_SIGNING_KEY:
        raise ImproperlyConfigured(
            "MASKER_SIGNING_KEY is set: publish the current key as retired (rotate_signing_key --retire-current), "
            "then replace MASKER_SIGNING_KEY in the environment"
        )
    old = current_key()
    retire_public_key(old.public_key)
    path = _key_file()
    staging = path.with_name(f".{path.name}.{os.getpid()}.new")
    with contextlib.suppress(FileNotFoundError):
        staging.unlink()
    _create_dev_key(staging)
    os.replace(staging, path)
    new = current_key()
    return old.kid, new.kid


def sign_object(obj: dict[str, Any]) -> dict[str, str]:
    """``{"alg", "kid", "sig"}`` over the RFC 8785 bytes of ``obj`` (which must not contain ``signature``);
    ``sig`` is base64url without padding of the 64-byte Ed25519 signature."""
    if "signature" in obj:
        raise ValueError("sign the object without its signature field")
    key = current_key()
    signature = key.private_key.sign(canonical_bytes(obj))
    return {"alg": ALG, "kid": key.kid, "sig": b64url(signature)}


_published: tuple[tuple, dict[str, Ed25519PublicKey]] | None = None
_published_checked: tuple[tuple, float] = ((), 0.0)  # the key settings, and when the sources were last looked at
# How long the cached keys are used without looking at their sources again: a period report checks thousands of
# seals, and even the look (two stat calls) cost a third of a seal's check.
PUBLISHED_RECHECK_SECONDS = 1.0


def published_keys(*, recheck: bool = False) -> dict[str, Ed25519PublicKey]:
    """Every public key a signature of this service may be checked against, current and retired, by kid. Cached
    per process while the key's source and the retired directory (its files are written once, never edited) stay
    the same, looked at again at most every ``PUBLISHED_RECHECK_SECONDS`` (at once with ``recheck``): reading
    the keys cost more than verifying a seal."""
    global _published, _published_checked
    configured = (settings.MASKER_SIGNING_KEY, settings.MASKER_SIGNING_KEY_FILE, settings.MASKER_KEYS_DIR)
    now = time.monotonic()
    if (
        not recheck
        and _published is not None
        and _published_checked[0] == configured
        and now - _published_checked[1] < PUBLISHED_RECHECK_SECONDS
    ):
        return _published[1]
    _published_checked = (configured, now)
    directory = _retired_dir()
    try:
        stat = directory.stat()
        retired = (stat.st_ino, stat.st_mtime_ns)
    except FileNotFoundError:
        retired = None
    identity = (_source(), str(directory), retired)
    cached = _published
    if cached is not None and cached[0] == identity:
        return cached[1]
    current = current_key().public_key
    keys = {key_id(key): key for key in retired_public_keys()}
    keys[key_id(current)] = current
    _published = (identity, keys) if identity[0][0] != "missing" else None
    return keys


def signature_verifies(signed: dict[str, Any]) -> bool:
    """Whether ``signed["signature"]`` is a valid Ed25519 signature, by a published key (current or retired), over
    the RFC 8785 bytes of ``signed`` without its ``signature``. Anything malformed is simply not valid."""
    signature = signed.get("signature") if isinstance(signed, dict) else None
    if not isinstance(signature, dict) or signature.get("alg") != ALG:
        return False
    kid = signature.get("kid")
    if not isinstance(kid, str):
        return False
    key = published_keys().get(kid)
    if key is None:  # a key published since the cache was filled (a rotation): look at the sources now
        key = published_keys(recheck=True).get(kid)
    sig = signature.get("sig")
    if key is None or not isinstance(sig, str):
        return False
    try:
        raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
        key.verify(raw, canonical_bytes({name: value for name, value in signed.items() if name != "signature"}))
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True


def jwk_of(public_key: Ed25519PublicKey, status: str) -> dict[str, str]:
    """One RFC 8037 OKP key, with our ``status`` member (``current`` or ``retired``)."""
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": b64url(raw_public(public_key)),
        "kid": key_id(public_key),
        "use": "sig",
        "status": status,
    }


def jwks() -> dict[str, list[dict[str, str]]]:
    """Current and retired public keys as a JWKS of RFC 8037 OKP keys, current first (a key listed once)."""
    current = current_key().public_key
    entries = [jwk_of(current, "current")]
    seen = {entries[0]["kid"]}
    for key in retired_public_keys():
        kid = key_id(key)
        if kid not in seen:
            seen.add(kid)
            entries.append(jwk_of(key, "retired"))
    return {"keys": entries}
