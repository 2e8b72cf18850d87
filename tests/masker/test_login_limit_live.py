"""The sign-in limit holds across processes: two gunicorn servers on one database, requests alternating between
them, behave as one (a per-process counter would give each its own budget)."""

import re
import uuid

import pytest
import requests

from masker.throttling import LOGIN_FAILURE_LIMIT
from tests.conftest import _member
from tests.live_gunicorn import gunicorn


@pytest.fixture
def servers(live_db):
    with gunicorn() as first, gunicorn() as second:
        yield first, second


@pytest.fixture
def alice_live(live_db, acme):
    return _member("alice@acme.test", acme)


def _api_login(base: str, email: str, password: str, **headers) -> requests.Response:
    return requests.post(
        f"{base}/api/v1/auth/login", json={"email": email, "password": password}, headers=headers, timeout=30
    )


def _admin_login(base: str, username: str, password: str) -> requests.Response:
    http = requests.Session()
    page = http.get(f"{base}/admin/login/", timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    return http.post(
        f"{base}/admin/login/?next=/admin/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": token, "next": "/admin/"},
        headers={"Referer": f"{base}/admin/login/"},
        allow_redirects=False,
        timeout=30,
    )


def test_the_api_login_limit_is_shared_by_every_process(servers, alice_live):
    statuses = [_api_login(servers[n % 2], "alice@acme.test", "wrong").status_code for n in range(LOGIN_FAILURE_LIMIT)]
    assert statuses == [401] * LOGIN_FAILURE_LIMIT
    for base in servers:
        refused = _api_login(base, "alice@acme.test", "pw-alice@acme.test")
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"
        assert int(refused.headers["Retry-After"]) > 0
        assert "masker_session" not in refused.cookies
    # A spoofed X-Forwarded-For is not believed without MASKER_BEHIND_PROXY: still the same client.
    spoofed = _api_login(servers[0], "alice@acme.test", "pw-alice@acme.test", **{"X-Forwarded-For": "203.0.113.9"})
    assert spoofed.status_code == 429


def test_the_admin_login_is_limited_the_same_way(servers, alice_live, acme):
    alice_live.is_staff = True
    alice_live.save(update_fields=["is_staff"])
    other = _member("carol@acme.test", acme)
    other.is_staff = True
    other.save(update_fields=["is_staff"])
    for n in range(LOGIN_FAILURE_LIMIT):
        assert _admin_login(servers[n % 2], "alice@acme.test", "wrong").status_code == 200
    refused = _admin_login(servers[1], "alice@acme.test", "pw-alice@acme.test")
    assert refused.status_code == 200  # the form again, not the redirect into the admin
    assert "masker_session" not in refused.cookies
    # The API refuses the same pair too: one limit for every way in.
    assert _api_login(servers[0], "alice@acme.test", "pw-alice@acme.test").status_code == 429
    # Another staff account from the same IP signs in.
    allowed = _admin_login(servers[0], "carol@acme.test", "pw-carol@acme.test")
    assert allowed.status_code == 302
    assert allowed.headers["Location"] == "/admin/"


def test_a_flood_of_failures_for_other_accounts_does_not_lock_out_a_correct_login(servers, alice_live):
    for n in range(60):
        response = _api_login(servers[n % 2], f"{uuid.uuid4().hex[:12]}@example.test", "guess")
        assert response.status_code == 401
    response = _api_login(servers[1], "alice@acme.test", "pw-alice@acme.test")
    assert response.status_code == 204
    assert "masker_session" in response.cookies
