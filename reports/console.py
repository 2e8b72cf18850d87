"""The web console: sign in/out, sessions, one session's report on screen, agents (plain Django views).

Every page is scoped to the signed-in user's account through ``visible_to``/``get_visible``; another account's
session is the 404 page. Every query runs in the view, before rendering, and each page runs a fixed number of
them whatever the number of sessions (tests/reports/test_console_queries.py). The session page shows the report
value of ``reports.session_report.build_session_report`` and nothing else; the download buttons are links to the report
API, which authenticates the same cookie and records each download in the report register.
"""

import csv
import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlencode

from django import forms
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.core.paginator import Paginator
from django.db.models import Count, Prefetch
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from audit.errors import AuditChainBroken, SessionNotFound
from audit.identifiers import EXTERNAL_REF
from audit.models import Agent, Session
from masker.models import Account, ApiToken, Membership, account_of
from masker.throttling import login_retry_after
from reports.charts import timeline_svg
from reports.models import ReportRecord
from reports.presentation import (
    ALERT_LABELS,
    PCI_OUTCOMES,
    SESSION_STATUS_LABELS,
    SESSION_STATUS_TONES,
    WARNING_ALERTS,
    coverage_rows,
    format_duration,
)
from reports.session_report import build_session_report

logger = logging.getLogger(__name__)

SESSIONS_PER_PAGE = 25
AGENTS_PER_PAGE = 20
REPORTS_PER_PAGE = 25
REPORTS_CSV_COLUMNS = (
    "report_id",
    "generated_at",
    "generated_by",
    "scope",
    "session_id",
    "format",
    "tree_size",
    "merkle_root_hex",
    "signature_kid",
)
RECENT_SESSIONS_PER_AGENT = 5
ALERTS_ON_SCREEN = 50  # the page stays bounded; the downloads list every alert


# --- sign in / sign out -------------------------------------------------------------------------------------------


class EmailAuthenticationForm(AuthenticationForm):
    """Django's authentication form, asking for the email (users sign in with their email as username)."""

    username = forms.EmailField(
        label="Email",
        max_length=254,
        widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"}),
    )
    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "Wrong email or password. Please check both and try again.",
    }

    def clean_username(self) -> str:
        return self.cleaned_data["username"].strip().lower()


class ConsoleLoginView(LoginView):
    """``/login/``: CSRF-protected email + password form; failures are throttled (masker.throttling)."""

    form_class = EmailAuthenticationForm
    template_name = "console/login.html"
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        email = request.POST.get("username", "")
        retry_after = login_retry_after(request, email)
        if retry_after is not None:
            # Refused before the password is looked at: a guesser learns nothing more.
            # An unbound form: validating the posted one would call authenticate().
            form = self.form_class(request, initial={"username": email})
            context = self.get_context_data(form=form, throttled_minutes=-(-retry_after // 60))
            response = self.render_to_response(context, status=429)
            response["Retry-After"] = str(retry_after)
            return response
        return super().post(request, *args, **kwargs)


@require_http_methods(["GET", "POST"])
def logout_view(request: HttpRequest) -> HttpResponse:
    """POST signs out (CSRF-protected); GET only shows a confirmation button, so a link cannot sign anyone out."""
    if request.method == "POST":
        logout(request)
        return redirect(f"{reverse('console:login')}?signed_out=1")
    if not request.user.is_authenticated:
        return redirect("console:login")
    return render(request, "console/logout.html", {"account": account_of(request.user), "nav": ""})


# --- helpers ------------------------------------------------------------------------------------------------------


def _session_row(session: Session) -> dict:
    return {
        "id": session.id,
        "external_ref": session.external_ref,
        "url": reverse("console:session", args=[session.id]),
        "agent_name": session.agent.name,
        "started_at": session.started_at,
        "duration": format_duration(session.duration_ms),
        "status": session.status,
        "status_label": SESSION_STATUS_LABELS[session.status],
        "status_tone": SESSION_STATUS_TONES[session.status],
        "redaction_count": session.redaction_count,
        "alert_count": session.alert_count,
    }


@dataclass
class SessionFilters:
    """The sessions list's GET filters, validated; an invalid value is dropped with a note, never a 500."""

    agent: str = ""
    status: str = ""
    external_ref: str = ""
    date_from: date | None = None
    date_to: date | None = None
    has_alerts: bool = False
    notes: tuple[str, ...] = ()

    @classmethod
    def from_query(cls, params, *, agent_ids: set[str]) -> "SessionFilters":
        notes: list[str] = []
        agent = params.get("agent", "").strip()
        if agent and agent not in agent_ids:
            notes.append("The agent filter was ignored: no such agent in this account.")
            agent = ""
        status = params.get("status", "").strip()
        if status and status not in Session.Status.values:
            notes.append("The status filter was ignored: it is not a session status.")
            status = ""
        external_ref = params.get("external_ref", "").strip()
        if external_ref and not re.match(EXTERNAL_REF, external_ref):
            notes.append("The call reference filter was ignored: use letters, digits and . _ : - only.")
            external_ref = ""
        date_from = _parse_date(params.get("from", ""), "from", notes)
        date_to = _parse_date(params.get("to", ""), "to", notes)
        if date_from and date_to and date_from > date_to:
            notes.append("The date range was ignored: the 'from' date is after the 'to' date.")
            date_from = date_to = None
        alerts = params.get("alerts", "").strip()
        if alerts not in ("", "1"):
            notes.append("The 'has alerts' filter was ignored: use alerts=1.")
        return cls(agent, status, external_ref, date_from, date_to, alerts == "1", tuple(notes))

    def apply(self, queryset):
        return queryset.matching(
            agent_id=self.agent,
            status=self.status,
            external_ref=self.external_ref,
            started_from=datetime.combine(self.date_from, time.min, tzinfo=UTC) if self.date_from else None,
            started_before=datetime.combine(self.date_to + timedelta(days=1), time.min, tzinfo=UTC)
            if self.date_to
            else None,
            has_alerts=self.has_alerts,
        )

    @property
    def active(self) -> bool:
        return bool(self.agent or self.status or self.external_ref or self.date_from or self.date_to or self.has_alerts)

    def query(self, **extra) -> str:
        """The filters as a query string (for pagination links), plus ``extra``."""
        params = {
            "agent": self.agent,
            "status": self.status,
            "external_ref": self.external_ref,
            "from": self.date_from.isoformat() if self.date_from else "",
            "to": self.date_to.isoformat() if self.date_to else "",
            "alerts": "1" if self.has_alerts else "",
            **extra,
        }
        return urlencode({k: v for k, v in params.items() if v})


def _parse_date(raw: str, name: str, notes: list[str]) -> date | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        parsed = date.fromisoformat(raw)
    except ValueError:
        notes.append(f"The '{name}' date was ignored: use the form YYYY-MM-DD.")
        return None
    if parsed >= date.max:  # the filter's exclusive end is the next day, which must exist
        notes.append(f"The '{name}' date was ignored: it is out of range.")
        return None
    return parsed


def _page_links(page, query=lambda number: urlencode({"page": number})) -> dict:
    """The previous and next page URLs of ``console/_pager.html``; ``query`` keeps a list's filters in them."""
    links = {}
    if page.has_previous():
        links["previous"] = "?" + query(page.previous_page_number())
    if page.has_next():
        links["next"] = "?" + query(page.next_page_number())
    return links


def _base_context(account: Account | None, nav: str) -> dict:
    return {"account": account, "nav": nav}


# --- sessions -----------------------------------------------------------------------------------------------------


@login_required
def session_list(request: HttpRequest) -> HttpResponse:
    """The account's sessions, newest first: one query for the page and one COUNT, whatever the total."""
    account = account_of(request.user)
    agents = list(Agent.objects.visible_to(account).only("id", "name").order_by("name"))
    filters = SessionFilters.from_query(request.GET, agent_ids={a.id for a in agents})
    sessions = filters.apply(
        Session.objects.visible_to(account).select_related("agent").order_by("-started_at", "-id")
    ).only("id", "external_ref", "agent__name", "started_at", "ended_at", "status", "redaction_count", "alert_count")
    page = Paginator(sessions, SESSIONS_PER_PAGE).get_page(request.GET.get("page"))
    context = _base_context(account, "sessions") | {
        "agents": agents,
        "filters": filters,
        "statuses": Session.Status.choices,
        "rows": [_session_row(s) for s in page.object_list],
        "page": page,
        "page_links": _page_links(page, lambda number: filters.query(page=number)),
    }
    return render(request, "console/sessions.html", context)


def _alert_rows(report: dict) -> tuple[list[dict], int]:
    """The report's alerts with their turns, in seq order, at most ``ALERTS_ON_SCREEN``; and how many are left."""
    leaks, baa, pci = report["leak_detection"], report["baa_chain"], report["pci_dss"]
    sources = [
        ("rehydration_failed", leaks["rehydration_failures"], lambda i: f"{i['entity_kind']} · {i['reason']}"),
        ("leak_detected", leaks["residual_leaks"], lambda i: f"{i['entity_kind']} · at {i['stage']}"),
        ("detection_degraded", leaks["detection_degraded"], lambda i: i["reason"]),
        ("non_baa_egress", baa["alerts"], lambda i: f"{i['hop']} · {i['vendor']} · {i['retention_days']} d"),
        ("card_not_masked", pci["alerts"], lambda i: f"Luhn {'valid' if i['luhn_valid'] else 'invalid'}"),
    ]
    rows = [
        {
            "seq": item["seq"],
            "turn": item["turn"],
            "time": _ts_text(item["ts"]),
            "kind": kind,
            "type": ALERT_LABELS[kind],
            "detail": describe(item),
            "tone": "warn" if kind in WARNING_ALERTS else "bad",
        }
        for kind, items, describe in sources
        for item in items
    ]
    rows.sort(key=lambda row: row["seq"])
    return rows[:ALERTS_ON_SCREEN], report["summary"]["alert_count"] - min(len(rows), ALERTS_ON_SCREEN)


def _ts_text(value: str | None) -> str:
    """``2026-11-20T14:00:00.481Z`` -> ``2026-11-20 14:00:00 UTC`` (the report's RFC 3339 times, for reading)."""
    return f"{value[:10]} {value[11:19]} UTC" if value else ""


def _verdict(report: dict, alert_rows: list[dict]) -> dict:
    """The banner that opens the page: green only for a clean verdict; red when any alert is a finding about the
    call's data, amber when the only alerts are degraded detection. Each alert type links to its first row."""
    by_type = report["summary"]["alerts_by_type"]
    count = report["summary"]["alert_count"]
    if not count:
        return {"tone": "good", "count": 0, "types": []}
    first_seq = {}
    for row in alert_rows:
        first_seq.setdefault(row["kind"], row["seq"])
    types = [
        {"label": ALERT_LABELS[kind], "count": n, "anchor": f"alert-{first_seq[kind]}" if kind in first_seq else ""}
        for kind, n in by_type.items()
        if n
    ]
    tone = "warn" if all(kind in WARNING_ALERTS for kind, n in by_type.items() if n) else "bad"
    return {"tone": tone, "count": count, "types": types}


def _end_reason(report: dict) -> dict | None:
    """Why a call ended in error or partially, as far as its log says. ``session.ended`` carries only the status,
    so the reasons shown are those of the ``detection.degraded`` events logged during the call; when there are
    none the page says that no reason was recorded."""
    status = report["cover"]["session"]["status"]
    if status not in ("error", "partial"):
        return None
    reasons = sorted({item["reason"] for item in report["leak_detection"]["detection_degraded"]})
    return {"status": status, "reasons": reasons}


def _report_context(report: dict) -> dict:
    alert_rows, more_alerts = _alert_rows(report)
    session = report["cover"]["session"]
    coverage = report["safe_harbor"]
    return {
        "report": report,
        "coverage_rows": coverage_rows(report["safe_harbor_coverage"]),
        "alert_rows": alert_rows,
        "more_alerts": more_alerts,
        "redactions_by_kind": sorted(report["redactions_by_kind"].items(), key=lambda kv: (-kv[1], kv[0])),
        "redactions_by_pass": sorted(report["redactions_by_pass"].items(), key=lambda kv: (-kv[1], kv[0])),
        "status_label": SESSION_STATUS_LABELS[session["status"]],
        "status_tone": SESSION_STATUS_TONES[session["status"]],
        "duration": format_duration(session["duration_ms"]),
        "started": _ts_text(session["started_at"]),
        "generated_at": _ts_text(report["generated_at"]),
        "sealed_at": _ts_text(report["audit_integrity"]["seal"]["sealed_at"]),
        "pci_outcome": PCI_OUTCOMES[report["pci_dss"]["outcome"]],
        "verdict": _verdict(report, alert_rows),
        "end_reason": _end_reason(report),
        "timeline_svg": timeline_svg(report["timeline"], element_id="timeline"),
        "coverage_summary": (
            f"{coverage['coverage_percent']}% coverage: {coverage['full']} full, {coverage['partial']} partial, "
            f"{coverage['none']} none of {coverage['applicable_categories']} applicable categories"
            f" ({coverage['not_applicable']} not applicable)"
        ),
    }


@login_required
def session_detail(request: HttpRequest, session_id: str) -> HttpResponse:
    """One session's compliance report on screen, built from the verified log, with the download buttons."""
    account = account_of(request.user)
    try:
        session = Session.objects.select_related("agent", "account").get_visible(account, session_id)
    except SessionNotFound:
        raise Http404("No such session.") from None
    report_url = reverse("reports:session-report", args=[session.id])
    context = _base_context(account, "sessions") | {
        "session": session,
        "download_json": f"{report_url}?format=json",
        "download_pdf": f"{report_url}?format=pdf",
    }
    try:
        report = build_session_report(session, generated_at=timezone.now())
    except AuditChainBroken as broken:
        logger.error("audit chain of %s does not verify at seq %s: %s", session.id, broken.seq, broken.reason)
        # No report: the header shows what the session row says, next to the break.
        context |= {
            "chain_broken": {"seq": broken.seq, "reason": broken.reason},
            "started": session.started_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
            "status_label": SESSION_STATUS_LABELS[session.status],
            "status_tone": SESSION_STATUS_TONES[session.status],
            "duration": format_duration(session.duration_ms),
        }
        return render(request, "console/session.html", context, status=409)
    context |= _report_context(report.as_json())
    return render(request, "console/session.html", context)


# --- reports issued -----------------------------------------------------------------------------------------------


def _actor_names(account: Account | None, actor_ids: set[str]) -> dict[str, str]:
    """Readable names for register actors of this account: a member's email, an API token's name. Two queries."""
    members = Membership.objects.filter(account=account, id__in=actor_ids).values_list("id", "user__email")
    tokens = ApiToken.objects.filter(account=account, id__in=actor_ids).values_list("id", "name")
    names = dict(members)
    names.update((token_id, f"API token {name}" if name else "API token") for token_id, name in tokens)
    return names


def _report_records(account: Account | None):
    return ReportRecord.objects.visible_to(account).order_by("-generated_at", "-id")


@login_required
def report_list(request: HttpRequest) -> HttpResponse:
    """The account's report register, newest first: every report handed out (who, when, scope, format, root)."""
    account = account_of(request.user)
    page = Paginator(_report_records(account), REPORTS_PER_PAGE).get_page(request.GET.get("page"))
    actors = _actor_names(account, {record.generated_by for record in page.object_list})
    rows = [
        {
            "id": record.id,
            "generated_at": record.generated_at,
            "generated_by": record.generated_by,
            "actor": actors.get(record.generated_by, ""),
            "scope": record.scope,
            "session_id": record.session_id,
            "session_url": reverse("console:session", args=[record.session_id]),
            "format": record.get_format_display(),
            "tree_size": record.tree_size,
            "merkle_root_hex": record.merkle_root_hex,
        }
        for record in page.object_list
    ]
    context = _base_context(account, "reports") | {
        "rows": rows,
        "page": page,
        "page_links": _page_links(page),
        "csv_url": reverse("console:reports-csv"),
    }
    return render(request, "console/reports.html", context)


class _Echo:
    """A file-like object whose ``write`` returns the line, for streaming ``csv.writer`` output."""

    def write(self, value: str) -> str:
        return value


@login_required
def report_list_csv(request: HttpRequest) -> StreamingHttpResponse:
    """The whole register of the account as CSV, streamed (one query, read in chunks)."""
    account = account_of(request.user)
    writer = csv.writer(_Echo())
    records = _report_records(account).values_list("id", *REPORTS_CSV_COLUMNS[1:])

    def rows():
        yield writer.writerow(REPORTS_CSV_COLUMNS)
        for record in records.iterator(chunk_size=500):
            generated_at = record[1].astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            yield writer.writerow((record[0], generated_at, *record[2:]))

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="masker-reports-issued.csv"'
    return response


# --- agents -------------------------------------------------------------------------------------------------------


@login_required
def agent_list(request: HttpRequest) -> HttpResponse:
    """The account's agents with their policy and their latest sessions: COUNT, one page, one prefetch."""
    account = account_of(request.user)
    recent = Session.objects.order_by("-started_at", "-id").only(
        "id", "external_ref", "agent_id", "started_at", "ended_at", "status", "redaction_count", "alert_count"
    )[:RECENT_SESSIONS_PER_AGENT]  # a sliced prefetch: one window-function query for the whole page
    agents = (
        Agent.objects.visible_to(account)
        .select_related("policy")
        .annotate(session_count=Count("sessions"))
        .prefetch_related(Prefetch("sessions", queryset=recent, to_attr="recent_sessions"))
        .order_by("name", "id")
    )
    page = Paginator(agents, AGENTS_PER_PAGE).get_page(request.GET.get("page"))
    cards = []
    for agent in page.object_list:
        rows = []
        for session in agent.recent_sessions:
            session.agent = agent  # the row helper reads the agent's name; no query
            rows.append(_session_row(session))
        cards.append(
            {
                "agent": agent,
                "policy": agent.policy,
                "sessions_url": reverse("console:sessions") + "?" + urlencode({"agent": agent.id}),
                "recent": rows,
            }
        )
    context = _base_context(account, "agents") | {"cards": cards, "page": page, "page_links": _page_links(page)}
    return render(request, "console/agents.html", context)
