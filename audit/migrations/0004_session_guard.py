"""Guard the session row in the database (a sealed session's row is immutable, sessions are never deleted) and
reinstall the event guard under the one shape every guarded table now shares (audit/triggers.py)."""

from django.db import migrations

from audit import triggers

# The event guard's objects as migration 0002 first named them on PostgreSQL.
_FIRST_POSTGRES_NAMES = [
    "DROP TRIGGER IF EXISTS audit_event_no_update_delete ON audit_auditevent;",
    "DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_auditevent;",
    "DROP FUNCTION IF EXISTS audit_event_append_only();",
]


def install(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor == "postgresql":
        for sql in _FIRST_POSTGRES_NAMES:
            schema_editor.execute(sql, params=None)
    triggers.EVENTS.remove(connection)
    triggers.EVENTS.install(connection)
    triggers.SESSIONS.install(connection)


def remove(apps, schema_editor):
    triggers.SESSIONS.remove(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_idempotency_record")]

    operations = [migrations.RunPython(install, remove)]
