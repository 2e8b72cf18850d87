"""Run the real WSGI app under gunicorn in a subprocess, against the test database (or any ``DATABASE_URL``).

Tests that use it need committed data (``live_db``): the server is another process with its own connections.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


def test_database_url() -> str:
    """The URL of the database this test run uses (pytest-django's test database)."""
    params = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(params['NAME']).resolve()}"
    user, host, port = params.get("USER") or "postgres", params.get("HOST") or HOST, params.get("PORT") or 5432
    password = f":{params['PASSWORD']}" if params.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{host}:{port}/{params['NAME']}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@contextmanager
def gunicorn(
    *, workers: int = 1, timeout: int = 60, env: dict[str, str] | None = None, log: Path | None = None
) -> Iterator[str]:
    """A gunicorn serving ``masker.wsgi`` as deployed (``masker.gunicorn_conf``) on a free port with
    ``tests.settings`` (fast hasher, DEBUG off); yields
    its base URL once ``/healthz`` answers, stops it (and its workers) afterwards. ``log``: a file that receives
    the server's log (stderr)."""
    port = free_port()
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": test_database_url(),
        "MASKER_DEBUG": "0",
        "MASKER_SECURE_COOKIES": "0",  # plain http between the test and the server
        "MASKER_LOG_LEVEL": "WARNING",
        **(env or {}),
    }
    command = [
        str(Path(sys.executable).parent / "gunicorn"),
        "-c",
        "python:masker.gunicorn_conf",
        "masker.wsgi:application",
        "--bind",
        f"{HOST}:{port}",
        "--workers",
        str(workers),
        "--timeout",
        str(timeout),
        "--log-level",
        "warning",
        "--chdir",
        str(ROOT),
    ]
    stderr = log.open("ab") if log is not None else None
    server = subprocess.Popen(command, env=environment, cwd=ROOT, start_new_session=True, stderr=stderr)
    base = f"http://{HOST}:{port}"
    try:
        _wait_ready(base, server)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # our own process group: gunicorn and its workers
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        if stderr is not None:
            stderr.close()


def _wait_ready(base: str, server: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {server.returncode}")
        try:
            if requests.get(f"{base}/healthz", timeout=5).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or still importing
            pass
        time.sleep(0.2)
    raise RuntimeError("gunicorn did not answer /healthz in time")
