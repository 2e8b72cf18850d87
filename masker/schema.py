"""OpenAPI helpers: the SPEC §8 error envelope, declared once and reused by every view's ``@extend_schema``."""

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
    429: "rate_limited (see Retry-After)",
    500: "report_generation_failed or internal_error",
}


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """``{status: OpenApiResponse(Error)}`` for the given statuses, to merge into ``responses=``."""
    return {s: OpenApiResponse(response=ErrorSerializer, description=_DESCRIPTIONS[s]) for s in statuses}
