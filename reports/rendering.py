"""Two renderings of one report value: the JSON document and the auditor's PDF.

- ``render_report_json(report) -> bytes``: ``{"report": {...}}``, keys in docs/report.md's order, UTF-8. The PDF
  embeds exactly these bytes, so the attachment of a PDF equals a JSON download of the same report id.
- ``render_report_html(report) -> str``: the template ``MASKER_REPORT_TEMPLATE`` (default
  ``reports/session_report.html``) with a context precomputed here; templates never touch the database.
- ``render_report_pdf(report) -> bytes``: WeasyPrint, PDF/A-3b, the JSON attached, every page stamped with the
  report id, the Merkle root and "page X of Y", then signed for PDF readers (``reports.pdf_signing``, PAdES).
  Assets come only from ``MASKER_REPORT_ASSETS_DIR`` (default ``static/reports``) through ``LocalAssetFetcher``,
  which refuses every other URL -- http(s) above all -- and makes any refused or missing asset fatal, so a PDF is
  never silently rendered without its stylesheet. Any failure is raised as ``ReportGenerationFailed`` (500
  ``report_generation_failed``) with the cause chained for the log.

The PDF is bounded: it summarises, lists are capped at ``PDF_LIST_LIMIT`` rows with "and N more", so its size
and render time do not grow with the log.
"""

import json
import logging
import mimetypes
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from django.conf import settings
from django.template.loader import render_to_string
from weasyprint import HTML, Attachment
from weasyprint.text.fonts import FontConfiguration
from weasyprint.urls import FatalURLFetchingError, URLFetcher, URLFetcherResponse

from masker.errors import ReportGenerationFailed
from reports.charts import timeline_svg
from reports.pdf_signing import sign_pdf
from reports.presentation import (
    ALERT_LABELS,
    PCI_OUTCOMES,
    SESSION_STATUS_LABELS,
    coverage_rows,
    format_duration,
)
from reports.values import SessionReport

# WeasyPrint logs every rendering step at INFO; one report would print a dozen lines into the service log.
logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)

PDF_LIST_LIMIT = 15

SECTION_TITLES = (
    "Cover",
    "Executive summary",
    "HIPAA Safe Harbor matrix",
    "PCI-DSS scope",
    "Leak detection",
    "Retention attestation",
    "BAA chain",
    "Redaction summary",
    "Audit log integrity",
    "Configuration snapshot",
    "Verification",
)
# The section that lists each alert type's occurrences (PCI-DSS 4, leak detection 5, BAA chain 7).
ALERT_SECTIONS = {
    "card_not_masked": 4,
    "rehydration_failed": 5,
    "leak_detected": 5,
    "detection_degraded": 5,
    "non_baa_egress": 7,
}


def report_filename(report: SessionReport, extension: str) -> str:
    return f"masker-report-{report.session_id}.{extension}"


def render_report_json(report: SessionReport) -> bytes:
    """The JSON document: ``{"report": report.as_json()}``, indented, UTF-8, newline-terminated."""
    return (json.dumps({"report": report.as_json()}, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


# --- HTML ---------------------------------------------------------------------------------------------------------


def _capped(items: list[dict], total: int) -> dict[str, Any]:
    shown = items[:PDF_LIST_LIMIT]
    return {"rows": shown, "more": total - len(shown), "total": total}


def _with_time(items: list[dict]) -> list[dict]:
    """Alert rows with ``time``: the event's ``ts`` as ``HH:MM:SS.mmm`` (the date is the cover's)."""
    return [item | {"time": item["ts"][11:23]} for item in items]


def section_refs(alerts_by_type: dict[str, int]) -> list[int]:
    """The sections that list the alerts present, in order: what page 1's verdict points to."""
    return sorted({ALERT_SECTIONS[kind] for kind, count in alerts_by_type.items() if count})


def _refs_text(numbers: list[int]) -> str:
    words = [str(n) for n in numbers]
    if len(words) == 1:
        return f"section {words[0]}"
    return "sections " + ", ".join(words[:-1]) + " and " + words[-1]


def summary_tiles(data: dict) -> list[dict]:
    """The executive summary's figures. One session's report shows the call's duration where a period report
    would count sessions."""
    summary, session = data["summary"], data["cover"]["session"]
    if data["scope"] == "session":
        ms = session["duration_ms"]
        first = {"value": format_duration(ms), "label": "call duration"}
    else:
        first = {"value": summary["total_sessions"], "label": "sessions"}
    return [
        first,
        {"value": summary["total_events"], "label": "audit events"},
        {"value": summary["total_redactions"], "label": "redactions"},
        {"value": f"{summary['coverage_percent']}%", "label": "Safe Harbor coverage"},
        {"value": summary["alert_count"], "label": "alerts", "tone": "good" if not summary["alert_count"] else "bad"},
    ]


def _yes_no(value: bool | None, *, none: str = "n/a") -> str:
    return none if value is None else ("Yes" if value else "No")


def report_context(report: SessionReport) -> dict[str, Any]:
    """Everything the template shows, precomputed from the report value (labels, tones, capped rows)."""
    data = report.as_json()
    cover, summary, integrity = data["cover"], data["summary"], data["audit_integrity"]
    coverage = data["safe_harbor_coverage"]
    leaks, pci, baa = data["leak_detection"], data["pci_dss"], data["baa_chain"]
    retention = data["retention_attestation"]
    seal = integrity["seal"]
    signature = data.get("signature")
    refs = section_refs(summary["alerts_by_type"])
    return {
        "report": data,
        "titles": dict(enumerate(SECTION_TITLES, start=1)),
        "document_title": f"Masker session compliance report {data['id']}",
        "attachment_name": report_filename(report, "json"),
        "verdict_ok": summary["alert_count"] == 0,
        "verdict_refs": [{"number": n, "anchor": f"s{n}"} for n in refs],
        "verdict_refs_text": _refs_text(refs) if refs else "",
        "tiles": summary_tiles(data),
        "timeline_svg": timeline_svg(data["timeline"], element_id="pdf-timeline"),
        "alert_rows": [
            {"label": ALERT_LABELS[kind], "count": count, "section": ALERT_SECTIONS[kind]}
            for kind, count in summary["alerts_by_type"].items()
        ],
        "coverage_rows": coverage_rows(coverage),
        "pci_outcome": PCI_OUTCOMES[pci["outcome"]],
        "pci_all_masked": _yes_no(pci["all_masked_before_egress"]),
        "pci_alerts": _capped(_with_time(pci["alerts"]), pci["alert_count"]),
        "rehydration_failures": _capped(_with_time(leaks["rehydration_failures"]), leaks["rehydration_failure_count"]),
        "residual_leaks": _capped(_with_time(leaks["residual_leaks"]), leaks["residual_leak_count"]),
        "detection_degraded": _capped(_with_time(leaks["detection_degraded"]), leaks["detection_degraded_count"]),
        "retention_encrypted": _yes_no(retention["all_payloads_encrypted"], none="n/a (nothing persisted)"),
        "hops": _capped(baa["hops"], len(baa["hops"])),
        "baa_alerts": _capped(_with_time(baa["alerts"]), baa["alert_count"]),
        "by_kind": sorted(data["redactions_by_kind"].items(), key=lambda kv: (-kv[1], kv[0])),
        "by_pass": list(data["redactions_by_pass"].items()),
        "by_action": list(summary["redactions_by_action"].items()),
        "duration": format_duration(cover["session"]["duration_ms"]),
        "status_label": SESSION_STATUS_LABELS[cover["session"]["status"]],
        "seal": seal,
        "signature": signature,
    }


def render_report_html(report: SessionReport) -> str:
    """The report as HTML (the PDF's source). Links its stylesheet relative to the assets directory."""
    template = settings.MASKER_REPORT_TEMPLATE
    return render_to_string(template, report_context(report))


# --- PDF ----------------------------------------------------------------------------------------------------------


class LocalAssetFetcher(URLFetcher):
    """Serves ``file:`` URLs inside one directory and refuses everything else (network URLs included).

    Built with ``fail_on_errors=True``: WeasyPrint then stops the rendering on a refused or missing asset instead
    of logging a warning and carrying on without it.
    """

    def __init__(self, root: Path):
        super().__init__(allowed_protocols=("file",), allow_redirects=False, fail_on_errors=True)
        self.root = Path(root).resolve()

    def fetch(self, url: str, headers: dict | None = None) -> URLFetcherResponse:
        parts = urlsplit(url)
        if parts.scheme != "file":
            raise PermissionError(f"report assets are local only; refused a {parts.scheme or 'relative'} URL")
        path = Path(url2pathname(parts.path)).resolve()
        if not path.is_relative_to(self.root):
            raise PermissionError("report asset outside the assets directory")
        if not path.is_file():
            raise FileNotFoundError(f"report asset missing: {path.name}")
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return URLFetcherResponse(url, body=path.read_bytes(), headers={"Content-Type": content_type})


_fonts = threading.local()


def _font_config() -> FontConfiguration:
    """One per thread, reused by every rendering: setting fontconfig up again cost ~200 ms of a ~700 ms report PDF.
    The report's CSS declares no ``@font-face``, so nothing is ever added to it after creation."""
    config = getattr(_fonts, "config", None)
    if config is None:
        config = _fonts.config = FontConfiguration()
    return config


def assets_dir() -> Path:
    return Path(settings.MASKER_REPORT_ASSETS_DIR)


def write_report_pdf(
    render_html: Callable[[], str],
    *,
    report_json: bytes,
    json_name: str,
    title: str,
    report_id: str,
    root_hex: str,
    generated_at: datetime,
) -> bytes:
    """A report's HTML (``render_html()``) as PDF/A-3b with its signed JSON attached (``json_name``), then signed
    for PDF readers (PAdES). Assets come only from ``assets_dir()``. Raises ``ReportGenerationFailed`` for any
    failure (template, asset, layout, signing), chaining the cause. Session and period reports both come here."""
    try:
        root = assets_dir()
        attachment = Attachment(
            string=report_json,
            name=json_name,
            description=f"Signed Masker Audit Schema v1 {title} (JSON) that this PDF renders",
            created=generated_at,
            modified=generated_at,
            relationship="Data",
        )
        document = HTML(
            string=render_html(), base_url=root.resolve().as_uri() + "/", url_fetcher=LocalAssetFetcher(root)
        )
        pdf = document.write_pdf(pdf_variant="pdf/a-3b", attachments=[attachment], font_config=_font_config())
        return sign_pdf(pdf, reason=f"Masker {title} {report_id} (Merkle root {root_hex})")
    except (Exception, FatalURLFetchingError) as exc:  # FatalURLFetchingError is a BaseException
        raise ReportGenerationFailed() from exc


def render_report_pdf(report: SessionReport) -> bytes:
    """The session report as PDF (``write_report_pdf``), with ``render_report_json`` attached."""
    return write_report_pdf(
        lambda: render_report_html(report),
        report_json=render_report_json(report),
        json_name=report_filename(report, "json"),
        title="compliance report",
        report_id=report.id,
        root_hex=report.merkle_root_hex,
        generated_at=report.generated_at,
    )


def render_report(report: SessionReport, report_format: str) -> bytes:
    """The session report as ``json`` or ``pdf`` bytes."""
    return render_report_pdf(report) if report_format == "pdf" else render_report_json(report)
