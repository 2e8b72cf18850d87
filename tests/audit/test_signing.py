"""Ed25519 signing keys: loading, key ids, signatures over RFC 8785 bytes, JWKS and rotation."""

import base64
import hashlib
import os
import stat
from datetime import timedelta

import pytest
import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError

from audit import signing
from audit.writing import append_events, end_session, start_session
from tests.audit.api_support import redacted
from tests.conftest import T0


@pytest.fixture
def keys_dir(settings, tmp_path):
    """A fresh, empty key directory (the file-based key source), for the duration of one test."""
    settings.MASKER_KEYS_DIR = tmp_path / "keys"
    settings.MASKER_SIGNING_KEY = ""
    settings.MASKER_SIGNING_KEY_FILE = ""
    signing.reset_key_cache()
    yield tmp_path / "keys"
    signing.reset_key_cache()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _public_key(jwk: dict) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(_b64url_decode(jwk["x"]))


def _verify(obj: dict, signature: dict, jwks: dict) -> None:
    """Independent check: raises unless ``signature`` covers the RFC 8785 bytes of ``obj`` with a published key."""
    (jwk,) = [k for k in jwks["keys"] if k["kid"] == signature["kid"]]
    _public_key(jwk).verify(_b64url_decode(signature["sig"]), rfc8785.dumps(obj))


def _pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _seed_b64url(key: Ed25519PrivateKey) -> str:
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_development_key_is_created_on_first_use_readable_by_the_owner_only(keys_dir):
    key = signing.current_key()
    path = keys_dir / "signing-key.pem"
    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert signing.current_key().kid == key.kid  # loaded once, then reused
    signing.reset_key_cache()
    assert signing.current_key().kid == key.kid  # and the same key after a restart


def test_missing_key_outside_debug_is_a_configuration_error(keys_dir, settings, monkeypatch):
    settings.DEBUG = False
    monkeypatch.delenv("MASKER_CREATE_DEV_KEY", raising=False)
    with pytest.raises(ImproperlyConfigured, match="No signing key"):
        signing.current_key()
    assert not (keys_dir / "signing-key.pem").exists()


def test_key_id_is_a_hash_of_the_raw_public_key(keys_dir):
    key = signing.current_key()
    raw = key.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert key.kid == "ed25519-" + hashlib.sha256(raw).hexdigest()[:16]


def test_key_from_environment_as_pem_or_base64url_seed_is_the_same_key(keys_dir, settings):
    private = Ed25519PrivateKey.generate()
    settings.MASKER_SIGNING_KEY = _pem(private)
    from_pem = signing.current_key().kid
    settings.MASKER_SIGNING_KEY = _seed_b64url(private)
    from_seed = signing.current_key().kid
    assert from_pem == from_seed == signing.key_id(private.public_key())
    assert not (keys_dir / "signing-key.pem").exists()  # the environment wins; no file is created


def test_key_file_setting_is_used(keys_dir, settings, tmp_path):
    private = Ed25519PrivateKey.generate()
    path = tmp_path / "elsewhere.pem"
    path.write_text(_pem(private))
    settings.MASKER_SIGNING_KEY_FILE = str(path)
    assert signing.current_key().kid == signing.key_id(private.public_key())


BAD_PEM = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"


@pytest.mark.parametrize("material", ["not a key", BAD_PEM, "QUJD"])
def test_unusable_environment_key_is_refused_without_echoing_it(keys_dir, settings, material):
    settings.MASKER_SIGNING_KEY = material
    with pytest.raises(ImproperlyConfigured, match="MASKER_SIGNING_KEY is not a usable Ed25519 private key") as exc:
        signing.current_key()
    assert material not in str(exc.value)


def test_sign_object_signs_the_rfc8785_bytes_of_the_object(keys_dir):
    obj = {"b": 1.0, "a": [1e-05, "é"], "session_id": "sess_X"}
    signature = signing.sign_object(obj)
    assert signature["alg"] == "Ed25519"
    assert signature["kid"] == signing.current_key().kid
    assert len(_b64url_decode(signature["sig"])) == 64 and "=" not in signature["sig"]
    _verify(obj, signature, signing.jwks())
    with pytest.raises(InvalidSignature):
        _verify({**obj, "b": 2}, signature, signing.jwks())


def test_sign_object_refuses_an_object_that_already_carries_a_signature(keys_dir):
    with pytest.raises(ValueError, match="without its signature"):
        signing.sign_object({"a": 1, "signature": {}})


def test_jwks_lists_the_current_key_as_an_rfc8037_okp_key(keys_dir):
    key = signing.current_key()
    raw = key.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert signing.jwks() == {
        "keys": [
            {
                "kty": "OKP",
                "crv": "Ed25519",
                "x": base64.urlsafe_b64encode(raw).rstrip(b"=").decode(),
                "kid": key.kid,
                "use": "sig",
                "status": "current",
            }
        ]
    }


def test_rotation_retires_the_old_key_and_its_signatures_still_verify(keys_dir):
    obj = {"report": "before rotation"}
    old_signature = signing.sign_object(obj)
    old_kid, new_kid = signing.rotate_key()
    assert old_kid == old_signature["kid"] != new_kid
    assert signing.current_key().kid == new_kid
    published = signing.jwks()
    assert [(k["kid"], k["status"]) for k in published["keys"]] == [(new_kid, "current"), (old_kid, "retired")]
    _verify(obj, old_signature, published)
    new_signature = signing.sign_object(obj)
    assert new_signature["kid"] == new_kid
    _verify(obj, new_signature, published)
    # A second rotation keeps every past key published.
    third_old, third_new = signing.rotate_key()
    assert third_old == new_kid
    assert {k["kid"]: k["status"] for k in signing.jwks()["keys"]} == {
        third_new: "current",
        new_kid: "retired",
        old_kid: "retired",
    }


def test_a_process_holding_the_old_key_switches_after_another_process_rotates(keys_dir):
    before = signing.current_key().kid  # cached in this process
    # Another process (manage.py rotate_signing_key) replaces the key file; simulated by writing it directly.
    replacement = Ed25519PrivateKey.generate()
    staging = keys_dir / "staging.pem"
    staging.write_text(_pem(replacement))
    (keys_dir / "retired").mkdir()
    (keys_dir / "retired" / f"{before}.pem").write_bytes(signing.public_pem(signing.current_key().public_key))
    os.replace(staging, keys_dir / "signing-key.pem")
    assert signing.current_key().kid == signing.key_id(replacement.public_key())
    assert signing.sign_object({"a": 1})["kid"] != before
    assert {k["kid"] for k in signing.jwks()["keys"]} == {before, signing.key_id(replacement.public_key())}


def test_rotation_of_an_environment_key_is_left_to_the_operator(keys_dir, settings):
    private = Ed25519PrivateKey.generate()
    settings.MASKER_SIGNING_KEY = _pem(private)
    with pytest.raises(ImproperlyConfigured, match="retire-current"):
        signing.rotate_key()
    with pytest.raises(CommandError, match="MASKER_SIGNING_KEY is set"):
        call_command("rotate_signing_key")
    # The operator's procedure: publish the current key as retired, then replace the variable.
    call_command("rotate_signing_key", "--retire-current")
    old_kid = signing.key_id(private.public_key())
    settings.MASKER_SIGNING_KEY = _pem(Ed25519PrivateKey.generate())
    statuses = {k["kid"]: k["status"] for k in signing.jwks()["keys"]}
    assert statuses[old_kid] == "retired"
    assert statuses[signing.current_key().kid] == "current"


def test_rotate_signing_key_command_names_the_old_and_new_key(keys_dir, capsys):
    old_kid = signing.current_key().kid
    call_command("rotate_signing_key")
    out = capsys.readouterr().out
    new_kid = signing.current_key().kid
    assert out.strip() == f"rotated: {old_kid} retired (still published), {new_kid} now signs"
    assert (keys_dir / "retired" / f"{old_kid}.pem").is_file()
    assert not list(keys_dir.glob(".*.new"))  # no staging file left behind


def test_retire_current_keeps_the_key_listed_once_as_current(keys_dir, capsys):
    kid = signing.current_key().kid
    call_command("rotate_signing_key", "--retire-current")
    call_command("rotate_signing_key", "--retire-current")  # idempotent
    assert [(k["kid"], k["status"]) for k in signing.jwks()["keys"]] == [(kid, "current")]


def test_a_retired_file_that_is_not_a_public_key_is_a_configuration_error(keys_dir):
    signing.current_key()
    (keys_dir / "retired").mkdir()
    (keys_dir / "retired" / "broken.pem").write_text("garbage")
    with pytest.raises(ImproperlyConfigured, match=r"broken\.pem is not a PEM public key"):
        signing.jwks()


def test_session_seal_is_signed_over_its_rfc8785_bytes(keys_dir, agent):
    session, _ = start_session(agent, external_ref="call-seal", started_at=T0)
    append_events(session, [redacted(1)])
    end_session(session, status="ok", now=T0 + timedelta(minutes=2))
    seal = dict(session.seal)
    signature = seal.pop("signature")
    assert seal["tree_size"] == 3 and seal["merkle_root_hex"] == session.merkle_root_hex
    _verify(seal, signature, signing.jwks())
