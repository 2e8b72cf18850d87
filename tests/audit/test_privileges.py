"""Least privilege on PostgreSQL: a service role with row grants only runs the service but cannot lift the guards
that keep the audit log append-only; the system check warns about a role that could."""

import psycopg
import pytest
from django.db import connection

from audit.checks import check_service_role, role_problems
from audit.writing import append_events, end_session, start_session
from tests.conftest import T0

pytestmark = pytest.mark.postgres_only

SERVICE_ROLE = "masker_test_service"
EVENT = {"ts": "2026-05-03T21:14:32.481Z", "kind": "detection.degraded", "turn": 1, "reason": "ner_timeout"}


def _admin_connection() -> psycopg.Connection:
    params = connection.get_connection_params()
    return psycopg.connect(**{**params, "autocommit": True})


@pytest.fixture
def service_role(live_db):
    """A login role with SELECT, INSERT, UPDATE, DELETE on every table of the test database, owning nothing."""
    with _admin_connection() as admin:
        _drop_role(admin)
        admin.execute(f"CREATE ROLE {SERVICE_ROLE} LOGIN")
        admin.execute(f"GRANT CONNECT ON DATABASE {connection.settings_dict['NAME']} TO {SERVICE_ROLE}")
        admin.execute(f"GRANT USAGE ON SCHEMA public TO {SERVICE_ROLE}")
        admin.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {SERVICE_ROLE}")
        admin.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {SERVICE_ROLE}")
    params = {**connection.get_connection_params(), "user": SERVICE_ROLE, "autocommit": True}
    params.pop("password", None)
    with psycopg.connect(**params) as service:
        yield service
    with _admin_connection() as admin:
        _drop_role(admin)


def _drop_role(admin: psycopg.Connection) -> None:
    exists = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [SERVICE_ROLE]).fetchone()
    if exists:
        admin.execute(f"DROP OWNED BY {SERVICE_ROLE}")
        admin.execute(f"DROP ROLE {SERVICE_ROLE}")


def test_the_check_warns_when_the_service_is_superuser_or_owner(db):
    # The suite itself connects as the database's superuser and owner: exactly what production must not do.
    warnings = check_service_role(None, databases=["default"])
    assert [w.id for w in warnings] == ["audit.W001"]
    assert "is a superuser and owns audit_auditevent, audit_session, reports_reportrecord" in warnings[0].msg
    assert check_service_role(None, databases=None) == []


def test_a_dml_only_role_works_the_log_but_cannot_lift_its_guards(service_role, agent):
    session, _ = start_session(agent, external_ref="call-privileges", started_at=T0)
    append_events(session, [EVENT])
    end_session(session, status="ok", now=T0.replace(minute=20))
    with service_role.cursor() as cursor:
        assert role_problems(cursor) == []
        cursor.execute("SELECT count(*) FROM audit_auditevent WHERE session_id = %s", [session.id])
        assert cursor.fetchone() == (3,)
        cursor.execute("UPDATE audit_agent SET name = name WHERE id = %s", [agent.id])  # row writes are granted
        assert cursor.rowcount == 1
    refused = [
        "ALTER TABLE audit_auditevent DISABLE TRIGGER ALL",
        "DROP TRIGGER audit_event_no_change ON audit_auditevent",
        "ALTER TABLE audit_session DISABLE TRIGGER audit_session_no_change",
        "SET session_replication_role = replica",
        "TRUNCATE reports_reportrecord",
    ]
    for sql in refused:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            service_role.execute(sql)
    for sql in (
        "DELETE FROM audit_auditevent",
        f"UPDATE audit_session SET sealed_at = NULL, seal = NULL WHERE id = '{session.id}'",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="guarded"):
            service_role.execute(sql)
