"""The console's period-report pages: the account report and an agent's report over a date range, on screen, with
the two downloads (links to the period-report API with the same window, so the files carry the same root).

The range is chosen in whole UTC days: ``from`` (inclusive) to ``to`` (inclusive on screen), i.e. the window
[from 00:00Z, to + 1 day 00:00Z). Default: the 30 days ending today. The figures are those of
``reports.period.build_period_report``, the same entry point as the API's; the sessions table is capped on screen
(the JSON lists every session).
"""

from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from audit.errors import AgentNotFound
from audit.models import Agent
from masker.errors import ValidationFailed
from masker.models import account_of
from reports.period import DEFAULT_DAYS, MAX_DAYS, WindowTooLarge, build_period_report, parse_window
from reports.presentation import ALERT_LABELS

SESSIONS_ON_SCREEN = 200
VERDICTS = {
    "no_alerts": ("good", "No alerts: every session's audit chain verified and no alert was logged."),
    "alerts_present": ("warn", "Alerts were logged in this window."),
    "integrity_failed": ("bad", "The audit chain of at least one session does not verify."),
}


def _day(raw: str | None, default: date, name: str, notes: list[str]) -> date:
    if not raw:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        notes.append(f"'{name}' is not a date (YYYY-MM-DD); showing the default range.")
        return default


def _range(request: HttpRequest) -> tuple[date, date, list[str]]:
    notes: list[str] = []
    today = timezone.now().astimezone(UTC).date()
    last = _day(request.GET.get("to"), today, "to", notes)
    first = _day(request.GET.get("from"), last - timedelta(days=DEFAULT_DAYS - 1), "from", notes)
    return first, last, notes


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _period_page(request: HttpRequest, agent: Agent | None, account, title: str) -> HttpResponse:
    first, last, notes = _range(request)
    start, end = _start_of(first), _start_of(last + timedelta(days=1))
    api = reverse("reports:agent-report", args=[agent.id]) if agent else reverse("reports:account-report")
    window_query = {"from": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "to": end.strftime("%Y-%m-%dT%H:%M:%SZ")}
    context = {
        "account": account,
        "nav": "period",
        "agent": agent,
        "title": title,
        "agents": list(Agent.objects.visible_to(account).only("id", "name").order_by("name")),
        "first": first,
        "last": last,
        "max_days": MAX_DAYS,
        "notes": notes,
        "download_json": f"{api}?{urlencode({**window_query, 'format': 'json'})}",
        "download_pdf": f"{api}?{urlencode({**window_query, 'format': 'pdf'})}",
    }
    try:
        window = parse_window(window_query["from"], window_query["to"], now=timezone.now())
        report = build_period_report(account, agent=agent, window=window, generated_at=timezone.now()).as_json()
    except ValidationFailed as invalid:
        context["problem"] = invalid.message
        return render(request, "console/period_report.html", context, status=400)
    except WindowTooLarge as large:
        context["problem"] = large.message
        return render(request, "console/period_report.html", context, status=422)
    summary = report["summary"]
    tone, verdict = VERDICTS[summary["verdict"]]
    context |= {
        "report": report,
        "verdict_tone": tone,
        "verdict_text": verdict,
        "alert_rows": [
            {"label": ALERT_LABELS[kind], "count": count} for kind, count in summary["alerts_by_type"].items() if count
        ],
        "session_rows": [
            dict(entry, url=reverse("console:session", args=[entry["session_id"]]))
            for entry in report["sessions"][:SESSIONS_ON_SCREEN]
        ],
        "more_sessions": max(0, len(report["sessions"]) - SESSIONS_ON_SCREEN),
    }
    return render(request, "console/period_report.html", context)


@login_required
def account_report(request: HttpRequest) -> HttpResponse:
    """The account report: every agent's sessions in the range."""
    account = account_of(request.user)
    return _period_page(request, None, account, "Account report")


@login_required
def agent_report(request: HttpRequest, agent_id: str) -> HttpResponse:
    """One agent's report over the range; another account's agent is the 404 page."""
    account = account_of(request.user)
    try:
        agent = Agent.objects.get_visible(account, agent_id)
    except AgentNotFound:
        raise Http404("No such agent.") from None
    return _period_page(request, agent, account, f"Agent report · {agent.name}")
