"""Sign-in throttle shared by the console form and ``POST /api/v1/auth/login``.

Failures are counted in the cache per client IP and per email, in a fixed 15-minute window opened by the first
failure. Once either counter reaches ``LOGIN_FAILURE_LIMIT``, sign-in is refused (429) *without checking the
password* until the window closes, so a guesser learns nothing more. A success clears the email's counter only
(clearing the IP's would let one valid account reset an attacker's budget).

The counters live in ``CACHES["default"]``: locmem (per process) in development and tests; a multi-process
deployment needs a shared cache (Redis, memcached or the database cache) for the limit to be global.
Emails are hashed in cache keys so no address sits in the cache in clear.

API tokens (issue 5) are limited by ``TokenRateThrottle``: ``DEFAULT_THROTTLE_RATES["token"]`` requests per
token per fixed window, counted in the database (``TokenRateWindow``) rather than in ``CACHES``. A deployment runs
several gunicorn workers (and possibly hosts); a locmem cache would give each worker its own budget, so the
effective limit would silently be the rate times the number of workers, shifting with the worker count. The
database is the one store every worker already shares, and one atomic upsert per request (``INSERT … ON CONFLICT
DO UPDATE … RETURNING``, PostgreSQL and SQLite ≥ 3.35) keeps the count exact without the read-modify-write race
that Django's database cache backend has (its ``incr`` is a get and a set).
"""

import hashlib
import time

from django.core.cache import cache
from django.db import connection
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from masker.models import TokenRateWindow

LOGIN_FAILURE_LIMIT = 10
LOGIN_FAILURE_WINDOW_SECONDS = 15 * 60
_PREFIX = "login-failures"


def _keys(request, email: str) -> list[str]:
    ip = request.META.get("REMOTE_ADDR") or "unknown"
    email_digest = hashlib.sha256(email.strip().lower().encode("utf-8")).hexdigest()[:32]
    return [f"{_PREFIX}:ip:{ip}", f"{_PREFIX}:email:{email_digest}"]


def login_retry_after(request, email: str, *, now: float | None = None) -> int | None:
    """Seconds until sign-in is allowed again for this IP/email, or None when it is allowed now."""
    now = time.time() if now is None else now
    keys = _keys(request, email)
    values = cache.get_many([*keys, *(f"{k}:start" for k in keys)])
    waits = []
    for key in keys:
        if values.get(key, 0) >= LOGIN_FAILURE_LIMIT:
            started = values.get(f"{key}:start", now)
            waits.append(max(1, int(started + LOGIN_FAILURE_WINDOW_SECONDS - now + 0.999)))
    return max(waits) if waits else None


def record_login_failure(request, email: str, *, now: float | None = None) -> None:
    """Count one failed sign-in against the client IP and the email (atomic ``add`` + ``incr``)."""
    now = time.time() if now is None else now
    for key in _keys(request, email):
        if cache.add(key, 1, LOGIN_FAILURE_WINDOW_SECONDS):
            cache.set(f"{key}:start", now, LOGIN_FAILURE_WINDOW_SECONDS)
            continue
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr: this failure opens a new window
            cache.set(key, 1, LOGIN_FAILURE_WINDOW_SECONDS)
            cache.set(f"{key}:start", now, LOGIN_FAILURE_WINDOW_SECONDS)


def clear_login_failures(request, email: str) -> None:
    """After a successful sign-in: forget the email's failures (the IP's stay)."""
    email_key = _keys(request, email)[1]
    cache.delete_many([email_key, f"{email_key}:start"])


_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """``"6000/min"`` → (6000, 60): DRF's rate syntax (the period's first letter counts)."""
    count, period = rate.split("/")
    return int(count), _PERIODS[period.strip()[0]]


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


class TokenRateThrottle(BaseThrottle):
    """Per API token: at most ``DEFAULT_THROTTLE_RATES["token"]`` requests per fixed window, shared by every
    worker (see the module docstring). Cookie (console) requests are not counted here. A refused request is a
    429 ``rate_limited`` with ``Retry-After`` = seconds until the window closes."""

    def __init__(self):
        self.retry_after: int | None = None

    def allow_request(self, request, view) -> bool:
        token = getattr(request, "auth", None)
        token_id = getattr(token, "id", None)
        rate = api_settings.DEFAULT_THROTTLE_RATES.get("token")
        if not isinstance(token_id, str) or not token_id.startswith("key_") or not rate:
            return True
        limit, duration = parse_rate(rate)
        now = time.time()
        window_start = int(now // duration) * duration
        if count_token_request(token_id, window_start=window_start) <= limit:
            return True
        self.retry_after = max(1, int(window_start + duration - now + 0.999))
        return False

    def wait(self) -> float | None:
        return self.retry_after
