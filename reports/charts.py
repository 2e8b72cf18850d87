"""Pictures of a report, drawn on the server as SVG from the report value: the console page and the PDF embed the
same markup. Pure functions (the report's JSON in, SVG text out): no database, no network, no script, no
``style`` attribute (presentation attributes only, which a Content-Security-Policy without ``unsafe-inline``
allows), and a text alternative (``<title>``, ``<desc>`` and ``aria-labelledby``) on every picture.
"""

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 720, 168
LEFT, RIGHT = 86, 12  # room for the lane labels; the right margin
TOP = 26  # the legend line
BAR_TOP, BAR_BOTTOM = TOP + 6, TOP + 70  # the redactions lane (bars)
EGRESS_Y = BAR_BOTTOM + 18
ALERT_Y = EGRESS_Y + 20
AXIS_Y = ALERT_Y + 14
FONT = 'font-family="DejaVu Sans, Arial, sans-serif"'

REDACTION_FILL = "#2f6f8f"
EGRESS_FILL = "#5b6470"
ALERT_FILL = "#b42318"
GRID = "#d5dfe3"
INK = "#1b2430"
MUTED = "#4a5560"


def _turns(bucket: dict) -> str:
    first, last = bucket["from_turn"], bucket["to_turn"]
    return f"turn {first}" if first == last else f"turns {first}-{last}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def timeline_description(timeline: dict) -> str:
    """The text alternative of ``timeline_svg``: what the picture shows, in one or two sentences."""
    buckets = timeline["buckets"]
    if not buckets:
        return "No turn was logged in this call: nothing to plot."
    redactions = sum(b["redactions"] for b in buckets)
    egress = sum(b["egress"] for b in buckets)
    alerts = sum(b["alerts"] for b in buckets)
    span = f"turns {timeline['first_turn']} to {timeline['last_turn']}"
    if timeline["bucket_size"] > 1:
        span += f", in groups of {timeline['bucket_size']} turns"
    text = f"Timeline of the call, {span}: {_plural(redactions, 'redaction')}, {_plural(egress, 'egress event')}"
    text += f" and {_plural(alerts, 'alert')}."
    if redactions:
        busiest = max(buckets, key=lambda b: b["redactions"])
        text += f" Most redactions in {_turns(busiest)} ({busiest['redactions']})."
    if alerts:
        flagged = [_turns(b) for b in buckets if b["alerts"]]
        shown = ", ".join(flagged[:5]) + (f" and {len(flagged) - 5} more" if len(flagged) > 5 else "")
        text += f" Alerts in {shown}."
    return text


def _axis_labels(buckets: list[dict], x_of) -> list[str]:
    """Turn numbers under the axis: first, last, and up to four evenly spaced in between."""
    n = len(buckets)
    picks = sorted({0, n - 1, *(round(i * (n - 1) / 5) for i in range(1, 5))}) if n > 1 else [0]
    parts = []
    for index in picks:
        bucket = buckets[index]
        x = x_of(index)
        anchor = "start" if index == 0 and n > 1 else "end" if index == n - 1 and n > 1 else "middle"
        parts.append(
            f'<text x="{x:.1f}" y="{AXIS_Y + 11}" font-size="10" fill="{MUTED}" text-anchor="{anchor}" {FONT}>'
            f"{bucket['from_turn']}</text>"
        )
    return parts


def _frame(bucket_size: int) -> list[str]:
    """The legend, the lane labels and the guide lines."""
    parts = []
    legend_x = LEFT
    for label, shape in (
        ("Redactions", f'<rect x="{{x}}" y="8" width="10" height="10" fill="{REDACTION_FILL}"/>'),
        ("Egress", f'<circle cx="{{cx}}" cy="13" r="4.5" fill="{EGRESS_FILL}"/>'),
        ("Alerts", f'<path d="M{{x}} 18 l5 -10 l5 10 z" fill="{ALERT_FILL}"/>'),
    ):
        parts.append(shape.format(x=legend_x, cx=legend_x + 5))
        parts.append(f'<text x="{legend_x + 15}" y="17" font-size="11" fill="{INK}" {FONT}>{label}</text>')
        legend_x += 15 + 9 * len(label) + 18
    if bucket_size > 1:
        parts.append(
            f'<text x="{WIDTH - RIGHT}" y="17" font-size="10" fill="{MUTED}" text-anchor="end" {FONT}>'
            f"one column = {bucket_size} turns</text>"
        )
    # Lane labels and guide lines.
    for y, label in ((BAR_BOTTOM - 4, "Redactions"), (EGRESS_Y + 4, "Egress"), (ALERT_Y + 4, "Alerts")):
        parts.append(
            f'<text x="{LEFT - 8}" y="{y}" font-size="10" fill="{MUTED}" text-anchor="end" {FONT}>{label}</text>'
        )
    parts.append(f'<line x1="{LEFT}" y1="{BAR_BOTTOM}" x2="{WIDTH - RIGHT}" y2="{BAR_BOTTOM}" stroke="{GRID}"/>')
    parts.append(f'<line x1="{LEFT}" y1="{AXIS_Y}" x2="{WIDTH - RIGHT}" y2="{AXIS_Y}" stroke="{GRID}"/>')
    return parts


def timeline_svg(timeline: dict, *, element_id: str = "timeline") -> SafeString:
    """The call's timeline as an inline SVG: turns along the x-axis; redactions as bars, egress events as dots and
    alerts as red triangles, one column per bucket of turns. ``timeline`` is the report JSON's ``timeline``."""
    buckets = timeline["buckets"]
    title_id, desc_id = f"{element_id}-title", f"{element_id}-desc"
    description = escape(timeline_description(timeline))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" id="{escape(element_id)}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" '
        f'aria-labelledby="{title_id} {desc_id}">',
        f'<title id="{title_id}">Call timeline</title>',
        f'<desc id="{desc_id}">{description}</desc>',
    ]
    parts.extend(_frame(timeline["bucket_size"]))
    if not buckets:
        parts.append(
            f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{EGRESS_Y}" font-size="11" fill="{MUTED}" '
            f'text-anchor="middle" {FONT}>No turns logged</text>'
        )
        parts.append("</svg>")
        return mark_safe("".join(parts))  # noqa: S308 -- every interpolated text is a number or escaped

    n = len(buckets)
    step = (WIDTH - LEFT - RIGHT) / n
    bar_width = max(min(step * 0.7, 28), 1.0)

    def x_of(index: int) -> float:
        return LEFT + step * (index + 0.5)

    peak = max(b["redactions"] for b in buckets) or 1
    peak_egress = max(b["egress"] for b in buckets) or 1
    lane = BAR_BOTTOM - BAR_TOP
    for index, bucket in enumerate(buckets):
        x = x_of(index)
        if bucket["redactions"]:
            height = max(lane * bucket["redactions"] / peak, 1.5)
            parts.append(
                f'<rect x="{x - bar_width / 2:.1f}" y="{BAR_BOTTOM - height:.1f}" width="{bar_width:.1f}" '
                f'height="{height:.1f}" fill="{REDACTION_FILL}"/>'
            )
        if bucket["egress"]:
            radius = min(2.0 + 3.0 * bucket["egress"] / peak_egress, step / 2 if step < 10 else 5.0)
            parts.append(f'<circle cx="{x:.1f}" cy="{EGRESS_Y}" r="{max(radius, 1.0):.1f}" fill="{EGRESS_FILL}"/>')
        if bucket["alerts"]:
            half = min(5.0, max(step / 2, 1.5))
            parts.append(
                f'<path d="M{x - half:.1f} {ALERT_Y + 5} L{x:.1f} {ALERT_Y - 5} L{x + half:.1f} {ALERT_Y + 5} Z" '
                f'fill="{ALERT_FILL}"/>'
            )
    if peak > 0 and any(b["redactions"] for b in buckets):
        parts.append(
            f'<text x="{LEFT - 8}" y="{BAR_TOP + 8}" font-size="9" fill="{MUTED}" text-anchor="end" {FONT}>'
            f"max {peak}</text>"
        )
    parts.extend(_axis_labels(buckets, x_of))
    parts.append(
        f'<text x="{LEFT - 8}" y="{AXIS_Y + 11}" font-size="10" fill="{MUTED}" text-anchor="end" {FONT}>Turn</text>'
    )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 -- every interpolated text is a number or escaped
