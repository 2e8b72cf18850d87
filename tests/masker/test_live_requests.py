"""What only a real HTTP server shows: chunked bodies, raw header bytes and a foreign Host, against gunicorn."""

import json
import socket
from urllib.parse import urlsplit

import pytest
import requests
from django.conf import settings

from audit.models import Session
from tests.audit.api_support import issue_token
from tests.live_gunicorn import gunicorn


@pytest.fixture
def server(live_db):
    with gunicorn() as base:
        yield base


def _chunks(body: bytes, size: int = 7):
    for start in range(0, len(body), size):
        yield body[start : start + size]


def _raw_request(base: str, head: str) -> tuple[int, dict, bytes]:
    """Send ``head`` (request line and headers, CRLF-separated) byte for byte; returns status, headers, body."""
    url = urlsplit(base)
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(head.encode("latin-1") + b"\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head_bytes, _, body = data.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def test_a_chunked_body_without_content_length_is_read(server, acme, agent):
    secret = issue_token(acme)
    body = json.dumps({"agent_id": agent.id, "external_ref": "call-chunked"}).encode()
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    response = requests.post(f"{server}/api/v1/sessions", data=_chunks(body), headers=headers, timeout=30)
    assert "Content-Length" not in response.request.headers
    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert response.status_code == 201, response.text
    assert Session.objects.filter(external_ref="call-chunked").count() == 1


def test_a_chunked_body_over_the_limit_is_a_413_and_writes_nothing(server, acme, agent):
    secret = issue_token(acme)
    padding = "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    body = json.dumps({"agent_id": agent.id, "external_ref": "call-big", "padding": padding}).encode()
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    response = requests.post(f"{server}/api/v1/sessions", data=_chunks(body, 65536), headers=headers, timeout=60)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert not Session.objects.filter(external_ref="call-big").exists()


@pytest.mark.parametrize("value", ["Bearer mk_abc\x01def", "Bearer mk_abc\x7fdef", "Bearer mk_abc\x00def"])
def test_a_control_byte_in_a_header_is_a_400_envelope(server, value):
    head = f"GET /api/v1/me HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {value}\r\nConnection: close"
    status, headers, body = _raw_request(server, head)
    assert status == 400
    assert headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert error["code"] == "validation_failed"
    assert error["request_id"] == headers["x-request-id"]
    assert "mk_abc" not in body.decode()


def test_a_url_over_the_limit_is_a_414_envelope(server):
    head = f"GET /api/v1/sessions?{'a=1&' * 3000} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close"
    # gunicorn answers before reading the whole line and closes; the unread rest can reset the connection before
    # the answer arrives (a TCP race, not the server's answer), so a reset is tried again.
    for _ in range(5):
        try:
            status, headers, body = _raw_request(server, head)
            break
        except ConnectionResetError:
            continue
    assert status == 414
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["code"] == "validation_failed"


def test_a_foreign_host_under_the_api_is_a_400_envelope(server):
    response = requests.get(f"{server}/api/v1/keys", headers={"Host": "evil.example"}, timeout=30)
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "validation_failed"
