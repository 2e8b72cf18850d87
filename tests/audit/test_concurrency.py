"""Concurrent writers on separate connections can never fork or gap a session's chain."""

import threading

import pytest
from django.db import connection

from audit.models import AuditEvent, Session
from audit.walk import verify_session
from audit.writing import append_events, start_session
from tests.conftest import T0

WRITERS, EVENTS_EACH = 8, 200


def _event(writer: int, i: int) -> dict:
    return {
        "ts": "2026-05-03T21:14:32.481Z",
        "kind": "egress.forwarded",
        "turn": writer * 1000 + i,
        "hop": "llm",
        "vendor": f"writer-{writer}",
        "baa": True,
        "retention_days": 0,
    }


@pytest.mark.postgres_only
def test_eight_concurrent_writers_leave_a_gapless_verified_chain(live_db, agent):
    session, _ = start_session(agent, external_ref="call-concurrent", started_at=T0)
    barrier = threading.Barrier(WRITERS)
    failures: list[BaseException] = []

    def write(writer: int) -> None:
        try:
            barrier.wait()
            target = Session.objects.get(pk=session.pk)  # this thread's own connection
            for i in range(0, EVENTS_EACH, 20):
                append_events(target, [_event(writer, j) for j in range(i, i + 20)])
        except BaseException as exc:  # surfaced in the main thread
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []

    session.refresh_from_db()
    total = 1 + WRITERS * EVENTS_EACH
    assert session.tree_size == total
    assert list(AuditEvent.objects.filter(session=session).order_by("seq").values_list("seq", flat=True)) == list(
        range(total)
    )
    summary = verify_session(session)
    assert summary.tree_size == total
    assert summary.merkle_root_hex == session.merkle_root_hex
    turns = set(AuditEvent.objects.filter(session=session, kind="egress.forwarded").values_list("turn", flat=True))
    assert turns == {w * 1000 + i for w in range(WRITERS) for i in range(EVENTS_EACH)}  # no writer's event lost


@pytest.mark.sqlite_only
def test_concurrent_writers_on_sqlite_serialise_too(live_db, agent):
    """SQLite's IMMEDIATE transactions serialise writers (select_for_update is a no-op there)."""
    session, _ = start_session(agent, external_ref="call-concurrent-sqlite", started_at=T0)
    errors: list[BaseException] = []

    def write(writer: int) -> None:
        try:
            target = Session.objects.get(pk=session.pk)
            for i in range(0, 40, 10):
                append_events(target, [_event(writer, j) for j in range(i, i + 10)])
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert verify_session(Session.objects.get(pk=session.pk)).tree_size == 1 + 4 * 40
