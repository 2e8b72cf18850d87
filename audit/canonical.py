"""Canonical bytes: RFC 8785 (JCS), the bytes every hash and signature of this service covers.

``canonical_bytes`` gives exactly what the ``rfc8785`` package gives. Large documents (a period report lists
thousands of sessions) made that package the slowest step of a report, so values whose RFC 8785 form is provably
the sorted, compact form of a plain JSON encoder take that path (``orjson`` with sorted keys, in C), and
everything else goes to ``rfc8785``:

- object keys all ASCII (then sorting by UTF-16 code units, as RFC 8785 does, is sorting by code points);
- strings without lone surrogates (the encoder escapes exactly the characters RFC 8785 escapes, with the same
  short forms and lowercase ``\\u00xx``, and writes every other character as UTF-8);
- integers within I-JSON's exact range (|n| < 2**53), booleans, null;
- floats that are not integral and lie in [1e-4, 1e16) in magnitude: there the encoder and ECMAScript's
  Number-to-String both print the shortest round-trip digits in plain decimal notation.

A test compares both paths on generated values; a plain encoder alone is not RFC 8785 (``1.0``, ``1e-05``, key
order by UTF-16 code units), which is why the guard exists.
"""

from typing import Any

import orjson
import rfc8785

_MAX_EXACT = 2**53


def canonical_bytes(obj: Any) -> bytes:
    """RFC 8785 serialisation of a JSON value, UTF-8 (what is hashed, signed, stored and exported verbatim)."""
    if _plain(obj):
        try:
            return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:  # a lone surrogate: RFC 8785 refuses it, as rfc8785 will say
            pass
    return rfc8785.dumps(obj)


def _plain(value: Any) -> bool:
    """Whether ``value`` lies where the sorted compact encoding is RFC 8785 (module docstring)."""
    stack = [value]
    pop, push = stack.pop, stack.extend
    while stack:
        item = pop()
        kind = type(item)
        if kind is str or item is None or kind is bool:
            continue
        if kind is int:
            if -_MAX_EXACT < item < _MAX_EXACT:
                continue
            return False
        if kind is dict:
            if not all(type(key) is str and key.isascii() for key in item):
                return False
            push(item.values())
        elif kind is list or kind is tuple:
            push(item)
        elif kind is float:
            if item.is_integer() or not 1e-4 <= abs(item) < 1e16:
                return False
        else:
            return False
    return True
