"""The one place that turns errors into the error envelope
``{"error": {"code", "message", "request_id", "details"?}}`` (README, "API by example").

Domain code raises ``ApiError`` subclasses carrying a stable ``code`` and HTTP ``status``; DRF's own exceptions
are mapped to the same codes; anything else becomes a logged 500 ``internal_error`` without a traceback in the body.
"""

import logging

import psycopg
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

from masker.middleware import current_request_id
from masker.parsers import BodyRefused

logger = logging.getLogger("masker.errors")


class ApiError(Exception):
    """Base of every error with a stable code. ``message`` and ``details`` must never carry PHI."""

    status = 500
    code = "internal_error"
    message = "Internal error."

    def __init__(self, message: str | None = None, *, details: dict | None = None):
        super().__init__(message or self.message)
        self.message = message or self.message
        self.details = details


class ValidationFailed(ApiError):
    status, code, message = 400, "validation_failed", "The request is not valid."


class InvalidFormat(ApiError):
    status, code, message = 400, "invalid_format", "Unsupported format."


class Unauthenticated(ApiError):
    status, code, message = 401, "unauthenticated", "Authentication credentials were not provided or are invalid."


class Forbidden(ApiError):
    status, code, message = 403, "forbidden", "You do not have permission to perform this action."


class CsrfFailed(ApiError):
    status, code = 403, "csrf_failed"
    message = (
        "CSRF check failed: a write signed in with the masker_session cookie must send the X-CSRFToken header "
        "set to the value of the csrftoken cookie (and, over HTTPS, an Origin or Referer of this site)."
    )


class NotFound(ApiError):
    status, code, message = 404, "not_found", "Not found."


class PayloadTooLarge(ApiError):
    status, code, message = 413, "payload_too_large", "The request body is too large."


class RateLimited(ApiError):
    status, code, message = 429, "rate_limited", "Too many requests."


class DatabaseUnavailable(ApiError):
    """The database refused, timed out or did not answer (a lock held, a connection refused): retry shortly."""

    status, code, message = 503, "database_unavailable", "The database is unavailable; retry shortly."
    retry_after_seconds = 5


class ReportGenerationFailed(ApiError):
    status, code, message = 500, "report_generation_failed", "The report could not be rendered."


def error_body(code: str, message: str, details: dict | None = None) -> dict:
    error = {"code": code, "message": message, "request_id": current_request_id()}
    if details:
        error["details"] = details
    return {"error": error}


_DRF_CODES = {
    drf_exceptions.NotAuthenticated: Unauthenticated,
    drf_exceptions.AuthenticationFailed: Unauthenticated,
    drf_exceptions.PermissionDenied: Forbidden,
    drf_exceptions.NotFound: NotFound,
    drf_exceptions.ParseError: ValidationFailed,
    drf_exceptions.ValidationError: ValidationFailed,
    drf_exceptions.UnsupportedMediaType: ValidationFailed,
    drf_exceptions.Throttled: RateLimited,
}


def api_exception_handler(exc: Exception, context: dict) -> Response:
    """DRF EXCEPTION_HANDLER: every error, DRF's own included, in the single envelope."""
    headers = {}
    if is_database_unavailable(exc):
        log_database_unavailable(exc)
        exc = DatabaseUnavailable()
    if isinstance(exc, ApiError):
        status, code, message, details = exc.status, exc.code, exc.message, exc.details
        if isinstance(exc, ReportGenerationFailed):
            logger.error("report generation failed", exc_info=exc.__cause__ or exc)
    elif isinstance(exc, RequestDataTooBig):  # raised by Django when a view reads a body over the limit
        status, code, message, details = 413, PayloadTooLarge.code, PayloadTooLarge.message, None
    elif isinstance(exc, Http404):
        status, code, message, details = 404, "not_found", NotFound.message, None
    elif isinstance(exc, PermissionDenied):
        status, code, message, details = 403, "forbidden", Forbidden.message, None
    elif isinstance(exc, drf_exceptions.APIException):
        mapped = next((err for cls, err in _DRF_CODES.items() if isinstance(exc, cls)), None)
        status = exc.status_code
        if mapped is not None:
            status, code, message = mapped.status, mapped.code, mapped.message
        else:  # e.g. 405 method_not_allowed: DRF's detail is filled in (the method), its default_detail is not
            code, message = exc.default_code, str(exc.detail)
        details = None
        if isinstance(exc, drf_exceptions.ValidationError | drf_exceptions.ParseError):
            details = {"fields": exc.detail} if isinstance(exc.detail, dict | list) else None
        if isinstance(exc, drf_exceptions.ParseError):
            message = str(exc.detail) if isinstance(exc, BodyRefused) else "Malformed request body."
        elif isinstance(exc, drf_exceptions.UnsupportedMediaType):
            message = "Send the body as Content-Type: application/json."
        if isinstance(exc, drf_exceptions.Throttled) and exc.wait is not None:
            headers["Retry-After"] = str(max(1, int(exc.wait + 0.999)))
    else:
        logger.error("unhandled error in %s", type(context.get("view")).__name__, exc_info=exc)
        status, code, message, details = 500, "internal_error", ApiError.message, None
    if status == 503:
        headers["Retry-After"] = str(DatabaseUnavailable.retry_after_seconds)
    if status == 401:  # RFC 9110: a 401 names the scheme to use (ours raise Unauthenticated, DRF its own)
        auth_header = _authenticate_header(context)
        if auth_header:
            headers["WWW-Authenticate"] = auth_header
    return Response(error_body(code, message, details), status=status, headers=headers)


def _authenticate_header(context: dict) -> str | None:
    view, request = context.get("view"), context.get("request")
    if view is None or request is None:
        return None
    return view.get_authenticate_header(request)


def json_error(status: int, code: str, message: str) -> JsonResponse:
    """For plain Django handlers (400/403/404/500 outside DRF): the same envelope."""
    response = JsonResponse(error_body(code, message), status=status)
    if status == 503:
        response["Retry-After"] = str(DatabaseUnavailable.retry_after_seconds)
    return response


def is_database_unavailable(exc: BaseException | None) -> bool:
    """A database that is down, refuses connections, or ran into the lock/statement/connect timeout.

    Django wraps every driver error that is not the caller's fault (connection refused or lost, lock timeout,
    statement timeout, SQLite's "database is locked") as ``OperationalError`` or ``InterfaceError``; the append
    path's COPY talks to psycopg directly, whose own classes are the same DB-API categories.
    """
    return isinstance(exc, _UNAVAILABLE)


_UNAVAILABLE = (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError)


def log_database_unavailable(exc: BaseException) -> None:
    # The driver's message can quote SQL parameters: log the error's class and SQLSTATE only.
    cause = exc.__cause__ or exc
    logger.warning("database unavailable: %s %s", type(cause).__name__, getattr(cause, "sqlstate", "") or "")
