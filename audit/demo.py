"""Demo data: two accounts, a policy, two agents and realistic calls, built only through the append functions.

Idempotent: running it again finds what exists and adds nothing. Used by ``manage.py seed_demo`` and the tests.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import transaction

from audit.models import Agent, Policy, Session
from audit.policy import parse_policy
from audit.timestamps import format_ts
from audit.writing import append_events, end_session, start_session
from masker.models import Account, Membership

DEMO_EMAIL = "demo@masker.local"
DEMO_PASSWORD = "masker-demo-2026"  # documented demo credential
OTHER_EMAIL = "bob@globex.local"
OTHER_PASSWORD = "globex-demo-2026"

HEALTHCARE_DEFAULT = """\
name: healthcare-default
version: 3
kid: K_HEALTHCARE
tokenization: vault-deterministic
passes: [regex, ner]
media: text
entities:
  NAME:  {enabled: true, ner: true, regex: false, confidence_threshold: 0.7, action: tokenize}
  ADDRESS: {enabled: true, action: tokenize}
  ZIP: {enabled: true, action: tokenize}
  DOB:   {enabled: true, action: tokenize}
  DATE: {enabled: true, action: tokenize}
  AGE: {enabled: true, action: tokenize}
  PHONE: {enabled: true, action: tokenize}
  FAX: {enabled: true, action: tokenize}
  EMAIL: {enabled: true, action: tokenize}
  SSN: {enabled: true, action: redact}
  MRN: {enabled: true, action: tokenize}
  HEALTH_PLAN_ID: {enabled: true, action: tokenize}
  ACCOUNT: {enabled: true, action: tokenize}
  CREDIT_CARD: {enabled: true, action: redact}
  LICENSE: {enabled: true, action: tokenize}
  VIN: {enabled: true, action: tokenize}
  LICENSE_PLATE: {enabled: true, action: tokenize}
  DEVICE_ID: {enabled: true, action: tokenize}
  URL: {enabled: true, action: redact}
  IP_ADDRESS: {enabled: true, action: redact}
  OTHER_ID: {enabled: true, action: tokenize}
audit: {log_payloads: false, retention_days: 2555}
"""

CLINIC_BASIC = """\
name: clinic-basic
version: 1
kid: K_CLINIC
tokenization: reversible-aead
passes: [regex]
media: audio
entities:
  NAME: {enabled: true, action: tokenize}
  PHONE: {enabled: true, action: tokenize}
  DOB: {enabled: true, action: passthrough}
audit: {log_payloads: true, retention_days: 30}
"""

BASE_TIME = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)


@dataclass(frozen=True)
class DemoData:
    account: Account
    other_account: Account
    sessions: list[Session]
    other_sessions: list[Session]

    def session(self, external_ref: str) -> Session:
        """A demo call by the reference it was placed with (``call-intake-0001``, ``globex-call-0001``, …)."""
        return next(s for s in (*self.sessions, *self.other_sessions) if s.external_ref == external_ref)


def _user(email: str, password: str, account: Account, role: str):
    user_model = get_user_model()
    user = user_model.objects.filter(username=email).first()
    if user is None:
        user = user_model.objects.create_user(username=email, email=email, password=password)
        Membership.objects.create(user=user, account=account, role=role)
    return user


def _policy(account: Account, text: str) -> Policy:
    doc = parse_policy(text)
    policy = Policy.objects.filter(account=account, name=doc.name, version=doc.version).first()
    return policy or Policy.objects.create(account=account, name=doc.name, version=doc.version, yaml_text=text)


def _agent(account: Account, name: str, policy: Policy, platform: str, model: str) -> Agent:
    agent, _ = Agent.objects.get_or_create(
        account=account, name=name, defaults={"policy": policy, "platform": platform, "upstream_model": model}
    )
    return agent


def _at(start: datetime, seconds: float) -> str:
    return format_ts(start + timedelta(seconds=seconds))


def _redacted(start, t, turn, kind, span, *, pass_="regex", confidence=None, action="tokenize", token="MSKV1"):
    event = {
        "ts": _at(start, t),
        "kind": "phi.redacted",
        "turn": turn,
        "pass": pass_,
        "entity_kind": kind,
        "span": list(span),
        "action": action,
        "token_kind": token,
        "kid": "K_HEALTHCARE",
    }
    if confidence is not None:
        event["confidence"] = confidence
    return event


def _egress(start, t, turn, hop, vendor, baa, retention):
    return {
        "ts": _at(start, t),
        "kind": "egress.forwarded",
        "turn": turn,
        "hop": hop,
        "vendor": vendor,
        "baa": baa,
        "retention_days": retention,
    }


def _call(agent: Agent, ref: str, start: datetime, batches: list[list[dict]], *, end: tuple[str, float] | None):
    session, created = start_session(agent, external_ref=ref, started_at=start)
    if created:
        for batch in batches:
            append_events(session, batch)
        if end is not None:
            end_session(session, status=end[0], now=start + timedelta(seconds=end[1]))
    return session


def _intake_call(agent: Agent, start: datetime) -> list[list[dict]]:
    s = start
    return [
        [
            _redacted(s, 3.2, 1, "NAME", (11, 24), pass_="ner", confidence=0.94),
            _redacted(s, 3.3, 1, "DOB", (41, 51)),
            _egress(s, 3.5, 1, "llm", "openai", True, 0),
            {"ts": _at(s, 4.9), "kind": "phi.rehydrated", "turn": 1, "entity_kind": "NAME", "token_kind": "MSKV1"},
        ],
        [
            _redacted(s, 12.0, 2, "PHONE", (18, 30)),
            _redacted(s, 12.1, 2, "MRN", (52, 60)),
            _redacted(s, 12.2, 2, "NAME", (0, 9), pass_="ner", confidence=0.81),
            _egress(s, 12.4, 2, "llm", "openai", True, 0),
            {"ts": _at(s, 13.8), "kind": "phi.rehydrated", "turn": 2, "entity_kind": "PHONE", "token_kind": "MSKV1"},
        ],
        [
            _redacted(s, 25.0, 3, "MRN", (7, 15)),
            _redacted(s, 25.1, 3, "DOB", (30, 40), pass_="ner", confidence=0.88),
            _egress(s, 25.3, 3, "tts", "elevenlabs", True, 0),
        ],
    ]


@transaction.atomic
def _payment_call(t: datetime) -> list[list[dict]]:
    return [
        [
            _redacted(t, 5.0, 1, "NAME", (0, 11), pass_="ner", confidence=0.91),
            {
                "ts": _at(t, 9.0),
                "kind": "pci.card_detected",
                "turn": 2,
                "luhn_valid": True,
                "masked_before_egress": True,
                "action": "redact",
            },
            _redacted(t, 9.1, 2, "CREDIT_CARD", (14, 33), action="redact", token="REDACTED"),
            _egress(t, 9.3, 2, "llm", "anthropic", True, 0),
            _egress(t, 9.8, 2, "telephony", "twilio", True, 7),
        ]
    ]


def _rehydration_call(t: datetime) -> list[list[dict]]:
    return [
        [
            _redacted(t, 2.0, 1, "PHONE", (5, 17)),
            _egress(t, 2.2, 1, "llm", "openai", True, 0),
            {
                "ts": _at(t, 3.9),
                "kind": "phi.rehydration_failed",
                "turn": 1,
                "entity_kind": "PHONE",
                "reason": "token_not_returned",
            },
            {
                "ts": _at(t, 4.0),
                "kind": "leak.detected",
                "turn": 1,
                "entity_kind": "PHONE",
                "stage": "response",
            },
            {
                "ts": _at(t, 6.0),
                "kind": "detection.degraded",
                "turn": 2,
                "reason": "ner_timeout",
            },
        ]
    ]


def _vendor_call(t: datetime) -> list[list[dict]]:
    return [
        [
            _redacted(t, 1.5, 1, "NAME", (3, 14), pass_="ner", confidence=0.77),
            _egress(t, 1.8, 1, "stt", "deepgram", True, 0),
            _egress(t, 2.1, 1, "llm", "acme-llm-beta", False, 30),
        ]
    ]


def _live_call(t: datetime) -> list[list[dict]]:
    return [
        [
            _redacted(t, 1.0, 1, "NAME", (0, 8), pass_="ner", confidence=0.97),
        ]
    ]


def _globex_call(t: datetime) -> list[list[dict]]:
    return [
        [
            _redacted(t, 2.0, 1, "NAME", (0, 10), confidence=None),
            {"ts": _at(t, 2.5), "kind": "payload.persisted", "what": "masked", "encrypted": True},
            _egress(t, 2.8, 1, "llm", "openai", True, 0),
        ]
    ]


def seed_demo() -> DemoData:
    """Create (or find) the demo world. Safe to run any number of times."""
    acme, _ = Account.objects.get_or_create(name="Acme Health")
    globex, _ = Account.objects.get_or_create(name="Globex Clinic")
    _user(DEMO_EMAIL, DEMO_PASSWORD, acme, "admin")
    _user(OTHER_EMAIL, OTHER_PASSWORD, globex, "admin")

    policy = _policy(acme, HEALTHCARE_DEFAULT)
    intake = _agent(acme, "Intake line", policy, "vapi", "openai:gpt-4o-mini")
    billing = _agent(acme, "Billing line", policy, "retell", "anthropic:claude-sonnet")
    globex_policy = _policy(globex, CLINIC_BASIC)
    globex_agent = _agent(globex, "Front desk", globex_policy, "bolna", "openai:gpt-4o")

    t = BASE_TIME
    sessions = [
        _call(intake, "call-intake-0001", t, _intake_call(intake, t), end=("ok", 41.5)),
        _call(
            billing,
            "call-payment-0002",
            t + timedelta(hours=1),
            _payment_call(t + timedelta(hours=1)),
            end=("ok", 64.0),
        ),
        _call(
            intake,
            "call-rehydration-0003",
            t + timedelta(hours=2),
            _rehydration_call(t + timedelta(hours=2)),
            end=("partial", 20.0),
        ),
        _call(
            billing,
            "call-vendor-0004",
            t + timedelta(hours=3),
            _vendor_call(t + timedelta(hours=3)),
            end=("ok", 15.0),
        ),
        _call(intake, "call-empty-0005", t + timedelta(hours=4), [], end=("error", 2.0)),
        _call(
            intake,
            "call-live-0006",
            t + timedelta(hours=5),
            _live_call(t + timedelta(hours=5)),
            end=None,
        ),
    ]
    g = t + timedelta(hours=1, minutes=30)
    other = [
        _call(
            globex_agent,
            "globex-call-0001",
            g,
            _globex_call(g),
            end=("ok", 30.0),
        ),
    ]
    return DemoData(account=acme, other_account=globex, sessions=sessions, other_sessions=other)
