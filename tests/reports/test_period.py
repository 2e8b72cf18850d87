"""Period reports (scope agent and account): the window, the figures as the sum of the sessions' own reports, the
period root recomputed independently, broken sessions listed, the API's statuses and errors, the PDF."""

import hashlib
import json
from collections import Counter
from datetime import timedelta

import pytest
import rfc8785
from django.db import connection
from django.test import Client
from django.urls import reverse

from audit import walk
from audit.canonical import canonical_bytes
from audit.merkle import leaf_hash
from audit.models import Agent, AuditEvent, Session
from audit.timestamps import format_ts
from audit.writing import append_events
from masker.models import ApiToken
from reports.models import ReportRecord
from reports.period import (
    Window,
    build_period_report,
    fold_sessions,
    parse_window,
    render_period_json,
    sign_period_report,
    window_sessions,
)
from reports.period_rendering import PDF_SESSION_LIMIT, render_period_pdf
from reports.session_report import build_session_report, issue_session_report
from tests.conftest import append_only_guard_lifted
from tests.reports.period_support import (
    ACCOUNT_URL,
    FROM,
    NOW,
    RANGE,
    TO,
    WINDOW,
    World,
    _events,
    _tamper,
)
from tests.reports.report_support import (
    REPORT_ID,
    pdf_attachments,
    pdf_reader,
    pdf_text,
    schema_errors,
    verify_report_signature,
)
from tests.verifier.support import ref_leaf, ref_mth
from verifier.period import period_leaf_bytes


@pytest.fixture
def world(db) -> World:
    return World()


def _report(world: World, agent: Agent | None = None, window: Window = WINDOW):
    return sign_period_report(build_period_report(world.account, agent=agent, window=window, generated_at=NOW))


def _sum_of_session_reports(sessions) -> dict:
    """The period figures as the sum of each session's own report."""
    total: dict = {
        "by_kind": Counter(),
        "by_pass": Counter(),
        "by_action": Counter(),
        "alerts": Counter(),
        "payloads": Counter(),
        "hops": Counter(),
    }
    scalars = Counter()
    for session in sessions:
        data = build_session_report(session, generated_at=NOW).as_json()
        summary = data["summary"]
        scalars["total_events"] += summary["total_events"]
        scalars["total_redactions"] += summary["total_redactions"]
        scalars["alert_count"] += summary["alert_count"]
        scalars["detections"] += data["pci_dss"]["detections"]
        scalars["rehydrations"] += data["leak_detection"]["rehydrations"]
        scalars["leaks"] += data["leak_detection"]["residual_leak_count"]
        scalars["egress"] += data["baa_chain"]["egress_count"]
        scalars["baa_alerts"] += data["baa_chain"]["alert_count"]
        total["by_kind"].update(data["redactions_by_kind"])
        total["by_pass"].update(data["redactions_by_pass"])
        total["by_action"].update(summary["redactions_by_action"])
        total["alerts"].update(summary["alerts_by_type"])
        total["payloads"].update(data["retention_attestation"]["payloads_by_what"])
        for hop in data["baa_chain"]["hops"]:
            total["hops"][(hop["hop"], hop["vendor"])] += hop["count"]
    return {"scalars": dict(scalars), **{k: {key: n for key, n in v.items() if n} for k, v in total.items()}}


def _figures_of(report: dict) -> dict:
    summary = report["summary"]
    return {
        "scalars": {
            "total_events": summary["total_events"],
            "total_redactions": summary["total_redactions"],
            "alert_count": summary["alert_count"],
            "detections": report["pci_dss"]["detections"],
            "rehydrations": report["leak_detection"]["rehydrations"],
            "leaks": report["leak_detection"]["residual_leak_count"],
            "egress": report["baa_chain"]["egress_count"],
            "baa_alerts": report["baa_chain"]["alert_count"],
        },
        "by_kind": report["redactions_by_kind"],
        "by_pass": report["redactions_by_pass"],
        "by_action": {k: n for k, n in summary["redactions_by_action"].items() if n},
        "alerts": {k: n for k, n in summary["alerts_by_type"].items() if n},
        "payloads": {k: n for k, n in report["retention_attestation"]["payloads_by_what"].items() if n},
        "hops": {(h["hop"], h["vendor"]): h["count"] for h in report["baa_chain"]["hops"]},
    }


# --- the domain -----------------------------------------------------------------------------------------------------


def test_account_report_lists_the_windows_sessions_edges_included(world):
    report = _report(world).as_json()
    listed = [entry["session_id"] for entry in report["sessions"]]
    assert listed == sorted(s.id for s in world.inside)
    assert report["scope"] == "account"
    assert report["session_id"] is None
    assert report["cover"]["time_window"] == {"from": "2026-03-01T00:00:00.000Z", "to": "2026-04-01T00:00:00.000Z"}
    assert [row["name"] for row in report["cover"]["agents"]] == ["Billing", "Intake", "Triage"]
    assert [row["sessions"] for row in report["cover"]["agents"]] == [2, 2, 2]
    assert schema_errors({"report": report}) == []
    verify_report_signature(report)


def test_agent_report_covers_only_that_agents_sessions(world):
    report = _report(world, world.billing).as_json()
    assert [e["session_id"] for e in report["sessions"]] == sorted(s.id for s in world.inside[2:4])
    assert report["scope"] == "agent"
    assert report["cover"]["agent"]["id"] == world.billing.id
    assert schema_errors({"report": report}) == []


def test_figures_equal_the_sum_of_the_session_reports(world):
    report = _report(world).as_json()
    assert _figures_of(report) == _sum_of_session_reports(world.inside)
    assert report["summary"]["total_sessions"] == 6
    assert report["summary"]["verdict"] == "alerts_present"
    for entry, session in zip(report["sessions"], sorted(world.inside, key=lambda s: s.id), strict=True):
        own = build_session_report(session, generated_at=NOW).as_json()
        assert entry == {
            "session_id": session.id,
            "external_ref": session.external_ref,
            "started_at": format_ts(session.started_at),
            "status": own["cover"]["session"]["status"],
            "tree_size": own["audit_integrity"]["tree_size"],
            "merkle_root_hex": own["merkle_root_hex"],
            "sealed": own["audit_integrity"]["seal"]["status"] == "sealed",
            "alerts": own["summary"]["alert_count"],
            "integrity": "ok",
        }


def test_alerts_name_session_seq_turn_and_time(world):
    report = _report(world).as_json()
    leaks = report["leak_detection"]["residual_leaks"]
    assert sorted(a["session_id"] for a in leaks) == sorted([world.inside[1].id, world.inside[4].id])
    for alert in leaks:
        event = AuditEvent.objects.get(session_id=alert["session_id"], seq=alert["seq"])
        stored = json.loads(event.canonical)
        assert (stored["kind"], stored["turn"], stored["ts"]) == ("leak.detected", alert["turn"], alert["ts"])
    assert {a["vendor"] for a in report["baa_chain"]["alerts"]} == {"cheapllm"}


def test_safe_harbor_matrix_per_policy_version_seen(world):
    report = _report(world).as_json()
    versions = report["safe_harbor"]["policy_versions"]
    assert [(v["policy"]["version"], v["sessions"]) for v in versions] == [(3, 4), (4, 2)]
    assert versions[0]["coverage"]["O_ip"] == "full"
    assert versions[1]["coverage"]["O_ip"] == "none"
    assert report["safe_harbor_coverage"]["O_ip"] == "none"  # the weakest over the versions
    assert report["summary"]["coverage_percent"] == min(v["coverage_percent"] for v in versions)


def test_period_root_equals_an_independent_recomputation(world):
    report = _report(world).as_json()
    leaves = []
    for session in sorted(world.inside, key=lambda s: s.id):
        own = build_session_report(session, generated_at=NOW)
        leaves.append(
            rfc8785.dumps(
                {"session_id": session.id, "tree_size": own.tree_size, "merkle_root_hex": own.merkle_root_hex}
            )
        )
    assert report["merkle_root_hex"] == ref_mth([ref_leaf(leaf) for leaf in leaves]).hex()


def test_empty_window_root_is_the_empty_tree(world):
    report = _report(world, window=Window(FROM - timedelta(days=300), FROM - timedelta(days=200))).as_json()
    assert report["sessions"] == []
    assert report["merkle_root_hex"] == hashlib.sha256(b"").hexdigest()
    assert report["summary"]["verdict"] == "no_alerts"
    assert report["safe_harbor_coverage"] is None
    assert schema_errors({"report": report}) == []


@pytest.mark.parametrize(
    "session_id",
    [
        "sess_01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "sess_00000000000000000000000000",
        "sess_ZZZZZZZZZZZZZZZZZZZZZZZZZZ",
        'sess_"quoted\\slash',  # not an id this service issues: written through the general RFC 8785 path
        "séssion\u2028",
    ],
)
@pytest.mark.parametrize("root", [None, "0" * 64, "ab" * 32])
@pytest.mark.parametrize("size", [0, 1, 2**40])
def test_period_leaf_bytes_are_rfc8785(session_id, root, size):
    expected = rfc8785.dumps({"session_id": session_id, "tree_size": size, "merkle_root_hex": root})
    assert period_leaf_bytes(session_id, size, root) == expected


@pytest.mark.parametrize("pipelined", [False, True])
def test_tampered_session_is_listed_broken_and_fails_the_verdict(world, monkeypatch, pipelined):
    if pipelined:
        monkeypatch.setattr(walk, "PIPELINE_MIN_EVENTS", 0)  # the two-process walk, forced for a small window
    victim = world.inside[2]
    _tamper(victim, 4)
    report = _report(world).as_json()
    entry = next(e for e in report["sessions"] if e["session_id"] == victim.id)
    assert entry["integrity"] == "broken"
    assert entry["broken_seq"] == 4  # the altered event, named as the session report names it
    assert entry["merkle_root_hex"] is None
    assert entry["tree_size"] == victim.tree_size
    assert all(e["integrity"] == "ok" for e in report["sessions"] if e["session_id"] != victim.id)
    assert report["summary"]["verdict"] == "integrity_failed"
    assert report["summary"]["alerts_by_type"]["integrity_broken"] == 1
    assert report["summary"]["sessions_broken"] == 1
    assert report["audit_integrity"]["broken"] == [
        {"session_id": victim.id, "seq": 4, "reason": entry["broken_reason"]}
    ]
    # the broken session's figures are left out; the others' are still the sum of their reports
    others = [s for s in world.inside if s.id != victim.id]
    figures = _figures_of(report)
    expected = _sum_of_session_reports(others)
    expected["alerts"]["integrity_broken"] = 1
    expected["scalars"]["alert_count"] += 1
    assert figures == expected
    assert schema_errors({"report": report}) == []


@pytest.mark.parametrize("pipelined", [False, True])
def test_an_open_session_rewritten_after_its_report_is_listed_broken(world, monkeypatch, pipelined):
    # Its last event rewritten with its hash and the session's head (links hold, nothing is sealed): only the root
    # its report recorded tells, and only for that session; the sessions walked after it are unaffected.
    if pipelined:
        monkeypatch.setattr(walk, "PIPELINE_MIN_EVENTS", 0)
        monkeypatch.setattr(walk, "CHUNK_EVENTS", 2)
    victim = world.inside[3]
    assert not victim.is_sealed
    issue_session_report(victim, report_format="json", actor="usr_test", now=NOW)
    last = AuditEvent.objects.get(session=victim, seq=victim.tree_size - 1)
    event = json.loads(last.canonical)
    event["turn"] += 1
    raw = canonical_bytes(event)
    with append_only_guard_lifted(), connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {AuditEvent._meta.db_table} SET canonical = %s, event_hash = %s WHERE id = %s",
            [raw.decode(), leaf_hash(raw).hex(), last.id],
        )
        cursor.execute(
            f"UPDATE {Session._meta.db_table} SET chain_head = %s WHERE id = %s", [leaf_hash(raw).hex(), victim.id]
        )
    report = _report(world).as_json()
    entry = next(e for e in report["sessions"] if e["session_id"] == victim.id)
    assert (entry["integrity"], entry["broken_seq"]) == ("broken", victim.tree_size - 1)
    assert "no longer have the root a report recorded" in entry["broken_reason"]
    assert [e["session_id"] for e in report["sessions"] if e["integrity"] == "broken"] == [victim.id]


def test_pipelined_walk_gives_the_same_report(world, monkeypatch):
    inline = _report(world).as_json()
    monkeypatch.setattr(walk, "PIPELINE_MIN_EVENTS", 0)
    pipelined = _report(world).as_json()
    for report in (inline, pipelined):
        for key in ("id", "signature", "generated_at"):
            report.pop(key)
    assert pipelined == inline


@pytest.mark.parametrize("pipelined", [False, True])
def test_a_session_that_grew_after_its_row_was_read_is_walked_to_the_size_the_row_claimed(
    world, monkeypatch, pipelined
):
    # An open call goes on between reading the window's rows and walking their events (or between planning a report
    # run and walking its chunk): the walk covers what the rows claimed, to the event, whatever the log holds now.
    if pipelined:
        monkeypatch.setattr(walk, "PIPELINE_MIN_EVENTS", 0)
        monkeypatch.setattr(walk, "CHUNK_EVENTS", 2)
    sessions = list(window_sessions(world.account, agent=None, window=WINDOW))
    before = fold_sessions(sessions).to_json()
    victim = world.inside[3]
    assert not victim.is_sealed
    claimed = (victim.tree_size, victim.merkle_root_hex, None)
    append_events(victim, _events(FROM + timedelta(days=11, hours=1), 20, alerts=True))  # past every claimed size
    after = fold_sessions(sessions).to_json()
    assert after == before
    entry = next(e for e in after["entries"] if e[0] == victim.id)
    assert (entry[1], entry[2], entry[5]) == claimed


def test_session_with_no_events_left_is_broken_at_its_start(world):
    victim = world.inside[0]
    with append_only_guard_lifted(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {AuditEvent._meta.db_table} WHERE session_id = %s", [victim.id])
    report = _report(world).as_json()
    entry = next(e for e in report["sessions"] if e["session_id"] == victim.id)
    assert (entry["integrity"], entry["broken_seq"]) == ("broken", 0)
    assert [e["integrity"] for e in report["sessions"]].count("ok") == 5


def test_queries_do_not_grow_with_the_sessions_on_postgres(world, django_assert_num_queries):
    """The sessions, their anchors, the agents, one policy snapshot per version seen, and the walk: one
    statement on PostgreSQL (one per session elsewhere)."""
    walks = 1 if connection.vendor == "postgresql" else len(world.inside)
    with django_assert_num_queries(4 + walks):
        _report(world)


# --- the window -----------------------------------------------------------------------------------------------------


def test_window_defaults_to_the_last_30_days():
    window = parse_window(None, None, now=NOW)
    assert (window.start, window.end) == (NOW - timedelta(days=30), NOW)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2026-03-01T00:00:00Z", "2026-03-01T00:00:00Z"),  # 0 days
        ("2026-01-01T00:00:00Z", "2027-01-03T00:00:00Z"),  # 367 days
        ("2026-03-02T00:00:00Z", "2026-03-01T00:00:00Z"),  # to before from
        ("2026-03-01", "2026-03-02T00:00:00Z"),  # a date, not a date-time
        ("2026-03-01T00:00:00", "2026-03-02T00:00:00Z"),  # no time zone
        ("yesterday", None),
        ("0238-06-20T03:29:06Z", "0238-07-20T03:29:06Z"),  # a year before 1970
        (None, "0001-01-05T00:00:00Z"),  # no default window before year 1
        ("2026-W09-1T00:00:00Z", None),  # ISO 8601, not RFC 3339
        ("2026-02-30T00:00:00Z", "2026-03-02T00:00:00Z"),
        ("0001-01-01T00:00:00+01:00", "2026-03-02T00:00:00Z"),  # before year 1 in UTC
        (None, ""),  # an empty value is not a missing one
    ],
)
def test_bad_windows_are_refused(start, end):
    from masker.errors import ValidationFailed

    with pytest.raises(ValidationFailed):
        parse_window(start, end, now=NOW)


def test_any_rfc3339_offset_is_queried_in_utc(world, acme_client):
    # RFC 3339 admits offsets up to 23:59, PostgreSQL's time zones only up to 15:59: the window is queried in UTC.
    window = parse_window("2026-03-01T00:00:00+23:59", "2026-03-02T00:00:00-23:59", now=NOW)
    assert (window.start.utcoffset(), window.end.utcoffset()) == (timedelta(0), timedelta(0))
    response = acme_client.get("/api/v1/reports", {"from": "2026-03-01T00:00:00+23:59", "to": "2026-03-02T00:00:00Z"})
    assert response.status_code == 200, response.content[:300]


def test_a_window_of_366_days_is_accepted():
    window = parse_window("2026-01-01T00:00:00Z", "2027-01-02T00:00:00+00:00", now=NOW)
    assert window.end - window.start == timedelta(days=366)


def test_offsets_and_fractions_are_rfc3339():
    window = parse_window("2026-03-01t02:00:00.123456789+02:00", "2026-03-02T00:00:00z", now=NOW)
    assert window.start == FROM + timedelta(microseconds=123456)
    assert window.end == FROM + timedelta(days=1)


# --- the API --------------------------------------------------------------------------------------------------------


def agent_url(agent_id: str) -> str:
    return reverse("reports:agent-report", args=[agent_id])


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:300]
    body = response.json()["error"]
    assert body["code"] == code
    assert body["request_id"] == response["X-Request-ID"]
    assert response["Cache-Control"] == "no-store"
    return body


def test_account_report_json_over_the_api(world):
    response = world.client().get(ACCOUNT_URL, RANGE)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    assert response["Content-Disposition"] == (
        f'attachment; filename="masker-report-account-{world.account.id}-20260301-20260401.json"'
    )
    document = response.json()
    assert schema_errors(document) == []
    report = document["report"]
    verify_report_signature(report)
    assert [e["session_id"] for e in report["sessions"]] == sorted(s.id for s in world.inside)
    record = ReportRecord.objects.get(id=report["id"])
    assert (record.scope, record.session_id, record.agent_id, record.format) == ("account", None, None, "json")
    assert (record.window_from, record.window_to) == (FROM, TO)
    assert (record.merkle_root_hex, record.tree_size) == (report["merkle_root_hex"], report["summary"]["total_events"])


def test_each_call_is_a_new_report(world):
    client = world.client()
    first = client.get(agent_url(world.intake.id), RANGE).json()["report"]
    second = client.get(agent_url(world.intake.id), RANGE).json()["report"]
    assert first["id"] != second["id"]
    assert first["merkle_root_hex"] == second["merkle_root_hex"]


def test_agent_report_over_the_api_with_a_token(world):
    token, secret = ApiToken.issue(account=world.account, scopes=["reports:read"])
    response = Client().get(agent_url(world.triage.id), RANGE, HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 200
    report = response.json()["report"]
    assert report["scope"] == "agent"
    assert ReportRecord.objects.get(id=report["id"]).generated_by == token.id


def test_token_without_reports_scope_is_403(world):
    _, secret = ApiToken.issue(account=world.account, scopes=["events:write"])
    response = Client().get(ACCOUNT_URL, RANGE, HTTP_AUTHORIZATION=f"Bearer {secret}")
    _error(response, 403, "forbidden")


def test_period_reports_without_login_are_401(world):
    _error(Client().get(ACCOUNT_URL), 401, "unauthenticated")
    _error(Client().get(agent_url(world.intake.id)), 401, "unauthenticated")


def test_another_accounts_agent_is_404(world):
    response = world.client().get(agent_url(world.other_agent.id), RANGE)
    assert _error(response, 404, "agent_not_found")["message"] == "No such agent."
    response = world.client().get(agent_url("agt_nonsense"), RANGE)
    _error(response, 404, "agent_not_found")
    assert not ReportRecord.objects.exists()


def test_account_report_never_shows_another_accounts_sessions(world):
    report = world.client(world.other).get(ACCOUNT_URL, RANGE).json()["report"]
    assert [e["session_id"] for e in report["sessions"]] == [world.other_session.id]
    assert report["cover"]["account"]["id"] == world.other.id


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2026-03-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"},
        {"from": "2026-01-01T00:00:00Z", "to": "2027-01-03T00:00:00Z"},
        {"from": "2026-03-02T00:00:00Z", "to": "2026-03-01T00:00:00Z"},
        {"from": "not-a-time"},
        {**RANGE, "agent": "x"},
    ],
)
def test_bad_windows_and_parameters_are_400(world, params):
    for url in (ACCOUNT_URL, agent_url(world.intake.id)):
        _error(world.client().get(url, params), 400, "validation_failed")
    assert not ReportRecord.objects.exists()


def test_bad_format_is_400(world):
    _error(world.client().get(ACCOUNT_URL, {**RANGE, "format": "xml"}), 400, "invalid_format")


def test_window_too_large_is_422(world, settings):
    settings.MASKER_SYNC_REPORT_MAX_EVENTS = 20
    body = _error(world.client().get(ACCOUNT_URL, RANGE), 422, "window_too_large")
    assert body["details"]["max_events"] == 20
    assert "report run" in body["message"]
    assert not ReportRecord.objects.exists()


def test_tampered_session_still_gets_a_report_over_the_api(world):
    _tamper(world.inside[4], 0)
    response = world.client().get(agent_url(world.triage.id), RANGE)
    assert response.status_code == 200
    report = response.json()["report"]
    assert report["summary"]["verdict"] == "integrity_failed"
    broken = [e for e in report["sessions"] if e["integrity"] == "broken"]
    assert [(e["session_id"], e["broken_seq"]) for e in broken] == [(world.inside[4].id, 0)]


# --- the PDF --------------------------------------------------------------------------------------------------------


def test_pdf_carries_the_root_on_every_page_and_the_jsons_figures(world):
    response = world.client().get(ACCOUNT_URL, {**RANGE, "format": "pdf"})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    pdf = response.content
    attached = pdf_attachments(pdf)
    (name,) = attached
    report = json.loads(attached[name])["report"]
    assert schema_errors({"report": report}) == []
    verify_report_signature(report)
    pages = len(pdf_reader(pdf).pages)
    assert pages >= 2
    for page in range(1, pages + 1):
        text = pdf_text(pdf, page=page)
        assert report["merkle_root_hex"] in text
        assert report["id"] in text
        assert f"Page {page} of {pages}" in text
    text = pdf_text(pdf)
    assert "Account compliance report" in text
    assert "2026-03-01T00:00:00.000Z (inclusive)" in text
    summary = report["summary"]
    for figure in ("total_sessions", "total_events", "total_redactions", "alert_count"):
        assert str(summary[figure]) in text
    for row in report["cover"]["agents"]:
        assert row["name"] in text
    for entry in report["sessions"]:
        assert entry["session_id"] in text
    assert ReportRecord.objects.get(id=report["id"]).format == "pdf"


def test_pdf_session_appendix_is_capped(world, monkeypatch):
    report = _report(world)
    many = [dict(report.sessions[0], session_id=f"sess_{i:026d}") for i in range(PDF_SESSION_LIMIT + 5)]
    big = type(report)(**{**report.__dict__, "sections": {**report.sections, "sessions": many}})
    text = pdf_text(render_period_pdf(big))
    assert f"The first {PDF_SESSION_LIMIT} of {PDF_SESSION_LIMIT + 5} sessions" in text
    assert f"sess_{PDF_SESSION_LIMIT - 1:026d}" in text
    assert f"sess_{PDF_SESSION_LIMIT:026d}" not in text


def test_json_rendering_is_the_pdf_attachment(world):
    report = _report(world, world.intake)
    assert pdf_attachments(render_period_pdf(report)) == {
        f"masker-report-agent-{world.intake.id}-20260301-20260401.json": render_period_json(report)
    }


def test_report_id_format(world):
    import re

    assert re.fullmatch(REPORT_ID, _report(world).id)
