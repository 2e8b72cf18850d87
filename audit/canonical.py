"""Canonical bytes of an audit event: RFC 8785 (JCS) via the ``rfc8785`` package, never ``json.dumps``."""

from typing import Any

import rfc8785


def canonical_bytes(obj: Any) -> bytes:
    """RFC 8785 serialisation of a JSON value, UTF-8 (what is hashed, stored and exported verbatim)."""
    return rfc8785.dumps(obj)
