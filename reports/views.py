"""Report API: a session's compliance report (JSON or PDF) and the Masker Audit Schema v1 file.

The report view authenticates (cookie or bearer token with ``reports:read``), checks ``format``, looks the session
up scoped to the caller's account, then builds, signs, renders and records the report. That order is the
contract: 401 before 400 before 404. The period reports (an agent's, the account's) look the agent up first, so
another account's agent is 404 whatever the query; then unknown parameters, the format and the window are 400.
Errors are raised, never built here (masker.errors renders them).
"""

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from audit.models import Agent, Session
from masker.auth import HasScope, actor_of, request_account
from masker.errors import InvalidFormat
from masker.query import check_query_params
from masker.schema import ATTACHMENT, NO_STORE, error_responses, response_header
from reports.domain import build_session_report, record_report, sign_report
from reports.period import (
    build_period_report,
    parse_window,
    period_filename,
    record_period_report,
    render_period_json,
    sign_period_report,
)
from reports.period_rendering import render_period_pdf
from reports.rendering import render_report_json, render_report_pdf, report_filename

SCHEMA_FILE = Path(__file__).resolve().parent / "schema" / "masker-audit-v1.json"
# A real signed report of the demo's intake call, the OpenAPI example; tests validate it against SCHEMA_FILE.
EXAMPLE_REPORT_FILE = SCHEMA_FILE.parent / "example-report.json"
EXAMPLE_PERIOD_REPORT_FILE = SCHEMA_FILE.parent / "example-period-report.json"
FORMATS = {"json": "application/json", "pdf": "application/pdf"}


class IgnoreFormatNegotiation(BaseContentNegotiation):
    """``?format=`` selects the report's format here, not a DRF renderer: DRF's default negotiation would answer
    ``format=pdf`` with 404 before authentication. Errors always render as JSON (the only renderer)."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def _openapi_30(node: Any) -> Any:
    """The JSON Schema file (draft 2020-12) as an OpenAPI 3.0 schema object: refs inlined, ``const`` as a
    one-value enum, ``null`` alternatives as ``nullable``; ``propertyNames`` dropped (3.0 has no such keyword)."""
    if isinstance(node, list):
        return [_openapi_30(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("$schema", "$defs", "propertyNames", "if", "then", "else"):
            continue
        if key == "const":
            out["enum"] = [value]
        elif key == "type" and isinstance(value, list):
            kinds = [kind for kind in value if kind != "null"]
            out["type"] = kinds[0]
            if "null" in value:
                out["nullable"] = True
        elif key == "anyOf" and any(option == {"type": "null"} for option in value):
            (other,) = [option for option in value if option != {"type": "null"}]
            out.update(_openapi_30(other))
            out["nullable"] = True
        else:
            out[key] = _openapi_30(value)
    if out.get("type") == "null":  # an always-null field (e.g. an open seal's sealed_at)
        out.pop("type")
        out["nullable"] = True
        out["enum"] = [None]
    return out


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_inline_refs(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return _inline_refs(copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[1]]), defs)
    return {key: _inline_refs(value, defs) for key, value in node.items()}


@cache
def audit_schema_bytes() -> bytes:
    return SCHEMA_FILE.read_bytes()


@cache
def schema_head() -> dict[str, Any]:
    """The schema file's top-level fields but its definitions: the example of the schema download."""
    schema = json.loads(audit_schema_bytes())
    return {key: value for key, value in schema.items() if key not in ("$defs", "properties")}


@cache
def example_report() -> dict[str, Any]:
    return json.loads(EXAMPLE_REPORT_FILE.read_text(encoding="utf-8"))


@cache
def report_openapi_schema(definition: str = "session_report") -> dict[str, Any]:
    """The response body ``{"report": ...}`` with the report of one scope (``session_report`` or
    ``period_report``): OpenAPI 3.0 has no ``if``/``then``, so each operation shows its own scope's report."""
    schema = json.loads(audit_schema_bytes())
    body = {
        "type": "object",
        "properties": {"report": {"$ref": f"#/$defs/{definition}"}},
        "required": ["report"],
        "additionalProperties": False,
    }
    return _openapi_30(_inline_refs(body, schema["$defs"]))


class SessionReportView(APIView):
    """A session's compliance report, generated on demand from its verified audit log (never cached)."""

    permission_classes = [HasScope]
    required_scope = "reports:read"
    content_negotiation_class = IgnoreFormatNegotiation
    # No HEAD: Django would answer it by running GET, which issues, signs and records a report. HEAD is 405.
    http_method_names = ["get", "options"]

    @extend_schema(
        operation_id="session_report",
        summary="Session compliance report (JSON or PDF)",
        description=(
            "Walks and verifies the session's whole audit log and returns its signed compliance report: JSON "
            "(Masker Audit Schema v1, served at /api/v1/schemas/masker-audit-v1.json) or an auditor-ready PDF/A-3b "
            "of the same report with the signed JSON attached inside. Every figure comes from the verified log; a "
            "log that does not verify gives 409 and no report. Each call issues a new report id (`rep_…`) and is "
            "recorded in the report register; HEAD is not allowed (405), since it would issue a report too. The "
            "report's sections and fields are described in docs/report.md. Scope `reports:read`."
        ),
        parameters=[
            OpenApiParameter(
                "format",
                OpenApiTypes.STR,
                OpenApiParameter.QUERY,
                enum=list(FORMATS),
                default="json",
                description="`json` (default): the signed report as JSON; `pdf`: the same report as a PDF/A-3b "
                "document. Anything else is 400 `invalid_format`; `format` given twice is 400 `validation_failed`.",
            ),
            response_header(
                "Content-Disposition",
                ATTACHMENT + " Example: `masker-report-<session>.json` or `.pdf`.",
                statuses=[200],
            ),
            response_header("Cache-Control", NO_STORE),
        ],
        responses={
            (200, "application/json"): OpenApiResponse(
                response=report_openapi_schema(),
                description="The signed report (Masker Audit Schema v1).",
                examples=[OpenApiExample("Demo intake call", value=example_report(), media_type="application/json")],
            ),
            (200, "application/pdf"): OpenApiResponse(
                response=OpenApiTypes.BINARY,
                description="The PDF/A-3b report, with the JSON report attached.",
                examples=[OpenApiExample("PDF", value="(the PDF file, binary: %PDF-…)", media_type="application/pdf")],
            ),
        }
        | error_responses(
            400,
            401,
            403,
            404,
            409,
            429,
            500,
            e400="`invalid_format`: `format` is not `json` or `pdf`; or `validation_failed`: an unknown or repeated "
            "query parameter.",
            e404="`session_not_found`: no such session in the caller's account.",
            e409="`audit_chain_broken`: the session's audit log does not verify (`error.details` names the first bad "
            "seq, or `seal`); no report is issued.",
        ),
        tags=["reports"],
    )
    def get(self, request, session_id: str) -> HttpResponse:
        check_query_params(request.query_params, {"format"})
        report_format = request.query_params.get("format", "json")
        if report_format not in FORMATS:
            raise InvalidFormat("format must be 'json' or 'pdf'.", details={"allowed": list(FORMATS)})
        session = Session.objects.select_related("agent", "account").get_visible(request_account(request), session_id)
        report = sign_report(build_session_report(session, generated_at=timezone.now()))
        body = render_report_pdf(report) if report_format == "pdf" else render_report_json(report)
        # Recorded once rendered: the register lists reports that were actually handed out.
        record_report(report, report_format=report_format, generated_by=actor_of(request))
        response = HttpResponse(body, content_type=FORMATS[report_format])
        response["Content-Disposition"] = f'attachment; filename="{report_filename(report, report_format)}"'
        return response

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Cache-Control"] = "no-store"  # success and errors alike: a report is never cached
        return response


PERIOD_PARAMETERS = ("format", "from", "to")


@cache
def example_period_report() -> dict[str, Any]:
    return json.loads(EXAMPLE_PERIOD_REPORT_FILE.read_text(encoding="utf-8"))


def _period_parameters() -> list[OpenApiParameter]:
    return [
        response_header(
            "Content-Disposition",
            ATTACHMENT + " Example: `masker-report-agent-<agent>-20261101-20261201.json` or `.pdf`.",
            statuses=[200],
        ),
        response_header("Cache-Control", NO_STORE),
        OpenApiParameter(
            "format",
            OpenApiTypes.STR,
            OpenApiParameter.QUERY,
            enum=list(FORMATS),
            default="json",
            description="json (default) or pdf; anything else is 400 invalid_format.",
        ),
        OpenApiParameter(
            "from",
            OpenApiTypes.DATETIME,
            OpenApiParameter.QUERY,
            description="Start of the window, inclusive (RFC 3339, with a time zone). Default: 30 days before `to`.",
        ),
        OpenApiParameter(
            "to",
            OpenApiTypes.DATETIME,
            OpenApiParameter.QUERY,
            description="End of the window, exclusive (RFC 3339). Default: now. After `from`, at most 366 days later.",
        ),
    ]


class PeriodReportView(APIView):
    """A period report (scope ``agent`` or ``account``): every session that started in the window, re-verified."""

    permission_classes = [HasScope]
    required_scope = "reports:read"
    content_negotiation_class = IgnoreFormatNegotiation
    http_method_names = ["get", "options"]  # HEAD would issue and record a report, as for session reports

    def period_report(self, request, agent_id: str | None) -> HttpResponse:
        # Tenancy first: another account's agent is 404 whatever the parameters.
        account = request_account(request)
        agent = Agent.objects.get_visible(account, agent_id) if agent_id is not None else None
        check_query_params(request.query_params, PERIOD_PARAMETERS)
        report_format = request.query_params.get("format", "json")
        if report_format not in FORMATS:
            raise InvalidFormat("format must be 'json' or 'pdf'.", details={"allowed": list(FORMATS)})
        now = timezone.now()
        window = parse_window(request.query_params.get("from"), request.query_params.get("to"), now=now)
        report = sign_period_report(build_period_report(account, agent=agent, window=window, generated_at=now))
        body = render_period_pdf(report) if report_format == "pdf" else render_period_json(report)
        record_period_report(report, report_format=report_format, generated_by=actor_of(request))
        response = HttpResponse(body, content_type=FORMATS[report_format])
        response["Content-Disposition"] = f'attachment; filename="{period_filename(report, report_format)}"'
        return response

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        response["Cache-Control"] = "no-store"
        return response


_PERIOD_RESPONSES = {
    (200, "application/json"): OpenApiResponse(
        response=report_openapi_schema("period_report"),
        description="The signed period report (Masker Audit Schema v1).",
        examples=[
            OpenApiExample("Demo intake line, November", value=example_period_report(), media_type="application/json")
        ],
    ),
    (200, "application/pdf"): OpenApiResponse(
        response=OpenApiTypes.BINARY,
        description="The PDF/A-3b period report, with the JSON report attached.",
        examples=[OpenApiExample("PDF", value="(the PDF file, binary: %PDF-…)", media_type="application/pdf")],
    ),
}


class AgentReportView(PeriodReportView):
    @extend_schema(
        operation_id="agent_report",
        summary="Agent period report (JSON or PDF)",
        description=(
            "Every session of the agent that started in [from, to): each session's audit log walked and verified, "
            "the eleven sections summed, one entry per session, the period root over the sessions' roots, signed. "
            "A session whose chain does not verify is listed as broken and fails the verdict. More than "
            "MASKER_SYNC_REPORT_MAX_EVENTS events in the window: 422 window_too_large."
        ),
        parameters=_period_parameters(),
        responses=_PERIOD_RESPONSES | error_responses(400, 401, 403, 404, 422, 500),
        tags=["reports"],
    )
    def get(self, request, agent_id: str) -> HttpResponse:
        return self.period_report(request, agent_id)


class AccountReportView(PeriodReportView):
    @extend_schema(
        operation_id="account_report",
        summary="Account period report (JSON or PDF)",
        description=(
            "Every session of the account (all agents) that started in [from, to), verified and summed as the agent "
            "report is, with a per-agent table. More than MASKER_SYNC_REPORT_MAX_EVENTS events in the window: 422 "
            "window_too_large."
        ),
        parameters=_period_parameters(),
        responses=_PERIOD_RESPONSES | error_responses(400, 401, 403, 422, 500),
        tags=["reports"],
    )
    def get(self, request) -> HttpResponse:
        return self.period_report(request, None)


class AuditSchemaView(APIView):
    """The JSON Schema (draft 2020-12) every report conforms to. Public: it describes a format, holds no data."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="masker_audit_schema_v1",
        summary="Masker Audit Schema v1 (JSON Schema, draft 2020-12)",
        description="The JSON Schema every JSON report conforms to, to validate reports with any JSON Schema tool. "
        "Public: no authentication.",
        parameters=[
            response_header("Content-Disposition", '`inline; filename="masker-audit-v1.json"`.', statuses=[200])
        ],
        responses={
            (200, "application/schema+json"): OpenApiResponse(
                response=OpenApiTypes.OBJECT,
                description="The schema document.",
                examples=[
                    OpenApiExample(
                        "Its head (the properties left out)",
                        value=schema_head(),
                        media_type="application/schema+json",
                    )
                ],
            )
        },
        auth=[],
        tags=["reports"],
    )
    def get(self, request) -> HttpResponse:
        response = HttpResponse(audit_schema_bytes(), content_type="application/schema+json")
        response["Content-Disposition"] = 'inline; filename="masker-audit-v1.json"'
        return response
