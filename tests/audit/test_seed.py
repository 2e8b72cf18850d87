"""The demo seed: idempotent, built through the append functions, every chain verifies."""

import pytest
from django.core.management import call_command

from audit.demo import seed_demo
from audit.models import AuditEvent, Session
from audit.walk import verify_session

pytestmark = pytest.mark.django_db


def test_seed_is_idempotent_and_every_chain_verifies():
    data = seed_demo()
    counts = (Session.objects.count(), AuditEvent.objects.count())
    again = seed_demo()
    assert (Session.objects.count(), AuditEvent.objects.count()) == counts
    assert [s.pk for s in again.sessions] == [s.pk for s in data.sessions]
    assert len(data.sessions) >= 5
    for session in Session.objects.all():
        summary = verify_session(session)
        assert summary.tree_size == session.tree_size
        if session.is_sealed:
            assert session.seal["merkle_root_hex"] == summary.merkle_root_hex


def test_seed_covers_the_demo_scenarios():
    data = seed_demo()
    kinds = {
        s.external_ref: set(AuditEvent.objects.filter(session=s).values_list("kind", flat=True)) for s in data.sessions
    }
    entity_kinds = set(
        AuditEvent.objects.filter(session=data.sessions[0], kind="phi.redacted").values_list("entity_kind", flat=True)
    )
    assert {"NAME", "DOB", "PHONE", "MRN"} <= entity_kinds
    assert "pci.card_detected" in kinds["call-payment-0002"]
    assert "phi.rehydration_failed" in kinds["call-rehydration-0003"]
    assert kinds["call-empty-0005"] == {"session.started", "session.ended"}
    assert any(s.alert_count for s in data.sessions if s.external_ref == "call-vendor-0004")
    assert data.other_sessions and all(s.account_id == data.other_account.id for s in data.other_sessions)


def test_seed_demo_command_prints_the_login(capsys):
    call_command("seed_demo")
    assert "demo@masker.local" in capsys.readouterr().out
