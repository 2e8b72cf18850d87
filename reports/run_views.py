"""Report runs API (``/api/v1/report-runs``): start a run (202 + ``Location``), read one, list them a page at a
time, download a run's files. Scope ``reports:read`` throughout. Tenancy as everywhere: another account's run,
file, session or agent is a 404. The work itself is done by workers (``reports.runs``, ``reports.tasks``)."""

from django.http import FileResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from audit.models import Agent, Session
from audit.serializers import QueryRegexField, _limit, idempotency_key_of
from audit.timestamps import format_ts
from audit.views import IDEMPOTENCY_KEY
from masker.api import ScopedView, validated
from masker.auth import actor_of, request_account
from masker.pagination import keyset_page
from masker.query import QuerySerializer, StrictSerializer
from masker.schema import ATTACHMENT, error_responses, response_header
from reports.models import ReportRun, RunFile, RunFileNotFound
from reports.period import parse_window
from reports.runs import RunRequest, run_files_storage, start_run
from reports.views import example_period_report, report_openapi_schema

SCOPES = ("session", "agent", "account")
FORMATS = ("json", "pdf")
RUN_ID_PATTERN = r"^run_[0-9A-HJKMNP-TV-Z]{26}$"
BASE = "/api/v1/report-runs"


class RunCreateSerializer(StrictSerializer):
    scope = serializers.ChoiceField(
        SCOPES,
        error_messages={"invalid_choice": "must be one of: session, agent, account"},
        help_text="`session`: one session's report; `agent`: an agent's period report; `account`: the account's.",
    )
    session_id = serializers.CharField(required=False, help_text="The session (scope `session` only).")
    agent_id = serializers.CharField(required=False, help_text="The agent (scope `agent` only).")
    formats = serializers.ListField(
        child=serializers.ChoiceField(FORMATS, error_messages={"invalid_choice": "must be one of: json, pdf"}),
        min_length=1,
        max_length=2,
        required=False,
        help_text='The report files to produce: `["json"]` (default), `["pdf"]` or both.',
    )
    bundle = serializers.BooleanField(
        required=False, help_text="Also produce the evidence bundle (`evidence-<run id>.zip`); agent and account runs."
    )

    def get_fields(self):
        fields = super().get_fields()
        for name, edge in (("from", "Start of the window, inclusive"), ("to", "End of the window, exclusive")):
            fields[name] = serializers.CharField(
                required=False,
                help_text=f"{edge} (RFC 3339 with a time zone); agent and account runs, as for the "
                "period reports (default: the 30 days before `to`, `to` now; at most 366 days).",
            )
        return fields

    def validate(self, data):
        scope = data["scope"]
        needed = {"session": "session_id", "agent": "agent_id"}.get(scope)
        errors = {}
        if needed and needed not in data:
            errors[needed] = [f"required for scope {scope}"]
        for name in ("session_id", "agent_id"):
            if name in data and name != needed:
                errors[name] = [f"not taken by scope {scope}"]
        if scope == "session":
            for name in ("from", "to", "bundle"):
                if name in data and (name != "bundle" or data[name]):
                    errors[name] = ["not taken by scope session"]
        if len(set(data.get("formats", ()))) != len(data.get("formats", ())):
            errors["formats"] = ["lists a format twice"]
        if errors:
            raise serializers.ValidationError(errors)
        return data


def run_request_of(account, body: object) -> RunRequest:
    """A run request body (the API's JSON, or the console's form put in the same shape) validated for ``account``:
    400 ``validation_failed`` naming the bad fields, 404 ``session_not_found``/``agent_not_found`` for a subject that
    is not the account's, 400 for a bad window (``reports.period.parse_window``)."""
    data = validated(RunCreateSerializer, body)
    scope = data["scope"]
    session = Session.objects.get_visible(account, data["session_id"]) if scope == "session" else None
    agent = Agent.objects.get_visible(account, data["agent_id"]) if scope == "agent" else None
    window = None
    if scope != "session":
        window = parse_window(data.get("from"), data.get("to"), now=timezone.now())
    return RunRequest(
        scope=scope,
        session=session,
        agent=agent,
        window=window,
        formats=tuple(data.get("formats", ["json"])),
        bundle=data.get("bundle", False),
    )


class RunFileSerializer(serializers.Serializer):
    name = serializers.CharField()
    content_type = serializers.CharField()
    size = serializers.IntegerField(help_text="Bytes.")
    sha256 = serializers.CharField(help_text="SHA-256 of the file, hex; also in the report register.")
    url = serializers.CharField(help_text="Where to download it (same authentication; another account's is 404).")


class RunProgressSerializer(serializers.Serializer):
    sessions_done = serializers.IntegerField()
    sessions_total = serializers.IntegerField(help_text="Known once the run is planned (0 before).")
    events_done = serializers.IntegerField()


class RunSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="`run_` + ULID.")
    status = serializers.ChoiceField(["queued", "running", "succeeded", "failed"])
    scope = serializers.ChoiceField(SCOPES)
    session_id = serializers.CharField(allow_null=True)
    agent_id = serializers.CharField(allow_null=True)
    time_window = serializers.DictField(allow_null=True, help_text="`{from, to}` of an agent or account run.")
    formats = serializers.ListField(child=serializers.CharField())
    bundle = serializers.BooleanField()
    progress = RunProgressSerializer()
    created_at = serializers.CharField()
    started_at = serializers.CharField(allow_null=True)
    finished_at = serializers.CharField(allow_null=True)
    error = serializers.CharField(allow_null=True, help_text="Why a failed run failed (never data).")
    report_id = serializers.CharField(allow_null=True, help_text="The `rep_` id of the report, once succeeded.")
    files = RunFileSerializer(many=True, help_text="A succeeded run's files (empty once its retention ended).")


class RunPageSerializer(serializers.Serializer):
    report_runs = RunSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True)


class RunListQuerySerializer(QuerySerializer):
    limit = _limit()
    cursor = QueryRegexField(
        RUN_ID_PATTERN,
        required=False,
        error_messages={"invalid": "must be the next_cursor of a previous page"},
        help_text="next_cursor of the previous page.",
    )


def _ts(value) -> str | None:
    return format_ts(value) if value is not None else None


def run_json(run: ReportRun) -> dict:
    """A run as the API shows it: its state, progress and, once succeeded, its files."""
    files = run.files.all() if run.status == ReportRun.Status.SUCCEEDED else []
    return {
        "id": run.id,
        "status": run.status,
        "scope": run.scope,
        "session_id": run.session_id,
        "agent_id": run.agent_id,
        "time_window": {"from": _ts(run.window_from), "to": _ts(run.window_to)} if run.window_from else None,
        "formats": run.formats,
        "bundle": run.bundle,
        "progress": {
            "sessions_done": run.sessions_done,
            "sessions_total": run.sessions_total,
            "events_done": run.events_done,
        },
        "created_at": format_ts(run.created_at),
        "started_at": _ts(run.started_at),
        "finished_at": _ts(run.finished_at),
        "error": run.error or None,
        "report_id": run.report_id or None,
        "files": [
            {
                "name": f.name,
                "content_type": f.content_type,
                "size": f.size,
                "sha256": f.sha256,
                "url": f"{BASE}/{run.id}/files/{f.name}",
            }
            for f in files
        ],
    }


RUN_ID = OpenApiParameter("run_id", str, OpenApiParameter.PATH, description="The run's id (`run_` + ULID).")
_EXAMPLE_RUN = {
    "id": "run_01KB9Z4N2M3Q5R6S7T8V9W0XYZ",
    "status": "succeeded",
    "scope": "account",
    "session_id": None,
    "agent_id": None,
    "time_window": {"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"},
    "formats": ["json", "pdf"],
    "bundle": False,
    "progress": {"sessions_done": 4000, "sessions_total": 4000, "events_done": 2000000},
    "created_at": "2026-12-01T09:00:00.120Z",
    "started_at": "2026-12-01T09:00:00.410Z",
    "finished_at": "2026-12-01T09:00:41.873Z",
    "error": None,
    "report_id": "rep_01KB9Z5C7D8E9F0G1H2J3K4M5N",
    "files": [
        {
            "name": "masker-report-account-acc_01KB9Y0000000000000000000A-20261101-20261201.json",
            "content_type": "application/json",
            "size": 1843302,
            "sha256": "5f0c3bd1c0a2e9f1d2b4a6c8e0f1a3b5c7d9e1f3a5b7c9d1e3f5a7b9c1d3e5f7",
            "url": "/api/v1/report-runs/run_01KB9Z4N2M3Q5R6S7T8V9W0XYZ/files/"
            "masker-report-account-acc_01KB9Y0000000000000000000A-20261101-20261201.json",
        }
    ],
}
_QUEUED_RUN = {
    **_EXAMPLE_RUN,
    "status": "queued",
    "progress": {"sessions_done": 0, "sessions_total": 0, "events_done": 0},
    "started_at": None,
    "finished_at": None,
    "report_id": None,
    "files": [],
}


class RunListView(ScopedView):
    required_scope = "reports:read"

    @extend_schema(
        operation_id="report_runs_create",
        summary="Start a report run",
        description="Queue a report to be built by the workers rather than inside this request: a session's report "
        "(scope `session`), an agent's or the account's period report (scopes `agent`, `account`) over any window "
        "of at most 366 days, however many events it holds (no `window_too_large`). Answers 202 with the run and "
        "its `Location`; poll it until `status` is `succeeded` (then download `files`) or `failed` (`error`). "
        "With `Idempotency-Key`, a retried request returns the run the first one started (`Idempotent-Replayed: "
        "true`); the same key with another body is a 400. Scope `reports:read`.",
        request=RunCreateSerializer,
        parameters=[
            IDEMPOTENCY_KEY,
            response_header("Location", "The run's URL (`/api/v1/report-runs/{id}`).", statuses=[202]),
            response_header(
                "Idempotent-Replayed",
                "`true` when the run was started by an earlier request with the same `Idempotency-Key`.",
                statuses=[202],
            ),
        ],
        examples=[
            OpenApiExample(
                "The account's November, JSON and PDF",
                value={
                    "scope": "account",
                    "from": "2026-11-01T00:00:00Z",
                    "to": "2026-12-01T00:00:00Z",
                    "formats": ["json", "pdf"],
                },
                request_only=True,
            ),
            OpenApiExample("Queued", value=_QUEUED_RUN, response_only=True, status_codes=["202"]),
        ],
        responses={202: OpenApiResponse(RunSerializer, description="Queued (or, replayed, the run as it is now).")}
        | error_responses(
            400,
            401,
            403,
            404,
            413,
            429,
            e400="`validation_failed`: a missing, unknown or invalid field, a bad window, or an `Idempotency-Key` "
            "already used with another body.",
            e404="`session_not_found` / `agent_not_found`: no such session or agent in the caller's account.",
        ),
        tags=["report runs"],
    )
    def post(self, request):
        key = idempotency_key_of(request)
        account = request_account(request)
        run_request = run_request_of(account, request.data)
        run, replayed = start_run(
            account, run_request, body=request.data, created_by=actor_of(request), idempotency_key=key
        )
        headers = {"Location": f"{BASE}/{run.id}"}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return Response(run_json(run), status=202, headers=headers)

    @extend_schema(
        operation_id="report_runs_list",
        summary="List report runs",
        description="The account's runs, newest first, a page at a time: pass the answer's `next_cursor` as "
        "`cursor` for the next page. Scope `reports:read`.",
        parameters=[RunListQuerySerializer],
        responses={200: RunPageSerializer} | error_responses(400, 401, 403, 429),
        examples=[
            OpenApiExample(
                "One page",
                value={"report_runs": [_EXAMPLE_RUN], "next_cursor": None},
                response_only=True,
                status_codes=["200"],
            )
        ],
        tags=["report runs"],
    )
    def get(self, request):
        params = validated(RunListQuerySerializer, request.query_params)
        runs = ReportRun.objects.visible_to(request_account(request)).prefetch_related("files")
        after = (params["cursor"],) if "cursor" in params else None
        page, last = keyset_page(runs, ("-id",), after, params["limit"])
        next_cursor = last[0] if last else None
        return Response({"report_runs": [run_json(run) for run in page], "next_cursor": next_cursor})


class RunDetailView(ScopedView):
    required_scope = "reports:read"

    @extend_schema(
        operation_id="report_runs_retrieve",
        summary="Get a report run",
        description="One run: its status, progress and, once succeeded, its files. Scope `reports:read`.",
        parameters=[RUN_ID],
        responses={200: RunSerializer}
        | error_responses(401, 403, 404, 429, e404="`run_not_found`: no such run in the caller's account."),
        examples=[OpenApiExample("Succeeded", value=_EXAMPLE_RUN, response_only=True, status_codes=["200"])],
        tags=["report runs"],
    )
    def get(self, request, run_id: str):
        return Response(run_json(ReportRun.objects.get_visible(request_account(request), run_id)))


class RunFileView(ScopedView):
    required_scope = "reports:read"

    @extend_schema(
        operation_id="report_runs_file",
        summary="Download a report run's file",
        description="A file of a succeeded run, as stored when the run finished (its SHA-256 is in the run and in "
        "the report register). Scope `reports:read`.",
        parameters=[
            RUN_ID,
            OpenApiParameter("name", str, OpenApiParameter.PATH, description="The file's `name`."),
            response_header("Content-Disposition", ATTACHMENT, statuses=[200]),
        ],
        responses={
            (200, "application/json"): OpenApiResponse(
                response={"oneOf": [report_openapi_schema("period_report"), report_openapi_schema("session_report")]},
                description="The signed report (Masker Audit Schema v1): a period report, or a session run's report.",
                examples=[
                    OpenApiExample(
                        "An account run's report", value=example_period_report(), media_type="application/json"
                    )
                ],
            ),
        }
        | {
            (200, media_type): OpenApiResponse(
                response=OpenApiTypes.BINARY,
                description=f"The {what}.",
                examples=[OpenApiExample(what, value=example, media_type=media_type)],
            )
            for media_type, what, example in (
                ("application/pdf", "PDF/A-3b report", "(the PDF file, binary: %PDF-…)"),
                ("application/zip", "evidence bundle", "(the zip file, binary: PK…)"),
            )
        }
        | error_responses(
            401,
            403,
            404,
            429,
            e404="`run_not_found` or `file_not_found`: no such run in the caller's account, "
            "or no such file of it (or its retention ended).",
        ),
        tags=["report runs"],
    )
    def get(self, request, run_id: str, name: str):
        run = ReportRun.objects.get_visible(request_account(request), run_id)
        file = RunFile.objects.filter(run=run, name=name, run__status=ReportRun.Status.SUCCEEDED).first()
        if file is None:
            raise RunFileNotFound()
        response = FileResponse(
            run_files_storage().open(file.storage_name, "rb"),
            content_type=file.content_type,
            as_attachment=True,
            filename=file.name,
        )
        response["Content-Length"] = str(file.size)
        return response

    def perform_content_negotiation(self, request, force=False):
        # A file is what it is whatever the Accept header asks for (errors stay JSON): never a 406.
        return super().perform_content_negotiation(request, force=True)


__all__ = ["RunDetailView", "RunFileView", "RunListView", "run_json", "run_request_of"]
