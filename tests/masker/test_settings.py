"""Security settings outside DEBUG, and the request-id header."""

from django.conf import settings


def test_session_cookie_is_masker_session_httponly_lax_and_secure_outside_debug():
    assert settings.DEBUG is False
    assert settings.SESSION_COOKIE_NAME == "masker_session"
    assert settings.SESSION_COOKIE_HTTPONLY is True
    assert settings.SESSION_COOKIE_SAMESITE == "Lax"
    assert settings.SESSION_COOKIE_SECURE is True
    assert settings.CSRF_COOKIE_SECURE is True
    assert settings.SESSION_COOKIE_AGE == 30 * 24 * 3600
    assert settings.SESSION_SAVE_EVERY_REQUEST is True
    assert settings.SECURE_HSTS_SECONDS > 0
    assert settings.TIME_ZONE == "UTC" and settings.USE_TZ


def test_every_response_carries_a_request_id(client, db):
    for path in ("/api/v1/me", "/api/v1/nowhere", "/admin/login/"):
        response = client.get(path)
        assert response["X-Request-ID"].startswith("req_"), path


def test_unknown_api_path_is_a_json_404_envelope(client, db):
    response = client.get("/api/v1/nowhere")
    assert response.status_code == 404
    body = response.json()
    assert body["error"]["code"] == "not_found"
    assert body["error"]["request_id"] == response["X-Request-ID"]
