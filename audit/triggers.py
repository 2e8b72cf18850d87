"""Database guards that make ``audit_auditevent`` append-only (installed by migration 0002).

PostgreSQL: row triggers refuse UPDATE and DELETE, a statement trigger refuses TRUNCATE of a non-empty table;
all are ``ENABLE ALWAYS`` so ``session_replication_role = replica`` cannot skip them. SQLite: triggers refuse
UPDATE and DELETE, and a BEFORE INSERT trigger refuses a row that would collide with an existing one, because
``INSERT OR REPLACE`` deletes the old row without firing DELETE triggers.
"""

TABLE = "audit_auditevent"

POSTGRES_INSTALL = [
    f"""
    CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger AS $$
    BEGIN
        IF TG_OP = 'TRUNCATE' THEN
            -- Truncating an empty table destroys nothing (test flushes rely on this); anything else is refused.
            IF NOT EXISTS (SELECT 1 FROM {TABLE}) THEN
                RETURN NULL;
            END IF;
        END IF;
        RAISE EXCEPTION '{TABLE} is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
    END;
    $$ LANGUAGE plpgsql;
    """,
    f"CREATE TRIGGER audit_event_no_update_delete BEFORE UPDATE OR DELETE ON {TABLE} "
    "FOR EACH ROW EXECUTE FUNCTION audit_event_append_only();",
    f"CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON {TABLE} "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only();",
    f"ALTER TABLE {TABLE} ENABLE ALWAYS TRIGGER audit_event_no_update_delete;",
    f"ALTER TABLE {TABLE} ENABLE ALWAYS TRIGGER audit_event_no_truncate;",
]
POSTGRES_REMOVE = [
    f"DROP TRIGGER IF EXISTS audit_event_no_update_delete ON {TABLE};",
    f"DROP TRIGGER IF EXISTS audit_event_no_truncate ON {TABLE};",
    "DROP FUNCTION IF EXISTS audit_event_append_only();",
]

SQLITE_INSTALL = [
    f"CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON {TABLE} "
    f"BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only: UPDATE refused'); END;",
    f"CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON {TABLE} "
    f"BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only: DELETE refused'); END;",
    f"CREATE TRIGGER audit_event_no_replace BEFORE INSERT ON {TABLE} "
    f"WHEN EXISTS (SELECT 1 FROM {TABLE} WHERE id = NEW.id "
    f"OR (session_id = NEW.session_id AND (seq = NEW.seq OR prev_hash = NEW.prev_hash))) "
    f"BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only: REPLACE refused'); END;",
]
SQLITE_REMOVE = [
    "DROP TRIGGER IF EXISTS audit_event_no_update;",
    "DROP TRIGGER IF EXISTS audit_event_no_delete;",
    "DROP TRIGGER IF EXISTS audit_event_no_replace;",
]


def install(connection) -> None:
    statements = {"postgresql": POSTGRES_INSTALL, "sqlite": SQLITE_INSTALL}.get(connection.vendor)
    if statements is None:
        raise NotImplementedError(f"no append-only guard for {connection.vendor}")
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)


def remove(connection) -> None:
    statements = {"postgresql": POSTGRES_REMOVE, "sqlite": SQLITE_REMOVE}.get(connection.vendor, [])
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)
