"""A proxy's whole call through the API, then an independent recomputation of the root.

Token from ``create_api_token`` → start → three batches (one retried with its Idempotency-Key) → end. The root
is then recomputed here from the events' canonical bytes (the NDJSON export, checked against the stored rows)
with nothing but hashlib and RFC 6962's definition, and must equal the compliance report's ``merkle_root_hex``,
the session's, the signed seal's and ``verify_chain``'s.
"""

import base64
import hashlib
import json
from io import StringIO

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.core.management import call_command

from audit.models import AuditEvent, Session
from audit.walk import verify_session
from tests.audit.api_support import bearer_client, egress, redacted

ZERO = "0" * 64


def rfc6962_root(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) exactly as RFC 6962 §2.1 writes it (recursive, split at the largest power of two < n)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + rfc6962_root(leaves[:k]) + rfc6962_root(leaves[k:])).digest()


def test_proxy_call_end_to_end_root_matches_independent_recomputation(acme, agent):
    out = StringIO()
    call_command(
        "create_api_token",
        "--account",
        acme.id,
        "--scopes",
        "events:write",
        "sessions:read",
        "reports:read",
        stdout=out,
        stderr=StringIO(),
    )
    client = bearer_client(out.getvalue().strip())

    started = client.post(
        "/api/v1/sessions",
        {
            "agent_id": agent.id,
            "external_ref": "vapi-call-7f3a",
            "platform": "vapi",
            "started_at": "2026-05-03T21:14:30.000Z",
        },
        format="json",
    )
    assert started.status_code == 201
    session_id = started.json()["id"]
    events_url = f"/api/v1/sessions/{session_id}/events"

    batches = [
        [redacted(1), redacted(2, entity_kind="PHONE", **{"pass": "regex"}), egress(3)],
        [redacted(4, entity_kind="DOB", span=[12, 22]), egress(5, hop="tts", vendor="elevenlabs")],
        [
            {
                "ts": "2026-05-03T21:14:40.000Z",
                "kind": "phi.rehydrated",
                "turn": 6,
                "entity_kind": "NAME",
                "token_kind": "MSKV1",
            }
        ],
    ]
    answers = []
    for number, batch in enumerate(batches):
        answers.append(client.post(events_url, {"events": batch}, format="json", HTTP_IDEMPOTENCY_KEY=f"b-{number}"))
    retried = client.post(events_url, {"events": batches[1]}, format="json", HTTP_IDEMPOTENCY_KEY="b-1")

    assert [a.status_code for a in answers] == [201, 201, 201]
    assert [(a.json()["first_seq"], a.json()["last_seq"]) for a in answers] == [(1, 3), (4, 5), (6, 6)]
    assert retried.status_code == 201 and retried.json() == answers[1].json()

    ended = client.post(f"/api/v1/sessions/{session_id}/end", {"status": "ok"}, format="json")
    assert ended.status_code == 200
    detail = client.get(f"/api/v1/sessions/{session_id}").json()

    report = client.get(f"/api/v1/sessions/{session_id}/report", {"format": "json"})
    assert report.status_code == 200
    report = report.json()["report"]
    export = client.get(f"/api/v1/sessions/{session_id}/events")
    assert export.status_code == 200
    lines = b"".join(export.streaming_content).decode("utf-8").splitlines()

    # Independent recomputation from the events' canonical bytes (the export, which must be the stored bytes).
    rows = list(
        AuditEvent.objects.filter(session_id=session_id).order_by("seq").values_list("seq", "canonical", "event_hash")
    )
    assert lines == [canonical for _, canonical, _ in rows]
    submitted = [event for batch in batches for event in batch]
    leaves, prev = [], ZERO
    for seq, canonical, stored_hash in rows:
        event = json.loads(canonical)
        # RFC 8785 and sorted compact JSON coincide for these values (ASCII keys, integers, short decimals).
        assert canonical == json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert (event["seq"], event["session_id"], event["prev_hash"], event["v"]) == (seq, session_id, prev, 1)
        leaf = hashlib.sha256(b"\x00" + canonical.encode("utf-8")).digest()
        assert leaf.hex() == stored_hash
        leaves.append(leaf)
        prev = leaf.hex()
        if 1 <= seq <= len(submitted):
            server_fields = {"v", "id", "session_id", "seq", "prev_hash"}
            assert {k: v for k, v in event.items() if k not in server_fields} == submitted[seq - 1]
    assert [json.loads(c)["kind"] for _, c, _ in rows[:1] + rows[-1:]] == ["session.started", "session.ended"]
    assert len(rows) == 1 + len(submitted) + 1  # the retried batch was not appended twice
    root = rfc6962_root(leaves).hex()

    assert report["merkle_root_hex"] == root
    assert report["session_id"] == session_id
    assert report["audit_integrity"]["tree_size"] == len(rows)
    assert report["audit_integrity"]["chain_head_hex"] == prev
    session = Session.objects.get(pk=session_id)
    summary = verify_session(session)
    assert root == summary.merkle_root_hex == detail["merkle_root_hex"] == ended.json()["merkle_root_hex"]
    assert root == detail["seal"]["merkle_root_hex"] == session.seal["merkle_root_hex"]
    assert detail["tree_size"] == detail["seal"]["tree_size"] == len(rows) == summary.tree_size
    assert detail["chain_head_hex"] == prev == summary.chain_head_hex == detail["seal"]["chain_head_hex"]
    assert detail["sealed"] is True and detail["status"] == "ok"
    # The seal's Ed25519 signature over the RFC 8785 bytes of the seal without it, with the published key.
    seal = detail["seal"]
    keys = {key["kid"]: key for key in client.get("/api/v1/keys").json()["keys"]}
    public = Ed25519PublicKey.from_public_bytes(_b64url(keys[seal["signature"]["kid"]]["x"]))
    unsigned = {k: v for k, v in seal.items() if k != "signature"}
    public.verify(_b64url(seal["signature"]["sig"]), rfc8785.dumps(unsigned))  # raises if it does not verify


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
