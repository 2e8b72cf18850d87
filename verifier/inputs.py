"""Reading the verifier's inputs: strict JSON, report documents, base64url and hex hashes, dotted report paths."""

from __future__ import annotations

import base64
import binascii
import json
import re
import sys
from typing import IO, Any

from verifier.merkle import HASH_SIZE
from verifier.outcome import CannotVerify

MISSING = object()
"""What ``at`` returns for a path that is not in the object (``None`` is a JSON null)."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Duplicate keys would let two readers of one file see two different values; RFC 8785 forbids them.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError("duplicate key")
        result[key] = value
    return result


def loads(data: bytes | str) -> Any:
    """Strict JSON: no NaN/Infinity, no duplicate keys. Raises ``ValueError`` (or ``UnicodeDecodeError``)."""
    return json.loads(data, object_pairs_hook=_unique_keys, parse_constant=_reject_constant)


def read_json_file(path: str, what: str) -> Any:
    """The JSON value in ``path``; ``CannotVerify`` if it cannot be read or is not JSON."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise CannotVerify(f"cannot read {what} {path}: {exc.strerror}") from None
    try:
        return loads(data)
    except ValueError as exc:
        raise CannotVerify(f"{what} {path} is not valid JSON: {exc}") from None


def open_binary(path: str, what: str) -> IO[bytes]:
    """``path`` opened for reading bytes (``-``: standard input); ``CannotVerify`` if it cannot be opened."""
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")  # the caller closes it (close_binary)
    except OSError as exc:
        raise CannotVerify(f"cannot read {what} {path}: {exc.strerror}") from None


def close_binary(stream: IO[bytes]) -> None:
    if stream is not sys.stdin.buffer:
        stream.close()


def report_object(document: Any, origin: str) -> dict[str, Any]:
    """The report object: the ``"report"`` member of a downloaded body, or a bare report object."""
    if isinstance(document, dict) and isinstance(document.get("report"), dict) and len(document) == 1:
        return document["report"]
    if isinstance(document, dict) and "merkle_root_hex" in document:
        return document
    raise CannotVerify(f'{origin} is not a Masker report (expected {{"report": {{...}}}})')


_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")


def b64url_decode(text: Any) -> bytes | None:
    """Strict base64url without padding (RFC 7515 §2), else None: stray characters are not skipped."""
    if not isinstance(text, str) or not _B64URL.match(text) or len(text) % 4 == 1:
        return None
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, binascii.Error):
        return None


def hash_of(value: Any) -> bytes | None:
    """A 32-byte hash from 64 lowercase hex digits, else None."""
    if isinstance(value, str) and len(value) == 2 * HASH_SIZE and value == value.lower():
        try:
            return bytes.fromhex(value)
        except ValueError:
            return None
    return None


def at(document: dict[str, Any], path: str) -> Any:
    """The value at a dotted path (``audit_integrity.seal.tree_size``), or ``MISSING``."""
    node: Any = document
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    return node


def same(a: Any, b: Any) -> bool:
    """Equal and of the same type: bool is an int in Python, and a report saying true for a count must not pass
    as 1."""
    return type(a) is type(b) and a == b
