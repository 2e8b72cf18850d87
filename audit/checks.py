"""System checks for how the service connects to its database (``manage.py check --database default``).

Least privilege: in production the service connects as a role that owns no table and only reads and writes rows
(migrations run as the owner role), so the service itself can neither drop nor disable the guards that make the
audit log append-only (``audit.triggers``). A superuser or the tables' owner could.
"""

from django.core.checks import Tags, Warning, register
from django.db import connections

GUARDED_TABLES = ("audit_auditevent", "audit_session", "reports_reportrecord")


def role_problems(cursor) -> list[str]:
    """What is wrong with the connected PostgreSQL role for running the service: superuser, owner of guarded
    tables. ``cursor``: a DB-API cursor on PostgreSQL."""
    problems = []
    cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    row = cursor.fetchone()
    if row and row[0]:
        problems.append("is a superuser")
    cursor.execute(
        "SELECT tablename FROM pg_tables WHERE tableowner = current_user AND tablename = ANY(%s) ORDER BY tablename",
        [list(GUARDED_TABLES)],
    )
    owned = [name for (name,) in cursor.fetchall()]
    if owned:
        problems.append("owns " + ", ".join(owned))
    return problems


@register(Tags.database)
def check_service_role(app_configs, databases=None, **kwargs):
    warnings = []
    for alias in databases or ():
        connection = connections[alias]
        if connection.vendor != "postgresql":
            continue
        with connection.cursor() as cursor:
            problems = role_problems(cursor)
        if problems:
            warnings.append(
                Warning(
                    f"The database role of '{alias}' {' and '.join(problems)}: it could drop or disable the guards "
                    "that keep the audit log append-only.",
                    hint="Run the service as a role with SELECT, INSERT, UPDATE, DELETE only, and migrations as the "
                    "owner role (README, 'Deploying on PostgreSQL').",
                    id="audit.W001",
                )
            )
    return warnings
