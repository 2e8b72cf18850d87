"""Ingestion and read API of sessions and agents: one APIView per path, one method per operation.

Views authenticate (cookie or ``Bearer mk_…``), check the operation's scope (``masker.auth.HasScope``), look the
object up scoped to the caller's account (another account's id is a 404), validate the envelope and call the
domain (``audit.writing`` / ``audit.idempotency``). Errors are raised, never built here.
"""

from django.db.models import Count, Q
from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from audit import openapi_examples as ex
from audit.evidence_views import EVENTS_EXPORT_SCHEMA, parse_export_range
from audit.export import export_filename, iter_event_lines
from audit.idempotency import append_batch
from audit.models import Agent, AuditEvent, Session
from audit.serializers import (
    IDEMPOTENCY_KEY_PATTERN,
    AgentDetailSerializer,
    AgentListQuerySerializer,
    AgentPageSerializer,
    AgentSerializer,
    AppendResultSerializer,
    EventBatchSerializer,
    SessionDetailSerializer,
    SessionEndSerializer,
    SessionListQuerySerializer,
    SessionPageSerializer,
    SessionStartSerializer,
    SessionSummarySerializer,
    SessionWriteSerializer,
    idempotency_key_of,
    parse_event_batch,
    parse_session_cursor,
    raise_invalid,
    session_cursor,
)
from audit.writing import end_session, start_receipt, start_session
from masker.auth import HasScope, actor_of, request_account
from masker.schema import error_responses, response_header

SESSION_ID = OpenApiParameter(
    "session_id",
    str,
    OpenApiParameter.PATH,
    description="The session's id (`sess_` + ULID). A malformed id is answered like an unknown one: 404.",
    examples=[OpenApiExample("Demo intake call", value=ex.SESSION_ID)],
)
AGENT_ID = OpenApiParameter(
    "agent_id",
    str,
    OpenApiParameter.PATH,
    description="The agent's id (`agt_` + ULID). A malformed id is answered like an unknown one: 404.",
    examples=[OpenApiExample("Demo intake line", value=ex.AGENT_ID)],
)
IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    required=False,
    pattern=IDEMPOTENCY_KEY_PATTERN.pattern,
    description="Optional, 1-255 characters of letters, digits and . _ : - (a UUID works). A retry with the same "
    "key and the same events returns the original answer instead of appending twice; the same key with other "
    "events is a 400 validation_failed.",
)


class ApiView(APIView):
    """Base of this module's views: scope check, and the body-size limit for writes.

    Reading ``request.body`` makes Django enforce ``DATA_UPLOAD_MAX_MEMORY_SIZE`` from the Content-Length before
    anything is read (``RequestDataTooBig`` → 413 ``payload_too_large`` in masker.errors). DRF's JSON parser
    reads the stream without that check, hence this hook; it runs after authentication, permissions and
    throttling, so an anonymous or over-limit caller's body is never read.
    """

    permission_classes = [HasScope]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            _ = request._request.body


def _counts_by_kind(session: Session) -> dict[str, int]:
    rows = AuditEvent.objects.filter(session_id=session.pk).values_list("kind").annotate(n=Count("id"))
    return dict(sorted(rows))


def _session_detail(session: Session) -> dict:
    return SessionDetailSerializer(session, context={"counts_by_kind": _counts_by_kind(session)}).data


class SessionListView(ApiView):
    """``/sessions``: GET lists the account's sessions (``sessions:read``); POST starts one (``events:write``)."""

    required_scopes = {"GET": "sessions:read", "POST": "events:write"}

    @extend_schema(
        operation_id="sessions_list",
        summary="List sessions",
        description="The account's sessions (one per call), newest first, a page at a time: pass the answer's "
        "`next_cursor` as `cursor` for the next page. Filters combine. Each item summarises the call and its audit "
        "log (size, root, head, sealed, redaction and alert counts). A parameter this operation does not take, or "
        "one given twice, is a 400. Scope `sessions:read`.",
        parameters=[SessionListQuerySerializer],
        responses={200: SessionPageSerializer} | error_responses(400, 401, 403, 429),
        examples=[ex.example("The demo intake call", "session_page")],
        tags=["sessions"],
    )
    def get(self, request):
        query = SessionListQuerySerializer(data=request.query_params)
        if not query.is_valid():
            raise_invalid(query)
        params = query.validated_data
        sessions = Session.objects.visible_to(request_account(request)).defer("policy_snapshot", "seal")
        if "agent_id" in params:
            sessions = sessions.filter(agent_id=params["agent_id"])
        if "status" in params:
            sessions = sessions.filter(status=params["status"])
        if "since" in params:
            sessions = sessions.filter(started_at__gte=params["since"])
        if "external_ref" in params:
            sessions = sessions.filter(external_ref=params["external_ref"])
        if "cursor" in params:
            started, last_id = parse_session_cursor(params["cursor"])
            sessions = sessions.filter(Q(started_at__lt=started) | Q(started_at=started, id__lt=last_id))
        limit = params["limit"]
        page = list(sessions.order_by("-started_at", "-id")[: limit + 1])
        next_cursor = None
        if len(page) > limit:
            page = page[:limit]
            last = page[-1]
            next_cursor = session_cursor(last)
        return Response({"sessions": SessionSummarySerializer(page, many=True).data, "next_cursor": next_cursor})

    @extend_schema(
        operation_id="sessions_start",
        summary="Start a session (a call)",
        description="Start the session of one call: the agent's current policy is snapshotted (later policy edits "
        "never change this session's report) and `session.started` becomes event 0. Starting again with the same "
        "`external_ref` for the same agent returns the existing session (200) instead of a second one, so a "
        "retried start is safe. Scope `events:write` (or the admin role with the session cookie).",
        request=SessionStartSerializer,
        examples=[
            OpenApiExample(
                "Start call-42",
                value={"agent_id": ex.AGENT_ID, "external_ref": "call-42", "platform": "vapi"},
                request_only=True,
            ),
            ex.example("Started", "started_session", status=201),
            ex.example("Already started", "started_session"),
        ],
        responses={
            201: OpenApiResponse(SessionWriteSerializer, description="Started: `session.started` is event 0."),
            200: OpenApiResponse(
                SessionWriteSerializer,
                description="This agent's existing session for the call, with its start receipt.",
            ),
        }
        | error_responses(
            400, 401, 403, 404, 413, 429, e404="`agent_not_found`: no such agent in the caller's account."
        ),
        tags=["sessions"],
    )
    def post(self, request):
        now = timezone.now()
        serializer = SessionStartSerializer(data=request.data, context={"now": now})
        if not serializer.is_valid():
            raise_invalid(serializer)
        data = serializer.validated_data
        agent = Agent.objects.select_related("policy").get_visible(request_account(request), data["agent_id"])
        session, created = start_session(
            agent,
            external_ref=data["external_ref"],
            platform=data.get("platform"),
            started_at=data.get("started_at", now),
        )
        body = {**_session_detail(session), "receipt": start_receipt(session)}
        return Response(body, status=201 if created else 200)


class SessionDetailView(ApiView):
    required_scope = "sessions:read"

    @extend_schema(
        operation_id="sessions_retrieve",
        summary="Get a session",
        description="One session: the call, its audit log's state (size, Merkle root, chain head), the signed "
        "seal once it has ended, and how many events of each kind it holds. Scope `sessions:read`.",
        parameters=[SESSION_ID],
        responses={200: SessionDetailSerializer}
        | error_responses(401, 403, 404, 429, e404="`session_not_found`: no such session in the caller's account."),
        examples=[ex.example("Ended demo call", "session_detail")],
        tags=["sessions"],
    )
    def get(self, request, session_id: str):
        session = Session.objects.get_visible(request_account(request), session_id)
        return Response(_session_detail(session))


class SessionEventsView(ApiView):
    """``/sessions/{id}/events``: POST appends a batch (``events:write``); GET exports the log as NDJSON
    (``sessions:read``, built by ``audit.export``)."""

    required_scopes = {"GET": "sessions:read", "POST": "events:write"}

    def perform_content_negotiation(self, request, force=False):
        # The export is NDJSON whatever the Accept header asks for (errors stay JSON): never a 406.
        return super().perform_content_negotiation(request, force=force or request.method in ("GET", "HEAD"))

    @extend_schema(**EVENTS_EXPORT_SCHEMA)
    def get(self, request, session_id: str):
        session = Session.objects.get_visible(request_account(request), session_id)
        lines = iter_event_lines(session, seq_range=parse_export_range(request.query_params))
        response = StreamingHttpResponse(lines, content_type="application/x-ndjson")
        response["Cache-Control"] = "no-store"
        response["Content-Disposition"] = f'attachment; filename="{export_filename(session)}"'
        return response

    @extend_schema(
        operation_id="sessions_events_append",
        summary="Append events to a session's audit log",
        description="Append up to 1,000 events, all or nothing. Each event is `kind`, `ts` and the kind's fields "
        "(docs/audit-log.md lists them); the server assigns `v`, `id`, `session_id`, `seq` and `prev_hash`. One "
        "invalid event rejects the whole batch: 400 `validation_failed` with `details.events`, one "
        "`{index, field, message}` per problem (at most 200 listed, `details.problem_count` counts them all). An "
        "ended (sealed) session answers 409 `session_ended`. Scope `events:write`.",
        parameters=[
            SESSION_ID,
            IDEMPOTENCY_KEY,
            response_header(
                "Idempotent-Replayed",
                "`true` when this answer is the stored answer of an earlier request with the same "
                "`Idempotency-Key` (nothing was appended this time); absent otherwise.",
                statuses=[201],
            ),
        ],
        request=EventBatchSerializer,
        examples=[
            OpenApiExample("A redaction and a forward", value=ex.EVENT_BATCH, request_only=True),
            ex.example("Appended", "append_result", status=201),
        ],
        responses={201: AppendResultSerializer}
        | error_responses(
            400,
            401,
            403,
            404,
            409,
            413,
            429,
            e404="`session_not_found`: no such session in the caller's account.",
            e409="`session_ended`: the session is sealed and takes no more events.",
        ),
        tags=["sessions"],
    )
    def post(self, request, session_id: str):
        session = Session.objects.get_visible(request_account(request), session_id)
        key = idempotency_key_of(request)
        events = parse_event_batch(request.data)
        outcome = append_batch(session, events, idempotency_key=key, principal=actor_of(request))
        headers = {"Idempotent-Replayed": "true"} if outcome.replayed else None
        return Response(outcome.body, status=outcome.status, headers=headers)


class SessionEndView(ApiView):
    required_scope = "events:write"

    @extend_schema(
        operation_id="sessions_end",
        summary="End a session and seal it",
        description="Append `session.ended` and seal the session: its final size, root and head are signed (the "
        "`seal`). Later appends, and a second end, answer 409 `session_ended`. Scope `events:write`.",
        parameters=[SESSION_ID],
        request=SessionEndSerializer,
        examples=[
            OpenApiExample("Ended normally", value={"status": "ok"}, request_only=True),
            ex.example("Sealed", "ended_session"),
        ],
        responses={200: SessionWriteSerializer}
        | error_responses(
            400,
            401,
            403,
            404,
            409,
            413,
            429,
            e404="`session_not_found`: no such session in the caller's account.",
            e409="`session_ended`: the session was already ended.",
        ),
        tags=["sessions"],
    )
    def post(self, request, session_id: str):
        session = Session.objects.get_visible(request_account(request), session_id)
        serializer = SessionEndSerializer(data=request.data)
        if not serializer.is_valid():
            raise_invalid(serializer)
        receipt = end_session(session, status=serializer.validated_data["status"], now=timezone.now())
        return Response({**_session_detail(session), "receipt": receipt})


class AgentListView(ApiView):
    required_scope = "sessions:read"

    @extend_schema(
        operation_id="agents_list",
        summary="List agents",
        description="The account's agents (each a voice agent behind the proxy, with its current policy), in "
        "creation order, a page at a time: pass `next_cursor` as `cursor` for the next page. Scope "
        "`sessions:read`.",
        parameters=[AgentListQuerySerializer],
        responses={200: AgentPageSerializer} | error_responses(400, 401, 403, 429),
        examples=[ex.example("A page of one", "agent_page")],
        tags=["agents"],
    )
    def get(self, request):
        query = AgentListQuerySerializer(data=request.query_params)
        if not query.is_valid():
            raise_invalid(query)
        params = query.validated_data
        agents = Agent.objects.visible_to(request_account(request)).select_related("policy")
        if "cursor" in params:
            agents = agents.filter(id__gt=params["cursor"])
        limit = params["limit"]
        page = list(agents.order_by("id")[: limit + 1])
        next_cursor = page[limit - 1].id if len(page) > limit else None
        return Response({"agents": AgentSerializer(page[:limit], many=True).data, "next_cursor": next_cursor})


class AgentDetailView(ApiView):
    required_scope = "sessions:read"

    @extend_schema(
        operation_id="agents_retrieve",
        summary="Get an agent",
        description="One agent: its platform, upstream model, current policy and number of sessions. Scope "
        "`sessions:read`.",
        parameters=[AGENT_ID],
        responses={200: AgentDetailSerializer}
        | error_responses(401, 403, 404, 429, e404="`agent_not_found`: no such agent in the caller's account."),
        examples=[ex.example("Demo intake line", "agent_detail")],
        tags=["agents"],
    )
    def get(self, request, agent_id: str):
        account = request_account(request)
        agent = (
            Agent.objects.select_related("policy")
            .annotate(session_count=Count("sessions"))
            .get_visible(account, agent_id)
        )
        return Response(AgentDetailSerializer(agent).data)
