"""Which address is the client (``MASKER_BEHIND_PROXY`` hops), and the database time bounds checked at start-up."""

import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.test import RequestFactory, override_settings

from masker.settings import env_proxy_hops
from masker.throttling import client_ip


def _request(xff: str | None):
    extra = {"HTTP_X_FORWARDED_FOR": xff} if xff is not None else {}
    return RequestFactory().get("/", REMOTE_ADDR="10.0.0.1", **extra)


def _with_hops(hops: int):
    return override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "NUM_PROXIES": hops})


def test_without_a_proxy_x_forwarded_for_is_ignored():
    with _with_hops(0):
        assert client_ip(_request("203.0.113.9")) == "10.0.0.1"
        assert client_ip(_request(None)) == "10.0.0.1"


def test_behind_one_proxy_the_client_is_the_address_it_saw_not_what_the_client_claims():
    with _with_hops(1):
        assert client_ip(_request("203.0.113.9, 198.51.100.7")) == "198.51.100.7"
        assert client_ip(_request(None)) == "10.0.0.1"


def test_behind_two_proxies_the_client_is_the_second_address_from_the_right():
    with _with_hops(2):
        assert client_ip(_request("1.1.1.1, 198.51.100.7, 192.0.2.3")) == "198.51.100.7"


@pytest.mark.parametrize(("raw", "hops"), [("", 0), ("0", 0), ("false", 0), ("1", 1), ("yes", 1), ("2", 2)])
def test_behind_proxy_takes_a_boolean_or_a_hop_count(monkeypatch, raw, hops):
    monkeypatch.setenv("MASKER_BEHIND_PROXY", raw)
    assert env_proxy_hops("MASKER_BEHIND_PROXY") == hops


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MASKER_DB_LOCK_TIMEOUT": "30"}, "MASKER_DB_LOCK_TIMEOUT must be shorter"),
        ({"MASKER_DB_CONNECT_TIMEOUT": "0"}, "must be >= 1 second"),
        ({"MASKER_DB_STATEMENT_TIMEOUT": "soon"}, "must be an integer"),
        ({"MASKER_BEHIND_PROXY": "many"}, "MASKER_BEHIND_PROXY must be an integer"),
    ],
)
def test_bad_bounds_stop_the_service_at_start_up(env, message):
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "masker.settings", "MASKER_DEBUG": "1", **env}
    run = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode != 0
    assert message in run.stderr


def test_postgresql_connections_carry_the_bounds():
    options = settings.DATABASES["default"]["OPTIONS"]
    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        assert options["connect_timeout"] == settings.DB_CONNECT_TIMEOUT
        assert f"statement_timeout={settings.DB_STATEMENT_TIMEOUT * 1000}" in options["options"]
        assert f"lock_timeout={settings.DB_LOCK_TIMEOUT * 1000}" in options["options"]
    else:
        assert options["timeout"] == settings.DB_LOCK_TIMEOUT


@pytest.mark.postgres_only
def test_the_database_session_runs_under_the_bounds(db):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('lock_timeout'), current_setting('statement_timeout')")
        lock, statement = cursor.fetchone()
    assert (lock, statement) == (f"{settings.DB_LOCK_TIMEOUT}s", f"{settings.DB_STATEMENT_TIMEOUT}s")
