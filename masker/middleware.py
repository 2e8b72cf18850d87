"""Request ids: every response carries ``X-Request-ID`` (``req_…``) and every log line names it."""

import contextvars
import logging

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
        token = _request_id.set(request_id)
        request.request_id = request_id
        try:
            response = self.get_response(request)
        finally:
            _request_id.reset(token)
        response["X-Request-ID"] = request_id
        return response


class RequestIDLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get()
        return True
