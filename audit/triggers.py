"""Database guards: the one way this project makes a table append-only (or its finished rows immutable) in the
database itself, installed by migrations and lifted only by tests that tamper on purpose.

PostgreSQL: a row trigger refuses UPDATE and DELETE, a statement trigger refuses TRUNCATE of a non-empty table
(an empty one destroys nothing; test flushes rely on that); all are ``ENABLE ALWAYS`` so
``session_replication_role = replica`` cannot skip them, and a service role that owns no table cannot disable them.
SQLite: triggers refuse UPDATE and DELETE, and a BEFORE INSERT trigger refuses a row that would collide with an
existing one, because ``INSERT OR REPLACE`` deletes the old row without firing DELETE triggers.

A guard may let some UPDATEs through (``updatable_when``, an SQL condition on ``OLD``): a session's row changes
while its call is live and never again once it is sealed.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Guard:
    """The guard of one table. ``collides``: the SQLite condition (on ``NEW``) under which an insert would replace
    an existing row; ``updatable_when``: the condition (on ``OLD``) under which an UPDATE is allowed."""

    name: str
    table: str
    collides: str
    updatable_when: str | None = None

    def postgres_install(self) -> list[str]:
        allow_update = (
            f"ELSIF TG_OP = 'UPDATE' AND ({self.updatable_when}) THEN\n            RETURN NEW;"
            if self.updatable_when
            else ""
        )
        return [
            f"""
            CREATE OR REPLACE FUNCTION {self.name}_guard() RETURNS trigger AS $$
            BEGIN
                IF TG_OP = 'TRUNCATE' THEN
                    IF NOT EXISTS (SELECT 1 FROM {self.table}) THEN
                        RETURN NULL;
                    END IF;
                {allow_update}
                END IF;
                RAISE EXCEPTION '{self.table} is guarded: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
            END;
            $$ LANGUAGE plpgsql;
            """,
            f"CREATE TRIGGER {self.name}_no_change BEFORE UPDATE OR DELETE ON {self.table} "
            f"FOR EACH ROW EXECUTE FUNCTION {self.name}_guard();",
            f"CREATE TRIGGER {self.name}_no_truncate BEFORE TRUNCATE ON {self.table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {self.name}_guard();",
            f"ALTER TABLE {self.table} ENABLE ALWAYS TRIGGER {self.name}_no_change;",
            f"ALTER TABLE {self.table} ENABLE ALWAYS TRIGGER {self.name}_no_truncate;",
        ]

    def postgres_remove(self) -> list[str]:
        return [
            f"DROP TRIGGER IF EXISTS {self.name}_no_change ON {self.table};",
            f"DROP TRIGGER IF EXISTS {self.name}_no_truncate ON {self.table};",
            f"DROP FUNCTION IF EXISTS {self.name}_guard();",
        ]

    def sqlite_install(self) -> list[str]:
        when = f"WHEN NOT ({self.updatable_when}) " if self.updatable_when else ""
        return [
            f"CREATE TRIGGER {self.name}_no_update BEFORE UPDATE ON {self.table} {when}"
            f"BEGIN SELECT RAISE(ABORT, '{self.table} is guarded: UPDATE refused'); END;",
            f"CREATE TRIGGER {self.name}_no_delete BEFORE DELETE ON {self.table} "
            f"BEGIN SELECT RAISE(ABORT, '{self.table} is guarded: DELETE refused'); END;",
            f"CREATE TRIGGER {self.name}_no_replace BEFORE INSERT ON {self.table} "
            f"WHEN EXISTS (SELECT 1 FROM {self.table} WHERE {self.collides}) "
            f"BEGIN SELECT RAISE(ABORT, '{self.table} is guarded: REPLACE refused'); END;",
        ]

    def sqlite_remove(self) -> list[str]:
        return [f"DROP TRIGGER IF EXISTS {self.name}_{what};" for what in ("no_update", "no_delete", "no_replace")]

    def install(self, connection) -> None:
        _execute(connection, {"postgresql": self.postgres_install, "sqlite": self.sqlite_install})

    def remove(self, connection) -> None:
        _execute(connection, {"postgresql": self.postgres_remove, "sqlite": self.sqlite_remove})


def _execute(connection, statements_by_vendor) -> None:
    statements = statements_by_vendor.get(connection.vendor)
    if statements is None:
        raise NotImplementedError(f"no database guard for {connection.vendor}")
    with connection.cursor() as cursor:
        for sql in statements():
            cursor.execute(sql, None)  # None: the SQL holds a literal %, not placeholders


EVENTS = Guard(
    name="audit_event",
    table="audit_auditevent",
    collides="id = NEW.id OR (session_id = NEW.session_id AND (seq = NEW.seq OR prev_hash = NEW.prev_hash))",
)
SESSIONS = Guard(
    name="audit_session", table="audit_session", collides="id = NEW.id", updatable_when="OLD.sealed_at IS NULL"
)
