"""The report register: append-only in the ORM, the database and the admin; visible in the admin."""

import pytest
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection, transaction
from django.urls import reverse

from masker.models import AppendOnlyError
from reports.models import ReportRecord


@pytest.fixture
def record(seeded, acme_client):
    report = acme_client.get(reverse("reports:session-report", args=[seeded.sessions[0].id])).json()["report"]
    return ReportRecord.objects.get(id=report["id"])


def test_register_refuses_changes_through_the_orm(record):
    record.format = "pdf"
    with pytest.raises(AppendOnlyError):
        record.save()
    with pytest.raises(AppendOnlyError):
        record.delete()
    with pytest.raises(AppendOnlyError):
        ReportRecord.objects.filter(pk=record.pk).update(format="pdf")
    with pytest.raises(AppendOnlyError):
        ReportRecord.objects.all().delete()


def test_database_refuses_update_of_the_register(record):
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE reports_reportrecord SET tree_size = 0 WHERE id = %s", [record.id])
    assert ReportRecord.objects.get(pk=record.pk).tree_size == record.tree_size


def test_database_refuses_delete_from_the_register(record):
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM reports_reportrecord WHERE id = %s", [record.id])
    assert ReportRecord.objects.filter(pk=record.pk).exists()


@pytest.mark.postgres_only
def test_postgres_refuses_truncate_of_the_register(record):
    with pytest.raises(DatabaseError, match="guarded"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE; TRUNCATE reports_reportrecord")
    assert ReportRecord.objects.filter(pk=record.pk).exists()


@pytest.mark.sqlite_only
def test_sqlite_refuses_insert_or_replace_in_the_register(record):
    with pytest.raises(DatabaseError, match="guarded"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("INSERT OR REPLACE INTO reports_reportrecord SELECT * FROM reports_reportrecord")
    assert ReportRecord.objects.get(pk=record.pk).format == record.format


def test_register_is_read_only_in_the_admin(record, client):
    staff = get_user_model().objects.create_superuser(
        username="ops@masker.test", email="ops@masker.test", password="pw-ops"
    )
    client.force_login(staff)
    changelist = client.get(reverse("admin:reports_reportrecord_changelist"))
    assert changelist.status_code == 200
    assert record.id in changelist.content.decode()
    change = client.get(reverse("admin:reports_reportrecord_change", args=[record.id]))
    assert change.status_code == 200
    assert record.merkle_root_hex in change.content.decode()
    assert client.get(reverse("admin:reports_reportrecord_add")).status_code == 403
    assert client.get(reverse("admin:reports_reportrecord_delete", args=[record.id])).status_code == 403
    response = client.post(reverse("admin:reports_reportrecord_change", args=[record.id]), {"format": "pdf"})
    assert response.status_code == 403
    assert ReportRecord.objects.get(pk=record.pk).format == "json"
