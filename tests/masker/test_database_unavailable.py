"""A database that is locked, down or silent is answered 503 ``database_unavailable`` with ``Retry-After`` within
the configured time bounds, and once it is back the same requests succeed with nothing lost."""

import socket
import sqlite3
import threading
import time

import psycopg
import pytest
import requests
from django.conf import settings
from django.db import connection

from audit.models import AuditEvent
from audit.writing import start_session
from tests.audit.api_support import bearer_client, issue_token, mixed_batch
from tests.conftest import T0
from tests.live_gunicorn import HOST, free_port, gunicorn

# Time a refused request may take beyond the bound itself (scheduling on a busy machine).
SLACK_SECONDS = 3


def _assert_unavailable(response, elapsed: float, bound: float) -> None:
    assert response.status_code == 503, response.content[:300]
    assert response.json()["error"]["code"] == "database_unavailable"
    assert int(response["Retry-After"]) > 0
    assert elapsed < bound + SLACK_SECONDS


def _timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


@pytest.fixture
def open_session(live_db, acme, agent):
    session = start_session(agent, external_ref="call-locked", started_at=T0)[0]
    return bearer_client(issue_token(acme)), session


def _append_and_report_are_503_then_succeed(client, session, lock, release) -> None:
    before = AuditEvent.objects.filter(session_id=session.pk).count()
    batch = {"events": mixed_batch(0, 5)}
    bound = settings.DB_LOCK_TIMEOUT
    lock()
    try:
        _refused_while_locked(client, session, batch, bound)
    finally:
        release()
    assert AuditEvent.objects.filter(session_id=session.pk).count() == before  # the refused batch wrote nothing
    assert client.post(f"/api/v1/sessions/{session.id}/events", batch, format="json").status_code == 201
    report = client.get(f"/api/v1/sessions/{session.id}/report")
    assert report.status_code == 200
    assert report.json()["report"]["audit_integrity"]["tree_size"] == before + 5


def _refused_while_locked(client, session, batch, bound) -> None:
    response, elapsed = _timed(lambda: client.post(f"/api/v1/sessions/{session.id}/events", batch, format="json"))
    _assert_unavailable(response, elapsed, bound)
    response, elapsed = _timed(lambda: client.get(f"/api/v1/sessions/{session.id}/report"))
    _assert_unavailable(response, elapsed, bound)


@pytest.mark.postgres_only
def test_a_locked_events_table_answers_503_within_the_lock_timeout_then_recovers(open_session):
    client, session = open_session
    params = connection.get_connection_params()
    locker = psycopg.connect(**{k: v for k, v in params.items() if k not in ("cursor_factory", "context")})

    def lock():
        locker.execute(f"LOCK TABLE {AuditEvent._meta.db_table} IN ACCESS EXCLUSIVE MODE")

    def release():
        locker.rollback()
        locker.close()

    _append_and_report_are_503_then_succeed(client, session, lock, release)


@pytest.mark.sqlite_only
def test_a_locked_sqlite_database_answers_503_within_the_busy_timeout_then_recovers(open_session):
    client, session = open_session
    locker = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)

    def lock():
        locker.execute("BEGIN EXCLUSIVE")

    def release():
        locker.execute("ROLLBACK")
        locker.close()

    _append_and_report_are_503_then_succeed(client, session, lock, release)


class SilentDatabase:
    """A TCP server that accepts connections and never says a word (a hung database host)."""

    def __init__(self):
        self.port = free_port()
        self._server = socket.create_server((HOST, self.port))
        self._accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:  # closed
                return
            self._accepted.append(conn)

    def close(self) -> None:
        self._server.close()
        for conn in self._accepted:
            conn.close()


@pytest.fixture
def silent_database():
    server = SilentDatabase()
    yield server
    server.close()


@pytest.mark.postgres_only
@pytest.mark.parametrize("state", ["refused", "silent"])
def test_a_database_that_is_down_or_silent_answers_503_and_healthz_still_answers(db, state, request, tmp_path):
    port = request.getfixturevalue("silent_database").port if state == "silent" else free_port()
    env = {
        "DATABASE_URL": f"postgres://postgres@{HOST}:{port}/masker",
        "MASKER_DB_CONNECT_TIMEOUT": "2",
        "MASKER_LOG_LEVEL": "INFO",
    }
    log = tmp_path / "gunicorn.log"
    with gunicorn(env=env, log=log) as base:
        assert requests.get(f"{base}/healthz", timeout=30).status_code == 200
        for method, path, headers in [
            ("GET", "/readyz", {}),
            ("GET", "/api/v1/me", {"Authorization": "Bearer mk_unknown"}),
            ("POST", "/api/v1/auth/login", {"Content-Type": "application/json"}),
        ]:
            started = time.monotonic()
            data = '{"email": "a@b.test", "password": "x"}' if method == "POST" else None
            response = requests.request(method, f"{base}{path}", headers=headers, data=data, timeout=30)
            elapsed = time.monotonic() - started
            assert response.status_code == 503, (path, response.text[:300])
            assert response.headers["Content-Type"] == "application/json"
            assert response.json()["error"]["code"] == "database_unavailable"
            assert int(response.headers["Retry-After"]) > 0
            assert elapsed < 2 + SLACK_SECONDS
        console = requests.get(f"{base}/sessions/", cookies={"masker_session": "x" * 32}, timeout=30)
        assert console.status_code == 503
        assert console.headers["Content-Type"].startswith("text/html")
        assert "not answering" in console.text

    # Every line the application logged about these requests names its request id.
    app_lines = [line for line in log.read_text().splitlines() if " masker." in line or " django." in line]
    assert any(" django.request [req_" in line for line in app_lines)
    assert any(" masker.errors [req_" in line and "database unavailable" in line for line in app_lines)
    assert not [line for line in app_lines if "[-]" in line]
