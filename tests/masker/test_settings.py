"""Security settings outside DEBUG, and the request-id header."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
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


def _settings_in_subprocess(env_file: Path, **environ: str) -> dict:
    """DEBUG and SECRET_KEY as masker.settings reads them in a fresh process with ``env_file`` as its .env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MASKER_", "DJANGO_", "DATABASE_URL"))}
    env.update(MASKER_ENV_FILE=str(env_file), MASKER_VAR_DIR=str(env_file.parent / "var"), **environ)
    code = (
        "import json, django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'masker.settings'; "
        "from django.conf import settings; print(json.dumps({'debug': settings.DEBUG, 'secret': settings.SECRET_KEY}))"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=settings.BASE_DIR, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_make_run_writes_a_development_env_once_and_settings_read_it(tmp_path):
    makefile = Path(settings.BASE_DIR) / "Makefile"
    subprocess.run(["make", "-s", "-f", str(makefile), "-C", str(tmp_path), ".env"], check=True, capture_output=True)
    env_file = tmp_path / ".env"
    written = env_file.read_text()
    subprocess.run(["make", "-s", "-f", str(makefile), "-C", str(tmp_path), ".env"], check=True, capture_output=True)

    assert env_file.read_text() == written  # written once, never overwritten
    assert env_file.stat().st_mode & 0o777 == 0o600
    secret = re.search(r"^MASKER_SECRET_KEY=(\S{40,})$", written, re.M).group(1)
    assert "MASKER_DEBUG=1" in written.splitlines()
    assert _settings_in_subprocess(env_file) == {"debug": True, "secret": secret}


def test_the_environment_wins_over_the_env_file(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("MASKER_DEBUG=1\nMASKER_SECRET_KEY=from-the-file\n")
    loaded = _settings_in_subprocess(env_file, MASKER_DEBUG="0", MASKER_SECRET_KEY="from-the-environment")
    assert loaded == {"debug": False, "secret": "from-the-environment"}


def test_loading_the_settings_creates_no_folder_and_starting_the_service_creates_its_own(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("MASKER_DEBUG=1\n")
    _settings_in_subprocess(env_file)
    assert not (tmp_path / "var").exists()

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MASKER_", "DJANGO_", "DATABASE_URL"))}
    env.update(MASKER_ENV_FILE=str(env_file), MASKER_VAR_DIR=str(tmp_path / "var"), MASKER_KEYS_DIR=str(tmp_path / "k"))
    code = "import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'masker.settings'; django.setup()"
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=settings.BASE_DIR, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "var" / "static").is_dir()


def test_a_malformed_token_rate_stops_the_settings_from_loading(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("MASKER_DEBUG=1\nMASKER_TOKEN_RATE=lots/min\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MASKER_", "DJANGO_", "DATABASE_URL"))}
    env.update(MASKER_ENV_FILE=str(env_file), MASKER_VAR_DIR=str(tmp_path / "var"))
    code = "import os; os.environ['DJANGO_SETTINGS_MODULE'] = 'masker.settings'; import django; django.setup()"
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=settings.BASE_DIR, capture_output=True, text=True)
    assert done.returncode != 0
    assert "MASKER_TOKEN_RATE must be a rate such as 6000/min" in done.stderr
    assert _settings_in_subprocess(env_file, MASKER_TOKEN_RATE="20/hour")["debug"] is True


@pytest.mark.parametrize("value", ["0", "3", "two"])
def test_walk_processes_other_than_1_or_2_stop_the_settings_from_loading(tmp_path, value):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MASKER_", "DJANGO_", "DATABASE_URL"))}
    env.update(MASKER_ENV_FILE="", MASKER_DEBUG="1", MASKER_VAR_DIR=str(tmp_path / "var"), MASKER_WALK_PROCESSES=value)
    code = "import os; os.environ['DJANGO_SETTINGS_MODULE'] = 'masker.settings'; import django; django.setup()"
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=settings.BASE_DIR, capture_output=True, text=True)
    assert done.returncode != 0
    assert "MASKER_WALK_PROCESSES must be" in done.stderr
