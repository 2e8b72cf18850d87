"""Signatures of reports, seals and receipts: Ed25519 over the RFC 8785 bytes of the object without ``signature``,
checked against the service's published keys (the JWKS of ``GET /api/v1/keys``, current and retired keys)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from verifier import PROG, ed25519
from verifier.canonical import canonical_bytes
from verifier.inputs import b64url_decode, read_json_file
from verifier.outcome import CannotVerify, Outcome

Keys = list[dict[str, Any]]


def load_keys(path: str) -> Keys:
    """The keys of a JWKS file (``{"keys": [...]}``); ``CannotVerify`` if it is not one."""
    return keys_of(read_json_file(path, "keys file"), f"keys file {path}")


def keys_of(document: Any, origin: str) -> Keys:
    """The keys of a parsed JWKS document; ``CannotVerify`` naming ``origin`` if it is not one."""
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list) or not all(isinstance(k, dict) for k in keys):
        raise CannotVerify(f'{origin} is not a JWKS ({{"keys": [...]}}, as GET /api/v1/keys returns)')
    return keys


def signature_problem(signed: dict[str, Any], keys: Keys) -> tuple[str | None, dict[str, Any] | None]:
    """(problem, key): ``problem`` is None when ``signed["signature"]`` verifies under one of ``keys`` (the one
    its ``kid`` names, which is returned), else says why not. An unknown ``kid`` is a problem."""
    signature = signed.get("signature")
    if not isinstance(signature, dict):
        return "signature: missing (the object is not signed)", None
    alg, kid = signature.get("alg"), signature.get("kid")
    if alg != "Ed25519":
        return f"signature.alg: {json.dumps(alg)} is not Ed25519", None
    matches = [k for k in keys if k.get("kid") == kid]
    if not matches:
        known = ", ".join(str(k.get("kid")) for k in keys) or "none"
        return f"signature: kid {json.dumps(kid)} is not a published key (the keys file lists: {known})", None
    jwk = matches[0]
    raw_key = b64url_decode(jwk.get("x"))
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or raw_key is None or len(raw_key) != 32:
        return f"signature: key {kid} in the keys file is not an Ed25519 OKP key (RFC 8037)", None
    if kid != key_id(raw_key):
        return f"signature: key {kid} in the keys file: its kid is not the hash of its public key", None
    sig = b64url_decode(signature.get("sig"))
    if sig is None or len(sig) != 64:
        return "signature.sig: not a base64url (unpadded) 64-byte Ed25519 signature", None
    try:
        message = canonical_bytes({key: value for key, value in signed.items() if key != "signature"})
    except ValueError as exc:
        return f"signature: the signed object cannot be canonicalised (RFC 8785): {exc}", None
    if not ed25519.verify(raw_key, message, sig):
        return (
            f"signature: does not verify with key {kid}: the signed content was changed after signing, or it was "
            "signed by another key"
        ), None
    return None, jwk


def key_id(raw_public_key: bytes) -> str:
    """``ed25519-`` + the first 16 hex digits of SHA-256 over the raw 32-byte public key (the service's kids)."""
    return "ed25519-" + hashlib.sha256(raw_public_key).hexdigest()[:16]


def describe_key(jwk: dict[str, Any]) -> str:
    return f"key {jwk.get('kid')} ({jwk.get('status') or 'status not given'})"


def check_signature(outcome: Outcome, signed: dict[str, Any], keys: Keys | None, label: str) -> bool:
    """Check ``signed``'s signature into ``outcome`` (an OK or a FAIL line, prefixed with ``label``); without keys,
    a warning that it was NOT checked. Returns whether it verified."""
    if not isinstance(signed.get("signature"), dict):
        outcome.fail(f"{label}signature: missing (the object is not signed)")
        return False
    if keys is None:
        outcome.signature_unchecked = True
        outcome.warn(
            f"{label}signature NOT checked: no --keys given (download GET /api/v1/keys, pass --keys "
            f"keys.json to {PROG})"
        )
        return False
    problem, jwk = signature_problem(signed, keys)
    if problem is not None:
        outcome.fail(f"{label}{problem}")
        return False
    outcome.ok(f"{label}signature: Ed25519, {describe_key(jwk or {})}")
    return True
