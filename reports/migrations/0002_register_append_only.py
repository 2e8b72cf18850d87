"""The report register refuses UPDATE in the database (and DELETE on PostgreSQL).

SQLite keeps DELETE possible because Django's test flush empties tables with DELETE; PostgreSQL's flush uses
TRUNCATE, which row triggers do not see. The model, its queryset and the admin refuse deletes everywhere.
"""

from django.db import migrations

TABLE = "reports_reportrecord"

POSTGRES_INSTALL = [
    f"""
    CREATE OR REPLACE FUNCTION report_record_append_only() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION '{TABLE} is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
    END;
    $$ LANGUAGE plpgsql;
    """,
    f"CREATE TRIGGER report_record_no_update_delete BEFORE UPDATE OR DELETE ON {TABLE} "
    "FOR EACH ROW EXECUTE FUNCTION report_record_append_only();",
    f"ALTER TABLE {TABLE} ENABLE ALWAYS TRIGGER report_record_no_update_delete;",
]
POSTGRES_REMOVE = [
    f"DROP TRIGGER IF EXISTS report_record_no_update_delete ON {TABLE};",
    "DROP FUNCTION IF EXISTS report_record_append_only();",
]
SQLITE_INSTALL = [
    f"CREATE TRIGGER report_record_no_update BEFORE UPDATE ON {TABLE} "
    f"BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only: UPDATE refused'); END;",
]
SQLITE_REMOVE = ["DROP TRIGGER IF EXISTS report_record_no_update;"]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        for sql in statements_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(sql, params=None)  # None: the SQL has a literal %, not placeholders

    return run


class Migration(migrations.Migration):
    dependencies = [("reports", "0001_initial")]

    operations = [
        migrations.RunPython(
            _run({"postgresql": POSTGRES_INSTALL, "sqlite": SQLITE_INSTALL}),
            _run({"postgresql": POSTGRES_REMOVE, "sqlite": SQLITE_REMOVE}),
        )
    ]
