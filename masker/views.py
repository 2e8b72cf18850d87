"""Site-wide handlers: the API's auth endpoints and the 404/500 pages (JSON under /api/, HTML elsewhere)."""

import sys

from django.contrib.auth import authenticate, login, logout
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.http import JsonResponse
from django.shortcuts import render
from django.views import defaults
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from masker.api import ApiView, validated
from masker.auth import TokenUser, request_account
from masker.errors import (
    DatabaseUnavailable,
    Unauthenticated,
    is_database_unavailable,
    json_error,
    log_database_unavailable,
)
from masker.query import StrictSerializer
from masker.schema import error_responses, response_header
from masker.throttling import login_retry_after


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def bad_request(request, exception=None):
    # Django's own 400s: a Host outside ALLOWED_HOSTS, a malformed header or cookie, too many fields.
    if _is_api(request):
        return json_error(400, "validation_failed", "The request's Host, a header or the URL is not acceptable.")
    return defaults.bad_request(request, exception)


def permission_denied(request, exception=None):
    if _is_api(request):
        return json_error(403, "forbidden", "You do not have permission to perform this action.")
    return defaults.permission_denied(request, exception)


def not_found(request, exception=None):
    if _is_api(request):
        return json_error(404, "not_found", "Not found.")
    return render(request, "404.html", status=404)


def server_error(request):
    """Django's last resort (an error outside DRF's handler, e.g. in a console view or a middleware)."""
    if is_database_unavailable(sys.exc_info()[1]):
        log_database_unavailable(sys.exc_info()[1])
        if _is_api(request):
            return json_error(503, DatabaseUnavailable.code, DatabaseUnavailable.message)
        response = render(request, "503.html", status=503)
        response["Retry-After"] = str(DatabaseUnavailable.retry_after_seconds)
        return response
    if _is_api(request):
        return json_error(500, "internal_error", "Internal error.")
    return render(request, "500.html", status=500)


def healthz(request):
    """Liveness for load balancers: the process answers (no database touched)."""
    return JsonResponse({"status": "ok"})


def readyz(request):
    """Readiness: the database answers within its time bounds and every migration is applied; else 503."""
    try:
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception as exc:
        if not is_database_unavailable(exc):
            raise
        log_database_unavailable(exc)
        return json_error(503, DatabaseUnavailable.code, DatabaseUnavailable.message)
    if pending:
        return json_error(503, DatabaseUnavailable.code, "The database schema is not migrated to this release.")
    return JsonResponse({"status": "ready"})


class LoginSerializer(StrictSerializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(max_length=256, trim_whitespace=False)


class LoginView(ApiView):
    """Exchange email + password for the ``masker_session`` cookie."""

    authentication_classes = []
    permission_classes = [AllowAny]
    # No per-IP rate: behind a proxy every user may share one IP. The per (email, IP) failure limit bounds guessing.
    throttle_classes = []

    @extend_schema(
        operation_id="auth_login",
        summary="Sign in",
        description="Exchange a console user's email and password for the `masker_session` cookie (HttpOnly, 30 "
        "days, renewed with use). Send the cookie with later requests; a write signed in this way also needs the "
        "`X-CSRFToken` header set to the `csrftoken` cookie's value. Ten failed attempts for one email from one "
        "address within 15 minutes are answered 429.",
        request=LoginSerializer,
        examples=[
            OpenApiExample(
                "Demo user", value={"email": "demo@masker.local", "password": "masker-demo-2026"}, request_only=True
            )
        ],
        parameters=[
            response_header(
                "Set-Cookie",
                "`masker_session=…` (the session) and `csrftoken=…` (the value to send as `X-CSRFToken`).",
                statuses=[204],
            )
        ],
        responses={204: OpenApiResponse(description="Signed in; the masker_session cookie is set. No body.")}
        | error_responses(400, 401, 429, e401="`unauthenticated`: wrong email or password."),
        auth=[],
        tags=["auth"],
    )
    def post(self, request):
        credentials = validated(LoginSerializer, request.data)
        email = credentials["email"].lower()
        # The sign-in limit (masker.throttling) is enforced inside authenticate(); checked first for a clean 429.
        retry_after = login_retry_after(request, email)
        if retry_after is not None:
            raise exceptions.Throttled(wait=retry_after)
        user = authenticate(request, username=email, password=credentials["password"])
        if user is None or not user.is_active:
            raise Unauthenticated("Wrong email or password.")
        login(request, user)
        return Response(status=204)


class LogoutView(ApiView):
    """End the cookie session. Idempotent: logging out twice is still a 204."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="auth_logout",
        summary="Sign out",
        description="End the cookie session. Idempotent: signing out without a session is also a 204.",
        request=None,
        responses={204: OpenApiResponse(description="Signed out. No body.")},
        auth=[],
        tags=["auth"],
    )
    def post(self, request):
        logout(request)
        return Response(status=204)


class MeSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(
        choices=["user", "token"],
        help_text="`user`: a console user signed in with the session cookie (`email` and `role` are given); "
        "`token`: an API token (`scopes` is given).",
    )
    id = serializers.CharField(help_text="The user's membership id (`usr_…`) or the token's id (`key_…`).")
    email = serializers.EmailField(required=False)
    role = serializers.CharField(
        required=False, help_text="`admin` (may also write) or `viewer` (reads sessions and reports)."
    )
    scopes = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="The token's scopes: `events:write`, `sessions:read`, `reports:read`.",
    )
    account = inline_serializer("MeAccount", {"id": serializers.CharField(), "name": serializers.CharField()})


class MeView(ApiView):
    """Who is calling: the signed-in user (or the API token) and its account."""

    @extend_schema(
        operation_id="me",
        summary="Who am I",
        description="The caller — the signed-in user or the API token — and its account. Any token may call it.",
        responses={200: MeSerializer} | error_responses(401, 403, 429),
        examples=[
            OpenApiExample(
                "Signed-in user",
                value={
                    "kind": "user",
                    "id": "usr_01M8QETZFSSWMWPD2S8HZJ1A0H",
                    "email": "demo@masker.local",
                    "role": "admin",
                    "account": {"id": "acc_01M8QETY9ZBW992W6E246QZNE6", "name": "Acme Health"},
                },
                response_only=True,
            ),
            OpenApiExample(
                "API token",
                value={
                    "kind": "token",
                    "id": "key_01M8QDR19BVK10JCJGT8E709GA",
                    "scopes": ["events:write", "reports:read", "sessions:read"],
                    "account": {"id": "acc_01M8QETY9ZBW992W6E246QZNE6", "name": "Acme Health"},
                },
                response_only=True,
            ),
        ],
        tags=["auth"],
    )
    def get(self, request):
        account = request_account(request)
        user = request.user
        if isinstance(user, TokenUser):
            body = {"kind": "token", "id": user.token.id, "scopes": user.token.scopes}
        else:
            body = {"kind": "user", "id": user.membership.id, "email": user.email, "role": user.membership.role}
        body["account"] = {"id": account.id, "name": account.name}
        return Response(body)
