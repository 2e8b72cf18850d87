"""Independent verification API: public keys, inclusion and consistency proofs, and the pieces of the
NDJSON events export that ``audit.views.SessionEventsView.get`` uses.

Views authenticate, look the session up scoped to the caller's account (another account's id is a 404), validate
the query and call the domain (``audit.proofs``, ``audit.export``, ``audit.signing``). Errors are raised.
"""

import re

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from audit import openapi_examples as ex
from audit.export import ExportRange
from audit.models import Session
from audit.proofs import build_consistency_proof, build_inclusion_proof
from audit.signing import jwks
from audit.verifier_download import FILENAME, verifier_archive
from masker.auth import HasScope, request_account
from masker.errors import ValidationFailed
from masker.query import QuerySerializer
from masker.schema import ATTACHMENT, NO_STORE, error_responses, response_header

SESSION_ID = OpenApiParameter(
    "session_id",
    str,
    OpenApiParameter.PATH,
    description="The session's id (`sess_` + ULID). A malformed id is answered like an unknown one: 404.",
    examples=[OpenApiExample("Demo intake call", value=ex.SESSION_ID)],
)
NOT_FOUND = "`session_not_found`: no such session in the caller's account."
_DIGITS = re.compile(r"^[0-9]{1,18}$")


class SeqField(serializers.IntegerField):
    """A non-negative integer written as plain digits: ``1.0``, ``+1``, `` 1`` and ``1e3`` are refused."""

    default_error_messages = {"invalid": "must be a non-negative integer"}

    def __init__(self, *, minimum: int = 0, **kwargs):
        super().__init__(min_value=minimum, max_value=10**18 - 1, **kwargs)  # what _DIGITS admits

    def get_value(self, dictionary):
        # DRF reads an empty query value (``?from_seq=``) as "not given"; here it is an invalid value.
        return dictionary.get(self.field_name, serializers.empty)

    def to_internal_value(self, data):
        if not isinstance(data, str) or not _DIGITS.match(data):
            self.fail("invalid")
        return super().to_internal_value(data)


def _validated(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        raise ValidationFailed(details={"fields": serializer.errors})
    return serializer.validated_data


def _seq_of(value: str) -> int:
    if not _DIGITS.match(value):
        raise ValidationFailed(details={"fields": {"seq": ["must be a non-negative integer"]}})
    return int(value)


# --- serializers (query parameters and the documented response shapes) ---------------------------------------------


class ExportQuerySerializer(QuerySerializer):
    from_seq = SeqField(required=False, help_text="First seq to export (inclusive). Default: 0.")
    to_seq = SeqField(required=False, help_text="Last seq to export (inclusive). Default: the last event.")

    def validate(self, attrs):
        if "from_seq" in attrs and "to_seq" in attrs and attrs["from_seq"] > attrs["to_seq"]:
            raise serializers.ValidationError({"from_seq": ["must not exceed to_seq"]})
        return attrs


def parse_export_range(query_params) -> ExportRange:
    """The export's inclusive seq range from ``?from_seq=&to_seq=``; ``ValidationFailed`` (400) when invalid."""
    data = _validated(ExportQuerySerializer, query_params)
    return ExportRange(from_seq=data.get("from_seq"), to_seq=data.get("to_seq"))


EVENTS_EXPORT_SCHEMA = {
    "operation_id": "sessions_events_export",
    "summary": "Download a session's audit log (NDJSON)",
    "description": "The session's audit log as a download, one event per line in seq order, each line exactly the "
    "bytes that were hashed: what an auditor re-hashes to check a report offline. `from_seq`/`to_seq` "
    "(inclusive) export a range. The export covers the events recorded when the request started. Scope "
    "`sessions:read`.",
    "parameters": [
        SESSION_ID,
        ExportQuerySerializer,
        response_header(
            "Content-Disposition", ATTACHMENT + " Example: `masker-events-<session>.ndjson`.", statuses=[200]
        ),
        response_header("Cache-Control", NO_STORE, statuses=[200]),
    ],
    "responses": {
        (200, "application/x-ndjson"): OpenApiResponse(
            OpenApiTypes.STR,
            description="One event per line: its stored RFC 8785 canonical bytes exactly as hashed, then a newline. "
            "Nothing else (no header, no trailer). Leaf hash = SHA-256(0x00 || line without the newline).",
            examples=[ex.example("First two events", "events_ndjson", media_type="application/x-ndjson")],
        )
    }
    | error_responses(400, 401, 403, 404, 429, e404=NOT_FOUND),
    "tags": ["verification"],
}


class JwkSerializer(serializers.Serializer):
    kty = serializers.CharField(help_text="Always `OKP` (an RFC 8037 key).")
    crv = serializers.CharField(help_text="Always `Ed25519`.")
    x = serializers.CharField(help_text="The raw 32-byte public key, base64url without padding.")
    kid = serializers.CharField(help_text="`ed25519-` + the first 16 hex digits of SHA-256(raw public key).")
    use = serializers.CharField(help_text="Always `sig` (signature keys).")
    status = serializers.ChoiceField(
        choices=["current", "retired"],
        help_text="`current`: signs new reports, seals and receipts; `retired`: rotated out, and what it signed "
        "still verifies.",
    )


class JwksSerializer(serializers.Serializer):
    keys = JwkSerializer(many=True)


class InclusionQuerySerializer(QuerySerializer):
    tree_size = SeqField(
        minimum=1, required=False, help_text="Size of the tree to prove against. Default: current size."
    )


class InclusionProofSerializer(serializers.Serializer):
    type = serializers.CharField(help_text="Always `inclusion`.")
    session_id = serializers.CharField()
    seq = serializers.IntegerField()
    leaf_index = serializers.IntegerField(help_text="Equal to seq.")
    tree_size = serializers.IntegerField()
    leaf_hash_hex = serializers.CharField(help_text="SHA-256(0x00 || the event's canonical bytes).")
    path_hex = serializers.ListField(child=serializers.CharField(), help_text="RFC 9162 audit path, leaf side first.")
    root_hex = serializers.CharField(help_text="RFC 9162 Merkle tree hash of the first tree_size events.")


class ConsistencyQuerySerializer(QuerySerializer):
    first = SeqField(minimum=1, help_text="The smaller tree size (e.g. a mid-call report's tree_size), at least 1.")
    second = SeqField(minimum=1, required=False, help_text="The larger tree size. Default: current size.")


class ConsistencyProofSerializer(serializers.Serializer):
    type = serializers.CharField(help_text="Always `consistency`.")
    session_id = serializers.CharField()
    first = serializers.IntegerField()
    second = serializers.IntegerField()
    first_root_hex = serializers.CharField()
    second_root_hex = serializers.CharField()
    proof_hex = serializers.ListField(child=serializers.CharField(), help_text="RFC 9162 consistency proof.")


# --- views --------------------------------------------------------------------------------------------------------


class KeysView(APIView):
    """``GET /keys``: public, no authentication (anyone verifying a report needs the keys)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="keys_list",
        summary="Public signature keys",
        description="The service's Ed25519 public keys, current and retired, as a JWKS of RFC 8037 keys. Reports, "
        "seals and receipts name the key that signed them in `signature.kid`. Public: no authentication. Compare "
        "the keys with the ones your organisation received through another channel before trusting a signature.",
        auth=[],
        parameters=[
            response_header("Cache-Control", "`public, max-age=60`: keys change only on rotation.", statuses=[200])
        ],
        responses={200: JwksSerializer},
        examples=[ex.example("One current key", "keys")],
        tags=["verification"],
    )
    def get(self, request):
        return Response(jwks(), headers={"Cache-Control": "public, max-age=60"})


class VerifierDownloadView(APIView):
    """``GET /verifier/masker-verify.pyz``: the offline verifier as one file. Public, like the keys."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="verifier_download",
        summary="Download the offline verifier (masker-verify.pyz)",
        auth=[],
        parameters=[
            response_header("Content-Disposition", ATTACHMENT + " Example: `masker-verify.pyz`.", statuses=[200]),
            response_header(
                "X-Content-SHA256",
                "The file's SHA-256 (lowercase hex): compare it with the one your compliance team received.",
                statuses=[200],
            ),
            response_header("Cache-Control", "`public, max-age=300`: the same bytes for one release.", statuses=[200]),
        ],
        responses={
            (200, "application/zip"): OpenApiResponse(
                response=OpenApiTypes.BINARY,
                examples=[
                    OpenApiExample("The file", value="(the zip application, binary: PK…)", media_type="application/zip")
                ],
                description="masker-verify.pyz: a Python zip application (standard library only, Python 3.11 or "
                "newer). Run it with `python3 masker-verify.pyz report REPORT.json --events EVENTS.ndjson --keys "
                "keys.json`; `--help` lists every check. The X-Content-SHA256 header carries the file's SHA-256.",
            )
        },
        tags=["verification"],
        description="The offline verifier: checks reports (JSON and PDF), event exports, seals, proofs and signed "
        "receipts without trusting this server. The same bytes for every download of one release. Public: no "
        "authentication.",
    )
    def get(self, request):
        archive = verifier_archive()
        response = HttpResponse(archive.content, content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{FILENAME}"'
        response["X-Content-SHA256"] = archive.sha256
        response["Cache-Control"] = "public, max-age=300"
        return response


class SessionProofView(APIView):
    permission_classes = [HasScope]
    required_scope = "sessions:read"

    @extend_schema(
        operation_id="sessions_events_proof",
        summary="Inclusion proof of one event",
        description="An RFC 9162 inclusion proof that event `seq` is in the Merkle tree of the session's first "
        "`tree_size` events (seq < tree_size <= current size; default: the current size). With the event's line "
        "from the events export and a signed report or seal of that size, it proves the event is part of what was "
        "signed, without the rest of the log: check it offline with `python3 masker-verify.pyz proof`. Scope "
        "`sessions:read`.",
        parameters=[
            SESSION_ID,
            OpenApiParameter("seq", int, OpenApiParameter.PATH, description="The event's seq (its leaf index)."),
            InclusionQuerySerializer,
            response_header("Cache-Control", NO_STORE, statuses=[200]),
        ],
        responses={200: InclusionProofSerializer}
        | error_responses(
            400,
            401,
            403,
            404,
            409,
            429,
            e400="`validation_failed`: `seq` or `tree_size` is not a number, or out of range.",
            e404=NOT_FOUND,
            e409="`audit_chain_broken`: the session's audit log does not verify.",
        ),
        examples=[ex.example("Event 1 of the demo call", "inclusion_proof")],
        tags=["verification"],
    )
    def get(self, request, session_id: str, seq: str):
        session = Session.objects.get_visible(request_account(request), session_id)
        query = _validated(InclusionQuerySerializer, request.query_params)
        proof = build_inclusion_proof(session, _seq_of(seq), tree_size=query.get("tree_size"))
        return Response(proof, headers={"Cache-Control": "no-store"})


class SessionConsistencyView(APIView):
    permission_classes = [HasScope]
    required_scope = "sessions:read"

    @extend_schema(
        operation_id="sessions_consistency_proof",
        summary="Consistency proof between two sizes",
        description="An RFC 9162 consistency proof that the Merkle tree of the first `first` events is a prefix of "
        "the tree of the first `second` events (1 <= first <= second <= current size; `second` defaults to the "
        "current size). It proves that a report or receipt taken mid-call is part of the final log. Scope "
        "`sessions:read`.",
        parameters=[SESSION_ID, ConsistencyQuerySerializer, response_header("Cache-Control", NO_STORE, statuses=[200])],
        responses={200: ConsistencyProofSerializer}
        | error_responses(
            400,
            401,
            403,
            404,
            409,
            429,
            e400="`validation_failed`: `first` is missing, or a size is not a number or out of range.",
            e404=NOT_FOUND,
            e409="`audit_chain_broken`: the session's audit log does not verify.",
        ),
        examples=[ex.example("From 2 events to 14", "consistency_proof")],
        tags=["verification"],
    )
    def get(self, request, session_id: str):
        session = Session.objects.get_visible(request_account(request), session_id)
        query = _validated(ConsistencyQuerySerializer, request.query_params)
        proof = build_consistency_proof(session, query["first"], second=query.get("second"))
        return Response(proof, headers={"Cache-Control": "no-store"})
