"""Ingestion and read API of sessions and agents (issue 5): one APIView per path, one method per operation.

Views authenticate (cookie or ``Bearer mk_…``), check the operation's scope (``masker.auth.HasScope``), look the
object up scoped to the caller's account (another account's id is a 404), validate the envelope and call the
domain (``audit.chain`` / ``audit.idempotency``). Errors are raised, never built here.
"""

from django.db.models import Count, Q
from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

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
from masker.schema import error_responses

SESSION_ID = OpenApiParameter("session_id", str, OpenApiParameter.PATH, description="sess_…")
AGENT_ID = OpenApiParameter("agent_id", str, OpenApiParameter.PATH, description="agt_…")
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
        parameters=[SessionListQuerySerializer],
        responses={200: SessionPageSerializer} | error_responses(400, 401, 403, 429),
        tags=["sessions"],
        description="The account's sessions, newest first (started_at, then id), with cursor pagination.",
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
        request=SessionStartSerializer,
        responses={
            201: OpenApiResponse(SessionWriteSerializer, description="Started: session.started appended."),
            200: OpenApiResponse(
                SessionWriteSerializer, description="This agent's session for external_ref, with its start receipt."
            ),
        }
        | error_responses(400, 401, 403, 404, 413, 429),
        tags=["sessions"],
        description="Start the session of one call (snapshots the agent's current policy, appends session.started). "
        "Idempotent on (agent_id, external_ref).",
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
        parameters=[SESSION_ID],
        responses={200: SessionDetailSerializer} | error_responses(401, 403, 404, 429),
        tags=["sessions"],
        description="A session: chain state (tree_size, merkle_root_hex, chain_head_hex), seal and counts by kind.",
    )
    def get(self, request, session_id: str):
        session = Session.objects.get_visible(request_account(request), session_id)
        return Response(_session_detail(session))


class SessionEventsView(ApiView):
    """``/sessions/{id}/events``: POST appends a batch (``events:write``); GET exports the log as NDJSON
    (``sessions:read``, issue 6: ``audit.export``)."""

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
        parameters=[SESSION_ID, IDEMPOTENCY_KEY],
        request=EventBatchSerializer,
        responses={201: AppendResultSerializer} | error_responses(400, 401, 403, 404, 409, 413, 429),
        tags=["sessions"],
        description="Append up to 1,000 events, all or nothing: one invalid event rejects the batch with 400 "
        "validation_failed and details.events = [{index, field, message}]. The server assigns v, id, "
        "session_id, seq and prev_hash. A sealed session answers 409 session_ended.",
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
        parameters=[SESSION_ID],
        request=SessionEndSerializer,
        responses={200: SessionWriteSerializer} | error_responses(400, 401, 403, 404, 409, 413, 429),
        tags=["sessions"],
        description="Append session.ended and seal the session (final size and root, signed). Later appends and a "
        "second end answer 409 session_ended.",
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
        parameters=[AgentListQuerySerializer],
        responses={200: AgentPageSerializer} | error_responses(400, 401, 403, 429),
        tags=["agents"],
        description="The account's agents, by id (creation order), with cursor pagination.",
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
        parameters=[AGENT_ID],
        responses={200: AgentDetailSerializer} | error_responses(401, 403, 404, 429),
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
