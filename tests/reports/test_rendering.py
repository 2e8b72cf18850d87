"""Rendering: layout on the HTML, a bounded PDF, and a url fetcher that serves local assets only."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from weasyprint import HTML
from weasyprint.urls import FatalURLFetchingError

from audit.models import Session
from audit.timestamps import format_ts
from audit.writing import append_events, start_session
from masker.errors import ReportGenerationFailed
from reports.domain import build_session_report, sign_report
from reports.rendering import (
    PDF_LIST_LIMIT,
    SECTION_TITLES,
    LocalAssetFetcher,
    assets_dir,
    render_report_html,
    render_report_json,
    render_report_pdf,
)
from tests.conftest import T0
from tests.reports.report_support import pdf_reader, pdf_text

GENERATED_AT = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)


def signed_report(session: Session):
    session = Session.objects.select_related("agent", "account").get(pk=session.pk)
    return sign_report(build_session_report(session, generated_at=GENERATED_AT))


def test_html_has_the_eleven_sections_in_order(seeded, django_assert_num_queries):
    report = signed_report(seeded.sessions[0])
    with django_assert_num_queries(0):  # templates never touch the database
        html = render_report_html(report)
    headings = re.findall(r'<h2 id="s(\d+)"><span class="num">\d+</span> ([^<]+)</h2>', html)
    assert headings == [(str(n), title) for n, title in enumerate(SECTION_TITLES, start=1)]
    assert '<link rel="stylesheet" href="report.css">' in html
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html
    assert f'<meta name="dcterms.created" content="{report.generated_at_text}">' in html


def test_html_shows_each_safe_harbor_status_as_text_and_class(seeded):
    html = render_report_html(signed_report(seeded.other_sessions[0]))  # audio policy: none, partial, n/a
    for status, label in (("full", "Full"), ("none", "None"), ("not_applicable", "Not applicable")):
        assert f'<span class="pill {status}">{label}</span>' in html
    matrix = html[html.index('<table class="data matrix">') :]
    matrix = matrix[: matrix.index("</table>")]
    assert matrix.count('<span class="pill ') == 18


def test_json_rendering_keeps_spec_key_order_and_utf8(seeded):
    body = render_report_json(signed_report(seeded.sessions[0]))
    assert body.startswith(b'{\n  "report": {\n    "schema": "masker.audit.v1",\n    "id": "rep_')
    assert body.endswith(b"}\n")


def test_pdf_lists_are_capped_and_length_is_bounded(agent):
    session, _ = start_session(agent, external_ref="call-leaky", started_at=T0)
    leaks = [
        {
            "ts": format_ts(T0 + timedelta(seconds=i)),
            "kind": "leak.detected",
            "turn": i,
            "entity_kind": "NAME",
            "stage": "egress",
        }
        for i in range(400)
    ]
    append_events(session, leaks)
    hops = [
        {
            "ts": format_ts(T0),
            "kind": "egress.forwarded",
            "turn": 1,
            "hop": "llm",
            "vendor": f"vendor-{i}",
            "baa": False,
            "retention_days": 1,
        }
        for i in range(40)
    ]
    append_events(session, hops)
    report = signed_report(session)
    html = render_report_html(report)
    assert f"… and {400 - PDF_LIST_LIMIT} more" in html
    assert f"… and {40 - PDF_LIST_LIMIT} more" in html  # hops and their alerts
    pdf = render_report_pdf(report)
    assert len(pdf_reader(pdf).pages) <= 8
    text = pdf_text(pdf)
    assert f"and {400 - PDF_LIST_LIMIT} more" in text
    assert "vendor-39" not in text


def test_fetcher_refuses_network_urls_and_files_outside_the_assets(tmp_path):
    fetcher = LocalAssetFetcher(assets_dir())
    for url in (
        "https://example.com/x.css",
        "http://127.0.0.1:8101/x.css",
        "ftp://example.com/x",
        "data:text/css,body{}",
        "file:///etc/passwd",
        f"{assets_dir().as_uri()}/../../manage.py",
    ):
        with pytest.raises((PermissionError, ValueError)):
            fetcher.fetch(url)
    with pytest.raises(FileNotFoundError):
        fetcher.fetch(f"{assets_dir().as_uri()}/missing.css")
    served = fetcher.fetch(f"{assets_dir().as_uri()}/report.css")
    assert served.content_type == "text/css"


def test_a_remote_asset_stops_the_rendering_instead_of_being_fetched():
    html = '<html><head><link rel="stylesheet" href="https://example.com/evil.css"></head><body>x</body></html>'
    with pytest.raises(FatalURLFetchingError):
        HTML(string=html, base_url=assets_dir().as_uri() + "/", url_fetcher=LocalAssetFetcher(assets_dir())).render()


def test_missing_template_is_a_report_generation_failure(seeded, settings):
    settings.MASKER_REPORT_TEMPLATE = "reports/no_such_template.html"
    with pytest.raises(ReportGenerationFailed) as caught:
        render_report_pdf(signed_report(seeded.sessions[0]))
    assert caught.value.code == "report_generation_failed"
    assert caught.value.__cause__ is not None
