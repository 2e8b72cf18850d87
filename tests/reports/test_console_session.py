"""The console's session page: the report value on screen, download links, tenant isolation, a broken chain."""

import re

import pytest
from django.apps import apps
from django.db import connection

from audit.errors import AuditChainBroken
from audit.models import AuditEvent
from audit.walk import verify_session
from tests.conftest import append_only_guard_lifted
from tests.reports.report_support import SAFE_HARBOR_KEYS

pytestmark = pytest.mark.django_db

EXTERNAL = re.compile(r"""(?:src|href|action)\s*=\s*["']?\s*(?:https?:)?//""", re.I)


def _by_ref(seeded, ref: str):
    return next(s for s in seeded.sessions if s.external_ref == ref)


def _html(client, session) -> str:
    response = client.get(f"/sessions/{session.id}/")
    assert response.status_code == 200
    return response.content.decode()


def _row(html: str, key: str) -> str:
    return re.search(rf"<tr>\s*<th scope=\"row\">[^<]+</th>\s*<td[^>]*>{key}</td>.*?</tr>", html, re.S).group(0)


def test_session_page_shows_the_verified_root_tree_size_and_chain_status(acme_client, seeded):
    session = _by_ref(seeded, "call-intake-0001")
    summary = verify_session(session)
    html = _html(acme_client, session)
    assert f'<code class="break" id="merkle-root">{summary.merkle_root_hex}</code>' in html
    assert f"<dt>Tree size</dt><dd>{summary.tree_size} events</dd>" in html
    assert 'class="badge good">Verified<' in html
    assert f"<dd>{summary.tree_size}</dd>" in html  # the "Audit events" figure


def test_session_page_shows_summary_figures_from_the_report(acme_client, seeded):
    session = _by_ref(seeded, "call-rehydration-0003")
    session.refresh_from_db()
    html = _html(acme_client, session)
    figures = dict(re.findall(r"<dt>([^<]+)</dt>\s*<dd>(\d+(?:\.\d+)?)", html))
    assert figures["Redactions"] == str(session.redaction_count) == "1"
    assert figures["Alerts"] == str(session.alert_count) == "3"
    assert "Safe Harbor coverage" in figures


def test_safe_harbor_matrix_lists_all_18_categories_with_colour_and_text(acme_client, seeded):
    html = _html(acme_client, _by_ref(seeded, "call-intake-0001"))
    for key in SAFE_HARBOR_KEYS:
        assert _row(html, key), key
    # The seeded policy covers every text kind, so names are full; photos never apply; the catch-all is partial.
    assert 'class="badge good">Full<' in _row(html, "A_names")
    assert 'class="badge muted">Not applicable<' in _row(html, "Q_photo")
    assert 'class="badge muted">Not applicable<' in _row(html, "P_biometric")
    assert 'class="badge warn">Partial<' in _row(html, "R_other")
    assert "actual knowledge" in html  # the Safe Harbor statement software cannot attest


def test_alerts_are_listed_with_their_turns(acme_client, seeded):
    html = _html(acme_client, _by_ref(seeded, "call-rehydration-0003"))
    section = html.split('id="alerts-title"', 1)[1].split("</section>", 1)[0]
    assert "Rehydration failed" in section and "Residual PHI leak" in section
    rows = re.findall(
        r'<tr id="alert-(\d+)">\s*<th scope="row" data-label="Seq" class="num">\1</th>\s*'
        r'<td data-label="Turn" class="num">(\d+)</td>\s*<td data-label="Time" class="nowrap">([^<]+)</td>',
        section,
    )
    assert rows == [
        ("3", "1", "2026-11-20 16:00:03 UTC"),
        ("4", "1", "2026-11-20 16:00:04 UTC"),
        ("5", "2", "2026-11-20 16:00:06 UTC"),
    ]


def test_non_baa_hop_is_shown_as_an_alert_in_the_baa_chain(acme_client, seeded):
    html = _html(acme_client, _by_ref(seeded, "call-vendor-0004"))
    section = html.split('id="baa-title"', 1)[1].split("</section>", 1)[0]
    assert "deepgram" in section and "acme-llm-beta" in section
    assert 'class="badge bad">No — alert<' in section
    alerts = html.split('id="alerts-title"', 1)[1].split("</section>", 1)[0]
    assert "Egress without a BAA" in alerts


def test_redactions_are_shown_by_kind_and_by_pass(acme_client, seeded):
    html = _html(acme_client, _by_ref(seeded, "call-intake-0001"))
    section = html.split('id="redactions-title"', 1)[1].split("</section>", 1)[0]
    by_kind = dict(re.findall(r'<th scope="row" class="mono">([A-Z_]+)</th><td class="num">(\d+)</td>', section))
    assert by_kind == {"NAME": "2", "DOB": "2", "MRN": "2", "PHONE": "1"}
    by_pass = dict(re.findall(r'<th scope="row">([a-z]+)</th><td class="num">(\d+)</td>', section))
    assert by_pass == {"regex": "4", "ner": "3"}


def test_download_buttons_link_to_the_report_api_in_both_formats(acme_client, seeded):
    session = _by_ref(seeded, "call-intake-0001")
    html = _html(acme_client, session)
    assert f'href="/api/v1/sessions/{session.id}/report?format=json" download=' in html
    assert f'href="/api/v1/sessions/{session.id}/report?format=pdf" download=' in html
    assert ">\n      Download JSON\n" in html and ">\n      Download PDF\n" in html


def test_the_download_links_answer_attachments_with_the_cookie(acme_client, seeded):
    session = _by_ref(seeded, "call-intake-0001")
    pdf = acme_client.get(f"/api/v1/sessions/{session.id}/report", {"format": "pdf"})
    assert pdf.status_code == 200
    assert pdf["Content-Disposition"] == f'attachment; filename="masker-report-{session.id}.pdf"'
    body = acme_client.get(f"/api/v1/sessions/{session.id}/report", {"format": "json"})
    assert body.status_code == 200
    assert body["Content-Disposition"] == f'attachment; filename="masker-report-{session.id}.json"'


def test_viewing_a_session_page_records_nothing_in_the_report_register(acme_client, seeded):
    registers = list(apps.get_app_config("reports").get_models())
    before = [m._default_manager.count() for m in registers]
    _html(acme_client, _by_ref(seeded, "call-intake-0001"))
    assert [m._default_manager.count() for m in registers] == before


def test_another_accounts_session_is_the_404_page(acme_client, seeded):
    other = seeded.session("globex-call-0001")
    response = acme_client.get(f"/sessions/{other.id}/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "This page does not exist" in html
    assert other.id not in html
    assert "404.html" in [t.name for t in response.templates]


@pytest.mark.parametrize(
    "bad_id", ["sess_nonsense", "sess_01ARZ3NDEKTSV4RRFFQ69G5FAV", "agt_01ARZ3NDEKTSV4RRFFQ69G5FAV"]
)
def test_unknown_and_malformed_session_ids_are_the_404_page(acme_client, bad_id):
    response = acme_client.get(f"/sessions/{bad_id}/")
    assert response.status_code == 404
    assert "This page does not exist" in response.content.decode()


def test_a_broken_chain_shows_a_banner_with_the_first_bad_seq_and_no_figures(acme_client, seeded):
    session = _by_ref(seeded, "call-intake-0001")
    with append_only_guard_lifted(), connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {AuditEvent._meta.db_table} SET canonical = REPLACE(canonical, '\"turn\":2', '\"turn\":9') "
            "WHERE session_id = %s AND seq = 5",
            [session.id],
        )
    with pytest.raises(AuditChainBroken) as caught:
        verify_session(session)
    response = acme_client.get(f"/sessions/{session.id}/")
    assert response.status_code == 409
    html = response.content.decode()
    assert f"Audit chain broken at seq {caught.value.seq}." in html
    assert 'role="alert"' in html
    assert "Download PDF" not in html and "Download JSON" not in html
    assert 'id="merkle-root"' not in html and "Safe Harbor matrix" not in html


def test_console_pages_reference_no_external_resource(acme_client, seeded):
    pages = [
        "/sessions/",
        "/agents/",
        f"/sessions/{seeded.session('call-intake-0001').id}/",
        "/logout/",
        "/sessions/sess_nonsense/",
    ]
    for url in pages:
        html = acme_client.get(url).content.decode()
        assert not EXTERNAL.search(html), url
        assert "/static/console/console.css" in html
    acme_client.logout()
    assert not EXTERNAL.search(acme_client.get("/login/").content.decode())
