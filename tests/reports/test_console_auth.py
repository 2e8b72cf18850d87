"""Console sign-in and sign-out: email + password, CSRF, the masker_session cookie, the failure throttle."""

import pytest
from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.core.cache import cache
from django.test import Client

from audit.demo import DEMO_EMAIL, DEMO_PASSWORD, OTHER_EMAIL
from masker.throttling import LOGIN_FAILURE_LIMIT

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_throttle_counters():
    # Failure counters live in the (process-wide locmem) cache; each test starts from zero.
    cache.clear()
    yield
    cache.clear()


def _sign_in(client, email, password, **extra):
    return client.post("/login/", {"username": email, "password": password}, **extra)


def test_login_page_has_labelled_email_and_password_fields_and_a_csrf_token(client):
    response = client.get("/login/")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<label for="id_username">Email</label>' in html
    assert '<label for="id_password">Password</label>' in html
    assert 'type="email"' in html and 'type="password"' in html
    assert "csrfmiddlewaretoken" in html
    assert "<h1>Sign in</h1>" in html


def test_correct_login_sets_the_masker_session_cookie_and_opens_the_sessions_page(client, seeded):
    response = _sign_in(client, DEMO_EMAIL, DEMO_PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == "/sessions/"
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert settings.SESSION_COOKIE_NAME == "masker_session"
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    assert client.get("/sessions/").status_code == 200


def test_login_email_is_case_insensitive(client, seeded):
    response = _sign_in(client, DEMO_EMAIL.upper(), DEMO_PASSWORD)
    assert response.status_code == 302


def test_login_follows_a_local_next_url_but_not_an_external_one(client, seeded):
    session_url = f"/sessions/{seeded.sessions[0].id}/"
    response = client.post("/login/", {"username": DEMO_EMAIL, "password": DEMO_PASSWORD, "next": session_url})
    assert response["Location"] == session_url
    client.logout()
    response = client.post(
        "/login/", {"username": DEMO_EMAIL, "password": DEMO_PASSWORD, "next": "https://evil.example/x"}
    )
    assert response["Location"] == "/sessions/"


def test_wrong_password_shows_an_error_and_sets_no_session(client, seeded):
    response = _sign_in(client, DEMO_EMAIL, "not-the-password")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Wrong email or password" in html
    assert 'role="alert"' in html
    assert settings.SESSION_COOKIE_NAME not in response.cookies
    assert "_auth_user_id" not in client.session
    assert client.get("/sessions/").status_code == 302


def test_unknown_email_gets_the_same_error_as_a_wrong_password(client, seeded):
    response = _sign_in(client, "nobody@masker.local", "whatever")
    assert response.status_code == 200
    assert "Wrong email or password" in response.content.decode()


def test_login_without_a_csrf_token_is_refused(seeded):
    client = Client(enforce_csrf_checks=True)
    response = _sign_in(client, DEMO_EMAIL, DEMO_PASSWORD)
    assert response.status_code == 403
    assert settings.SESSION_COOKIE_NAME not in response.cookies


def test_login_with_the_csrf_token_from_the_form_succeeds(seeded):
    client = Client(enforce_csrf_checks=True)
    client.get("/login/")
    token = client.cookies[settings.CSRF_COOKIE_NAME].value
    response = client.post("/login/", {"username": DEMO_EMAIL, "password": DEMO_PASSWORD, "csrfmiddlewaretoken": token})
    assert response.status_code == 302


def test_ten_rapid_failures_are_throttled_without_checking_the_password(client, seeded):
    for _ in range(LOGIN_FAILURE_LIMIT):
        response = _sign_in(client, DEMO_EMAIL, "guess")
        assert response.status_code == 200
        assert "Wrong email or password" in response.content.decode()
    # The right password is not even looked at now.
    response = _sign_in(client, DEMO_EMAIL, DEMO_PASSWORD)
    assert response.status_code == 429
    assert "Too many failed sign-in attempts" in response.content.decode()
    assert 0 < int(response["Retry-After"]) <= 15 * 60
    assert settings.SESSION_COOKIE_NAME not in response.cookies
    assert "_auth_user_id" not in client.session


def test_a_throttled_attempt_never_reaches_the_password_check(client, seeded):
    checked = []

    def on_failure(sender, credentials, **kwargs):
        checked.append(credentials["username"])

    for _ in range(LOGIN_FAILURE_LIMIT):
        _sign_in(client, DEMO_EMAIL, "guess")
    user_login_failed.connect(on_failure)
    try:
        response = _sign_in(client, DEMO_EMAIL, "another-guess")
    finally:
        user_login_failed.disconnect(on_failure)
    assert response.status_code == 429
    assert checked == []
    assert f'value="{DEMO_EMAIL}"' in response.content.decode()


def test_failures_lock_one_email_from_one_ip_only(client, seeded):
    for _ in range(LOGIN_FAILURE_LIMIT):
        _sign_in(client, DEMO_EMAIL, "guess", REMOTE_ADDR="10.0.0.1")
    assert _sign_in(client, DEMO_EMAIL, DEMO_PASSWORD, REMOTE_ADDR="10.0.0.1").status_code == 429
    # The same account from another IP, and another account from the same IP, are unaffected.
    assert _sign_in(client, DEMO_EMAIL, DEMO_PASSWORD, REMOTE_ADDR="10.0.1.1").status_code == 302
    client.logout()
    assert _sign_in(client, OTHER_EMAIL, "globex-demo-2026", REMOTE_ADDR="10.0.0.1").status_code == 302


def test_a_flood_of_failures_for_other_emails_does_not_lock_out_a_correct_login_from_that_ip(client, seeded):
    for n in range(6 * LOGIN_FAILURE_LIMIT):
        _sign_in(client, f"user{n}@example.test", "guess", REMOTE_ADDR="10.9.9.9")
    assert _sign_in(client, DEMO_EMAIL, DEMO_PASSWORD, REMOTE_ADDR="10.9.9.9").status_code == 302


def test_a_successful_login_clears_the_failure_count(client, seeded):
    for _ in range(LOGIN_FAILURE_LIMIT - 1):
        _sign_in(client, DEMO_EMAIL, "guess", REMOTE_ADDR="10.1.0.1")
    assert _sign_in(client, DEMO_EMAIL, DEMO_PASSWORD, REMOTE_ADDR="10.1.0.1").status_code == 302
    client.logout()
    assert _sign_in(client, DEMO_EMAIL, "guess", REMOTE_ADDR="10.1.0.1").status_code == 200
    assert _sign_in(client, DEMO_EMAIL, DEMO_PASSWORD, REMOTE_ADDR="10.1.0.1").status_code == 302


def test_api_login_failures_count_towards_the_console_throttle(client, seeded):
    for _ in range(LOGIN_FAILURE_LIMIT):
        response = client.post(
            "/api/v1/auth/login",
            {"email": DEMO_EMAIL, "password": "guess"},
            content_type="application/json",
            REMOTE_ADDR="10.2.0.1",
        )
        assert response.status_code == 401
    assert _sign_in(client, DEMO_EMAIL, DEMO_PASSWORD, REMOTE_ADDR="10.2.0.1").status_code == 429
    response = client.post(
        "/api/v1/auth/login",
        {"email": DEMO_EMAIL, "password": DEMO_PASSWORD},
        content_type="application/json",
        REMOTE_ADDR="10.2.0.1",
    )
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert int(response["Retry-After"]) > 0


def test_sign_out_ends_the_session_and_the_session_page_then_asks_for_sign_in(client, seeded):
    _sign_in(client, DEMO_EMAIL, DEMO_PASSWORD)
    session_url = f"/sessions/{seeded.sessions[0].id}/"
    assert client.get(session_url).status_code == 200
    response = client.post("/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/login/?signed_out=1"
    assert "You have been signed out" in client.get(response["Location"]).content.decode()
    response = client.get(session_url)
    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={session_url}"


def test_get_on_logout_only_asks_for_confirmation(client, seeded):
    _sign_in(client, DEMO_EMAIL, DEMO_PASSWORD)
    response = client.get("/logout/")
    assert response.status_code == 200
    assert 'action="/logout/"' in response.content.decode()
    assert client.get("/sessions/").status_code == 200


def test_sign_out_needs_a_csrf_token(seeded):
    client = Client(enforce_csrf_checks=True)
    client.force_login(seeded.account.memberships.get().user)
    assert client.post("/logout/").status_code == 403
    assert client.get("/sessions/").status_code == 200


def test_every_console_page_asks_an_anonymous_visitor_to_sign_in(client, seeded):
    for url in ("/sessions/", f"/sessions/{seeded.sessions[0].id}/", "/agents/"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/login/?next=")


def test_root_redirects_to_the_sessions_page(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/sessions/"
