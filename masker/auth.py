"""API authentication: the ``masker_session`` cookie and ``Authorization: Bearer mk_…`` tokens, and scopes."""

from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from masker.errors import CsrfFailed, Forbidden, Unauthenticated
from masker.models import ApiToken, account_of


class CookieSessionAuthentication(authentication.SessionAuthentication):
    """Django's session (cookie ``masker_session``), CSRF-enforced for unsafe methods as DRF does.

    ``authenticate_header`` makes DRF answer a missing login with 401, not 403.
    """

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is None:
            return None
        user, _ = result
        return (user, None)

    def authenticate_header(self, request) -> str:
        return 'Cookie realm="masker_session"'

    def enforce_csrf(self, request) -> None:
        """DRF's check, answered 403 ``csrf_failed`` with what to send instead of a generic ``forbidden``."""
        try:
            super().enforce_csrf(request)
        except exceptions.PermissionDenied as exc:
            raise CsrfFailed() from exc


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer mk_<secret>``: looks the hash up; a revoked or unknown token is a 401."""

    keyword = "Bearer"
    LAST_USED_GRANULARITY = timedelta(minutes=1)

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if len(parts) != 2 or parts[0] != self.keyword or not parts[1].startswith("mk_"):
            raise Unauthenticated("Malformed Authorization header; expected 'Bearer mk_…'.")
        token = (
            ApiToken.objects.active()
            .select_related("account")
            .filter(secret_sha256=ApiToken.hash_secret(parts[1]))
            .first()
        )
        if token is None:
            raise Unauthenticated("Invalid or revoked API token.")
        now = timezone.now()
        # Written at most once a minute per token so the hot ingestion path does not write a row per call.
        if token.last_used_at is None or now - token.last_used_at > self.LAST_USED_GRANULARITY:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return (TokenUser(token), token)

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="masker"'


class TokenUser:
    """The principal of a token-authenticated request: belongs to the token's account, has its scopes."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False

    def __init__(self, token: ApiToken):
        self.token = token
        self.account = token.account
        self.pk = None
        self.id = token.id

    def __str__(self) -> str:
        return self.token.id


def request_account(request):
    """The account of whoever made the request (cookie user or token)."""
    user = request.user
    if isinstance(user, TokenUser):
        return user.account
    return account_of(user)


def actor_of(request) -> str:
    """A PHI-free name for who made the request, for the report register: ``usr_…`` or ``key_…``."""
    user = request.user
    if isinstance(user, TokenUser):
        return user.token.id
    membership = getattr(user, "membership", None)
    return membership.id if membership else f"user:{user.pk}"


def required_scope_of(view, method: str) -> str | None:
    """The scope an operation needs: ``required_scopes[method]`` when the view maps methods to scopes (one path,
    several operations, e.g. GET and POST ``sessions/{id}/events``), else the view's ``required_scope``."""
    per_method = getattr(view, "required_scopes", None) or {}
    method = "GET" if method == "HEAD" else method  # Django answers HEAD with the GET handler
    return per_method.get(method, getattr(view, "required_scope", None))


class HasScope(permissions.BasePermission):
    """Token requests need the operation's scope (see ``required_scope_of``); cookie users (account members) have
    every read scope.

    Writes through the cookie need the ``admin`` role.
    """

    def has_permission(self, request, view) -> bool:
        scope = required_scope_of(view, request.method)
        user = request.user
        if user is None or not user.is_authenticated:
            raise Unauthenticated()
        if request_account(request) is None:
            raise Forbidden("This user is not a member of any account.")
        if scope is None:
            return True
        if isinstance(user, TokenUser):
            if scope not in user.token.scopes:
                raise Forbidden(f"This token lacks the '{scope}' scope.")
            return True
        if scope == "events:write" and user.membership.role != "admin":
            raise Forbidden("Writing events needs the admin role.")
        return True
