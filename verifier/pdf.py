"""Checking a PDF report: the signed JSON it attaches (checked as the ``report`` command checks a JSON report), and
that its printed pages show that same report: its id and root on every page, its signature, and the figures the
pages print (totals, alert count, coverage) equal to the attached JSON's. A reader trusts the pages, so a PDF whose
pages say something its signed JSON does not say fails."""

from __future__ import annotations

import argparse
import re
from typing import Any

from verifier.inputs import MISSING, at, loads, report_object
from verifier.outcome import CannotVerify, Outcome
from verifier.pdfread import PdfDocument, PdfError
from verifier.report import check_report_files

_N = r"(\d+(?:\.\d+)?)"
# What the pages print, as a pattern over the page text without whitespace (case-insensitive: headings are set in
# capitals by the stylesheet), and the attached report's field each captured number must equal.
PRINTED_FIGURES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "executive summary figures",
        rf"(?<![\d.]){_N}sessions?{_N}auditevents{_N}redactions{_N}%safeharborcoverage{_N}alerts",
        (
            "summary.total_sessions",
            "summary.total_events",
            "summary.total_redactions",
            "summary.coverage_percent",
            "summary.alert_count",
        ),
    ),
    (
        "Safe Harbor coverage",
        rf"(?<![\d.]){_N}%of{_N}applicablecategories\({_N}full,{_N}partial,{_N}none,{_N}notapplicable\)",
        (
            "safe_harbor.coverage_percent",
            "safe_harbor.applicable_categories",
            "safe_harbor.full",
            "safe_harbor.partial",
            "safe_harbor.none",
            "safe_harbor.not_applicable",
        ),
    ),
    ("alert count (banner)", rf"(?<![\d.]){_N}alerts?loggedinthissession", ("summary.alert_count",)),
    ("redaction total (section 8)", rf"(?<![\d.]){_N}redactions?intotal", ("summary.total_redactions",)),
)


def _squeeze(text: str) -> str:
    return "".join(text.split())


def _number(text: str) -> int | float:
    return float(text) if "." in text else int(text)


def check_printed_pages(outcome: Outcome, report: dict[str, Any], pages: list[str]) -> None:
    """One line per thing compared between the printed pages and the attached report."""
    squeezed = [_squeeze(page) for page in pages]
    everything = "".join(squeezed)
    report_id, root = report.get("id"), report.get("merkle_root_hex")
    for field, value in (("report id", report_id), ("merkle_root_hex", root)):
        if not isinstance(value, str):
            continue
        missing = [str(number) for number, page in enumerate(squeezed, start=1) if value not in page]
        if missing:
            outcome.fail(f"pdf: page(s) {', '.join(missing)} do not show the attached report's {field} {value}")
        else:
            outcome.ok(f"pdf: every page ({len(pages)}) shows the attached report's {field} {value}")
    signature = report.get("signature") if isinstance(report.get("signature"), dict) else {}
    for field in ("kid", "sig"):
        value = signature.get(field)
        if isinstance(value, str) and value in everything:
            outcome.ok(f"pdf: the pages show the attached report's signature.{field}")
        elif isinstance(value, str):
            outcome.fail(f"pdf: the printed pages do not show the attached report's signature.{field}")
    lowered = everything.lower()
    for label, pattern, paths in PRINTED_FIGURES:
        matches = re.findall(pattern, lowered)
        stated = [at(report, path) for path in paths]
        if not matches:
            if label == "alert count (banner)" and stated[0] == 0:
                continue  # no alert: the banner says so in words
            outcome.fail(f"pdf: the pages do not print the {label} where a report prints them")
            continue
        good = True
        for match in matches:
            printed = (match,) if isinstance(match, str) else match
            for path, says, shown in zip(paths, stated, printed, strict=True):
                if says is MISSING or isinstance(says, bool) or _number(shown) != says:
                    outcome.fail(f"pdf: the pages print {path} as {shown}, the attached report says {says}")
                    good = False
        if good:
            figures = ", ".join(f"{path} {says}" for path, says in zip(paths, stated, strict=True))
            outcome.ok(f"pdf: printed {label} match the attached report ({figures})")


def read_pdf(path: str) -> tuple[list[tuple[str, bytes]], list[str]]:
    """(embedded files, text of each page) of the PDF at ``path``; ``CannotVerify`` if it cannot be read."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise CannotVerify(f"cannot read PDF {path}: {exc.strerror}") from None
    try:
        document = PdfDocument(data)
        return document.embedded_files(), [document.page_text(page) for page in document.pages()]
    except (PdfError, ValueError, TypeError, AttributeError, RecursionError) as exc:
        raise CannotVerify(f"{path} is not a PDF this verifier can read: {exc}") from None


def run_pdf(args: argparse.Namespace, outcome: Outcome) -> int:
    files, pages = read_pdf(args.pdf)
    candidates = [(name, data) for name, data in files if name.lower().endswith(".json")]
    candidates.sort(key=lambda item: not item[0].startswith("masker-report-"))
    if not candidates:
        outcome.fail("pdf: no JSON report attached (expected masker-report-<session>.json)")
        return outcome.finish(f"PDF {args.pdf}")
    name, data = candidates[0]
    if len(candidates) > 1:
        outcome.warn(f"pdf: several JSON attachments; checking {name}")
    try:
        report = report_object(loads(data), f"the attachment {name}")
    except (ValueError, UnicodeDecodeError):
        outcome.fail(f"pdf: the attachment {name} is not valid JSON")
        return outcome.finish(f"PDF {args.pdf}")
    outcome.ok(f"pdf: attachment {name} holds report {report.get('id')}")
    check_printed_pages(outcome, report, pages)
    return check_report_files(outcome, report, events=args.events, keys=args.keys)
