"""API tokens: issuing (command and admin), bearer authentication, scopes, revocation, rate limits."""

import hashlib
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditEvent
from audit.writing import start_session
from masker.models import ApiToken, TokenRateWindow
from masker.throttling import count_token_request
from tests.audit.api_support import bearer_client, issue_token, mixed_batch
from tests.conftest import T0, _member

SESSIONS = "/api/v1/sessions"


@pytest.fixture
def session(agent):
    return start_session(agent, external_ref="call-1", started_at=T0)[0]


def test_create_api_token_prints_the_secret_once_and_stores_only_its_hash(acme):
    out, err = StringIO(), StringIO()

    call_command(
        "create_api_token",
        "--account",
        acme.id,
        "--scopes",
        "events:write",
        "sessions:read",
        "--name",
        "proxy",
        stdout=out,
        stderr=err,
    )

    secret = out.getvalue().strip()
    token = ApiToken.objects.get(account=acme)
    assert secret.startswith("mk_") and len(secret) > 40
    assert token.id.startswith("key_") and token.id in err.getvalue()
    assert token.scopes == ["events:write", "sessions:read"] and token.name == "proxy"
    assert token.secret_sha256 == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(token.__dict__) and secret not in err.getvalue()


def test_create_api_token_refuses_unknown_account_and_scope(acme):
    with pytest.raises(CommandError, match="not found"):
        call_command(
            "create_api_token",
            "--account",
            "acc_01JD00000000000000000000AA",
            "--scopes",
            "events:write",
            stdout=StringIO(),
        )
    with pytest.raises(CommandError):
        call_command(
            "create_api_token", "--account", acme.id, "--scopes", "events:delete", stdout=StringIO(), stderr=StringIO()
        )
    assert not ApiToken.objects.exists()


def test_issued_secret_authenticates_on_every_read_endpoint(acme, session):
    client = bearer_client(issue_token(acme))

    assert client.get(SESSIONS).status_code == 200
    assert client.get(f"{SESSIONS}/{session.id}").status_code == 200
    assert client.get("/api/v1/agents").status_code == 200
    assert client.get("/api/v1/me").json()["kind"] == "token"


def test_use_records_last_used_time(acme):
    secret = issue_token(acme)
    before = timezone.now()

    bearer_client(secret).get(SESSIONS)

    assert ApiToken.objects.get(account=acme).last_used_at >= before


def test_sessions_read_token_cannot_append_start_or_end(acme, agent, session):
    client = bearer_client(issue_token(acme, "sessions:read"))

    responses = [
        client.post(f"{SESSIONS}/{session.id}/events", {"events": mixed_batch(0, 2)}, format="json"),
        client.post(SESSIONS, {"agent_id": agent.id, "external_ref": "call-2"}, format="json"),
        client.post(f"{SESSIONS}/{session.id}/end", {"status": "ok"}, format="json"),
    ]

    assert [r.status_code for r in responses] == [403, 403, 403]
    assert {r.json()["error"]["code"] for r in responses} == {"forbidden"}
    session.refresh_from_db()
    assert session.tree_size == 1 and not session.is_sealed


def test_events_write_token_cannot_read(acme, session):
    client = bearer_client(issue_token(acme, "events:write"))

    assert client.get(SESSIONS).status_code == 403
    assert client.get(f"{SESSIONS}/{session.id}").status_code == 403
    assert client.get("/api/v1/agents").status_code == 403


def test_revoked_token_is_401(acme, session):
    secret = issue_token(acme)
    ApiToken.objects.get(account=acme).revoke()

    client = bearer_client(secret)
    read = client.get(f"{SESSIONS}/{session.id}")
    write = client.post(f"{SESSIONS}/{session.id}/events", {"events": mixed_batch(0, 2)}, format="json")

    assert (read.status_code, write.status_code) == (401, 401)
    assert read.json()["error"]["code"] == "unauthenticated"
    assert read["WWW-Authenticate"].startswith("Bearer")
    session.refresh_from_db()
    assert session.tree_size == 1


@pytest.mark.parametrize("header", ["Bearer mk_not-a-real-token", "Bearer", "Token mk_x", "Bearer x y", "Basic Zm9v"])
def test_bad_authorization_header_is_401(db, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)

    response = client.get(SESSIONS)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


def test_no_credentials_is_401(db):
    response = APIClient().get(SESSIONS)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


def test_cookie_viewer_may_read_but_not_write(acme, agent, session):
    viewer = _member("vera@acme.test", acme, role="viewer")
    client = APIClient()
    client.force_login(viewer)

    assert client.get(f"{SESSIONS}/{session.id}").status_code == 200
    response = client.post(f"{SESSIONS}/{session.id}/events", {"events": mixed_batch(0, 1)}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


def test_cookie_admin_may_write_with_csrf(alice, session):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(alice)
    url = f"{SESSIONS}/{session.id}/events"

    without_token = client.post(url, {"events": mixed_batch(0, 1)}, format="json")
    client.cookies["csrftoken"] = "c" * 32  # the CSRF secret the console's pages set
    with_token = client.post(url, {"events": mixed_batch(0, 1)}, format="json", HTTP_X_CSRFTOKEN="c" * 32)

    assert without_token.status_code == 403
    assert with_token.status_code == 201


def test_cookie_write_without_csrf_token_is_403_csrf_failed_saying_what_to_send(alice, session):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(alice)
    before = AuditEvent.objects.filter(session=session).count()

    response = client.post(f"{SESSIONS}/{session.id}/events", {"events": mixed_batch(0, 1)}, format="json")

    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "csrf_failed"
    assert "X-CSRFToken" in error["message"] and "csrftoken" in error["message"]
    assert AuditEvent.objects.filter(session=session).count() == before


def test_admin_issues_a_token_and_shows_the_secret_once(acme, admin_client):
    page = admin_client.get("/admin/masker/apitoken/add/")
    assert page.status_code == 200

    response = admin_client.post(
        "/admin/masker/apitoken/add/",
        {"account": acme.id, "name": "proxy-prod", "scopes": ["events:write", "sessions:read"]},
    )

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    token = ApiToken.objects.get(account=acme)
    html = response.content.decode()
    secret = html.split('id="api-token-secret"', 1)[1].split(">", 1)[1].split("<", 1)[0]
    assert secret.startswith("mk_")
    assert token.secret_sha256 == ApiToken.hash_secret(secret)
    assert token.scopes == ["events:write", "sessions:read"] and token.name == "proxy-prod"
    assert bearer_client(secret).get(SESSIONS).status_code == 200
    # Never again: the change page and the list show the hash's owner, not the secret.
    assert secret not in admin_client.get(f"/admin/masker/apitoken/{token.id}/change/").content.decode()
    assert secret not in admin_client.get("/admin/masker/apitoken/").content.decode()


def test_admin_revokes_tokens(acme, admin_client):
    secret = issue_token(acme)
    token = ApiToken.objects.get(account=acme)

    admin_client.post("/admin/masker/apitoken/", {"action": "revoke_tokens", "_selected_action": [token.id]})

    token.refresh_from_db()
    assert token.revoked_at is not None
    assert bearer_client(secret).get(SESSIONS).status_code == 401


def test_rate_limit_per_token_is_429_with_retry_after(acme, session, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"token": "3/min"}}
    limited = bearer_client(issue_token(acme))
    other = bearer_client(issue_token(acme))
    while time.time() % 60 > 45:  # the five requests below must fall in one minute window (windows are aligned)
        time.sleep(0.5)

    statuses = [limited.get(SESSIONS).status_code for _ in range(4)]
    refused = limited.post(f"{SESSIONS}/{session.id}/events", {"events": mixed_batch(0, 1)}, format="json")

    assert statuses == [200, 200, 200, 429]
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert other.get(SESSIONS).status_code == 200  # the limit is per token
    session.refresh_from_db()
    assert session.tree_size == 1


def test_rate_counter_is_one_row_per_token_and_window_and_prunes_old_windows(acme):
    issue_token(acme)
    token = ApiToken.objects.get(account=acme)

    counts = [count_token_request(token.id, window_start=60) for _ in range(3)]
    next_window = count_token_request(token.id, window_start=120)

    assert counts == [1, 2, 3] and next_window == 1
    assert list(TokenRateWindow.objects.values_list("window_start", "count")) == [(120, 1)]


def test_cookie_requests_are_not_token_rate_limited(alice, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"token": "1/min"}}
    client = APIClient()
    client.force_login(alice)

    assert [client.get(SESSIONS).status_code for _ in range(3)] == [200, 200, 200]


def test_token_expiry_of_last_used_is_written_at_most_once_a_minute(acme):
    secret = issue_token(acme)
    token = ApiToken.objects.get(account=acme)
    stamp = timezone.now() - timedelta(seconds=10)
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=stamp)

    bearer_client(secret).get(SESSIONS)

    assert ApiToken.objects.get(pk=token.pk).last_used_at == stamp
