"""GET /api/v1/sessions/{id}/report: exact statuses and error bodies, in the order auth -> format -> lookup."""

import json
from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session as DjangoSession
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.demo import DEMO_EMAIL, HEALTHCARE_DEFAULT
from audit.models import Agent, AuditEvent, Policy
from audit.walk import verify_session
from audit.writing import append_events, start_session
from masker.middleware import RequestIDLogFilter
from masker.models import ApiToken, Membership
from reports.models import ReportRecord
from tests.conftest import T0, append_only_guard_lifted
from tests.reports.report_support import (
    AUDIO_FORWARDED,
    AUDIO_NOT_KEPT,
    DATES_PARTIAL,
    PASSTHROUGH,
    SAFE_HARBOR_KEYS,
    many_events,
)


def report_url(session_id: str) -> str:
    return reverse("reports:session-report", args=[session_id])


def error_of(response, code: str, message: str, details: dict | None = None) -> None:
    """The exact error envelope, with the request id of this very response."""
    error = {"code": code, "message": message, "request_id": response["X-Request-ID"]}
    if details is not None:
        error["details"] = details
    assert response.json() == {"error": error}
    assert response["X-Request-ID"].startswith("req_")
    assert response["Cache-Control"] == "no-store"


UNAUTHENTICATED = "Authentication credentials were not provided or are invalid."


def test_report_url_is_the_one_the_admin_links_to():
    assert report_url("sess_X") == "/api/v1/sessions/sess_X/report"


def test_report_without_cookie_is_401(seeded):
    response = Client().get(report_url(seeded.session("call-intake-0001").id))
    assert response.status_code == 401
    error_of(response, "unauthenticated", UNAUTHENTICATED)


def test_report_with_garbage_cookie_is_401(seeded):
    client = Client()
    client.cookies["masker_session"] = "not-a-session-key"
    response = client.get(report_url(seeded.session("call-intake-0001").id))
    assert response.status_code == 401
    error_of(response, "unauthenticated", UNAUTHENTICATED)


def test_report_with_expired_cookie_is_401(seeded, acme_client):
    key = acme_client.cookies["masker_session"].value
    DjangoSession.objects.filter(session_key=key).update(expire_date=timezone.now() - timedelta(seconds=1))
    response = acme_client.get(report_url(seeded.session("call-intake-0001").id))
    assert response.status_code == 401
    error_of(response, "unauthenticated", UNAUTHENTICATED)


def test_unauthenticated_is_checked_before_format_and_lookup(seeded):
    response = Client().get(report_url("sess_nonsense") + "?format=xml")
    assert response.status_code == 401
    error_of(response, "unauthenticated", UNAUTHENTICATED)


def test_report_of_other_accounts_session_is_404(seeded, acme_client):
    response = acme_client.get(report_url(seeded.session("globex-call-0001").id))
    assert response.status_code == 404
    error_of(response, "session_not_found", "No such session.")


@pytest.mark.parametrize(
    "bad_id",
    [
        "sess_nonsense",
        "sess_01M8H5ZWSZ40WJ0JDEB2HJM43q",
        "agt_01M8H5ZWRZ98MA3YDMWPHXP7AJ",
        "1",
        "sess_01M8H5ZWSZ40WJ0JDEB2HJM43QQ",
        "sess_01M8H5ZWSZ40WJ0JDEB2HJM43I",
    ],
)
def test_report_of_malformed_id_is_404(seeded, acme_client, bad_id):
    response = acme_client.get(report_url(bad_id))
    assert response.status_code == 404
    error_of(response, "session_not_found", "No such session.")


def test_report_of_unknown_id_is_404(seeded, acme_client):
    response = acme_client.get(report_url("sess_01M8H5ZWSZ40WJ0JDEB2HJM43Z"))
    assert response.status_code == 404
    error_of(response, "session_not_found", "No such session.")


@pytest.mark.parametrize("fmt", ["xml", "PDF", "", "json,pdf"])
def test_report_in_unknown_format_is_400(seeded, acme_client, fmt):
    response = acme_client.get(report_url(seeded.session("call-intake-0001").id), {"format": fmt})
    assert response.status_code == 400
    error_of(response, "invalid_format", "format must be 'json' or 'pdf'.", {"allowed": ["json", "pdf"]})


def test_format_is_checked_before_the_lookup(seeded, acme_client):
    response = acme_client.get(report_url(seeded.session("globex-call-0001").id), {"format": "xml"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_format"


@pytest.mark.tampers
def test_tampered_chain_is_409_naming_the_first_bad_seq(seeded, acme_client, caplog):
    session = seeded.session("call-intake-0001")
    with append_only_guard_lifted(), connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {AuditEvent._meta.db_table} SET canonical = REPLACE(canonical, 'PHONE', 'EMAIL') "
            "WHERE session_id = %s AND seq = 5",
            [session.id],
        )
    for fmt in ("json", "pdf"):
        response = acme_client.get(report_url(session.id), {"format": fmt})
        assert response.status_code == 409
        error_of(
            response,
            "audit_chain_broken",
            "The audit chain does not verify at seq 5: event bytes do not match the stored event hash.",
            {"seq": 5},
        )
    assert f"audit chain broken: session {session.id} at seq 5" in caplog.text
    assert not ReportRecord.objects.filter(session=session).exists()


def test_pdf_rendering_failure_is_500_with_request_id_and_logged(seeded, acme_client, settings, tmp_path, caplog):
    caplog.handler.addFilter(RequestIDLogFilter())  # as the console handler of settings.LOGGING does
    # A real failure: the assets directory lacks the stylesheet, and the local-only fetcher makes that fatal.
    settings.MASKER_REPORT_ASSETS_DIR = tmp_path
    session = seeded.session("call-intake-0001")
    response = acme_client.get(report_url(session.id), {"format": "pdf"})
    assert response.status_code == 500
    error_of(response, "report_generation_failed", "The report could not be rendered.")
    assert response["Content-Type"] == "application/json"
    record = next(r for r in caplog.records if r.getMessage() == "report generation failed")
    assert record.exc_info is not None  # the traceback is logged, not sent
    assert record.request_id == response["X-Request-ID"]
    assert "FileNotFoundError" in caplog.text  # the traceback names the failure (its message is withheld)
    assert "Traceback" not in response.content.decode()
    assert not ReportRecord.objects.filter(session=session).exists()
    # The JSON rendering does not need the assets.
    assert acme_client.get(report_url(session.id)).status_code == 200


def test_json_report_response(seeded, acme_client):
    session = seeded.session("call-intake-0001")
    response = acme_client.get(report_url(session.id))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == f'attachment; filename="masker-report-{session.id}.json"'
    assert response["Cache-Control"] == "no-store"
    assert response["X-Request-ID"].startswith("req_")
    report = json.loads(response.content)["report"]
    assert report["merkle_root_hex"] == verify_session(session).merkle_root_hex
    assert report["session_id"] == session.id


def test_pdf_report_response(seeded, acme_client):
    session = seeded.session("call-payment-0002")
    response = acme_client.get(report_url(session.id), {"format": "pdf"})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'attachment; filename="masker-report-{session.id}.pdf"'
    assert response["Cache-Control"] == "no-store"
    assert response.content.startswith(b"%PDF-")


def test_each_call_issues_a_new_report_id(seeded, acme_client):
    url = report_url(seeded.session("call-intake-0001").id)
    first, second = (acme_client.get(url).json()["report"] for _ in range(2))
    assert first["id"] != second["id"]
    assert first["merkle_root_hex"] == second["merkle_root_hex"]


def test_every_issued_report_is_recorded_in_the_register(seeded, acme_client):
    session = seeded.session("call-rehydration-0003")
    json_report = acme_client.get(report_url(session.id)).json()["report"]
    pdf_response = acme_client.get(report_url(session.id), {"format": "pdf"})
    records = list(ReportRecord.objects.filter(session=session).order_by("generated_at"))
    assert [r.format for r in records] == ["json", "pdf"]
    first = records[0]
    assert first.id == json_report["id"]
    assert (first.scope, first.account_id, first.tree_size) == ("session", seeded.account.id, session.tree_size)
    assert first.merkle_root_hex == json_report["merkle_root_hex"]
    assert first.signature_kid == json_report["signature"]["kid"]
    assert first.generated_by == Membership.objects.get(user__username=DEMO_EMAIL).id
    assert pdf_response.status_code == 200
    assert records[1].id != first.id


def test_bearer_token_with_reports_read_gets_the_report(seeded):
    token, secret = ApiToken.issue(account=seeded.account, scopes=["reports:read"])
    client = Client(headers={"Authorization": f"Bearer {secret}"})
    response = client.get(report_url(seeded.session("call-intake-0001").id))
    assert response.status_code == 200
    assert ReportRecord.objects.get(id=response.json()["report"]["id"]).generated_by == token.id


def test_bearer_token_without_reports_read_is_403(seeded):
    _, secret = ApiToken.issue(account=seeded.account, scopes=["sessions:read", "events:write"])
    response = Client(headers={"Authorization": f"Bearer {secret}"}).get(
        report_url(seeded.session("call-intake-0001").id)
    )
    assert response.status_code == 403
    error_of(response, "forbidden", "This token lacks the 'reports:read' scope.")


def test_bearer_token_of_other_account_gets_404(seeded):
    _, secret = ApiToken.issue(account=seeded.other_account, scopes=["reports:read"])
    response = Client(headers={"Authorization": f"Bearer {secret}"}).get(
        report_url(seeded.session("call-intake-0001").id)
    )
    assert response.status_code == 404
    error_of(response, "session_not_found", "No such session.")


def test_revoked_token_is_401(seeded):
    token, secret = ApiToken.issue(account=seeded.account, scopes=["reports:read"])
    token.revoke()
    response = Client(headers={"Authorization": f"Bearer {secret}"}).get(
        report_url(seeded.session("call-intake-0001").id)
    )
    assert response.status_code == 401
    error_of(response, "unauthenticated", "Invalid or revoked API token.")


def test_report_queries_are_bounded_whatever_the_log_size(seeded, acme_client, django_assert_max_num_queries):
    small = seeded.session("call-live-0006")  # the live call: still open
    with django_assert_max_num_queries(12):
        assert acme_client.get(report_url(small.id)).status_code == 200
    append_events(small, many_events(900, start=small.started_at))
    with django_assert_max_num_queries(12):
        assert acme_client.get(report_url(small.id)).json()["report"]["summary"]["total_events"] == 902


def test_schema_file_is_served_publicly():
    response = Client().get(reverse("reports:audit-schema"))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/schema+json"
    schema = response.json()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$defs"]["session_report"]["additionalProperties"] is False
    assert schema["$defs"]["period_report"]["additionalProperties"] is False
    assert schema["$defs"]["report"]["then"] == {"$ref": "#/$defs/session_report"}
    assert reverse("reports:audit-schema") == "/api/v1/schemas/masker-audit-v1.json"


FULL_DEFAULT = dict.fromkeys(
    SAFE_HARBOR_KEYS[:15],
    "full",
) | {"P_biometric": "not_applicable", "Q_photo": "not_applicable", "R_other": "partial"}
NOTHING_TEXT = dict.fromkeys(FULL_DEFAULT, "none") | {"P_biometric": "not_applicable", "Q_photo": "not_applicable"}


@pytest.mark.parametrize(
    ("policy_text", "expected", "percent"),
    [
        (HEALTHCARE_DEFAULT, FULL_DEFAULT, 96.9),
        (
            DATES_PARTIAL,
            NOTHING_TEXT | {"A_names": "full", "B_geo": "partial", "C_dates": "partial", "D_phone": "full"},
            18.8,
        ),
        (PASSTHROUGH, NOTHING_TEXT | {"F_email": "full", "J_account": "partial"}, 9.4),
        (AUDIO_NOT_KEPT, NOTHING_TEXT | {"A_names": "full", "P_biometric": "full"}, 11.8),
        (AUDIO_FORWARDED, NOTHING_TEXT | {"A_names": "full", "P_biometric": "none"}, 5.9),
    ],
    ids=["full-default", "dates-partial", "passthrough-kinds", "audio-not-kept", "audio-forwarded"],
)
def test_safe_harbor_matrix_through_the_endpoint(seeded, acme_client, policy_text, expected, percent):
    # The seed already holds the full default policy (same name and version): reuse it.
    policy = Policy.objects.filter(account=seeded.account, yaml_text=policy_text).first() or Policy.objects.create(
        account=seeded.account, name="p", version=1, yaml_text=policy_text
    )
    agent = Agent.objects.create(
        account=seeded.account,
        name=f"Agent {policy.name} {policy.version}",
        platform="vapi",
        upstream_model="m",
        policy=policy,
    )
    session, _ = start_session(agent, external_ref="call-matrix", started_at=T0)
    report = acme_client.get(report_url(session.id)).json()["report"]
    assert report["safe_harbor_coverage"] == expected
    assert list(report["safe_harbor_coverage"]) == list(FULL_DEFAULT)
    assert report["summary"]["coverage_percent"] == report["safe_harbor"]["coverage_percent"] == percent
    assert report["policy_snapshot"] == policy_text


def test_head_on_a_report_is_405_and_issues_nothing(acme_client, seeded):
    session = seeded.session("call-intake-0001")
    registered = ReportRecord.objects.count()

    response = acme_client.head(report_url(session.id))

    assert response.status_code == 405
    assert response["Allow"] == "GET, OPTIONS"
    assert response.content == b""  # Django's test client drops a HEAD body, as servers do
    assert ReportRecord.objects.count() == registered
    assert acme_client.get(report_url(session.id)).status_code == 200
    assert ReportRecord.objects.count() == registered + 1
