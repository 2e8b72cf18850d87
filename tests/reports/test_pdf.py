"""Acceptance 1: for every seeded session, the JSON validates, the PDF carries the same root, report-id format and
section titles, the PDF's embedded JSON is the JSON report, and both roots equal verify_chain's."""

import json
import re

from django.urls import reverse
from django.utils import timezone

from audit.walk import verify_session
from reports.domain import build_session_report, sign_report
from reports.rendering import SECTION_TITLES, render_report_json, render_report_pdf
from tests.reports.report_support import (
    REPORT_ID,
    pdf_attachments,
    pdf_reader,
    pdf_text,
    schema_errors,
    verify_report_signature,
)

# Fields that differ between two generations of the same report: its id and time (and what carries them).
PER_GENERATION = ("id", "generated_at", "signature")


def comparable(report: dict) -> dict:
    body = {key: value for key, value in report.items() if key not in PER_GENERATION}
    body["safe_harbor"] = {k: v for k, v in body["safe_harbor"].items() if k != "stamped_at"}  # = generated_at
    return body


def test_json_and_pdf_of_every_seeded_session_agree(seeded, client):
    client.force_login(seeded.account.memberships.first().user)
    for session in seeded.sessions:
        url = reverse("reports:session-report", args=[session.id])
        json_response = client.get(url, {"format": "json"})
        pdf_response = client.get(url, {"format": "pdf"})
        assert (json_response.status_code, pdf_response.status_code) == (200, 200)
        document = json.loads(json_response.content)
        assert schema_errors(document) == []
        report = document["report"]
        root = verify_session(session).merkle_root_hex
        assert report["merkle_root_hex"] == root

        pdf = pdf_response.content
        attachments = pdf_attachments(pdf)
        assert list(attachments) == [f"masker-report-{session.id}.json"]
        embedded_bytes = attachments[f"masker-report-{session.id}.json"]
        embedded = json.loads(embedded_bytes)
        assert schema_errors(embedded) == []
        assert comparable(embedded["report"]) == comparable(report)
        assert embedded["report"]["merkle_root_hex"] == root
        verify_report_signature(embedded["report"])
        assert embedded["report"]["id"] != report["id"]  # each call issues a new report

        text = pdf_text(pdf)
        assert root in text
        assert embedded["report"]["id"] in text
        assert re.search(REPORT_ID, text)
        positions = [text.find(title) for title in SECTION_TITLES]
        assert -1 not in positions, [t for t, p in zip(SECTION_TITLES, positions, strict=True) if p == -1]
        assert positions == sorted(positions), "sections out of order"


def test_embedded_json_is_exactly_the_json_download_of_that_report(seeded):
    report = sign_report(build_session_report(seeded.session("call-intake-0001"), generated_at=timezone.now()))
    (embedded,) = pdf_attachments(render_report_pdf(report)).values()
    assert embedded == render_report_json(report)


def test_every_page_shows_report_id_root_and_page_x_of_y(seeded, acme_client):
    session = seeded.session("call-rehydration-0003")
    pdf = acme_client.get(reverse("reports:session-report", args=[session.id]), {"format": "pdf"}).content
    pages = len(pdf_reader(pdf).pages)
    assert 2 <= pages <= 8
    (embedded,) = pdf_attachments(pdf).values()
    report = json.loads(embedded)["report"]
    for number in range(1, pages + 1):
        text = pdf_text(pdf, page=number)
        assert report["id"] in text, number
        assert f"Merkle root {report['merkle_root_hex']}" in text, number
        assert f"Page {number} of {pages}" in text, number


def test_pdf_is_pdf_a_3b_with_metadata(seeded, acme_client):
    session = seeded.session("call-intake-0001")
    pdf = acme_client.get(reverse("reports:session-report", args=[session.id]), {"format": "pdf"}).content
    reader = pdf_reader(pdf)
    (embedded,) = pdf_attachments(pdf).values()
    report = json.loads(embedded)["report"]
    xmp = reader.trailer["/Root"]["/Metadata"].get_object().get_data().decode()
    assert 'pdfaid:part="3"' in xmp
    assert 'pdfaid:conformance="B"' in xmp
    assert f"<xmp:CreateDate>{report['generated_at']}</xmp:CreateDate>" in xmp
    info = reader.metadata
    assert info.title == f"Masker session compliance report {report['id']}"
    stamp = report["generated_at"]  # 2026-11-28T12:00:00.123Z -> D:20261128120000
    assert info["/CreationDate"].startswith("D:" + re.sub(r"[-T:]", "", stamp)[:14])
    assert reader.trailer["/Root"]["/AF"]  # PDF/A-3 associated file: the JSON report


def test_pdf_text_states_the_safe_harbor_limitation_and_statuses(seeded, acme_client):
    pdf = acme_client.get(
        reverse("reports:session-report", args=[seeded.session("call-intake-0001").id]), {"format": "pdf"}
    ).content
    text = " ".join(pdf_text(pdf).split())
    assert "no actual knowledge" in text
    assert "software cannot attest" in text
    assert text.count("Full") >= 15 and "Partial" in text and "Not applicable" in text
