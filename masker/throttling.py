"""Sign-in limits shared by the console form, ``POST /api/v1/auth/login`` and the Django admin, and the API
token rate limit.

**Sign-in.** Failures are counted per (email, client IP) pair in a 15-minute window opened by the first failure.
Once a pair reaches ``LOGIN_FAILURE_LIMIT``, sign-in for that email from that IP is refused (429 on the API and
the console) *without checking the password* until the window closes, so a guesser learns nothing more; a
success clears the pair. Keyed by the pair, a flood of failures for other accounts from one IP, or for this
account from other IPs, never locks a correct sign-in out (behind a proxy every user may share one IP).
``LoginLimitBackend`` enforces it inside ``authenticate()``, which is what the console, the API and the admin all
call; the views check ``login_retry_after`` first only to answer a clean 429.

The counts live in the database (``LoginFailureWindow``), the one store every gunicorn worker and host already
shares (a per-process locmem cache multiplies the limit by the number of workers), updated by one atomic upsert.
The client IP is ``client_ip``: ``REMOTE_ADDR``, or, with ``MASKER_BEHIND_PROXY=N`` (N trusted proxy hops), the
address the N-th proxy from us saw in ``X-Forwarded-For``. A client cannot spoof it by sending the header itself.

**API tokens** are limited by ``TokenRateThrottle``: ``DEFAULT_THROTTLE_RATES["token"]`` requests per token per
fixed window, counted in the database (``TokenRateWindow``) for the same reason, with one atomic upsert per request
(``INSERT … ON CONFLICT DO UPDATE … RETURNING``, PostgreSQL and SQLite ≥ 3.35), free of the read-modify-write race
that Django's database cache backend has (its ``incr`` is a get and a set).
"""

import hashlib
import time

from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.db import connection
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from masker.models import LoginFailureWindow, TokenRateWindow

LOGIN_FAILURE_LIMIT = 10
LOGIN_FAILURE_WINDOW_SECONDS = 15 * 60


def client_ip(request) -> str:
    """The client's address: ``REMOTE_ADDR``, or with ``NUM_PROXIES`` = N > 0 (``MASKER_BEHIND_PROXY``) the
    N-th address from the right of ``X-Forwarded-For`` (the one our outermost trusted proxy saw). DRF's own
    throttles use the same rule (``BaseThrottle.get_ident``)."""
    return BaseThrottle().get_ident(request) or "unknown"


def _login_key(request, email: str) -> str:
    return hashlib.sha256(f"{email.strip().lower()}|{client_ip(request)}".encode()).hexdigest()


def login_retry_after(request, email: str, *, now: float | None = None) -> int | None:
    """Seconds until sign-in is allowed again for this email from this client IP, or None when it is allowed."""
    now = time.time() if now is None else now
    row = (
        LoginFailureWindow.objects.filter(key=_login_key(request, email), count__gte=LOGIN_FAILURE_LIMIT)
        .values_list("window_start", flat=True)
        .first()
    )
    if row is None or row + LOGIN_FAILURE_WINDOW_SECONDS <= now:
        return None
    return max(1, int(row + LOGIN_FAILURE_WINDOW_SECONDS - now + 0.999))


def record_login_failure(request, email: str, *, now: float | None = None) -> int:
    """Count one failed sign-in of this email from this client IP; returns the window's count. One atomic upsert
    (an expired window restarts at 1); opening a new window prunes every expired one."""
    now = int(time.time() if now is None else now)
    expired = now - LOGIN_FAILURE_WINDOW_SECONDS
    table = connection.ops.quote_name(LoginFailureWindow._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (key, window_start, count) VALUES (%s, %s, 1) "  # noqa: S608 (constant table)
            f"ON CONFLICT (key) DO UPDATE SET "
            f"count = CASE WHEN {table}.window_start <= %s THEN 1 ELSE {table}.count + 1 END, "
            f"window_start = CASE WHEN {table}.window_start <= %s THEN %s ELSE {table}.window_start END "
            f"RETURNING count",
            [_login_key(request, email), now, expired, expired, now],
        )
        count = cursor.fetchone()[0]
    if count == 1:
        LoginFailureWindow.objects.filter(window_start__lte=expired).delete()
    return count


def clear_login_failures(request, email: str) -> None:
    """After a successful sign-in: forget this email's failures from this client IP."""
    LoginFailureWindow.objects.filter(key=_login_key(request, email)).delete()


class LoginLimitBackend(ModelBackend):
    """Django's model backend behind the sign-in limit: a locked (email, IP) pair is refused before the password
    is looked at (``PermissionDenied`` stops ``authenticate()``); every failure is counted, a success clears."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None or username is None:
            return super().authenticate(request, username=username, password=password, **kwargs)
        if login_retry_after(request, username) is not None:
            raise PermissionDenied("sign-in limit reached")
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            record_login_failure(request, username)
        else:
            clear_login_failures(request, username)
        return user


def count_token_request(token_id: str, *, window_start: int) -> int:
    """Count one request of the token in the window starting at ``window_start``; returns the window's count.

    One atomic statement; when it opens a new window, the token's older windows are deleted.
    """
    table = connection.ops.quote_name(TokenRateWindow._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (token_id, window_start, count) VALUES (%s, %s, 1) "  # noqa: S608 (constant table)
            f"ON CONFLICT (token_id, window_start) DO UPDATE SET count = {table}.count + 1 RETURNING count",
            [token_id, window_start],
        )
        count = cursor.fetchone()[0]
    if count == 1:
        TokenRateWindow.objects.filter(token_id=token_id, window_start__lt=window_start).delete()
    return count


class TokenRateThrottle(SimpleRateThrottle):
    """Per API token: at most ``DEFAULT_THROTTLE_RATES["token"]`` requests per fixed window, shared by every
    worker (see the module docstring). Cookie (console) requests are not counted here. A refused request is a
    429 ``rate_limited`` with ``Retry-After`` = seconds until the window closes. The rate's syntax and parsing are
    DRF's; the counting is ours (the database, not the cache)."""

    scope = "token"

    def __init__(self):
        super().__init__()
        self.retry_after: int | None = None

    def get_rate(self) -> str | None:
        # Read when the throttle is made, not when the class was defined, so a changed setting takes effect.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request, view) -> bool:
        token_id = getattr(getattr(request, "auth", None), "id", None)
        if not isinstance(token_id, str) or not token_id.startswith("key_") or self.rate is None:
            return True
        now = time.time()
        window_start = int(now // self.duration) * self.duration
        if count_token_request(token_id, window_start=window_start) <= self.num_requests:
            return True
        self.retry_after = max(1, int(window_start + self.duration - now + 0.999))
        return False

    def wait(self) -> float | None:
        return self.retry_after
