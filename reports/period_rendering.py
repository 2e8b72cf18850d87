"""The period report's PDF: the same machinery as the session report's (``reports.rendering``: the local-only
asset fetcher, the shared fonts, PDF/A-3b with the JSON attached, report id, root and "page X of Y" on every page),
with its own template, ``reports/period_report.html``.

Bounded whatever the window: totals, alerts capped at ``PDF_LIST_LIMIT`` rows per list with the count of the rest,
the per-agent table (at most ``PDF_SESSION_LIMIT`` rows) and a session appendix of at most ``PDF_SESSION_LIMIT``
rows with a note that the JSON lists all.
"""

from typing import Any

from django.template.loader import render_to_string
from weasyprint import HTML, Attachment
from weasyprint.urls import FatalURLFetchingError

from masker.errors import ReportGenerationFailed
from reports.period import PeriodReport, period_filename, render_period_json
from reports.presentation import ALERT_LABELS, COVERAGE_LABELS, PCI_OUTCOMES
from reports.rendering import (
    PDF_LIST_LIMIT,
    SECTION_TITLES,
    LocalAssetFetcher,
    _font_config,
    assets_dir,
)
from reports.safe_harbor import CATEGORIES

TEMPLATE = "reports/period_report.html"
PDF_SESSION_LIMIT = 200
SCOPE_TITLES = {"agent": "Agent compliance report", "account": "Account compliance report"}
VERDICTS = {
    "no_alerts": "No alerts: every session's chain verified, and no rehydration failure, residual leak, non-BAA "
    "egress, unmasked card data or degraded detection was logged.",
    "alerts_present": "Alerts were logged in the window; see sections 4, 5 and 7.",
    "integrity_failed": "FAILED: the audit chain of at least one session does not verify; see section 9.",
}


def _capped(items: list[dict], total: int, limit: int = PDF_LIST_LIMIT) -> dict[str, Any]:
    shown = items[:limit]
    return {"rows": shown, "more": total - len(shown), "total": total}


def period_context(report: PeriodReport) -> dict[str, Any]:
    """Everything the template shows, precomputed from the report value."""
    data = report.as_json()
    summary, leaks, pci, baa = data["summary"], data["leak_detection"], data["pci_dss"], data["baa_chain"]
    coverage = data["safe_harbor_coverage"] or {}
    return {
        "report": data,
        "titles": dict(enumerate(SECTION_TITLES, start=1)),
        "scope_title": SCOPE_TITLES[report.scope],
        "document_title": f"Masker {report.scope} compliance report {data['id']}",
        "attachment_name": period_filename(report, "json"),
        "verdict_ok": summary["verdict"] == "no_alerts",
        "verdict_text": VERDICTS[summary["verdict"]],
        "alert_rows": [
            {"label": ALERT_LABELS[kind], "count": count} for kind, count in summary["alerts_by_type"].items()
        ],
        "coverage_rows": [
            {
                "letter": key.split("_", 1)[0],
                "key": key,
                "label": label,
                "status": coverage[key],
                "status_label": COVERAGE_LABELS[coverage[key]],
            }
            for key, label in CATEGORIES.items()
            if key in coverage
        ],
        "pci_outcome": PCI_OUTCOMES[pci["outcome"]],
        "pci_alerts": _capped(pci["alerts"], pci["alert_count"]),
        "rehydration_failures": _capped(leaks["rehydration_failures"], leaks["rehydration_failure_count"]),
        "residual_leaks": _capped(leaks["residual_leaks"], leaks["residual_leak_count"]),
        "detection_degraded": _capped(leaks["detection_degraded"], leaks["detection_degraded_count"]),
        "hops": _capped(baa["hops"], len(baa["hops"])),
        "baa_alerts": _capped(baa["alerts"], baa["alert_count"]),
        "by_kind": sorted(data["redactions_by_kind"].items(), key=lambda kv: (-kv[1], kv[0])),
        "by_pass": list(data["redactions_by_pass"].items()),
        "by_action": list(summary["redactions_by_action"].items()),
        "broken": _capped(data["audit_integrity"]["broken"], data["audit_integrity"]["sessions_broken"]),
        "agents": _capped(data["cover"]["agents"], len(data["cover"]["agents"]), PDF_SESSION_LIMIT),
        "sessions": _capped(data["sessions"], len(data["sessions"]), PDF_SESSION_LIMIT),
        "signature": data.get("signature"),
    }


def render_period_html(report: PeriodReport) -> str:
    return render_to_string(TEMPLATE, period_context(report))


def render_period_pdf(report: PeriodReport) -> bytes:
    """The PDF/A-3b rendering with the JSON report (``render_period_json``) attached. Raises
    ``ReportGenerationFailed`` for any failure, chaining the cause."""
    try:
        root = assets_dir()
        attachment = Attachment(
            string=render_period_json(report),
            name=period_filename(report, "json"),
            description="Signed Masker Audit Schema v1 period report (JSON) that this PDF renders",
            created=report.generated_at,
            modified=report.generated_at,
            relationship="Data",
        )
        document = HTML(
            string=render_period_html(report),
            base_url=root.resolve().as_uri() + "/",
            url_fetcher=LocalAssetFetcher(root),
        )
        return document.write_pdf(pdf_variant="pdf/a-3b", attachments=[attachment], font_config=_font_config())
    except (Exception, FatalURLFetchingError) as exc:  # FatalURLFetchingError is a BaseException
        raise ReportGenerationFailed() from exc
