"""The period-report cast: Acme Health with three agents and sessions in and out of a March window, edges
included; Globex Clinic with one agent and one session."""

from datetime import UTC, datetime, timedelta

from django.db import connection
from django.test import Client

from audit.models import Agent, AuditEvent, Policy
from audit.timestamps import format_ts
from audit.writing import append_events, end_session, start_session
from masker.models import Account, Membership
from reports.period import Window
from tests.conftest import POLICY_YAML, _member, append_only_guard_lifted

FROM = datetime(2026, 3, 1, tzinfo=UTC)
TO = datetime(2026, 4, 1, tzinfo=UTC)
WINDOW = Window(FROM, TO)
NOW = datetime(2026, 4, 2, 12, 0, tzinfo=UTC)
POLICY_V4 = POLICY_YAML.replace("version: 3", "version: 4").replace("IP_ADDRESS: {enabled: true, action: redact}", "")


def _events(start: datetime, n: int, *, alerts: bool) -> list[dict]:
    out = []
    for i in range(n):
        ts, turn = format_ts(start + timedelta(seconds=1 + i)), i // 3
        if i % 3 == 0:
            out.append(
                {
                    "ts": ts,
                    "kind": "phi.redacted",
                    "turn": turn,
                    "pass": "ner" if i % 2 else "regex",
                    "entity_kind": "NAME" if i % 2 else "PHONE",
                    "span": [0, 5],
                    "action": "tokenize",
                    "token_kind": "MSKV1",
                    "kid": "K",
                }
            )
        elif i % 3 == 1:
            baa = not (alerts and i == 4)
            vendor, days = ("openai", 0) if baa else ("cheapllm", 30)
            out.append(
                {
                    "ts": ts,
                    "kind": "egress.forwarded",
                    "turn": turn,
                    "hop": "llm",
                    "vendor": vendor,
                    "baa": baa,
                    "retention_days": days,
                }
            )
        elif alerts and i == 5:
            out.append({"ts": ts, "kind": "leak.detected", "turn": turn, "entity_kind": "PHONE", "stage": "egress"})
        else:
            out.append({"ts": ts, "kind": "phi.rehydrated", "turn": turn, "entity_kind": "NAME", "token_kind": "MSKV1"})
    return out


def _call(agent: Agent, ref: str, start: datetime, n: int = 9, *, alerts: bool = False, end: bool = True):
    session, _ = start_session(agent, external_ref=ref, started_at=start)
    append_events(session, _events(start, n, alerts=alerts), now=start + timedelta(minutes=1))
    if end:
        end_session(session, status="ok", now=start + timedelta(minutes=2))
    session.refresh_from_db()
    return session


class World:
    """Acme Health with three agents and sessions in and out of the window (edges included); Globex with one."""

    def __init__(self) -> None:
        self.account = Account.objects.create(name="Acme Health")
        _member("alice@acme.test", self.account)
        v3 = Policy.objects.create(account=self.account, name="healthcare-default", version=3, yaml_text=POLICY_YAML)
        v4 = Policy.objects.create(account=self.account, name="healthcare-default", version=4, yaml_text=POLICY_V4)
        self.intake = Agent.objects.create(
            account=self.account, name="Intake", platform="vapi", upstream_model="m1", policy=v3
        )
        self.billing = Agent.objects.create(
            account=self.account, name="Billing", platform="retell", upstream_model="m2", policy=v3
        )
        self.triage = Agent.objects.create(
            account=self.account, name="Triage", platform="vapi", upstream_model="m3", policy=v4
        )
        self.inside = [
            _call(self.intake, "at-from", FROM),  # exactly at `from`: in
            _call(self.intake, "mid-1", FROM + timedelta(days=3), alerts=True),
            _call(self.billing, "mid-2", FROM + timedelta(days=10), 12),
            _call(self.billing, "open", FROM + timedelta(days=11), 6, end=False),
            _call(self.triage, "mid-3", FROM + timedelta(days=20), alerts=True),
            _call(self.triage, "last-ms", TO - timedelta(milliseconds=1), 3),
        ]
        self.outside = [
            _call(self.intake, "before", FROM - timedelta(milliseconds=1)),
            _call(self.billing, "at-to", TO),  # exactly at `to`: out
            _call(self.triage, "later", TO + timedelta(days=2)),
        ]
        self.other = Account.objects.create(name="Globex Clinic")
        _member("bob@globex.test", self.other)
        policy = Policy.objects.create(account=self.other, name="healthcare-default", version=3, yaml_text=POLICY_YAML)
        self.other_agent = Agent.objects.create(
            account=self.other, name="Front desk", platform="vapi", upstream_model="m", policy=policy
        )
        self.other_session = _call(self.other_agent, "globex-1", FROM + timedelta(days=1))

    def client(self, account: Account | None = None) -> Client:
        client = Client()
        client.force_login(Membership.objects.filter(account=account or self.account).first().user)
        return client


def _tamper(session, seq: int) -> None:
    """Change one stored event's bytes behind the lifted guards (what someone with database access could do)."""
    event = AuditEvent.objects.get(session=session, seq=seq)
    altered = event.canonical.replace('"turn":', '"turn": ', 1) if seq else event.canonical.replace("vapi", "vapX")
    with append_only_guard_lifted(), connection.cursor() as cursor:
        cursor.execute(f"UPDATE {AuditEvent._meta.db_table} SET canonical = %s WHERE id = %s", [altered, event.id])


ACCOUNT_URL = "/api/v1/reports"
RANGE = {"from": "2026-03-01T00:00:00Z", "to": "2026-04-01T00:00:00Z"}
