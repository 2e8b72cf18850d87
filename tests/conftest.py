"""The test cast: Alice of Acme Health and Bob of Globex Clinic, built with explicit ORM calls; and the seeded demo
world (``seeded``) with a signed-in client per account."""

import json
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.test import Client

from audit import triggers
from audit.demo import seed_demo
from audit.models import Agent, Policy
from masker.models import Account, Membership
from reports.models import REGISTER_GUARD

POLICY_YAML = """\
name: healthcare-default
version: 3
kid: K_HEALTHCARE
tokenization: vault-deterministic
passes: [regex, ner]
media: text
entities:
  NAME:  {enabled: true, ner: true, regex: false, confidence_threshold: 0.7, action: tokenize}
  PHONE: {enabled: true, action: tokenize}
  DOB:   {enabled: true, action: tokenize}
  IP_ADDRESS: {enabled: true, action: redact}
audit: {log_payloads: false, retention_days: 2555}
"""

T0 = datetime(2026, 5, 3, 21, 14, 30, tzinfo=UTC)


def _member(email: str, account: Account, role: str = "admin"):
    user = get_user_model().objects.create_user(username=email, email=email, password="pw-" + email)
    Membership.objects.create(user=user, account=account, role=role)
    return user


@pytest.fixture
def acme(db):
    return Account.objects.create(name="Acme Health")


@pytest.fixture
def globex(db):
    return Account.objects.create(name="Globex Clinic")


@pytest.fixture
def alice(acme):
    return _member("alice@acme.test", acme)


@pytest.fixture
def bob(globex):
    return _member("bob@globex.test", globex)


@pytest.fixture
def policy(acme):
    return Policy.objects.create(account=acme, name="healthcare-default", version=3, yaml_text=POLICY_YAML)


@pytest.fixture
def agent(acme, policy):
    return Agent.objects.create(
        account=acme, name="Intake line", platform="vapi", upstream_model="openai:gpt-4o-mini", policy=policy
    )


@pytest.fixture
def globex_agent(globex):
    policy = Policy.objects.create(account=globex, name="healthcare-default", version=3, yaml_text=POLICY_YAML)
    return Agent.objects.create(account=globex, name="Front desk", platform="retell", upstream_model="m", policy=policy)


@pytest.fixture
def seeded(db):
    """The demo world of ``audit.demo.seed_demo()``: Acme Health's six calls and Globex's one."""
    return seed_demo()


def _client_for(account) -> Client:
    client = Client()
    client.force_login(Membership.objects.filter(account=account).select_related("user").first().user)
    return client


@pytest.fixture
def acme_client(seeded) -> Client:
    return _client_for(seeded.account)


@pytest.fixture
def globex_client(seeded) -> Client:
    return _client_for(seeded.other_account)


GUARDS = (triggers.EVENTS, triggers.SESSIONS, REGISTER_GUARD)


@contextmanager
def append_only_guard_lifted():
    """Remove the database's guards (events, session rows, report register) for the duration (tests only:
    tampering, flushing)."""
    _fire_deferred_constraints()
    for guard in GUARDS:
        guard.remove(connection)
    try:
        yield
    finally:
        _fire_deferred_constraints()
        for guard in GUARDS:
            guard.install(connection)


def _fire_deferred_constraints() -> None:
    # PostgreSQL refuses DDL on a table with pending deferred FK checks (Django's FKs are DEFERRABLE).
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def wipe_guarded_tables() -> None:
    """Flush the database through the lifted guards, so a transactional test's own flush finds nothing to refuse."""
    with append_only_guard_lifted():
        call_command("flush", interactive=False, verbosity=0)


@pytest.fixture
def live_db(transactional_db):
    """``transactional_db`` whose teardown first empties the guarded tables (append-only events, sealed sessions,
    the report register), which a plain flush may not touch."""
    yield
    wipe_guarded_tables()


def pytest_collection_modifyitems(config, items):
    """``postgres_only``/``sqlite_only`` tests run on their database only; .ci/run runs the suite on both."""
    from django.conf import settings

    on_postgres = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    wrong = "sqlite_only" if on_postgres else "postgres_only"
    skip = pytest.mark.skip(reason=f"{wrong}: .ci/run runs the suite on SQLite and on PostgreSQL")
    for item in items:
        if wrong in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def openapi(django_db_setup, django_db_blocker) -> dict:
    """The served OpenAPI document (it does not depend on the database's rows)."""
    with django_db_blocker.unblock():
        response = Client().get("/api/v1/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return json.loads(response.content)
