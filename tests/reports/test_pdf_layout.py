"""The PDF's layout, measured on the rendered pages (pdfplumber): every character inside the page margins, no
near-empty page, headings on the same page as their first rows, and page 1's cross-references computed from the
alerts the report holds. For every demo session and a stress session (long vendor names, every list full)."""

import io
import re
from datetime import timedelta

import pdfplumber
import pytest
from django.utils import timezone

from audit.models import Session
from audit.timestamps import format_ts
from audit.writing import append_events, end_session, start_session
from reports.domain import build_session_report, sign_report
from reports.rendering import PDF_LIST_LIMIT, SECTION_TITLES, render_report_pdf
from tests.conftest import T0

MM = 72 / 25.4
# report.css: @page A4 with margins 20mm top, 15mm right, 18mm bottom, 15mm left.
LEFT = RIGHT = 15 * MM
TOP, BOTTOM = 20 * MM, 18 * MM
TOLERANCE = 0.5  # pt: glyph boxes may overhang their advance by a hair
MIN_LINES = 10  # a page with fewer lines of body text is "near empty"

# As long as a vendor slug may be (audit.identifiers: 48 characters, five words), with the "-<n>" the rows add.
LONG_VENDORS = [
    "speechrecognitionservice-europewest-enterpris",
    "largelanguagemodelinference-frankfurt-zeroret",
    "voicesynthesispartner-examplewithlonghostname",
    "telephonycarrierwithunusuallylongname-incorp",
]


def _render(session: Session) -> bytes:
    session = Session.objects.select_related("agent", "account").get(pk=session.pk)
    return render_report_pdf(sign_report(build_session_report(session, generated_at=timezone.now())))


def _stress_session(agent) -> Session:
    """Every list over the PDF's cap, long vendor names, a dozen entity kinds, and many turns."""
    session, _ = start_session(agent, external_ref="stress-" + "x" * 40, started_at=T0)
    kinds = ["NAME", "PHONE", "DOB", "IP_ADDRESS", "EMAIL", "SSN", "MRN", "ADDRESS", "ZIP", "URL", "ACCOUNT", "AGE"]
    events = []
    for turn in range(1, 211):  # 30 of each alert, twice the PDF's cap
        ts = format_ts(T0 + timedelta(seconds=turn))
        kind = kinds[turn % len(kinds)]
        events.append(
            {
                "ts": ts,
                "kind": "phi.redacted",
                "turn": turn,
                "pass": ("regex", "ner")[turn % 2],
                "entity_kind": kind,
                "span": [0, 9],
                "action": "tokenize",
                "token_kind": "MSKV1",
                "kid": "K",
            }
        )
        hop = ("stt", "llm", "tts", "telephony")[turn % 4]
        events.append(
            {
                "ts": ts,
                "kind": "egress.forwarded",
                "turn": turn,
                "hop": hop,
                "vendor": f"{LONG_VENDORS[turn % 4]}-{turn % 23}",
                "baa": turn % 3 != 0,
                "retention_days": turn % 400,
            }
        )
        if turn % 7 == 0:
            events.append(
                {
                    "ts": ts,
                    "kind": "phi.rehydration_failed",
                    "turn": turn,
                    "entity_kind": kind,
                    "reason": "token_not_returned_upstream",
                }
            )
            events.append({"ts": ts, "kind": "leak.detected", "turn": turn, "entity_kind": kind, "stage": "response"})
            events.append({"ts": ts, "kind": "detection.degraded", "turn": turn, "reason": "ner_timeout"})
            events.append(
                {
                    "ts": ts,
                    "kind": "pci.card_detected",
                    "turn": turn,
                    "luhn_valid": True,
                    "masked_before_egress": False,
                    "action": "passthrough",
                }
            )
    append_events(session, events)
    end_session(session, status="error", now=T0 + timedelta(seconds=210))
    return session


def _pages(pdf: bytes):
    with pdfplumber.open(io.BytesIO(pdf)) as document:
        for page in document.pages:
            yield page.width, page.height, page.chars, page.extract_text()


def _body_lines(chars: list[dict], height: float) -> set[int]:
    return {round(c["top"]) for c in chars if TOP - 1 <= c["top"] <= height - BOTTOM and c["text"].strip()}


def assert_layout_holds(pdf: bytes, label: str) -> None:
    pages = list(_pages(pdf))
    for number, (width, height, chars, _text) in enumerate(pages, start=1):
        outside = [c for c in chars if c["x0"] < LEFT - TOLERANCE or c["x1"] > width - RIGHT + TOLERANCE]
        assert not outside, (
            f"{label} page {number}: text past the margins: "
            + repr("".join(c["text"] for c in outside[:40]))
            + f" (x up to {max(c['x1'] for c in outside):.1f} pt, margin {width - RIGHT:.1f} pt)"
        )
        lines = _body_lines(chars, height)
        assert len(lines) >= MIN_LINES, f"{label} page {number} of {len(pages)} is near empty ({len(lines)} lines)"
        # A section heading is never the last thing on its page: its first line (a lead, or a table's first rows
        # behind it) follows it there.
        text_at = _lines_by_top(chars)
        headings = [top for top, line in text_at.items() if re.fullmatch(rf"(\d+ *)?({TITLES})", line)]
        for top in headings:
            below = [line for line in lines if line > top + 2]
            assert below, f"{label} page {number}: heading {text_at[top]!r} with nothing under it"


TITLES = "|".join(re.escape(title) for title in SECTION_TITLES)


def _lines_by_top(chars: list[dict]) -> dict[int, str]:
    """The page's text lines by their (rounded) top, characters in x order."""
    rows: dict[int, list[dict]] = {}
    for char in chars:
        rows.setdefault(round(char["top"]), []).append(char)
    return {top: "".join(c["text"] for c in sorted(row, key=lambda c: c["x0"])).strip() for top, row in rows.items()}


def test_every_demo_report_fits_the_page_with_no_near_empty_page(seeded):
    for session in seeded.sessions + seeded.other_sessions:
        assert_layout_holds(_render(session), session.external_ref)


def test_a_stress_report_fits_the_page_and_page_one_points_to_every_section_with_alerts(agent):
    pdf = _render(_stress_session(agent))
    assert_layout_holds(pdf, "stress")
    text = "".join(page[3] for page in _pages(pdf))
    assert f"and {30 - PDF_LIST_LIMIT} more" in text  # the capped alert lists say how many are left out
    page = _page_one(pdf)
    assert "see sections 4, 5 and 7." in page
    assert "210.0 s" in page and "CALL DURATION" in page.upper()  # the first tile of a one-session report


def _page_one(pdf: bytes) -> str:
    return " ".join(next(_pages(pdf))[3].split())


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("call-vendor-0004", "1 alert logged in this session; see section 7."),
        ("call-rehydration-0003", "3 alerts logged in this session; see section 5."),
    ],
)
def test_page_one_points_to_the_sections_that_hold_the_alerts(seeded, ref, expected):
    session = next(s for s in seeded.sessions if s.external_ref == ref)
    assert expected in _page_one(_render(session))
