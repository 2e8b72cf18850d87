"""The report register refuses UPDATE, DELETE and TRUNCATE on both databases (audit/triggers.py), replacing the
narrower triggers of 0002 (UPDATE only on SQLite; no TRUNCATE guard on PostgreSQL)."""

from django.db import migrations

from reports.models import REGISTER_GUARD

_FIRST = {
    "postgresql": [
        "DROP TRIGGER IF EXISTS report_record_no_update_delete ON reports_reportrecord;",
        "DROP FUNCTION IF EXISTS report_record_append_only();",
    ],
    "sqlite": ["DROP TRIGGER IF EXISTS report_record_no_update;"],
}


def install(apps, schema_editor):
    for sql in _FIRST.get(schema_editor.connection.vendor, []):
        schema_editor.execute(sql, params=None)
    REGISTER_GUARD.install(schema_editor.connection)


def remove(apps, schema_editor):
    REGISTER_GUARD.remove(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("reports", "0002_register_append_only"), ("audit", "0004_session_guard")]

    operations = [migrations.RunPython(install, remove)]
