"""The console's report-run pages: start a run (scope, whole UTC days, formats, evidence bundle), the account's past
runs, and one run with its progress and files.

The start form is put in the shape of the API's request body and goes through the same validation and service as
``POST /api/v1/report-runs`` (``reports.run_views.run_request_of``, ``reports.runs.start_run``): the API's errors
are shown as the form's. Days are whole UTC days as on the period pages: ``from`` 00:00Z to the day after ``to``
00:00Z. A run page polls ``GET /api/v1/report-runs/<id>`` (static/console/run-progress.js, cookie-authenticated);
the files are links to the API's downloads, which take the same cookie.
"""

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from audit.errors import AgentNotFound, SessionNotFound
from audit.models import Agent, Session
from masker.auth import actor_of
from masker.errors import ApiError
from masker.models import Account, account_of
from reports.console import _page_links
from reports.models import ReportRun, RunNotFound
from reports.period import DEFAULT_DAYS, MAX_DAYS
from reports.run_views import run_json, run_request_of
from reports.runs import start_run

RUNS_PER_PAGE = 20
FORM_FIELDS = ("scope", "agent_id", "session_id", "from", "to", "formats", "bundle")
SCOPE_LABELS = {"account": "Account", "agent": "Agent", "session": "Session"}
FORMAT_LABELS = {"json": "JSON", "pdf": "PDF"}
STATUS_TONES = {"queued": "info", "running": "info", "succeeded": "good", "failed": "bad"}


def _moment(raw: str, *, next_day: bool) -> str:
    """A day of the form (YYYY-MM-DD) as the API's RFC 3339 moment: its start, or the next day's for ``to``. Anything
    else is passed on as typed, for the API's validation to name."""
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        return raw
    start = datetime.combine(day + timedelta(days=1 if next_day else 0), time.min, tzinfo=UTC)
    return start.strftime("%Y-%m-%dT%H:%M:%SZ")


def _session_id(account: Account, raw: str) -> str:
    """The session field takes a session id or the call's external reference (looked up in the account only)."""
    if raw.startswith("sess_"):
        return raw
    found = Session.objects.visible_to(account).filter(external_ref=raw).values_list("id", flat=True).first()
    return found or raw


def _body_of(account: Account, form: dict[str, Any]) -> dict[str, Any]:
    """The form as the API's request body: only the fields its scope takes; a field left empty is not given."""
    scope = form["scope"]
    body: dict[str, Any] = {"scope": scope, "formats": form["formats"]}
    if scope == "agent" and form["agent_id"]:
        body["agent_id"] = form["agent_id"]
    if scope == "session":
        if form["session_id"]:
            body["session_id"] = _session_id(account, form["session_id"])
    else:
        body["from"] = _moment(form["from"], next_day=False)
        body["to"] = _moment(form["to"], next_day=True)
        body["bundle"] = form["bundle"]
    return body


def _form_errors(error: ApiError) -> dict[str, list[str]]:
    """The API's error as messages per form field (``general`` for the rest)."""
    if isinstance(error, AgentNotFound):
        return {"agent_id": ["No such agent in this account."]}
    if isinstance(error, SessionNotFound):
        return {"session_id": ["No such session in this account."]}
    details = error.details or {}
    fields = details.get("fields", details)
    errors: dict[str, list[str]] = {}
    if isinstance(fields, dict):
        for name, messages in fields.items():
            target = name if name in FORM_FIELDS else "general"
            for message in messages if isinstance(messages, list) else [messages]:
                errors.setdefault(target, []).append(_flatten(message))
    if not errors or (error.message and error.message != type(error).message):
        errors.setdefault("general", []).insert(0, error.message)
    return errors


def _flatten(message: object) -> str:
    if isinstance(message, dict):  # a list field's errors by index
        return "; ".join(_flatten(m) for value in message.values() for m in value)
    return str(message)


def _default_form() -> dict[str, Any]:
    today = timezone.now().astimezone(UTC).date()
    return {
        "scope": "account",
        "agent_id": "",
        "session_id": "",
        "from": (today - timedelta(days=DEFAULT_DAYS)).isoformat(),
        "to": (today - timedelta(days=1)).isoformat(),
        "formats": ["json", "pdf"],
        "bundle": True,
    }


def _posted_form(request: HttpRequest) -> dict[str, Any]:
    post = request.POST
    return {
        "scope": post.get("scope", ""),
        "agent_id": post.get("agent_id", ""),
        "session_id": post.get("session_id", "").strip(),
        "from": post.get("from", ""),
        "to": post.get("to", ""),
        "formats": post.getlist("formats"),
        "bundle": post.get("bundle") == "on",
    }


def _day_of(moment: datetime | None, *, end: bool) -> str | None:
    """A window's edge as shown: a day (the end's last included day) when it is midnight UTC, else the moment."""
    if moment is None:
        return None
    at = moment.astimezone(UTC)
    if at.time() != time.min:
        return at.strftime("%Y-%m-%d %H:%M:%S")
    return (at - timedelta(days=1) if end else at).strftime("%Y-%m-%d")


def run_view(run: ReportRun, agents: dict[str, str]) -> dict[str, Any]:
    """What the pages show of a run: the API's JSON of it, with labels for the screen."""
    body = run_json(run)
    progress = body["progress"]
    return body | {
        "tone": STATUS_TONES[run.status],
        "status_label": ReportRun.Status(run.status).label,
        "scope_label": SCOPE_LABELS.get(run.scope, run.scope),
        "agent_name": agents.get(run.agent_id or "", ""),
        "first_day": _day_of(run.window_from, end=False),
        "last_day": _day_of(run.window_to, end=True),
        "outputs": [FORMAT_LABELS.get(f, f) for f in run.formats] + (["evidence bundle"] if run.bundle else []),
        "done": run.status in (ReportRun.Status.SUCCEEDED, ReportRun.Status.FAILED),
        "progress_max": max(progress["sessions_total"], 1),
        "progress_value": progress["sessions_done"] if progress["sessions_total"] else 0,
        "bundle_name": next((f["name"] for f in body["files"] if f["content_type"] == "application/zip"), None),
    }


def _member_account(request: HttpRequest) -> Account:
    """The signed-in user's account; a user of none is refused (403), as by the API."""
    account = account_of(request.user)
    if account is None:
        raise PermissionDenied("This user is not a member of any account.")
    return account


def _agents(account: Account) -> list[Agent]:
    return list(Agent.objects.visible_to(account).only("id", "name").order_by("name"))


@login_required
@require_http_methods(["GET", "POST"])
def run_list(request: HttpRequest) -> HttpResponse:
    """GET: the start form and the account's runs, newest first. POST: start a run through the API's validation and
    service; 303 to its page, or the form again with the errors (400)."""
    account = _member_account(request)
    agents = _agents(account)
    errors: dict[str, list[str]] = {}
    form = _default_form()
    if request.method == "POST":
        form = _posted_form(request)
        try:
            body = _body_of(account, form)
            run_request = run_request_of(account, body)
            run, _ = start_run(account, run_request, body=body, created_by=actor_of(request), idempotency_key=None)
        except ApiError as error:
            errors = _form_errors(error)
        else:
            response = redirect("console:run", run_id=run.id)
            response.status_code = 303  # See Other: the run's page, fetched with GET
            return response
    runs = ReportRun.objects.visible_to(account).prefetch_related("files").order_by("-created_at", "-id")
    page = Paginator(runs, RUNS_PER_PAGE).get_page(request.GET.get("page"))
    names = {agent.id: agent.name for agent in agents}
    context = {
        "account": account,
        "nav": "runs",
        "agents": agents,
        "form": form,
        "errors": errors,
        "max_days": MAX_DAYS,
        "runs": [run_view(run, names) for run in page.object_list],
        "page": page,
        "page_links": _page_links(page),
    }
    return render(request, "console/runs.html", context, status=400 if errors else 200)


@login_required
def run_detail(request: HttpRequest, run_id: str) -> HttpResponse:
    """One run: status, progress (polled by run-progress.js while it is queued or running), files; another account's
    run is the 404 page."""
    account = _member_account(request)
    try:
        run = ReportRun.objects.select_related("agent").prefetch_related("files").get_visible(account, run_id)
    except RunNotFound:
        raise Http404("No such report run.") from None
    agents = {run.agent_id: run.agent.name} if run.agent_id and run.agent else {}
    context = {
        "account": account,
        "nav": "runs",
        "run": run_view(run, agents),
        "run_api_url": reverse("reports:report-run", args=[run.id]),
    }
    return render(request, "console/run.html", context)
