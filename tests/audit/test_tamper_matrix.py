"""The tamper matrix: what an attacker with database access can do to a session's log, and that every walker --
the report endpoint, ``manage.py verify_chain``, the admin's verify action and the offline verifier on a report
issued before the tampering plus a fresh export -- catches each, the server's three naming the same place (the
offline verifier names lines of the export, so its verdict is compared as caught or not)."""

import json
from collections.abc import Callable
from datetime import timedelta
from io import StringIO

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.urls import reverse

from audit import walk
from audit.canonical import canonical_bytes
from audit.merkle import MerkleAccumulator, leaf_hash
from audit.models import AuditEvent, Session
from audit.signing import ALG, b64url, key_id
from audit.timestamps import format_ts
from audit.writing import append_events, end_session, start_session
from masker.models import Membership
from reports.session_report import build_session_report, sign_report
from tests.conftest import T0, append_only_guard_lifted
from tests.verifier.support import download, run_verifier

pytestmark = pytest.mark.tampers

ALERT_FREE = {"kind": "detection.degraded", "turn": 1, "reason": "ner_timeout"}


def _events(count: int, *, start=T0) -> list[dict]:
    """``count`` client events: leaks (alerts) and hops, a second apart."""
    events = []
    for i in range(count):
        ts = format_ts(start + timedelta(seconds=i + 1))
        if i % 2:
            events.append({"ts": ts, "kind": "leak.detected", "turn": i, "entity_kind": "NAME", "stage": "egress"})
        else:
            events.append(
                {
                    "ts": ts,
                    "kind": "egress.forwarded",
                    "turn": i,
                    "hop": "llm",
                    "vendor": "openai",
                    "baa": True,
                    "retention_days": 0,
                }
            )
    return events


def _stored(session: Session) -> list[dict]:
    rows = AuditEvent.objects.filter(session=session).order_by("seq").values_list("canonical", flat=True)
    return [json.loads(row) for row in rows]


def _sql(sql: str, params=()) -> None:
    with append_only_guard_lifted(), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def rewrite_log(session: Session, events: list[dict], *, seal: Callable[[dict], dict | None] | None = None) -> None:
    """Replace the session's whole log with ``events`` (dicts), re-chained as the service would chain them, and
    fix its row to match (size, head, frontier); ``seal(signed_fields)`` gives the row's new seal, if any."""
    accumulator, prev, rows = MerkleAccumulator(), "0" * 64, []
    for seq, event in enumerate(events):
        event = {**event, "seq": seq, "session_id": session.id, "prev_hash": prev}
        event.pop("event_hash", None)
        raw = canonical_bytes(event)
        digest = leaf_hash(raw)
        accumulator.append(digest)
        rows.append((event["id"], seq, event["kind"], raw.decode(), digest.hex(), prev))
        prev = digest.hex()
    fields = {
        "session_id": session.id,
        "tree_size": len(events),
        "merkle_root_hex": accumulator.root().hex(),
        "chain_head_hex": prev,
        "sealed_at": (session.seal or {}).get("sealed_at"),
    }
    new_seal = seal(fields) if seal else session.seal
    with append_only_guard_lifted(), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE session_id = %s", [session.id])
        for event_id, seq, kind, raw, event_hash, prev_hash in rows:
            cursor.execute(
                "INSERT INTO audit_auditevent (id, session_id, seq, kind, ts, turn, entity_kind, canonical, "
                "event_hash, prev_hash) VALUES (%s, %s, %s, %s, %s, NULL, '', %s, %s, %s)",
                [event_id, session.id, seq, kind, T0, raw, event_hash, prev_hash],
            )
    with append_only_guard_lifted():
        Session.objects.filter(pk=session.pk).update(
            tree_size=len(events), chain_head=prev, merkle_frontier=accumulator.frontier_hex(), seal=new_seal
        )


def _harmless(event: dict) -> dict:
    """The same event (id, time) as one that raises no alert."""
    return {"v": event["v"], "id": event["id"], "ts": event["ts"], **ALERT_FREE}


def _keep_signature(session: Session) -> Callable[[dict], dict]:
    """The attacker recomputes the seal's figures but cannot sign them: the old signature stays."""
    return lambda fields: {**fields, "signature": session.seal["signature"]}


def _rogue_signature(fields: dict) -> dict:
    rogue = Ed25519PrivateKey.generate()
    sig = rogue.sign(canonical_bytes(fields))
    return {**fields, "signature": {"alg": ALG, "kid": key_id(rogue.public_key()), "sig": b64url(sig)}}


# --- the attacks: each tampers with ``session`` (sealed unless it says otherwise) ------------------------------------


def byte_flip(session, **_):
    _sql(
        "UPDATE audit_auditevent SET canonical = replace(canonical, 'openai', 'openaj') "
        "WHERE session_id = %s AND seq = 3",
        [session.id],
    )


def bytes_and_stored_hash(session, **_):
    event = _stored(session)[3]
    event["vendor"] = "openaj"
    raw = canonical_bytes(event)
    _sql(
        "UPDATE audit_auditevent SET canonical = %s, event_hash = %s WHERE session_id = %s AND seq = 3",
        [raw.decode(), leaf_hash(raw).hex(), session.id],
    )


def middle_event_deleted(session, **_):
    _sql("DELETE FROM audit_auditevent WHERE session_id = %s AND seq = 4", [session.id])


def last_event_deleted(session, **_):
    _sql("DELETE FROM audit_auditevent WHERE session_id = %s AND seq = %s", [session.id, session.tree_size - 1])


def two_events_swapped(session, **_):
    rows = {
        seq: (c, h)
        for seq, c, h in AuditEvent.objects.filter(session=session, seq__in=[4, 5]).values_list(
            "seq", "canonical", "event_hash"
        )
    }
    with append_only_guard_lifted(), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditevent SET seq = 999 WHERE session_id = %s AND seq = 4", [session.id])
        cursor.execute("UPDATE audit_auditevent SET seq = 4 WHERE session_id = %s AND seq = 5", [session.id])
        cursor.execute("UPDATE audit_auditevent SET seq = 5 WHERE session_id = %s AND seq = 999", [session.id])
    assert rows  # the swap moved rows that existed


def rechained_suffix_old_signature(session, **_):
    events = _stored(session)
    events[4:-1] = [_harmless(event) for event in events[4:-1]]  # the alerts from seq 4 on disappear
    rewrite_log(session, events, seal=_keep_signature(session))


def seal_signed_by_unknown_key(session, **_):
    rewrite_log(session, _stored(session), seal=_rogue_signature)


def event_after_session_ended(session, **_):
    extra = {**ALERT_FREE, "v": 1, "id": "evt_01M8Q0000000000000000000ZZ", "ts": format_ts(T0 + timedelta(minutes=9))}
    rewrite_log(session, [*_stored(session), extra])


def unsealed_through_its_row_then_appended(session, **_):
    # The database refuses to unseal the row...
    with pytest.raises(DatabaseError, match="guarded"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE audit_session SET sealed_at = NULL, seal = NULL, status = 'active' WHERE id = %s", [session.id]
        )
    # ... so the attacker drops the guard, unseals, and goes on through the normal write path, which seals again.
    with append_only_guard_lifted():
        Session.objects.filter(pk=session.pk).update(sealed_at=None, seal=None, status="active", ended_at=None)
    session.refresh_from_db()
    append_events(session, [{**ALERT_FREE, "ts": format_ts(T0 + timedelta(minutes=8))}], now=T0 + timedelta(minutes=8))
    end_session(session, status="ok", now=T0 + timedelta(minutes=9))


def open_session_rewritten_after_a_report(session, *, client, **_):
    assert client.get(reverse("reports:session-report", args=[session.id])).status_code == 200
    events = _stored(session)
    events[-1] = _harmless(events[-1])
    rewrite_log(session, events)


def wrong_first_event(session, **_):
    events = _stored(session)
    events[0]["agent_id"] = "agt_01M8Q00000000000000000000Z"
    rewrite_log(session, events)


ATTACKS = {
    # attack: (the session stays open?, the seq or "seal" every server walker must name)
    byte_flip: (False, 3),
    bytes_and_stored_hash: (False, 4),
    middle_event_deleted: (False, 4),
    last_event_deleted: (False, 10),
    two_events_swapped: (False, 4),
    rechained_suffix_old_signature: (False, "seal"),
    seal_signed_by_unknown_key: (False, "seal"),
    event_after_session_ended: (False, 11),
    unsealed_through_its_row_then_appended: (False, 11),
    open_session_rewritten_after_a_report: (True, 9),
    wrong_first_event: (False, 0),
}


@pytest.fixture
def user_client(acme):
    user = get_user_model().objects.create_user(username="auditor@acme.test", email="auditor@acme.test")
    Membership.objects.create(user=user, account=acme, role="viewer")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def staff_client():
    staff = get_user_model().objects.create_superuser(
        username="ops@masker.test", email="ops@masker.test", password="pw-ops"
    )
    client = Client()
    client.force_login(staff)
    return client


def _verdict_of_report(client, session) -> object:
    response = client.get(reverse("reports:session-report", args=[session.id]))
    assert response.status_code == 409, response.content[:300]
    error = response.json()["error"]
    assert error["code"] == "audit_chain_broken"
    return error["details"]["seq"]


def _verdict_of_command(session) -> object:
    with pytest.raises(CommandError) as caught:
        call_command("verify_chain", session.id, stdout=StringIO())
    message = str(caught.value)
    assert "BROKEN" in message
    where = message.split("BROKEN at ", 1)[1].split(":", 1)[0]
    return int(where.removeprefix("seq ")) if where.startswith("seq ") else where


def _verdict_of_admin(staff_client, session) -> object:
    response = staff_client.post(
        reverse("admin:audit_session_changelist"),
        {"action": "verify_chains", "_selected_action": [session.pk]},
        follow=True,
    )
    (message,) = [str(m) for m in response.context["messages"]]
    assert message.startswith(f"{session.id}: The audit chain does not verify"), message
    where = message.split("does not verify ", 1)[1].split(":", 1)[0]
    return int(where.removeprefix("at seq ")) if where.startswith("at seq ") else where.removeprefix("at the ")


def _verdict_of_offline_verifier(client, session, held_report: dict, directory) -> str:
    """The offline verifier on the report issued before the attack, with the log and keys downloaded after it.
    Where the attack replaced the session's seal, the report is shown with that seal, as whoever replaced it would
    present it (no report with it can come from the service, which refuses to walk such a log)."""
    seal = held_report["audit_integrity"]["seal"]
    if session.seal and session.seal["signature"] != seal["signature"]:
        replaced = {
            name: session.seal[name]
            for name in ("sealed_at", "tree_size", "merkle_root_hex", "chain_head_hex", "signature")
        }
        held_report = {
            **held_report,
            "audit_integrity": {
                **held_report["audit_integrity"],
                "seal": {**seal, **replaced, "signature_kid": replaced["signature"]["kid"]},
            },
        }
    report = directory / "held-report.json"
    report.write_text(json.dumps({"report": held_report}))
    events = directory / "events.ndjson"
    events.write_bytes(download(client, reverse("audit:session-events", args=[session.id])))
    keys = directory / "keys.json"
    keys.write_bytes(download(Client(), "/api/v1/keys"))
    code, out = run_verifier("report", report, "--events", events, "--keys", keys)
    assert out.rstrip().splitlines()[-1].startswith("NOT VERIFIED"), out
    return "caught" if code == 1 else f"exit {code}"


@pytest.mark.parametrize("pipelined", [False, True], ids=["in-process", "pipelined"])
@pytest.mark.parametrize("attack", list(ATTACKS), ids=lambda attack: attack.__name__)
def test_every_walker_catches_the_attack_at_the_same_place(
    attack, pipelined, agent, user_client, staff_client, tmp_path, monkeypatch
):
    if pipelined:  # every walk of the server in two processes, over chunks of 3 events: the path of a long log
        monkeypatch.setattr(walk, "PIPELINE_MIN_EVENTS", 0)
        monkeypatch.setattr(walk, "CHUNK_EVENTS", 3)
    stays_open, expected = ATTACKS[attack]
    session, _ = start_session(agent, external_ref=f"call-{attack.__name__}", started_at=T0)
    append_events(session, _events(9), now=T0)
    if not stays_open:
        end_session(session, status="ok", now=T0 + timedelta(minutes=5))
    session = Session.objects.select_related("agent", "account").get(pk=session.pk)
    # The auditor's copy of a report from before the attack. Not through the API, which would record it in the
    # register: each attack then meets the check meant for it rather than the register's prefix roots (the open
    # session's attack issues its report through the API on purpose).
    held_report = sign_report(build_session_report(session, generated_at=T0 + timedelta(minutes=6))).as_json()

    attack(session, client=user_client)
    session = Session.objects.get(pk=session.pk)

    verdicts = {
        "report": _verdict_of_report(user_client, session),
        "verify_chain": _verdict_of_command(session),
        "admin": _verdict_of_admin(staff_client, session),
    }
    assert verdicts == dict.fromkeys(verdicts, expected)
    assert _verdict_of_offline_verifier(user_client, session, held_report, tmp_path) == "caught"


def test_the_held_report_verifies_offline_before_any_attack(agent, user_client, tmp_path):
    # The offline leg above fails for the attack, not for the way the report and the log are handed to it.
    session, _ = start_session(agent, external_ref="call-untouched", started_at=T0)
    append_events(session, _events(9), now=T0)
    end_session(session, status="ok", now=T0 + timedelta(minutes=5))
    session = Session.objects.select_related("agent", "account").get(pk=session.pk)
    held_report = sign_report(build_session_report(session, generated_at=T0 + timedelta(minutes=6))).as_json()
    report = tmp_path / "held-report.json"
    report.write_text(json.dumps({"report": held_report}))
    events = tmp_path / "events.ndjson"
    events.write_bytes(download(user_client, reverse("audit:session-events", args=[session.id])))
    keys = tmp_path / "keys.json"
    keys.write_bytes(download(Client(), "/api/v1/keys"))
    code, out = run_verifier("report", report, "--events", events, "--keys", keys)
    assert code == 0, out
