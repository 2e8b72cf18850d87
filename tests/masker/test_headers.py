"""Response headers: a Content-Security-Policy on every HTML page, ``Cache-Control: no-store`` on every answer
that shows account data, liveness and readiness probes."""

import pytest
from django.test import Client

from tests.audit.api_support import bearer_client, issue_token

CSP_DIRECTIVES = (
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "object-src 'none'",
    "frame-ancestors 'none'",
)


def _assert_csp(response) -> None:
    policy = response["Content-Security-Policy"]
    for directive in CSP_DIRECTIVES:
        assert directive in policy
    assert "unsafe-inline" not in policy


@pytest.mark.parametrize("path", ["/login/", "/admin/login/", "/api/v1/docs", "/nowhere/"])
def test_anonymous_html_pages_carry_the_csp(db, path):
    response = Client().get(path)
    assert response["Content-Type"].startswith("text/html")
    _assert_csp(response)


def test_console_pages_carry_the_csp_and_are_not_stored(acme_client, seeded):
    for path in ("/sessions/", f"/sessions/{seeded.sessions[0].id}/", "/agents/"):
        response = acme_client.get(path)
        assert response.status_code == 200, path
        _assert_csp(response)
        assert response["Cache-Control"] == "no-store", path


def test_swagger_ui_has_no_inline_script_and_its_start_up_script_is_a_file(db):
    page = Client().get("/api/v1/docs").content.decode()
    assert "<style" not in page
    assert "<script>" not in page
    script = Client().get("/api/v1/docs?script=")
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")


def test_authenticated_api_answers_are_not_stored(acme_client, seeded):
    session_id = seeded.sessions[0].id
    for path in ("/api/v1/me", "/api/v1/sessions", f"/api/v1/sessions/{session_id}", "/api/v1/agents"):
        response = acme_client.get(path)
        assert response.status_code == 200, path
        assert response["Cache-Control"] == "no-store", path
    token_client = bearer_client(issue_token(seeded.account))
    assert token_client.get("/api/v1/me")["Cache-Control"] == "no-store"


def test_healthz_answers_without_the_database_and_readyz_checks_it(db):
    assert Client().get("/healthz").json() == {"status": "ok"}
    response = Client().get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}
