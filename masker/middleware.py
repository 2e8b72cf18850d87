"""Site-wide request glue: request ids on every response and log line, refusal of NUL and control bytes before
any view sees them, and ``Cache-Control: no-store`` by default."""

import contextvars
import logging
import re
from urllib.parse import unquote_to_bytes

from django.core.exceptions import SuspiciousOperation
from django.core.signals import request_finished
from django.dispatch import receiver
from django.utils.cache import patch_cache_control

from masker.ids import new_id

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def current_request_id() -> str:
    return _request_id.get()


class RequestIDMiddleware:
    """Assigns a fresh ``req_`` id per request (client-sent ids are not trusted: they would be log injection)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = new_id("req")
        # Kept until ``request_finished`` (below): Django logs a 4xx/5xx in ``django.request`` after the
        # middleware chain has returned, and that line must name the request too.
        _request_id.set(request_id)
        request.request_id = request_id
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


@receiver(request_finished, dispatch_uid="masker-request-id-reset")
def _forget_request_id(**kwargs) -> None:
    _request_id.set("-")


class RequestIDLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get()
        return True


# C0 control bytes other than tab, and DEL, in a header value.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class HostileInputMiddleware:
    """Refuses, as a 400 before any view or authentication runs: a NUL in the path or query string (PostgreSQL
    text cannot hold it, so it would otherwise be a 500 there and a silent mismatch on SQLite), and a control byte
    in a request header (a header-injection attempt; Django would pass it on to authentication). The refusal is
    the API's error envelope under ``/api/`` and Django's plain 400 page elsewhere (``handler400``)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        problem = _request_problem(request)
        if problem:
            raise SuspiciousOperation(problem)
        return self.get_response(request)


def _request_problem(request) -> str | None:
    raw_query = request.META.get("QUERY_STRING", "").encode("latin-1", "replace")
    if b"\x00" in unquote_to_bytes(raw_query) or "\x00" in request.path:
        return "NUL character in the URL"
    for name, value in request.META.items():
        if name.startswith("HTTP_") and isinstance(value, str) and _CONTROL.search(value):
            return "control character in a request header"
    return None


class NoStoreMiddleware:
    """``Cache-Control: no-store`` on every answer that did not set its own caching: API answers and console pages
    show account data, and nothing here is meant for a shared cache (static files set their own header)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not response.has_header("Cache-Control"):
            patch_cache_control(response, no_store=True)
        return response
