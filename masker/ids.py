"""Public identifiers: a type prefix and a ULID (docs/audit-log.md, identifiers), e.g.
``sess_01JD00000000000000000000AA``."""

import re
from functools import partial

from ulid import ULID

PREFIXES = ("acc", "usr", "agt", "pol", "sess", "evt", "rep", "req", "key", "run")
_ULID_BODY = "[0-9A-HJKMNP-TV-Z]{26}"
_PATTERNS = {prefix: re.compile(rf"^{prefix}_{_ULID_BODY}$") for prefix in PREFIXES}


def new_id(prefix: str) -> str:
    """A fresh prefixed ULID, e.g. ``new_id("sess")``."""
    if prefix not in _PATTERNS:
        raise ValueError(f"unknown id prefix {prefix!r}")
    return f"{prefix}_{ULID()}"


def is_valid_id(prefix: str, value: object) -> bool:
    """True if ``value`` is a well-formed id of this type (malformed ids are answered like unknown ones)."""
    return isinstance(value, str) and _PATTERNS[prefix].match(value) is not None


def id_factory(prefix: str):
    """A model-field ``default`` callable producing ids of one type (migrations serialise partials fine)."""
    return partial(new_id, prefix)
