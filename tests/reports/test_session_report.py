"""build_session_report: every figure from the verified bytes, one pass, a fixed number of queries."""

import dataclasses
import hashlib
import itertools
import json
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.exceptions import InvalidSignature
from django.db import connection, transaction

from audit import walk, writing
from audit.errors import AuditChainBroken
from audit.events import event_alert
from audit.models import AuditEvent, Session
from audit.timestamps import format_ts
from audit.walk import ChainSummary, iter_canonical_chunks, verify_session
from audit.writing import append_events, end_session, start_session
from reports.session_report import build_session_report, sign_report
from reports.values import LIST_LIMIT, AuditIntegrity
from tests.conftest import T0, append_only_guard_lifted
from tests.reports.report_support import many_events, schema_errors, verify_report_signature

GENERATED_AT = datetime(2026, 11, 28, 9, 30, 15, 123456, tzinfo=UTC)


def report_of(session: Session) -> dict:
    session = Session.objects.select_related("agent", "account").get(pk=session.pk)
    return sign_report(build_session_report(session, generated_at=GENERATED_AT)).as_json()


def by_ref(seeded, ref: str) -> Session:
    return next(s for s in seeded.sessions + seeded.other_sessions if s.external_ref == ref)


def test_every_seeded_report_matches_an_independent_recount(seeded):
    for session in seeded.sessions + seeded.other_sessions:
        report = report_of(session)
        chain = verify_session(session)
        assert schema_errors({"report": report}) == []
        assert report["merkle_root_hex"] == chain.merkle_root_hex == session.merkle_root_hex
        integrity = report["audit_integrity"]
        assert (integrity["tree_size"], integrity["chain_head_hex"]) == (chain.tree_size, chain.chain_head_hex)
        assert (integrity["first_seq"], integrity["last_seq"]) == (0, chain.tree_size - 1)
        events = list(AuditEvent.objects.filter(session=session).order_by("seq"))
        assert report["summary"]["total_events"] == len(events)
        assert report["summary"]["total_redactions"] == sum(e.kind == "phi.redacted" for e in events)
        kinds = {}
        for e in events:
            if e.kind == "phi.redacted":
                kinds[e.entity_kind] = kinds.get(e.entity_kind, 0) + 1
        assert report["redactions_by_kind"] == kinds
        alerts = [event_alert(e.kind, json.loads(e.canonical)) for e in events]
        assert report["summary"]["alert_count"] == sum(a is not None for a in alerts) == session.alert_count
        assert sum(report["summary"]["alerts_by_type"].values()) == report["summary"]["alert_count"]


def test_a_long_log_walked_in_two_processes_gives_the_same_report(seeded, monkeypatch):
    """From ``PIPELINE_MIN_EVENTS`` on, a second process checks and tallies: forced here for every seeded session,
    over chunks of 2 events, the report is the one the in-process walk builds."""
    in_process = {session.id: report_of(session) for session in seeded.sessions + seeded.other_sessions}
    monkeypatch.setattr(walk, "PIPELINE_MIN_EVENTS", 0)
    monkeypatch.setattr(walk, "CHUNK_EVENTS", 2)
    for session in seeded.sessions + seeded.other_sessions:
        report = report_of(session)
        expected = in_process[session.id]
        assert {k: v for k, v in report.items() if k not in ("id", "signature")} == {
            k: v for k, v in expected.items() if k not in ("id", "signature")
        }


def test_report_keys_are_in_spec_order(seeded):
    assert list(report_of(seeded.session("call-intake-0001"))) == [
        "schema",
        "id",
        "scope",
        "session_id",
        "generated_at",
        "merkle_root_hex",
        "cover",
        "summary",
        "safe_harbor_coverage",
        "safe_harbor",
        "pci_dss",
        "leak_detection",
        "retention_attestation",
        "baa_chain",
        "redactions_by_kind",
        "redactions_by_pass",
        "audit_integrity",
        "policy_snapshot",
        "policy",
        "upstream_model",
        "verification",
        "timeline",
        "signature",
    ]


def test_intake_call_report(seeded):
    session = by_ref(seeded, "call-intake-0001")
    report = report_of(session)
    assert report["schema"] == "masker.audit.v1"
    assert report["scope"] == "session"
    assert report["id"].startswith("rep_")
    assert report["generated_at"] == "2026-11-28T09:30:15.123Z"
    assert report["cover"] == {
        "account": {"id": seeded.account.id, "name": "Acme Health"},
        "agent": {
            "id": session.agent_id,
            "name": "Intake line",
            "platform": "vapi",
            "upstream_model": "openai:gpt-4o-mini",
        },
        "session": {
            "id": session.id,
            "external_ref": "call-intake-0001",
            "status": "ok",
            "started_at": "2026-11-20T14:00:00.000Z",
            "ended_at": "2026-11-20T14:00:41.500Z",
            "duration_ms": 41500,
        },
        "time_window": {"from": "2026-11-20T14:00:00.000Z", "to": "2026-11-20T14:00:41.500Z"},
    }
    assert report["redactions_by_kind"] == {"DOB": 2, "MRN": 2, "NAME": 2, "PHONE": 1}
    assert report["redactions_by_pass"] == {"regex": 4, "ner": 3}
    assert report["summary"]["redactions_by_action"] == {"tokenize": 7, "redact": 0, "passthrough": 0}
    assert report["summary"]["coverage_percent"] == 96.9
    assert report["summary"]["verdict"] == "no_alerts"
    assert report["leak_detection"]["rehydrations"] == 2
    assert report["baa_chain"]["hops"] == [
        {
            "hop": "llm",
            "vendor": "openai",
            "baa": True,
            "retention_days": 0,
            "count": 2,
            "first_turn": 1,
            "first_seq": 3,
        },
        {
            "hop": "tts",
            "vendor": "elevenlabs",
            "baa": True,
            "retention_days": 0,
            "count": 1,
            "first_turn": 3,
            "first_seq": 12,
        },
    ]
    assert report["baa_chain"]["all_baa"] is True
    assert report["policy"] == {"name": "healthcare-default", "version": 3, "sha256": session.policy_sha256}
    assert report["policy_snapshot"] == session.policy_snapshot
    assert report["upstream_model"] == "openai:gpt-4o-mini"
    assert report["audit_integrity"]["seal"] == {
        "status": "sealed",
        "sealed_at": "2026-11-20T14:00:41.500Z",
        "tree_size": 14,
        "merkle_root_hex": session.merkle_root_hex,
        "chain_head_hex": session.chain_head,
        "signature": session.seal["signature"],
        "signature_kid": session.seal["signature"]["kid"],
        "matches_log": True,
    }
    assert report["verification"]["urls"] == {
        "keys": "/api/v1/keys",
        "events": f"/api/v1/sessions/{session.id}/events",
        "inclusion_proof": f"/api/v1/sessions/{session.id}/events/{{seq}}/proof",
    }


def test_payment_call_pci_section(seeded):
    pci = report_of(by_ref(seeded, "call-payment-0002"))["pci_dss"]
    assert pci == {
        "card_data_detected": True,
        "detections": 1,
        "luhn_checked": True,
        "luhn_valid": 1,
        "masked_before_egress": 1,
        "all_masked_before_egress": True,
        "policy_masks_card_numbers": True,
        "outcome": "all_masked",
        "alert_count": 0,
        "alerts": [],
    }


def test_rehydration_call_leak_section(seeded):
    report = report_of(by_ref(seeded, "call-rehydration-0003"))
    assert report["leak_detection"] == {
        "rehydrations": 0,
        "rehydration_failure_count": 1,
        "rehydration_failures": [
            {
                "seq": 3,
                "turn": 1,
                "ts": "2026-11-20T16:00:03.900Z",
                "entity_kind": "PHONE",
                "reason": "token_not_returned",
            }
        ],
        "residual_leak_count": 1,
        "residual_leaks": [
            {"seq": 4, "turn": 1, "ts": "2026-11-20T16:00:04.000Z", "entity_kind": "PHONE", "stage": "response"}
        ],
        "detection_degraded_count": 1,
        "detection_degraded": [{"seq": 5, "turn": 2, "ts": "2026-11-20T16:00:06.000Z", "reason": "ner_timeout"}],
        "outcome": "alerts_present",
    }
    assert report["summary"]["alerts_by_type"] == {
        "rehydration_failed": 1,
        "leak_detected": 1,
        "non_baa_egress": 0,
        "card_not_masked": 0,
        "detection_degraded": 1,
    }
    assert report["cover"]["session"]["status"] == "partial"


def test_non_baa_hop_is_an_alert(seeded):
    report = report_of(by_ref(seeded, "call-vendor-0004"))
    baa = report["baa_chain"]
    assert baa["all_baa"] is False
    assert baa["alert_count"] == 1
    assert baa["alerts"] == [
        {
            "seq": 3,
            "turn": 1,
            "ts": "2026-11-20T17:00:02.100Z",
            "hop": "llm",
            "vendor": "acme-llm-beta",
            "retention_days": 30,
        }
    ]
    assert [h["vendor"] for h in baa["hops"]] == ["deepgram", "acme-llm-beta"]
    assert report["summary"]["alerts_by_type"]["non_baa_egress"] == 1
    assert report["retention_attestation"]["max_vendor_retention_days"] == 30


@pytest.mark.parametrize("chunk", [1, 4, 1024])
def test_egress_hops_and_alerts_match_an_event_by_event_recount(agent, monkeypatch, chunk):
    # The tally sees the log a chunk at a time: interleaved hops, repeats within and across chunks, and non-BAA
    # hops must come out as a plain walk over the events says.
    monkeypatch.setattr(walk, "CHUNK_EVENTS", chunk)
    session, _ = start_session(agent, external_ref="call-egress", started_at=T0)
    vendors = [
        ("llm", "openai", True, 0),
        ("stt", "deepgram", True, 0),
        ("llm", "beta", False, 30),
        ("tts", "elevenlabs", True, 7),
        ("llm", "beta", False, 90),
    ]
    events = []
    for i in range(37):
        hop, vendor, baa, days = vendors[(i * i + i // 3) % len(vendors)]
        events.append(
            {
                "ts": format_ts(T0),
                "kind": "egress.forwarded",
                "turn": i // 2,
                "hop": hop,
                "vendor": vendor,
                "baa": baa,
                "retention_days": days,
            }
        )
        if i % 5 == 0:
            events.append(
                {
                    "ts": format_ts(T0),
                    "kind": "phi.rehydrated",
                    "turn": i // 2,
                    "entity_kind": "NAME",
                    "token_kind": "MSKV1",
                }
            )
    append_events(session, events)
    hops, alerts = {}, []
    for row in AuditEvent.objects.filter(session=session, kind="egress.forwarded").order_by("seq"):
        e = json.loads(row.canonical)
        key = (e["hop"], e["vendor"], e["baa"], e["retention_days"])
        hops.setdefault(key, {"count": 0, "first_turn": e["turn"], "first_seq": e["seq"]})["count"] += 1
        if not e["baa"]:
            alerts.append(
                {
                    "seq": e["seq"],
                    "turn": e["turn"],
                    "ts": e["ts"],
                    "hop": e["hop"],
                    "vendor": e["vendor"],
                    "retention_days": e["retention_days"],
                }
            )
    report = report_of(session)
    baa = report["baa_chain"]
    assert baa["hops"] == [
        {"hop": h, "vendor": v, "baa": b, "retention_days": d, **figures} for (h, v, b, d), figures in hops.items()
    ]
    assert len(hops) == len(vendors) and len(alerts) > 2
    assert (baa["alert_count"], baa["alerts"]) == (len(alerts), alerts)
    assert report["summary"]["alerts_by_type"]["non_baa_egress"] == len(alerts)


def test_globex_call_retention_and_audio_policy(seeded):
    report = report_of(seeded.session("globex-call-0001"))
    assert report["retention_attestation"] == {
        "policy_logs_payloads": True,
        "retention_days": 30,
        "payloads_persisted": 1,
        "payloads_by_what": {"request": 0, "masked": 1, "response": 0},
        "originals_persisted": False,
        "all_payloads_encrypted": True,
        "consistent_with_policy": True,
        "max_vendor_retention_days": 0,
        "statement": report["retention_attestation"]["statement"],
    }
    assert report["safe_harbor_coverage"]["P_biometric"] == "none"  # audio, retained and forwarded by default
    assert report["safe_harbor_coverage"]["C_dates"] == "none"  # DOB is passthrough
    assert report["safe_harbor"]["applicable_categories"] == 17
    assert report["summary"]["coverage_percent"] == report["safe_harbor"]["coverage_percent"] == 11.8


def test_empty_and_live_calls(seeded):
    empty = report_of(by_ref(seeded, "call-empty-0005"))
    assert empty["summary"]["total_events"] == 2
    assert empty["redactions_by_kind"] == {} and empty["redactions_by_pass"] == {}
    assert empty["retention_attestation"]["max_vendor_retention_days"] is None
    live = report_of(by_ref(seeded, "call-live-0006"))
    assert live["cover"]["session"] | {"id": None} == {
        "id": None,
        "external_ref": "call-live-0006",
        "status": "active",
        "started_at": "2026-11-20T19:00:00.000Z",
        "ended_at": None,
        "duration_ms": None,
    }
    assert live["audit_integrity"]["seal"]["status"] == "open"
    assert schema_errors({"report": live}) == []


def test_report_is_signed_over_its_rfc8785_bytes(seeded):
    report = report_of(seeded.session("call-intake-0001"))
    verify_report_signature(report)
    with pytest.raises(InvalidSignature):
        verify_report_signature(report | {"summary": report["summary"] | {"total_redactions": 0}})


def test_report_value_is_immutable_and_time_is_an_argument(seeded):
    session = Session.objects.select_related("agent", "account").get(pk=seeded.session("call-intake-0001").pk)
    report = build_session_report(session, generated_at=GENERATED_AT)
    assert report.generated_at == GENERATED_AT and report.signature is None
    assert "signature" not in report.as_json()
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.merkle_root_hex = "0" * 64
    with pytest.raises(ValueError, match="timezone-aware"):
        build_session_report(session, generated_at=datetime(2026, 1, 1))


def test_two_queries_for_the_walk_whatever_the_size(agent, django_assert_num_queries):
    # The prefix roots the register recorded for the session, then the log itself.
    for batches in (1, 3):
        session, _ = start_session(agent, external_ref=f"call-{batches}", started_at=T0)
        for _ in range(batches):
            append_events(session, many_events(1000))
        session = Session.objects.select_related("agent", "account").get(pk=session.pk)
        with django_assert_num_queries(2):
            report = build_session_report(session, generated_at=GENERATED_AT)
        assert report.summary.total_events == 1 + 1000 * batches


def test_alert_lists_are_capped_and_counted(agent):
    session, _ = start_session(agent, external_ref="call-leaky", started_at=T0)
    leak = {"ts": format_ts(T0), "kind": "leak.detected", "turn": 1, "entity_kind": "NAME", "stage": "egress"}
    append_events(session, [leak] * 1000)
    append_events(session, [leak] * 5)
    leaks = report_of(session)["leak_detection"]
    assert leaks["residual_leak_count"] == 1005
    assert len(leaks["residual_leaks"]) == LIST_LIMIT == 1000
    assert leaks["residual_leaks"][0]["seq"] == 1


def test_report_covers_the_size_the_session_recorded_while_a_call_goes_on(agent):
    session, _ = start_session(agent, external_ref="call-live", started_at=T0)
    append_events(session, many_events(10))
    snapshot = Session.objects.select_related("agent", "account").get(pk=session.pk)
    append_events(session, many_events(7))  # appended after the row was read
    report = build_session_report(snapshot, generated_at=GENERATED_AT)
    assert report.tree_size == 11
    assert report.merkle_root_hex == snapshot.merkle_root_hex


def _tamper(sql: str, params: list) -> None:
    with append_only_guard_lifted(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def _broken(session: Session) -> AuditChainBroken:
    session = Session.objects.select_related("agent", "account").get(pk=session.pk)
    with pytest.raises(AuditChainBroken) as caught:
        build_session_report(session, generated_at=GENERATED_AT)
    return caught.value


def test_changed_event_bytes_break_at_that_seq(agent):
    session, _ = start_session(agent, external_ref="call-1", started_at=T0)
    append_events(session, many_events(8))
    _tamper(
        "UPDATE audit_auditevent SET canonical = REPLACE(canonical, 'PHONE', 'EMAIL') "
        "WHERE session_id = %s AND seq = 2",
        [session.id],
    )
    broken = _broken(session)
    assert (broken.seq, broken.reason) == (2, "event bytes do not match the stored event hash")


def test_missing_event_is_a_gap(agent):
    session, _ = start_session(agent, external_ref="call-1", started_at=T0)
    append_events(session, many_events(8))
    _tamper("DELETE FROM audit_auditevent WHERE session_id = %s AND seq = 4", [session.id])
    broken = _broken(session)
    assert (broken.seq, broken.reason) == (4, "event missing (gap in seq)")


def test_rewritten_last_event_with_its_hash_is_caught_at_the_head(agent):
    session, _ = start_session(agent, external_ref="call-1", started_at=T0)
    append_events(session, many_events(3))
    last = AuditEvent.objects.get(session=session, seq=3)
    forged = last.canonical.replace('"PHONE"', '"EMAIL"')
    assert forged != last.canonical
    forged_hash = hashlib.sha256(b"\x00" + forged.encode()).hexdigest()
    _tamper("UPDATE audit_auditevent SET canonical = %s, event_hash = %s WHERE id = %s", [forged, forged_hash, last.id])
    broken = _broken(session)
    assert (broken.seq, broken.reason) == (3, "the last event does not match the session's recorded chain head")


def test_sealed_session_must_match_its_seal(agent):
    session, _ = start_session(agent, external_ref="call-1", started_at=T0)
    append_events(session, many_events(3))
    end_session(session, status="ok", now=T0 + timedelta(minutes=1))
    seal = dict(session.seal, merkle_root_hex="0" * 64)
    with append_only_guard_lifted():  # the database refuses to change a sealed row
        Session.objects.filter(pk=session.pk).update(seal=seal)
    broken = _broken(session)
    assert (broken.seq, broken.reason) == ("seal", "the log does not match the session's signed seal")


def test_policy_snapshot_must_be_the_one_the_log_committed_to(agent):
    session, _ = start_session(agent, external_ref="call-1", started_at=T0)
    Session.objects.filter(pk=session.pk).update(policy_snapshot=session.policy_snapshot + "# edited\n")
    broken = _broken(session)
    assert (broken.seq, broken.reason) == (0, "the session's policy snapshot does not match the policy hash in the log")


@pytest.mark.parametrize(
    ("index", "change"),
    [
        (1, lambda event: event.pop("action")),  # a redaction without a field it is counted by
        (0, lambda event: event.update(action=3)),  # ... with one of the wrong type
        (3, lambda event: event.pop("vendor")),  # an egress hop without its vendor
        (3, lambda event: event.update(baa="yes")),
        (4, lambda event: event.pop("stage")),  # a leak without its stage
    ],
)
@pytest.mark.parametrize("pipeline_min_events", [0, walk.PIPELINE_MIN_EVENTS])
def test_a_chained_event_that_is_not_a_valid_v1_event_breaks_the_report(
    agent, monkeypatch, index, change, pipeline_min_events
):
    # Written past validation (as a bug, or a chain rewritten together with its head, would): the links hold, but
    # the report cannot count the event, so there is no report.
    monkeypatch.setattr(walk, "CHUNK_EVENTS", 3)
    monkeypatch.setattr(walk, "PIPELINE_MIN_EVENTS", pipeline_min_events)
    session, _ = start_session(agent, external_ref="call-1", started_at=T0)
    events = many_events(8)
    change(events[index])
    with transaction.atomic():
        writing._append_locked(writing._lock(session.pk), events)
    session.refresh_from_db()
    broken = _broken(session)
    assert (broken.seq, broken.reason) == (index + 1, "event is not a valid v1 event of its kind")
    with pytest.raises(AuditChainBroken) as caught:  # the one walk: verifying alone finds the same break
        verify_session(session)
    assert (caught.value.seq, caught.value.reason) == (broken.seq, broken.reason)


def test_walk_reads_back_the_exact_stored_bytes_even_with_escapes(agent):
    # Backslashes, control characters and non-ASCII text come back byte for byte (no escaping or re-encoding on
    # the way). Such bytes never come from append_events (validated fields), so they are planted directly.
    session, _ = start_session(agent, external_ref="call-1", started_at=T0)
    odd = [
        '{"a":"back\\\\slash \\"quoted\\" \\u00e9 tab\\t"}',
        '{"b":"\\\\\\\\n not a newline","c":"\x7f raw \t and \n","d":"Zoë 患者 \x1e"}',
    ]
    for offset, canonical in enumerate(odd, start=1):
        AuditEvent.objects.create(
            id=f"evt_{offset:026d}",
            session_id=session.id,
            seq=offset,
            kind="x",
            ts=T0,
            canonical=canonical,
            event_hash="0" * 64,
            prev_hash=str(offset) * 64,
        )
    stored = list(AuditEvent.objects.filter(session=session).order_by("seq").values_list("canonical", flat=True))
    assert [row for chunk in iter_canonical_chunks(session, size=3) for row in chunk] == [t.encode() for t in stored]


def test_timeline_counts_redactions_egress_and_alerts_per_turn(seeded):
    assert report_of(by_ref(seeded, "call-intake-0001"))["timeline"] == {
        "first_turn": 1,
        "last_turn": 3,
        "bucket_size": 1,
        "buckets": [
            {"from_turn": 1, "to_turn": 1, "redactions": 2, "egress": 1, "alerts": 0},
            {"from_turn": 2, "to_turn": 2, "redactions": 3, "egress": 1, "alerts": 0},
            {"from_turn": 3, "to_turn": 3, "redactions": 2, "egress": 1, "alerts": 0},
        ],
    }
    leak = report_of(by_ref(seeded, "call-rehydration-0003"))["timeline"]
    assert [(b["from_turn"], b["redactions"], b["egress"], b["alerts"]) for b in leak["buckets"]] == [
        (1, 1, 1, 2),
        (2, 0, 0, 1),
    ]
    assert report_of(by_ref(seeded, "call-empty-0005"))["timeline"] == {
        "first_turn": None,
        "last_turn": None,
        "bucket_size": 1,
        "buckets": [],
    }


@pytest.mark.parametrize(("chunk", "pipelined"), [(1, False), (7, True), (1024, False), (1024, True)])
def test_timeline_of_a_long_call_is_bucketed_and_sums_to_the_totals(agent, monkeypatch, chunk, pipelined):
    # The tally runs in the walk's checking process when the walk is pipelined: the histogram must travel there.
    monkeypatch.setattr(walk, "CHUNK_EVENTS", chunk)
    if pipelined:
        monkeypatch.setattr(walk, "PIPELINE_MIN_EVENTS", 0)
    session, _ = start_session(agent, external_ref="call-long", started_at=T0)
    events = []
    for turn in range(3, 903, 2):  # turns 3..901, every other one
        events.append(
            {
                "ts": format_ts(T0),
                "kind": "phi.redacted",
                "turn": turn,
                "pass": "regex",
                "entity_kind": "PHONE",
                "span": [0, 4],
                "action": "tokenize",
                "token_kind": "MSKV1",
                "kid": "K",
            }
        )
        if turn % 10 == 3:
            events.append(
                {
                    "ts": format_ts(T0),
                    "kind": "egress.forwarded",
                    "turn": turn,
                    "hop": "llm",
                    "vendor": "beta",
                    "baa": False,
                    "retention_days": 1,
                }
            )
    append_events(session, events)
    report = report_of(session)
    timeline = report["timeline"]
    buckets = timeline["buckets"]
    # 899 turns do not fit 200 buckets of 1, 2 or 4 turns; buckets of 8 turns hold them in 114.
    assert timeline["bucket_size"] == 8
    assert (timeline["first_turn"], timeline["last_turn"]) == (3, 901)
    assert len(buckets) == 901 // 8 - 3 // 8 + 1 <= 200
    assert buckets[0]["from_turn"] == 3 and buckets[-1]["to_turn"] == 901
    assert all(b["to_turn"] + 1 == n["from_turn"] for b, n in itertools.pairwise(buckets))
    assert sum(b["redactions"] for b in buckets) == report["summary"]["total_redactions"] == 450
    assert sum(b["egress"] for b in buckets) == report["baa_chain"]["egress_count"] == 90
    assert sum(b["alerts"] for b in buckets) == report["summary"]["alert_count"] == 90
    assert schema_errors({"report": report}) == []


def test_integrity_verdict_and_seal_are_what_the_walk_found(agent):
    session, _ = start_session(agent, external_ref="call-verdict", started_at=T0)
    append_events(session, many_events(4))
    opened = report_of(session)["audit_integrity"]
    assert (opened["chain_verified"], opened["seal"]["status"], opened["seal"]["matches_log"]) == (True, "open", None)
    end_session(session, status="ok")
    summary = verify_session(session)
    assert summary.verified and summary.seal == session.seal
    sealed = report_of(session)["audit_integrity"]
    assert (sealed["chain_verified"], sealed["seal"]["matches_log"]) == (True, True)
    assert sealed["seal"]["signature"] == session.seal["signature"]
    # a summary no walk finished claims nothing
    unverified = AuditIntegrity(chain=ChainSummary(5, "00" * 32, "00" * 32), seal=None).as_json()
    assert unverified["chain_verified"] is False
