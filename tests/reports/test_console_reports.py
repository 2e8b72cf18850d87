"""The console's "Reports issued" page: the account's register (who, when, scope, format, root), newest first,
paginated, downloadable as CSV, tenant-scoped, linked from the navigation, in a fixed number of queries."""

import csv
import io
import re

import pytest
from django.urls import reverse

from reports.console import REPORTS_CSV_COLUMNS, REPORTS_PER_PAGE
from reports.models import ReportRecord

pytestmark = pytest.mark.django_db


def _issue(client, session, report_format: str = "json") -> str:
    response = client.get(reverse("reports:session-report", args=[session.id]), {"format": report_format})
    assert response.status_code == 200
    return ReportRecord.objects.order_by("-recorded_at", "-id").values_list("id", flat=True).first()


def test_reports_issued_lists_the_accounts_downloads_newest_first(acme_client, globex_client, seeded):
    first = _issue(acme_client, seeded.sessions[0], "json")
    second = _issue(acme_client, seeded.sessions[2], "pdf")
    other = _issue(globex_client, seeded.other_sessions[0], "json")
    html = acme_client.get("/reports/").content.decode()
    listed = re.findall(r'<span class="mono report-id">(rep_[0-9A-Z]{26})</span>', html)
    assert listed == [second, first]
    assert other not in html and seeded.other_sessions[0].id not in html
    assert "demo@masker.local" in html  # who: the member's email, next to the register's usr_ id
    record = ReportRecord.objects.get(id=second)
    assert record.generated_by in html and record.merkle_root_hex in html
    assert f'<a href="/sessions/{seeded.sessions[2].id}/" class="mono">' in html
    assert re.search(r'<a href="/reports/" aria-current="page">Reports issued</a>', html)


def test_reports_issued_is_paginated_in_a_fixed_number_of_queries(acme_client, seeded, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries(url: str) -> tuple[int, str]:
        with CaptureQueriesContext(connection) as captured:
            html = acme_client.get(url).content.decode()
        return len(captured), html

    _issue(acme_client, seeded.sessions[1])
    few, _ = queries("/reports/")
    for _ in range(REPORTS_PER_PAGE + 1):
        _issue(acme_client, seeded.sessions[1])
    with django_assert_max_num_queries(12):
        many, page_one = queries("/reports/")
    assert few == many
    assert "Page 1 of 2" in page_one and 'href="?page=2"' in page_one
    assert len(re.findall(r'data-label="Report"', page_one)) == REPORTS_PER_PAGE
    page_two = acme_client.get("/reports/?page=2").content.decode()
    assert len(re.findall(r'data-label="Report"', page_two)) == 2


def test_reports_issued_csv_has_every_record_of_the_account_only(acme_client, globex_client, seeded):
    mine = {_issue(acme_client, seeded.sessions[0]), _issue(acme_client, seeded.sessions[3], "pdf")}
    _issue(globex_client, seeded.other_sessions[0])
    response = acme_client.get("/reports.csv")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="masker-reports-issued.csv"'
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert tuple(rows[0]) == REPORTS_CSV_COLUMNS
    assert {row[0] for row in rows[1:]} == mine
    by_id = {row[0]: dict(zip(REPORTS_CSV_COLUMNS, row, strict=True)) for row in rows[1:]}
    for record in ReportRecord.objects.filter(id__in=mine):
        row = by_id[record.id]
        assert (row["session_id"], row["format"], row["merkle_root_hex"]) == (
            record.session_id,
            record.format,
            record.merkle_root_hex,
        )
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", row["generated_at"])


def test_reports_issued_needs_a_login(client):
    for url in ("/reports/", "/reports.csv"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/?next=")


def test_empty_register_says_how_to_fill_it(acme_client, seeded):
    html = acme_client.get("/reports/").content.decode()
    assert "No report has been issued yet." in html
