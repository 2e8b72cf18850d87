"""The console page and the PDF of one session read alike: the same alert names, coverage words, outcome
sentences, status, duration and figures (``reports.presentation`` is their one source)."""

import html
import json
import re

import pytest
from django.urls import reverse

from reports.presentation import (
    ALERT_LABELS,
    COVERAGE_LABELS,
    PCI_OUTCOMES,
    SESSION_STATUS_LABELS,
    format_duration,
)
from tests.reports.report_support import pdf_attachments, pdf_text

DEMO_CALLS = [
    "call-intake-0001",
    "call-payment-0002",
    "call-rehydration-0003",
    "call-vendor-0004",
    "call-empty-0005",
    "call-live-0006",
]


def _words(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def _console_text(client, session) -> str:
    page = client.get(reverse("console:session", args=[session.id])).content.decode()
    return _words(html.unescape(re.sub(r"<[^>]+>", " ", page)))


def _pdf(client, session) -> tuple[str, dict]:
    pdf = client.get(reverse("reports:session-report", args=[session.id]), {"format": "pdf"}).content
    (embedded,) = pdf_attachments(pdf).values()
    report = json.loads(embedded)["report"]
    return _words(pdf_text(pdf, layout=False)), report


@pytest.mark.parametrize("reference", DEMO_CALLS)
def test_the_console_page_and_the_pdf_show_the_same_labels_and_figures(acme_client, seeded, reference):
    session = seeded.session(reference)
    console = _console_text(acme_client, session)
    pdf, report = _pdf(acme_client, session)
    summary, cover = report["summary"], report["cover"]["session"]

    shown = {
        "status": SESSION_STATUS_LABELS[cover["status"]],
        "duration": format_duration(cover["duration_ms"]),
        "coverage": f"{summary['coverage_percent']:.1f}",
        "pci outcome": PCI_OUTCOMES[report["pci_dss"]["outcome"]],
        "merkle root": report["merkle_root_hex"],
        "external reference": cover["external_ref"],
        **{f"alert {kind}": ALERT_LABELS[kind] for kind, count in summary["alerts_by_type"].items() if count},
        **{f"coverage {status}": COVERAGE_LABELS[status] for status in set(report["safe_harbor_coverage"].values())},
    }
    assert {name: text for name, text in shown.items() if text not in console} == {}
    assert {name: text for name, text in shown.items() if text not in pdf} == {}
    for figure in (summary["total_events"], summary["total_redactions"], summary["alert_count"]):
        assert re.search(rf"\b{figure}\b", console) and re.search(rf"\b{figure}\b", pdf)


@pytest.mark.parametrize(
    ("ms", "text"),
    [(None, "open"), (2000, "2.0 s"), (41_500, "41.5 s"), (64_000, "1 min 04 s"), (7_500_000, "2 h 05 min")],
)
def test_durations_are_human_readable(ms, text):
    assert format_duration(ms) == text
