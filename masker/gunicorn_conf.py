"""Gunicorn settings for the service: ``gunicorn -c python:masker.gunicorn_conf masker.wsgi``.

- ``timeout`` must exceed the database bounds (connect + statement timeouts, ``MASKER_DB_*``), so a sick
  database is answered 503 ``database_unavailable`` by the application before gunicorn kills the worker; checked
  when the server starts.
- ``limit_request_line`` admits 8 KiB URLs; a longer one is a 414.
- Requests that gunicorn refuses itself (a malformed request line or header, a control byte in a header value, a
  URL over the limit) are answered in the API's error envelope rather than gunicorn's HTML page. The message names
  the rule only: gunicorn's own text can quote the offending bytes.

Command-line options override these values (``--workers``, ``--bind``...).
"""

import json
import os

from gunicorn import util

from masker.ids import new_id

bind = os.environ.get("MASKER_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
timeout = 60
limit_request_line = 8190


def on_starting(server) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "masker.settings")
    from django.conf import settings  # the bounds as the service reads and validates them

    bound = settings.DB_CONNECT_TIMEOUT + settings.DB_STATEMENT_TIMEOUT
    if server.cfg.timeout <= bound:
        raise SystemExit(
            f"gunicorn --timeout ({server.cfg.timeout} s) must exceed MASKER_DB_CONNECT_TIMEOUT + "
            f"MASKER_DB_STATEMENT_TIMEOUT ({bound} s), or a slow database kills workers instead of answering 503"
        )


_CODES = {500: "internal_error"}


def write_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """Gunicorn's error page, as the API's envelope (``{"error": {code, message, request_id}}``)."""
    request_id = new_id("req")
    code = _CODES.get(status_int, "validation_failed")
    message = f"{reason}: the request line or a header is malformed or too large."
    if status_int >= 500:
        message = "Internal error."
    body = json.dumps({"error": {"code": code, "message": message, "request_id": request_id}}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"X-Request-ID: {request_id}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


util.write_error = write_error  # gunicorn's workers call util.write_error for the requests they refuse
