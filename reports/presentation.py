"""How a report reads, in one place: the words, tones and formats the console page and the PDF both show.

Both renderings of a report take their labels from here, so an auditor reading the PDF and a compliance officer on
the console see the same alert names, coverage words, outcomes and durations (a test compares the two).
"""

from audit.models import Session

# One name per alert type: a row's badge and a count's label alike.
ALERT_LABELS = {
    "rehydration_failed": "Rehydration failed",
    "leak_detected": "Residual PHI leak",
    "non_baa_egress": "Egress without a BAA",
    "card_not_masked": "Card data not masked before egress",
    "detection_degraded": "Detection degraded",
    "integrity_broken": "Audit chain does not verify",
}
# Alert types that call for a look rather than an incident (amber, not red).
WARNING_ALERTS = frozenset({"detection_degraded"})

COVERAGE_LABELS = {"full": "Full", "partial": "Partial", "none": "None", "not_applicable": "Not applicable"}
COVERAGE_TONES = {"full": "good", "partial": "warn", "none": "bad", "not_applicable": "muted"}
SESSION_STATUS_LABELS = dict(Session.Status.choices)  # "partial" -> "Ended partially"
SESSION_STATUS_TONES = {"ok": "good", "error": "bad", "partial": "warn", "active": "info"}

PCI_OUTCOMES = {
    "no_card_data": "No card data was detected.",
    "all_masked": "Card data was detected and masked before any egress.",
    "card_data_exposed": "Card data was detected and NOT masked before egress.",
}


def format_duration(ms: int | None) -> str:
    """A call's duration: ``41.5 s``, ``1 min 04 s``, ``2 h 05 min``; ``open`` while the call runs."""
    if ms is None:
        return "open"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
