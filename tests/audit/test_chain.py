"""Appending, sealing and verifying a session's chain."""

import itertools
import json
import multiprocessing
import os
import threading
from contextlib import closing
from datetime import UTC, datetime

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from audit import walk
from audit.canonical import canonical_bytes
from audit.errors import AuditChainBroken, SessionEnded
from audit.merkle import leaf_hash, merkle_root
from audit.models import AuditEvent
from audit.pipeline import walk_pipelined
from audit.walk import ChainWalker, SessionClaims, iter_canonical_chunks, verify_session
from audit.writing import append_events, end_session, start_session
from tests.conftest import append_only_guard_lifted

EVENT = {"ts": "2026-05-03T21:14:32.481Z", "kind": "detection.degraded", "turn": 1, "reason": "ner_timeout"}
T0 = datetime(2026, 5, 3, 21, 14, 30, tzinfo=UTC)


def test_start_session_snapshots_policy_and_appends_session_started(agent, policy):
    session, created = start_session(agent, external_ref="call-1", started_at=T0)
    assert created
    assert session.policy_snapshot == policy.yaml_text
    assert (session.policy_name, session.policy_version, session.policy_sha256) == (
        "healthcare-default",
        3,
        policy.sha256,
    )
    first = json.loads(AuditEvent.objects.get(session=session, seq=0).canonical)
    assert first["kind"] == "session.started"
    assert first["prev_hash"] == "0" * 64
    assert first["policy"] == {"name": "healthcare-default", "version": 3, "sha256": policy.sha256}
    assert first["ts"] == "2026-05-03T21:14:30.000Z"


def test_same_external_ref_returns_the_existing_session(agent):
    first, created = start_session(agent, external_ref="call-1", started_at=T0)
    again, created_again = start_session(agent, external_ref="call-1", started_at=T0)
    assert created and not created_again
    assert again.pk == first.pk
    assert AuditEvent.objects.filter(session=first).count() == 1


def test_seq_is_gapless_and_links_chain(agent):
    session, _ = start_session(agent, external_ref="call-1", started_at=T0)
    append_events(session, [EVENT] * 3)
    append_events(session, [EVENT] * 2)
    rows = list(AuditEvent.objects.filter(session=session).order_by("seq"))
    assert [r.seq for r in rows] == list(range(6))
    for previous, row in itertools.pairwise(rows):
        assert row.prev_hash == previous.event_hash
        assert json.loads(row.canonical)["prev_hash"] == previous.event_hash


def test_stored_bytes_are_the_hashed_canonical_bytes(agent):
    session, _ = start_session(agent, external_ref="call-1", started_at=T0)
    append_events(session, [EVENT])
    for row in AuditEvent.objects.filter(session=session):
        assert canonical_bytes(json.loads(row.canonical)) == row.canonical.encode()
        assert leaf_hash(row.canonical.encode()).hex() == row.event_hash


def test_root_from_frontier_equals_root_over_all_events(agent):
    session, _ = start_session(agent, external_ref="call-1", started_at=T0)
    for size in (1, 2, 5):
        append_events(session, [EVENT] * size)
    hashes = [
        bytes.fromhex(h)
        for h in AuditEvent.objects.filter(session=session).order_by("seq").values_list("event_hash", flat=True)
    ]
    assert session.merkle_root_hex == merkle_root(hashes).hex()
    assert verify_session(session).merkle_root_hex == merkle_root(hashes).hex()


def test_end_session_seals_signs_and_refuses_later_appends(agent):
    session, _ = start_session(agent, external_ref="call-1", started_at=T0)
    append_events(session, [EVENT])
    end_session(session, status="ok", now=datetime(2026, 5, 3, 21, 15, 1, 7000, tzinfo=UTC))
    assert session.is_sealed and session.status == "ok"
    assert session.seal["tree_size"] == 3
    assert session.seal["merkle_root_hex"] == verify_session(session).merkle_root_hex
    assert session.seal["signature"]["alg"] == "Ed25519"
    last = json.loads(AuditEvent.objects.get(session=session, seq=2).canonical)
    assert last["kind"] == "session.ended" and last["duration_ms"] == 31007
    with pytest.raises(SessionEnded):
        append_events(session, [EVENT])
    with pytest.raises(SessionEnded):
        end_session(session, status="ok")
    assert AuditEvent.objects.filter(session=session).count() == 3


@pytest.mark.parametrize("pipeline_min", [10**9, 0], ids=["in-process", "pipelined"])
def test_tampered_event_is_found_at_its_seq(agent, monkeypatch, pipeline_min):
    """In one process, and with the checks in a forked one over chunks of 3 events (the path of a long log)."""
    monkeypatch.setattr(walk, "PIPELINE_MIN_EVENTS", pipeline_min)
    monkeypatch.setattr(walk, "CHUNK_EVENTS", 3)
    session, _ = start_session(agent, external_ref="call-1", started_at=T0)
    append_events(session, [EVENT] * 10)
    with append_only_guard_lifted(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_auditevent SET canonical = REPLACE(canonical, 'ner_timeout', 'ner_timeouX') "
            "WHERE session_id = %s AND seq = 7",
            [session.id],
        )
    with pytest.raises(AuditChainBroken) as caught:
        verify_session(session)
    assert (caught.value.seq, caught.value.reason) == (7, walk.BYTES_CHANGED)


@pytest.mark.parametrize("processes", [1, 2])
def test_walk_processes_setting_decides_whether_a_long_walk_forks(agent, monkeypatch, settings, processes):
    # MASKER_WALK_PROCESSES=1 (every core already busy, e.g. one worker process per core): no second process, the
    # same verdict and root.
    settings.MASKER_WALK_PROCESSES = processes
    monkeypatch.setattr(walk, "PIPELINE_MIN_EVENTS", 0)
    monkeypatch.setattr(walk, "CHUNK_EVENTS", 3)
    forks, fork = [], os.fork
    monkeypatch.setattr(os, "fork", lambda: forks.append(1) or fork())
    session, _ = start_session(agent, external_ref="call-1", started_at=T0)
    append_events(session, [EVENT] * 10)
    summary = verify_session(session)
    assert (summary.tree_size, summary.merkle_root_hex) == (11, session.merkle_root_hex)
    assert len(forks) == (1 if processes == 2 and walk.can_fork() else 0)


def test_verify_chain_command_reports_size_and_root(agent, capsys):
    session, _ = start_session(agent, external_ref="call-1", started_at=T0)
    append_events(session, [EVENT])
    call_command("verify_chain", session.id)
    out = capsys.readouterr().out
    assert f"size=2 root={verify_session(session).merkle_root_hex}" in out


def test_verify_chain_command_fails_on_tampering_and_unknown_ids(agent):
    session, _ = start_session(agent, external_ref="call-1", started_at=T0)
    append_events(session, [EVENT] * 2)
    with append_only_guard_lifted(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_auditevent SET canonical = canonical || ' ' WHERE session_id = %s AND seq = 1", [session.id]
        )
    with pytest.raises(CommandError, match="seq 1"):
        call_command("verify_chain", session.id)
    with pytest.raises(CommandError, match="not found"):
        call_command("verify_chain", "sess_nonsense")


def _walk_in_chunks(session, rows, size):
    walker = ChainWalker(SessionClaims.of(session))
    for start in range(0, len(rows), size):
        chunk = rows[start : start + size]
        walker.walk_chunk(chunk, walker.hash_chunk(chunk))
    return walker


@pytest.mark.parametrize(
    ("mutate", "seq", "reason"),
    [
        (lambda rows: [*rows[:5], rows[5].replace(b"ner_timeout", b"ner_timeouX"), *rows[6:]], 6, "prev_hash"),
        (lambda rows: rows[:4] + rows[5:], 4, "gap"),
        (lambda rows: [*rows[:4], rows[5], rows[4], *rows[6:]], 4, "gap"),
        (lambda rows: [*rows[:7], b"not json", *rows[8:]], 7, "not JSON"),
        (lambda rows: [*rows[:7], b"[1]", *rows[8:]], 7, "not a JSON object"),
        (lambda rows: [*rows[:3], rows[3].replace(b'"seq":3', b'"seq":true'), *rows[4:]], 3, "another position"),
        (lambda rows: [*rows[:3], rows[3].replace(b'"session_id":"', b'"session_id":"x'), *rows[4:]], 3, "session"),
        (lambda rows: [*rows[:3], rows[3].replace(b'"prev_hash":"', b'"prev_hash":"0'), *rows[4:]], 3, "prev_hash"),
        (lambda rows: [*rows[:3], rows[3].replace(b'"prev_hash":', b'"prev_hash":7,"x":'), *rows[4:]], 3, "prev_hash"),
    ],
)
@pytest.mark.parametrize("chunk", [1, 3, 1024])
def test_walker_names_the_first_bad_seq_whatever_the_chunking(agent, mutate, seq, reason, chunk):
    session, _ = start_session(agent, external_ref="call-1", started_at=T0)
    append_events(session, [EVENT] * 11)
    rows = list(itertools.chain.from_iterable(iter_canonical_chunks(session)))
    intact = _walk_in_chunks(session, rows, chunk)
    assert (intact.expected_seq, intact.tree.accumulator.root().hex()) == (12, verify_session(session).merkle_root_hex)
    with pytest.raises(AuditChainBroken) as caught:
        _walk_in_chunks(session, mutate(rows), chunk)
    assert caught.value.seq == seq
    assert reason in caught.value.reason


@pytest.fixture
def pipelined(monkeypatch):
    """Walks of any length check in a forked process, over chunks of 3 events: the path of a long log."""
    monkeypatch.setattr(walk, "PIPELINE_MIN_EVENTS", 0)
    monkeypatch.setattr(walk, "CHUNK_EVENTS", 3)


def test_pipelined_walk_agrees_with_the_in_process_walk(agent, pipelined):
    session, _ = start_session(agent, external_ref="call-1", started_at=T0)
    append_events(session, [EVENT] * 10)
    end_session(session, status="ok")
    hashes = [
        bytes.fromhex(h)
        for h in AuditEvent.objects.filter(session=session).order_by("seq").values_list("event_hash", flat=True)
    ]
    assert verify_session(session).merkle_root_hex == merkle_root(hashes).hex() == session.seal["merkle_root_hex"]


@pytest.mark.parametrize(
    ("sql", "seq", "reason"),
    [
        ("DELETE FROM audit_auditevent WHERE session_id = %s AND seq BETWEEN 3 AND 5", 3, "gap"),
        ("DELETE FROM audit_auditevent WHERE session_id = %s AND seq = 7", 7, "gap"),
        # Changed bytes holding a raw newline and a control character: the pipelined walk joins chunks on newlines.
        (
            "UPDATE audit_auditevent SET canonical = REPLACE(canonical, 'ner_timeout', 'ner\n\x1etimeout') "
            "WHERE session_id = %s AND seq = 4",
            4,
            "not JSON",
        ),
    ],
)
@pytest.mark.parametrize("pipeline_min_events", [0, walk.PIPELINE_MIN_EVENTS])
def test_altered_logs_are_read_back_as_stored(agent, monkeypatch, sql, seq, reason, pipeline_min_events):
    monkeypatch.setattr(walk, "CHUNK_EVENTS", 3)
    monkeypatch.setattr(walk, "PIPELINE_MIN_EVENTS", pipeline_min_events)
    session, _ = start_session(agent, external_ref="call-1", started_at=T0)
    append_events(session, [EVENT] * 10)
    with append_only_guard_lifted(), connection.cursor() as cursor:
        cursor.execute(sql, [session.id])
    with pytest.raises(AuditChainBroken) as caught:
        verify_session(session)
    assert caught.value.seq == seq
    assert reason in caught.value.reason


@pytest.mark.parametrize("tampered", [False, True])
def test_a_walk_outside_a_transaction_leaves_none_open(live_db, agent, monkeypatch, tampered):
    # On PostgreSQL the walk reads through a server-side cursor, which needs a transaction: outside one (a script,
    # a management command) it opens its own and ends it, also when it stops early at a break.
    monkeypatch.setattr(walk, "CHUNK_EVENTS", 3)
    session, _ = start_session(agent, external_ref="call-1", started_at=T0)
    append_events(session, [EVENT] * 10)
    if tampered:
        with append_only_guard_lifted(), connection.cursor() as cursor:
            cursor.execute("DELETE FROM audit_auditevent WHERE session_id = %s AND seq = 4", [session.id])
    assert connection.get_autocommit()
    if tampered:
        with pytest.raises(AuditChainBroken) as caught:
            verify_session(session)
        assert caught.value.seq == 4
    else:
        assert verify_session(session).tree_size == 11
    assert connection.get_autocommit() and not connection.in_atomic_block
    if connection.vendor == "postgresql":
        assert connection.connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert AuditEvent.objects.filter(session=session).count() == (10 if tampered else 11)


class _Rows:
    """A stand-in for a psycopg cursor: ``fetchmany`` hands out numbered batches, then fails if told to."""

    def __init__(self, batches: int, fail_at: int | None = None):
        self.batches, self.fail_at, self.fetched = batches, fail_at, 0

    def fetchmany(self, size: int) -> list:
        if self.fetched == self.fail_at:
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        self.fetched += 1
        return [(self.fetched, i) for i in range(size)] if self.fetched <= self.batches else []


def _fetching() -> bool:
    return any(thread.name == "audit-walk-read-ahead" for thread in threading.enumerate())


def test_read_ahead_yields_every_batch_in_order_and_ends():
    batches = list(walk.fetched_ahead(_Rows(5), 2))
    assert [batch[0][0] for batch in batches] == [1, 2, 3, 4, 5]
    assert not _fetching()


def test_read_ahead_raises_the_fetching_threads_error_where_the_rows_are_read():
    batches = walk.fetched_ahead(_Rows(5, fail_at=3), 2)
    assert [next(batches)[0][0] for _ in range(3)] == [1, 2, 3]
    with pytest.raises(psycopg.OperationalError, match="server closed"):
        next(batches)
    assert not _fetching()


def test_read_ahead_stops_fetching_when_the_walk_stops_early():
    rows = _Rows(1000)
    with closing(walk.fetched_ahead(rows, 2)) as batches:
        assert next(batches)[0][0] == 1
    assert not _fetching()
    assert rows.fetched <= 4  # the one read, two waiting, at most one more fetched before it saw the stop


def test_a_daemonic_process_runs_the_two_process_walk(agent):
    # A Celery prefork pool process is daemonic: multiprocessing refuses it children, the walk's fork does not.
    session, _ = start_session(agent, external_ref="call-1", started_at=T0)
    append_events(session, [EVENT] * 10)
    end_session(session, status="ok")
    rows = list(itertools.chain.from_iterable(iter_canonical_chunks(session)))
    claims = SessionClaims.of(session)
    context = multiprocessing.get_context("fork")
    answer_recv, answer_send = context.Pipe(duplex=False)

    def walk_in_a_daemon() -> None:
        walker = ChainWalker(claims)
        chunks = [rows[start : start + 3] for start in range(0, len(rows), 3)]
        walker, _ = walk_pipelined(walker, chunks, None, iter([walker.tree]))
        answer_send.send((multiprocessing.current_process().daemon, walker.finish().merkle_root_hex))

    daemon = context.Process(target=walk_in_a_daemon, daemon=True)
    daemon.start()
    answer = answer_recv.recv() if answer_recv.poll(30) else None
    daemon.join()
    assert answer == (True, session.seal["merkle_root_hex"])
