"""Policies: validated at creation, immutable, snapshotted by sessions."""

import pytest
from django.core.exceptions import ValidationError

from audit.models import Policy
from audit.policy import parse_policy
from audit.writing import start_session
from masker.errors import ValidationFailed
from tests.conftest import POLICY_YAML, T0


def test_valid_policy_parses():
    doc = parse_policy(POLICY_YAML)
    assert (doc.name, doc.version, doc.media) == ("healthcare-default", 3, "text")
    assert doc.entities["IP_ADDRESS"].action == "redact"
    assert doc.retention_days == 2555 and doc.log_payloads is False


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("name: x\nversion: 1\nentities: {NAME: {enabled: true\n", "yaml"),
        ("name: x\nversion: 1\nentities: {PATIENT_NAME: {enabled: true}}\n", "entities.PATIENT_NAME"),
        ("name: x\nversion: 1\nentities: {NAME: {action: shred}}\n", "entities.NAME.action"),
        ("name: x\nversion: 0\nentities: {}\n", "version"),
        ("name: x\nversion: 1\nmedia: video\nentities: {}\n", "media"),
        ("name: x\nversion: 1\nentities: {}\nsurprise: true\n", "surprise"),
        ("- just\n- a list\n", ""),
    ],
)
def test_invalid_policy_is_rejected_with_the_field(text, field):
    with pytest.raises(ValidationFailed) as caught:
        parse_policy(text)
    assert caught.value.details == {"field": field}


def test_invalid_policy_cannot_be_created(acme):
    with pytest.raises(ValidationFailed):
        Policy.objects.create(account=acme, name="x", version=1, yaml_text="name: x\nversion: 1\nentities: [1]\n")
    assert not Policy.objects.exists()


def test_policy_is_immutable_once_saved(policy):
    policy.yaml_text = POLICY_YAML.replace("2555", "1")
    with pytest.raises(ValidationError):
        policy.save()
    with pytest.raises(ValidationError):
        policy.delete()


def test_session_keeps_its_snapshot_after_a_new_policy_version(agent, acme):
    session, _ = start_session(agent, external_ref="call-1", started_at=T0)
    new = Policy.objects.create(
        account=acme, name="healthcare-default", version=4, yaml_text=POLICY_YAML.replace("version: 3", "version: 4")
    )
    agent.policy = new
    agent.save()
    session.refresh_from_db()
    assert session.policy_version == 3
    assert session.policy_snapshot == POLICY_YAML
    later, _ = start_session(agent, external_ref="call-2", started_at=T0)
    assert later.policy_version == 4
