"""The API's one request parser and its content negotiation: strict JSON, bounded, NUL-free.

DRF's ``JSONParser`` lets ``RecursionError`` escape on deeply nested bodies (a 500, even before login), accepts a
``Content-Type`` of ``*/*`` as JSON, and reads a body without Django's size check. This parser reads the body
through ``HttpRequest.body`` (so ``DATA_UPLOAD_MAX_MEMORY_SIZE`` answers 413), decodes it with orjson (RFC 8259
strict: no NaN, no invalid UTF-8), and refuses nesting deeper than ``MAX_JSON_DEPTH`` and any string holding NUL
(PostgreSQL text cannot store it, and no field of this API has a use for it). Errors name the rule, never the value.
"""

from collections.abc import Iterable

import orjson
from rest_framework import exceptions
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import BaseParser

# Deepest nesting any request of this API needs is 3 (batch → events → span); 32 leaves room and stays far below
# Python's recursion limit for every later step (schema validation, canonical JSON).
MAX_JSON_DEPTH = 32


class BodyRefused(exceptions.ParseError):
    """A parse error whose message names the rule broken (never the submitted value)."""


def json_problem(value: object, *, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why a decoded JSON value is refused (too deep, or a string holding NUL), or None. Iterative: no recursion."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "Strings must not contain the NUL character (\\u0000)."
        elif isinstance(item, dict | list):
            if depth > max_depth:
                return f"The body is nested deeper than {max_depth} levels."
            children: Iterable = item.items() if isinstance(item, dict) else item
            for child in children:
                if isinstance(child, tuple):  # a dict item: check the key and the value
                    stack.append((child[0], depth))
                    stack.append((child[1], depth + 1))
                else:
                    stack.append((child, depth + 1))
    return None


class StrictJSONParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        raw = request._request.body if request is not None else stream.read()
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            message = "The body is nested too deeply." if "depth" in str(exc) else "Malformed JSON body."
            raise BodyRefused(message) from None
        problem = json_problem(data)
        if problem:
            raise BodyRefused(problem)
        return data


class StrictContentNegotiation(DefaultContentNegotiation):
    """A body is parsed only when its ``Content-Type`` names the parser's type exactly (``*/*`` or
    ``application/*`` are not JSON); anything else is DRF's 415, which the error handler maps to a 400."""

    def select_parser(self, request, parsers):
        content_type = (request.content_type or "").split(";", 1)[0].strip().lower()
        for parser in parsers:
            if parser.media_type == content_type:
                return parser
        return None
