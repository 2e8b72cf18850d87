"""Append-only at three levels: the ORM refuses, the database refuses (raw SQL), the admin is read-only."""

from datetime import timedelta

import pytest
from django.db import DatabaseError, connection, transaction

from audit.models import AuditEvent, Session
from audit.walk import verify_session
from audit.writing import append_events, end_session, start_session
from masker.models import AppendOnlyError
from tests.conftest import T0

EVENT = {"ts": "2026-05-03T21:14:32.481Z", "kind": "detection.degraded", "turn": 1, "reason": "ner_timeout"}


@pytest.fixture
def chained_session(agent):
    session, _ = start_session(agent, external_ref="call-append-only", started_at=T0)
    append_events(session, [EVENT, EVENT])
    return session


def _raw(sql: str, params=()):
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_raw_sql_update_is_refused(chained_session):
    with pytest.raises(DatabaseError, match="guarded"):
        _raw("UPDATE audit_auditevent SET kind = 'x' WHERE session_id = %s", [chained_session.id])


def test_raw_sql_delete_is_refused(chained_session):
    with pytest.raises(DatabaseError, match="guarded"):
        _raw("DELETE FROM audit_auditevent WHERE session_id = %s", [chained_session.id])
    assert AuditEvent.objects.filter(session=chained_session).count() == 3


@pytest.mark.postgres_only
def test_raw_sql_truncate_is_refused_on_postgresql(chained_session):
    with pytest.raises(DatabaseError, match="guarded"):
        _raw("SET CONSTRAINTS ALL IMMEDIATE; TRUNCATE audit_auditevent CASCADE")


@pytest.mark.postgres_only
def test_replica_mode_does_not_skip_the_guard_on_postgresql(chained_session):
    with pytest.raises(DatabaseError, match="guarded"):
        _raw("SET LOCAL session_replication_role = replica; DELETE FROM audit_auditevent")


@pytest.mark.sqlite_only
def test_insert_or_replace_cannot_overwrite_an_event_on_sqlite(chained_session):
    first = AuditEvent.objects.get(session=chained_session, seq=1)
    with pytest.raises(DatabaseError, match="guarded"):
        _raw(
            "INSERT OR REPLACE INTO audit_auditevent (id, session_id, seq, kind, ts, turn, entity_kind, canonical,"
            " event_hash, prev_hash) VALUES (%s, %s, 1, 'x', %s, NULL, '', '{}', %s, %s)",
            [first.id, chained_session.id, first.ts.isoformat(), "f" * 64, first.prev_hash],
        )
    assert AuditEvent.objects.get(pk=first.pk).canonical == first.canonical
    verify_session(chained_session)


@pytest.fixture
def sealed_session(chained_session):
    end_session(chained_session, status="ok", now=T0 + timedelta(minutes=1))
    return chained_session


@pytest.mark.parametrize(
    "change",
    [
        "sealed_at = NULL, seal = NULL, status = 'active'",  # "unsealing" to append again
        "tree_size = 2",
        "chain_head = '0000000000000000000000000000000000000000000000000000000000000000'",
        "status = 'error'",
    ],
)
def test_a_sealed_sessions_row_cannot_change(sealed_session, change):
    with pytest.raises(DatabaseError, match="guarded"):
        _raw(f"UPDATE audit_session SET {change} WHERE id = %s", [sealed_session.id])
    sealed_session.refresh_from_db()
    assert sealed_session.is_sealed and sealed_session.tree_size == 4
    verify_session(sealed_session)


def test_an_open_sessions_row_follows_its_appends(chained_session):
    append_events(chained_session, [EVENT])  # the row's size and head change under the lock
    chained_session.refresh_from_db()
    assert chained_session.tree_size == 4


def test_sessions_cannot_be_deleted_open_or_sealed(chained_session, agent):
    other, _ = start_session(agent, external_ref="call-sealed", started_at=T0)
    end_session(other, status="ok", now=T0 + timedelta(minutes=1))
    for session in (chained_session, other):
        with pytest.raises(DatabaseError, match="guarded"):
            _raw("DELETE FROM audit_session WHERE id = %s", [session.id])
    assert Session.objects.filter(pk__in=[chained_session.pk, other.pk]).count() == 2


@pytest.mark.postgres_only
def test_sessions_cannot_be_truncated_on_postgresql(chained_session):
    with pytest.raises(DatabaseError, match="guarded"):
        _raw("SET CONSTRAINTS ALL IMMEDIATE; TRUNCATE audit_session CASCADE")


@pytest.mark.sqlite_only
def test_insert_or_replace_cannot_overwrite_a_session_on_sqlite(sealed_session):
    with pytest.raises(DatabaseError, match="guarded"):
        _raw("INSERT OR REPLACE INTO audit_session SELECT * FROM audit_session WHERE id = %s", [sealed_session.id])
    sealed_session.refresh_from_db()
    verify_session(sealed_session)


def test_orm_paths_refuse_update_and_delete(chained_session):
    event = AuditEvent.objects.filter(session=chained_session).first()
    event.kind = "tampered"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(session=chained_session).update(kind="x")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(session=chained_session).delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.bulk_update([event], ["kind"])
    assert verify_session(chained_session).tree_size == 3


def test_admin_offers_no_way_to_change_events(admin_client, chained_session):
    event = AuditEvent.objects.filter(session=chained_session).first()
    assert admin_client.get("/admin/audit/auditevent/").status_code == 200
    assert admin_client.get("/admin/audit/auditevent/add/").status_code == 403
    page = admin_client.get(f"/admin/audit/auditevent/{event.pk}/change/")
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert admin_client.post(f"/admin/audit/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()
