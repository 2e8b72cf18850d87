"""The verification API: GET /keys, the NDJSON events export and the RFC 9162 proof endpoints."""

import hashlib
import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from drf_spectacular.generators import SchemaGenerator

from audit.export import ExportRange, iter_event_lines
from audit.models import AuditEvent
from audit.signing import jwks
from audit.writing import append_events, end_session, start_session
from tests.audit.api_support import bearer_client, issue_token, mixed_batch
from tests.conftest import T0
from tests.verifier.support import download, ref_leaf, ref_mth, ref_path, ref_subproof

MISSING_SESSION = "sess_01J00000000000000000000000"


@pytest.fixture
def session(agent):
    """An ended Acme session of 40 events."""
    session, _ = start_session(agent, external_ref="call-evidence", started_at=T0)
    append_events(session, mixed_batch(1, 38))
    end_session(session, status="ok", now=T0 + timedelta(minutes=5))
    return session


@pytest.fixture
def alice_client(alice) -> Client:
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def bob_client(bob) -> Client:
    client = Client()
    client.force_login(bob)
    return client


def _stored_lines(session) -> list[bytes]:
    rows = AuditEvent.objects.filter(session=session).order_by("seq").values_list("canonical", flat=True)
    return [text.encode() + b"\n" for text in rows]


def _error_code(response) -> str:
    return response.json()["error"]["code"]


# --- GET /keys ------------------------------------------------------------------------------------------------------


def test_keys_are_public_and_served_as_an_rfc8037_jwks(db):
    response = Client().get("/api/v1/keys")
    assert response.status_code == 200
    assert response.json() == jwks()
    assert response["Cache-Control"] == "public, max-age=60"
    (key,) = [k for k in response.json()["keys"] if k["status"] == "current"]
    assert {k: key[k] for k in ("kty", "crv", "use")} == {"kty": "OKP", "crv": "Ed25519", "use": "sig"}
    assert set(key) == {"kty", "crv", "x", "kid", "use", "status"}


def test_keys_ignore_credentials_even_invalid_ones(db):
    response = Client().get("/api/v1/keys", HTTP_AUTHORIZATION="Bearer mk_not-a-token")
    assert response.status_code == 200


# --- GET /sessions/{id}/events --------------------------------------------------------------------------------------


def test_export_is_the_stored_canonical_bytes_one_per_line_and_nothing_else(alice_client, session):
    response = alice_client.get(f"/api/v1/sessions/{session.id}/events")
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "application/x-ndjson"
    assert response["Cache-Control"] == "no-store"
    assert response["Content-Disposition"] == f'attachment; filename="masker-events-{session.id}.ndjson"'
    assert response["X-Request-ID"].startswith("req_")
    body = b"".join(response.streaming_content)
    assert body == b"".join(_stored_lines(session))
    lines = body.split(b"\n")
    assert lines[-1] == b""  # newline-terminated, no trailer
    hashes = list(AuditEvent.objects.filter(session=session).order_by("seq").values_list("event_hash", flat=True))
    assert [hashlib.sha256(b"\x00" + line).hexdigest() for line in lines[:-1]] == hashes
    assert ref_mth([ref_leaf(line) for line in lines[:-1]]).hex() == session.merkle_root_hex


@pytest.mark.parametrize(
    ("query", "seqs"),
    [
        ("from_seq=5&to_seq=9", range(5, 10)),
        ("from_seq=7&to_seq=7", range(7, 8)),
        ("from_seq=35", range(35, 40)),
        ("to_seq=2", range(3)),
        ("from_seq=30&to_seq=999", range(30, 40)),
        ("from_seq=40", range(0)),
        ("from_seq=0&to_seq=39", range(40)),
    ],
)
def test_export_range_is_inclusive_and_clipped_to_the_log(alice_client, session, query, seqs):
    body = download(alice_client, f"/api/v1/sessions/{session.id}/events?{query}")
    stored = _stored_lines(session)
    assert body == b"".join(stored[seq] for seq in seqs)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("from_seq=9&to_seq=5", "from_seq"),
        ("from_seq=-1", "from_seq"),
        ("to_seq=abc", "to_seq"),
        ("from_seq=1.0", "from_seq"),
        ("to_seq=%2B3", "to_seq"),
        ("from_seq=", "from_seq"),
    ],
)
def test_export_range_must_be_non_negative_integers_in_order(alice_client, session, query, field):
    response = alice_client.get(f"/api/v1/sessions/{session.id}/events?{query}")
    assert response.status_code == 400
    assert _error_code(response) == "validation_failed"
    assert field in response.json()["error"]["details"]["fields"]


def test_export_answers_ndjson_whatever_the_accept_header(alice_client, session):
    body = download(alice_client, f"/api/v1/sessions/{session.id}/events", HTTP_ACCEPT="application/x-ndjson")
    assert body == b"".join(_stored_lines(session))


def test_export_of_other_accounts_unknown_or_malformed_session_is_404(bob_client, alice_client, session):
    assert _error_code(bob_client.get(f"/api/v1/sessions/{session.id}/events")) == "session_not_found"
    for session_id in (MISSING_SESSION, "sess_nope", "agt_01J00000000000000000000000"):
        response = alice_client.get(f"/api/v1/sessions/{session_id}/events")
        assert response.status_code == 404
        assert _error_code(response) == "session_not_found"


def test_export_needs_authentication_and_the_sessions_read_scope(acme, session):
    response = Client().get(f"/api/v1/sessions/{session.id}/events")
    assert response.status_code == 401
    assert _error_code(response) == "unauthenticated"
    writer = bearer_client(issue_token(acme, "events:write"))
    response = writer.get(f"/api/v1/sessions/{session.id}/events")
    assert response.status_code == 403
    assert "sessions:read" in response.json()["error"]["message"]
    reader = bearer_client(issue_token(acme, "sessions:read"))
    assert download(reader, f"/api/v1/sessions/{session.id}/events") == b"".join(_stored_lines(session))


def test_export_runs_the_same_number_of_queries_whatever_the_size(alice_client, agent):
    counts = {}
    for size in (10, 600):
        session, _ = start_session(agent, external_ref=f"call-q{size}", started_at=T0)
        append_events(session, mixed_batch(1, size - 1))
        with CaptureQueriesContext(connection) as queries:
            body = download(alice_client, f"/api/v1/sessions/{session.id}/events")
        assert body.count(b"\n") == size
        counts[size] = len(queries)
    assert counts[10] == counts[600]
    # Cookie auth (session, user, membership, account), the sliding cookie's save (3), the session, the events.
    assert counts[600] <= 9


def test_export_streams_in_blocks_of_whole_lines(session):
    blocks = list(iter_event_lines(session, block_bytes=1000))
    assert len(blocks) > 5
    assert all(block.endswith(b"\n") for block in blocks)
    assert b"".join(blocks) == b"".join(_stored_lines(session))
    assert list(iter_event_lines(session, seq_range=ExportRange(from_seq=50))) == []


def test_export_covers_the_events_recorded_when_it_started(agent):
    session, _ = start_session(agent, external_ref="call-live", started_at=T0)
    append_events(session, mixed_batch(1, 9))
    blocks = iter_event_lines(session)  # the response is built...
    other = type(session).objects.get(pk=session.pk)
    append_events(other, mixed_batch(10, 5))  # ...while the proxy keeps appending
    assert b"".join(blocks).count(b"\n") == 10


def test_export_range_value_object_refuses_bad_bounds():
    for bad in ({"from_seq": -1}, {"to_seq": True}, {"from_seq": 3, "to_seq": 2}, {"from_seq": "1"}):
        with pytest.raises(ValueError, match="seq"):
            ExportRange(**bad)


# --- GET /sessions/{id}/events/{seq}/proof and /consistency ---------------------------------------------------------


def _leaves(session) -> list[bytes]:
    return [ref_leaf(line[:-1]) for line in _stored_lines(session)]


def test_inclusion_proof_defaults_to_the_current_tree(alice_client, session):
    response = alice_client.get(f"/api/v1/sessions/{session.id}/events/17/proof")
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    leaves = _leaves(session)
    assert response.json() == {
        "type": "inclusion",
        "session_id": session.id,
        "seq": 17,
        "leaf_index": 17,
        "tree_size": 40,
        "leaf_hash_hex": leaves[17].hex(),
        "path_hex": [node.hex() for node in ref_path(17, leaves)],
        "root_hex": session.merkle_root_hex,
    }


def test_inclusion_proof_against_an_earlier_tree_size(alice_client, session):
    proof = json.loads(download(alice_client, f"/api/v1/sessions/{session.id}/events/3/proof?tree_size=11"))
    leaves = _leaves(session)[:11]
    assert proof["tree_size"] == 11
    assert proof["root_hex"] == ref_mth(leaves).hex()
    assert proof["path_hex"] == [node.hex() for node in ref_path(3, leaves)]


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("events/40/proof", "seq"),
        ("events/5/proof?tree_size=5", "seq"),
        ("events/5/proof?tree_size=41", "tree_size"),
        ("events/0/proof?tree_size=0", "tree_size"),
        ("events/-1/proof", "seq"),
        ("events/abc/proof", "seq"),
        ("events/1/proof?tree_size=x", "tree_size"),
        ("consistency?first=0", "first"),
        ("consistency?first=12&second=11", "first"),
        ("consistency?first=1&second=41", "second"),
        ("consistency", "first"),
        ("consistency?first=1.5", "first"),
    ],
)
def test_proof_bounds_are_validated(alice_client, session, path, field):
    response = alice_client.get(f"/api/v1/sessions/{session.id}/{path}")
    assert response.status_code == 400
    assert _error_code(response) == "validation_failed"
    assert field in response.json()["error"]["details"]["fields"]


def test_consistency_proof_defaults_to_the_current_tree(alice_client, session):
    proof = json.loads(download(alice_client, f"/api/v1/sessions/{session.id}/consistency?first=13"))
    leaves = _leaves(session)
    assert proof == {
        "type": "consistency",
        "session_id": session.id,
        "first": 13,
        "second": 40,
        "first_root_hex": ref_mth(leaves[:13]).hex(),
        "second_root_hex": session.merkle_root_hex,
        "proof_hex": [node.hex() for node in ref_subproof(13, leaves, True)],
    }
    same = json.loads(download(alice_client, f"/api/v1/sessions/{session.id}/consistency?first=40&second=40"))
    assert same["proof_hex"] == [] and same["first_root_hex"] == same["second_root_hex"]


@pytest.mark.parametrize("path", ["events/1/proof", "consistency?first=1"])
def test_proofs_are_tenant_scoped_and_need_sessions_read(acme, bob_client, session, path):
    response = bob_client.get(f"/api/v1/sessions/{session.id}/{path}")
    assert response.status_code == 404
    assert _error_code(response) == "session_not_found"
    assert Client().get(f"/api/v1/sessions/{session.id}/{path}").status_code == 401
    writer = bearer_client(issue_token(acme, "events:write", "reports:read"))
    assert writer.get(f"/api/v1/sessions/{session.id}/{path}").status_code == 403
    reader = bearer_client(issue_token(acme, "sessions:read"))
    assert reader.get(f"/api/v1/sessions/{session.id}/{path}").status_code == 200


@pytest.mark.tampers
def test_proof_over_a_log_missing_rows_is_refused(alice_client, session):
    from tests.conftest import append_only_guard_lifted

    with append_only_guard_lifted(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {AuditEvent._meta.db_table} WHERE session_id = %s AND seq = 39", [session.id])
    response = alice_client.get(f"/api/v1/sessions/{session.id}/events/1/proof")
    assert response.status_code == 409
    assert _error_code(response) == "audit_chain_broken"


def test_openapi_documents_the_verification_endpoints_with_their_errors(db):
    schema = SchemaGenerator().get_schema(request=None, public=True)
    paths = schema["paths"]
    export = paths["/api/v1/sessions/{session_id}/events"]["get"]
    assert "application/x-ndjson" in export["responses"]["200"]["content"]
    assert {"from_seq", "to_seq"} <= {p["name"] for p in export["parameters"]}
    assert {"400", "401", "403", "404"} <= set(export["responses"])
    assert paths["/api/v1/keys"]["get"].get("security", []) in ([], [{}])  # public
    for path in ("/api/v1/sessions/{session_id}/events/{seq}/proof", "/api/v1/sessions/{session_id}/consistency"):
        assert {"200", "400", "401", "403", "404"} <= set(paths[path]["get"]["responses"])
