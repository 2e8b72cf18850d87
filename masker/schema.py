"""OpenAPI helpers: the error envelope (masker.errors), declared once and reused by every view's ``@extend_schema``."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, inline_serializer
from rest_framework import serializers

ErrorSerializer = inline_serializer(
    "Error",
    {
        "error": inline_serializer(
            "ErrorBody",
            {
                "code": serializers.CharField(),
                "message": serializers.CharField(),
                "request_id": serializers.CharField(),
                "details": serializers.DictField(required=False),
            },
        )
    },
)

_DESCRIPTIONS = {
    400: "`validation_failed`: a field, query parameter or header is missing, unknown, repeated or invalid; "
    "`error.details` names each one. Nothing was written.",
    401: "`unauthenticated`: no valid session cookie or API token (a revoked or unknown token is refused too).",
    403: "`forbidden`: the token lacks this operation's scope, or the user's role may not do it. For a write "
    "signed in with the session cookie, `csrf_failed`: send the `X-CSRFToken` header set to the value of the "
    "`csrftoken` cookie.",
    404: "Not found: an unknown or malformed id, or another account's (`session_not_found`, `agent_not_found` or "
    "`not_found`).",
    409: "`audit_chain_broken`: the session's audit log does not verify (`error.details` names the first bad seq "
    "or `seal`); or `session_ended`: the session is sealed and takes no more events.",
    413: "`payload_too_large`: the body is over the size limit (2 MiB by default). Nothing was read or written.",
    422: "`window_too_large`: a period report's window holds more events than a synchronous report covers "
    "(`MASKER_SYNC_REPORT_MAX_EVENTS`); narrow the window or use a report run.",
    429: "`rate_limited`: too many requests for this API token (or sign-in attempts); retry after `Retry-After` "
    "seconds.",
    500: "`report_generation_failed` (the PDF could not be rendered) or `internal_error`; the request id is logged.",
    503: "`database_unavailable`: the database did not answer in time; retry after `Retry-After` seconds.",
}


def error_responses(*statuses: int, **descriptions: str) -> dict[int, OpenApiResponse]:
    """``{status: OpenApiResponse(Error)}`` for the given statuses, to merge into ``responses=``. A keyword
    ``e400="…"`` replaces the generic description of that status for one operation."""
    return {
        status: OpenApiResponse(
            response=ErrorSerializer, description=descriptions.get(f"e{status}", _DESCRIPTIONS[status])
        )
        for status in statuses
    }


def response_header(name: str, description: str, *, statuses: list[int] | bool = True) -> OpenApiParameter:
    """A response header, for ``parameters=`` of ``@extend_schema``: sent on ``statuses`` (True: on every response)."""
    return OpenApiParameter(name, str, OpenApiParameter.HEADER, response=statuses, description=description)


NO_STORE = "`no-store`: generated for this request from the current log; never cached."
ATTACHMENT = 'Names the download: `attachment; filename="…"`.'

# Headers every response of an operation carries, added to the document once here rather than on each view.
REQUEST_ID = {
    "description": "The request's id (`req_` + ULID), also in the body of every error and in the server's log: "
    "quote it when you report a problem.",
    "schema": {
        "type": "string",
        "pattern": "^req_[0-9A-HJKMNP-TV-Z]{26}$",
        "example": "req_01M8QE63FHY3GCPWT2ZNYD87GZ",
    },
}
RETRY_AFTER = {
    "description": "Seconds to wait before retrying.",
    "schema": {"type": "integer", "minimum": 1, "example": 30},
}
CACHE_CONTROL = {
    "description": "`no-store` unless this response documents another value: answers hold account data or are "
    "generated for this request.",
    "schema": {"type": "string", "example": "no-store"},
}
WWW_AUTHENTICATE = {
    "description": 'The authentication to use: `Bearer realm="masker"` (API token) or the session cookie.',
    "schema": {"type": "string", "example": 'Bearer realm="masker"'},
}


def document_common_headers(result: dict, generator, request, public) -> dict:
    """drf-spectacular postprocessing hook: ``X-Request-ID`` and ``Cache-Control`` (``masker.middleware``) on every
    response the application answers (not the 414 gunicorn answers itself), ``Retry-After`` on 429 and 503,
    ``WWW-Authenticate`` on the 401 of operations that take credentials."""
    for path in result.get("paths", {}).values():
        for operation in path.values():
            secured = any(requirement for requirement in operation.get("security", []))
            for status, response in operation.get("responses", {}).items():
                if status == "414":
                    continue
                headers = response.setdefault("headers", {})
                headers["X-Request-ID"] = REQUEST_ID
                headers.setdefault("Cache-Control", CACHE_CONTROL)
                if status in ("429", "503"):
                    headers["Retry-After"] = RETRY_AFTER
                if status == "401" and secured:
                    headers["WWW-Authenticate"] = WWW_AUTHENTICATE
    return result


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """``Authorization: Bearer mk_…`` (masker.auth.BearerTokenAuthentication) in the OpenAPI security schemes."""

    target_class = "masker.auth.BearerTokenAuthentication"
    name = "bearerToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "mk_<secret>",
            "description": "API token with scopes events:write, sessions:read, reports:read. Issue one in /admin/ or "
            "with manage.py create_api_token.",
        }


class CookieSessionScheme(OpenApiAuthenticationExtension):
    """The ``masker_session`` cookie (masker.auth.CookieSessionAuthentication); unsafe methods also need CSRF."""

    target_class = "masker.auth.CookieSessionAuthentication"
    name = "cookieSession"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "cookie", "name": "masker_session"}


def postprocess_schema(result: dict, generator, request, public: bool) -> dict:
    """drf-spectacular post-processing hook: the document states what the server really accepts and answers.

    - Request bodies are closed (``additionalProperties: false``): every input serializer refuses unknown fields.
    - Every operation that touches the database may answer 503 ``database_unavailable`` (with ``Retry-After``).
    - A request line longer than gunicorn admits is refused there (414, in the same envelope) before the
      application sees it.
    """
    schemas = result.get("components", {}).get("schemas", {})
    for name, schema in schemas.items():
        if name.endswith("Request") and schema.get("type") == "object":
            schema["additionalProperties"] = False
    error_ref = {"$ref": "#/components/schemas/Error"}
    for path, operations in result.get("paths", {}).items():
        touches_database = not (path.endswith("/keys") or path.endswith(".json"))  # keys and schemas: files
        for operation in operations.values():
            operation.get("responses", {}).setdefault(
                "414",
                {
                    "description": "URI too long (over gunicorn's limit_request_line, masker/gunicorn_conf.py)",
                    "content": {"application/json": {"schema": error_ref}},
                },
            )
            if not touches_database:
                continue
            operation.get("responses", {}).setdefault(
                "503",
                {
                    "description": _DESCRIPTIONS[503],
                    "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds."}},
                    "content": {"application/json": {"schema": error_ref}},
                },
            )
    return result
