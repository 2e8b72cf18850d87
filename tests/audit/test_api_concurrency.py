"""Eight API clients appending at once (threads, one DB connection each) on PostgreSQL.

Each client posts its own batches, and retries each one with its Idempotency-Key; pairs of clients also race
to post one identical batch under a shared key. The chain must come out gapless and verifiable, with every
acknowledged event exactly once.
"""

import json
import threading

import pytest
from django.db import connection

from audit.models import AuditEvent, IdempotencyRecord, Session
from audit.walk import verify_session
from tests.audit.api_support import bearer_client, issue_token

CLIENTS, BATCHES, BATCH_SIZE, SHARED_SIZE = 8, 8, 25, 5


def _event(turn: int) -> dict:
    return {
        "ts": "2026-05-03T21:14:32.481Z",
        "kind": "egress.forwarded",
        "turn": turn,
        "hop": "llm",
        "vendor": "openai",
        "baa": True,
        "retention_days": 0,
    }


@pytest.mark.postgres_only
def test_eight_concurrent_api_clients_keep_the_chain_gapless_and_verifiable(live_db, acme, agent):
    secret = issue_token(acme, "events:write")
    session_id = (
        bearer_client(secret)
        .post(
            "/api/v1/sessions",
            # started just before the events' fixed ts: an event may not precede its session's start by > 5 min
            {"agent_id": agent.id, "external_ref": "call-8-clients", "started_at": "2026-05-03T21:14:30.000Z"},
            format="json",
        )
        .json()["id"]
    )
    url = f"/api/v1/sessions/{session_id}/events"
    barrier = threading.Barrier(CLIENTS)
    failures: list[BaseException] = []
    answers: dict[str, list[dict]] = {}

    def run(client_no: int) -> None:
        try:
            client = bearer_client(secret)
            barrier.wait()
            pair = client_no % (CLIENTS // 2)  # clients n and n+4 race with one identical batch under one key
            shared = {"events": [_event(900_000 + pair * 100 + i) for i in range(SHARED_SIZE)]}
            batches = [("shared", pair, shared)] + [
                ("own", client_no, {"events": [_event(client_no * 10_000 + b * 100 + i) for i in range(BATCH_SIZE)]})
                for b in range(BATCHES)
            ]
            for number, (kind, owner, body) in enumerate(batches):
                key = f"{kind}-{owner}-{number if kind == 'own' else 0}"
                first = client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
                retry = client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
                assert first.status_code == retry.status_code == 201, (first.content, retry.content)
                assert retry.json() == first.json()
                answers.setdefault(key, []).append(first.json())
        except BaseException as exc:  # surfaced in the main thread
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []

    session = Session.objects.get(pk=session_id)
    total = 1 + CLIENTS * BATCHES * BATCH_SIZE + (CLIENTS // 2) * SHARED_SIZE
    assert session.tree_size == total
    seqs = list(AuditEvent.objects.filter(session=session).order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(total))
    summary = verify_session(session)
    assert (summary.tree_size, summary.merkle_root_hex) == (total, session.merkle_root_hex)
    turns = [
        json.loads(c)["turn"]
        for c in AuditEvent.objects.filter(session=session, kind="egress.forwarded").values_list("canonical", flat=True)
    ]
    assert len(turns) == len(set(turns)) == total - 1  # every event exactly once
    # Both racers of a shared key got the one append's answer.
    for pair in range(CLIENTS // 2):
        first, second = answers[f"shared-{pair}-0"]
        assert first == second
    assert IdempotencyRecord.objects.filter(session=session).count() == CLIENTS * BATCHES + CLIENTS // 2
