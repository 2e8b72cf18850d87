"""Django admin for staff: every model registered, audit events strictly read-only, "verify chain" action,
report links on a session, the report register."""

import re

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.urls import reverse

from audit.errors import AuditChainBroken
from audit.models import AuditEvent, Session
from audit.walk import verify_session
from tests.conftest import append_only_guard_lifted

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    staff = get_user_model().objects.create_superuser(
        username="ops@masker.test", email="ops@masker.test", password="pw-ops"
    )
    client.force_login(staff)
    return client


def _admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def _tamper(session: Session, seq: int) -> int:
    """Change one stored event's bytes behind the guard; returns the seq verify_chain reports."""
    with append_only_guard_lifted(), connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {AuditEvent._meta.db_table} SET canonical = canonical || ' ' WHERE session_id = %s AND seq = %s",
            [session.id, seq],
        )
    with pytest.raises(AuditChainBroken) as caught:
        verify_session(session)
    return caught.value.seq


def test_every_model_of_our_apps_is_registered_in_the_admin():
    for label in ("masker", "audit", "reports"):
        for model in apps.get_app_config(label).get_models():
            assert admin.site.is_registered(model), f"{model.__name__} is not in the admin"


def test_staff_can_open_the_list_and_an_object_of_every_registered_model(staff_client, seeded):
    for model in admin.site._registry:
        response = staff_client.get(_admin_url(model, "changelist"))
        assert response.status_code == 200, model.__name__
        obj = model._default_manager.first()
        if obj is not None:
            response = staff_client.get(_admin_url(model, "change", obj.pk))
            assert response.status_code == 200, model.__name__


def test_a_console_user_who_is_not_staff_cannot_open_the_admin(client, seeded):
    client.force_login(seeded.account.memberships.get().user)
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_audit_events_cannot_be_added_changed_or_deleted_in_the_admin(staff_client, seeded):
    event = AuditEvent.objects.filter(session=seeded.sessions[0]).order_by("seq").first()
    before = (event.canonical, event.event_hash)
    assert staff_client.get(_admin_url(AuditEvent, "add")).status_code == 403
    assert staff_client.post(_admin_url(AuditEvent, "add"), {"seq": 99}).status_code == 403
    response = staff_client.post(_admin_url(AuditEvent, "change", event.pk), {"canonical": "{}", "seq": 0})
    assert response.status_code == 403
    assert staff_client.get(_admin_url(AuditEvent, "delete", event.pk)).status_code == 403
    assert staff_client.post(_admin_url(AuditEvent, "delete", event.pk), {"post": "yes"}).status_code == 403
    event.refresh_from_db()
    assert (event.canonical, event.event_hash) == before


def test_audit_event_pages_offer_no_write_controls(staff_client, seeded):
    event = AuditEvent.objects.filter(session=seeded.sessions[0]).first()
    change_page = staff_client.get(_admin_url(AuditEvent, "change", event.pk)).content.decode()
    assert 'name="_save"' not in change_page
    assert "deletelink" not in change_page
    changelist = staff_client.get(_admin_url(AuditEvent, "changelist")).content.decode()
    assert 'name="action"' not in changelist
    assert f'href="{_admin_url(AuditEvent, "add")}"' not in changelist
    assert event.canonical[:40].replace('"', "&quot;") in change_page  # the stored bytes are inspectable


def test_verify_chain_action_reports_each_selected_session(staff_client, seeded):
    sessions = seeded.sessions[:3]
    response = staff_client.post(
        _admin_url(Session, "changelist"),
        {"action": "verify_chains", "_selected_action": [s.pk for s in sessions]},
        follow=True,
    )
    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    for session in sessions:
        root = verify_session(session).merkle_root_hex
        assert f"{session.id}: verified, {session.tree_size} events, root {root}" in messages


def test_verify_chain_action_flags_a_tampered_session(staff_client, seeded):
    broken, intact = seeded.sessions[0], seeded.sessions[1]
    bad_seq = _tamper(broken, 2)
    response = staff_client.post(
        _admin_url(Session, "changelist"),
        {"action": "verify_chains", "_selected_action": [broken.pk, intact.pk]},
        follow=True,
    )
    messages = {m.level_tag: str(m) for m in response.context["messages"]}
    assert messages["error"].startswith(f"{broken.id}: The audit chain does not verify at seq {bad_seq}")
    assert messages["info"].startswith(f"{intact.id}: verified")


def test_the_session_page_does_not_walk_the_log(staff_client, seeded, django_assert_max_num_queries):
    # Verifying walks a whole log: only the explicit action does it, never a page view.
    session = seeded.sessions[0]
    with django_assert_max_num_queries(12) as queries:
        assert staff_client.get(_admin_url(Session, "change", session.pk)).status_code == 200
    assert not any("canonical" in query["sql"] for query in queries.captured_queries)


def test_session_admin_shows_the_verified_root_and_links_to_both_report_downloads(staff_client, seeded):
    session = seeded.sessions[0]
    page = staff_client.get(_admin_url(Session, "change", session.pk)).content.decode()
    assert verify_session(session).merkle_root_hex in page
    report_url = reverse("reports:session-report", args=[session.id])
    assert f'href="{report_url}?format=json">Download JSON</a>' in page
    assert f'href="{report_url}?format=pdf">Download PDF</a>' in page
    assert report_url == f"/api/v1/sessions/{session.id}/report"


def test_sessions_cannot_be_added_or_deleted_in_the_admin(staff_client, seeded):
    assert staff_client.get(_admin_url(Session, "add")).status_code == 403
    assert staff_client.get(_admin_url(Session, "delete", seeded.sessions[0].pk)).status_code == 403


def test_report_register_lists_downloads_and_is_read_only(staff_client, seeded):
    session = seeded.sessions[0]
    member_client = Client()
    member_client.force_login(seeded.account.memberships.get().user)
    for fmt in ("json", "pdf"):
        assert member_client.get(f"/api/v1/sessions/{session.id}/report", {"format": fmt}).status_code == 200
    register = next(m for m in apps.get_app_config("reports").get_models() if admin.site.is_registered(m))
    listing = staff_client.get(_admin_url(register, "changelist")).content.decode()
    report_ids = set(re.findall(r">(rep_[0-9A-Z]{26})</a>", listing))
    assert len(report_ids) == 2
    assert session.id in listing
    assert staff_client.get(_admin_url(register, "add")).status_code == 403
    entry = register._default_manager.first()
    assert staff_client.get(_admin_url(register, "delete", entry.pk)).status_code == 403
    change_page = staff_client.get(_admin_url(register, "change", entry.pk)).content.decode()
    assert 'name="_save"' not in change_page
