"""OpenAPI helpers: the SPEC §8 error envelope, declared once and reused by every view's ``@extend_schema``."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, inline_serializer
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
    400: "invalid_format or validation_failed",
    401: "unauthenticated",
    403: "forbidden (token lacks the scope, or role too low)",
    404: "not found (unknown, malformed or another account's id)",
    409: "audit_chain_broken or session_ended",
    413: "payload_too_large",
    422: "window_too_large (a period report's window holds too many events: use a report run)",
    429: "rate_limited (see Retry-After)",
    500: "report_generation_failed or internal_error",
    503: "database_unavailable (see Retry-After)",
}


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """``{status: OpenApiResponse(Error)}`` for the given statuses, to merge into ``responses=``."""
    return {s: OpenApiResponse(response=ErrorSerializer, description=_DESCRIPTIONS[s]) for s in statuses}


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """``Authorization: Bearer mk_…`` (masker.auth.BearerTokenAuthentication) in the OpenAPI security schemes."""

    target_class = "masker.auth.BearerTokenAuthentication"
    name = "bearerToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "mk_<secret>",
            "description": "API token with scopes events:write, sessions:read, reports:read (SPEC §3).",
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
