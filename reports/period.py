"""Period reports: an agent's (scope ``agent``) or an account's (scope ``account``) calls over a time window, every
event of every session re-verified, summed into the eleven sections of a session report.

``build_period_report(account, *, agent, window, generated_at)`` is the one entry point (API views, console,
``manage.py report``, ``bench/period.py``). It reads the window's sessions (session-id order) and their recorded
anchors in a fixed number of queries, then walks all their events in one pass (``audit.walk.walk_sessions``):
each session with exactly the checks and the tally of a session report (``ChainWalker``, ``reports.tally.Tally``),
folded here (``PeriodFold``) as the walk passes it, so memory holds one chunk of events, the capped alert lists and
one small entry per session, whatever the number of events.

A session whose chain does not verify is listed with ``integrity: "broken"`` and its first failing seq; it counts
as an alert (``integrity_broken``), its figures are left out (nothing unverified is counted), and the verdict
fails; the report is still issued. Its entry carries its recorded ``tree_size`` and ``merkle_root_hex`` null: no
verified root exists for it.

The period root (``merkle_root_hex``): leaf i is the RFC 8785 bytes of ``{merkle_root_hex, session_id, tree_size}``
of the i-th session, leaf hash SHA-256(0x00 || bytes), RFC 6962 tree (``verifier.period``, which the offline
verifier runs too); an empty window's root is SHA-256("").
"""

import logging
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.db.models.functions import SHA256

from audit.errors import AuditChainBroken
from audit.events import ACTIONS, ALERT_TYPES, PASSES, PAYLOAD_KINDS
from audit.merkle import MerkleAccumulator
from audit.models import Agent, Session
from audit.signing import sign_object
from audit.timestamps import format_ts
from audit.walk import ChainSummary, SessionClaims, pinpoint_break, recorded_anchors, walk_sessions
from masker.errors import ApiError, ValidationFailed
from masker.ids import new_id
from masker.models import Account
from reports.models import ReportRecord
from reports.safe_harbor import CATEGORIES, STATEMENT, safe_harbor_matrix
from reports.tally import Capped, Tally, parsed_policy, sorted_counts
from reports.values import (
    CANONICALIZATION,
    HASH_SCHEME,
    KEYS_URL,
    LIMITATIONS,
    LIST_LIMIT,
    RETENTION_STATEMENT,
    SCHEMA,
    Item,
    Signature,
)
from verifier.period import period_leaf_hash

logger = logging.getLogger("masker.reports")

SCOPES = ("agent", "account")
PERIOD_ALERT_TYPES = (*ALERT_TYPES, "integrity_broken")
DEFAULT_DAYS = 30
MAX_DAYS = 366
DEFAULT_MAX_EVENTS = 2_000_000
# The worst status first: a category's period status is the worst over the policy versions seen.
_STATUS_RANK = {"none": 0, "partial": 1, "full": 2, "not_applicable": 3}


class WindowTooLarge(ApiError):
    status, code, message = 422, "window_too_large", "The window holds too many events for a synchronous report."


# --- the window -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """``[start, end)``: a session is in the window when its ``started_at`` is."""

    start: datetime
    end: datetime

    @property
    def from_text(self) -> str:
        return format_ts(self.start)

    @property
    def to_text(self) -> str:
        return format_ts(self.end)


_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")
FIRST_YEAR, LAST_YEAR = 1970, 9998  # beyond these a window is a typo, and event times have four-digit years


def _parse_moment(name: str, value: str) -> datetime:
    moment = None
    if _RFC3339.fullmatch(value):
        try:  # fromisoformat takes at most 6 fractional digits; RFC 3339 allows more
            moment = datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", value.upper()))
        except ValueError:  # e.g. February 30th
            moment = None
    if moment is None:
        raise ValidationFailed(
            f"'{name}' must be an RFC 3339 date-time with a time zone, e.g. 2026-05-01T00:00:00Z.",
            details={name: "not an RFC 3339 date-time"},
        )
    try:  # RFC 3339 admits offsets up to 23:59; PostgreSQL's time zones stop at 15:59: compare and query in UTC
        moment = moment.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 pushed past the calendar by its offset
        moment = None
    if moment is None or not FIRST_YEAR <= moment.year <= LAST_YEAR:
        raise ValidationFailed(
            f"'{name}' must lie between the years {FIRST_YEAR} and {LAST_YEAR}.",
            details={name: "out of range"},
        )
    return moment


def parse_window(start: str | None, end: str | None, *, now: datetime) -> Window:
    """The window of ``from``/``to`` (RFC 3339; either may be None): ``to`` defaults to ``now``, ``from`` to 30
    days before ``to``. ``to`` must be after ``from``, at most 366 days later; else 400 ``validation_failed``."""
    end_at = _parse_moment("to", end) if end is not None else now  # an empty value is given, and invalid
    start_at = _parse_moment("from", start) if start is not None else end_at - timedelta(days=DEFAULT_DAYS)
    if end_at <= start_at:
        raise ValidationFailed("'to' must be after 'from'.", details={"to": "not after 'from'"})
    if end_at - start_at > timedelta(days=MAX_DAYS):
        raise ValidationFailed(
            f"The window may span at most {MAX_DAYS} days.", details={"to": f"more than {MAX_DAYS} days after 'from'"}
        )
    return Window(start=start_at, end=end_at)


# --- the fold -------------------------------------------------------------------------------------------------------


@dataclass
class PeriodFold:
    """Sums every verified session's tally into the period's figures and folds the period root, session by session
    in the walk's order (``audit.walk.SessionFold``). Picklable and small: O(sessions) entries of a few fields,
    capped alert lists, O(distinct vendors, kinds, agents and policy versions) counters."""

    alerts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PERIOD_ALERT_TYPES, 0))
    rehydration_failures: Capped = field(default_factory=Capped)
    leaks: Capped = field(default_factory=Capped)
    degraded: Capped = field(default_factory=Capped)
    card_alerts: Capped = field(default_factory=Capped)
    baa_alerts: Capped = field(default_factory=Capped)
    cards: int = 0
    cards_luhn_valid: int = 0
    cards_masked: int = 0
    hops: dict[tuple[str, str, bool, int], list[int]] = field(default_factory=dict)  # key -> [count, sessions]
    payloads: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PAYLOAD_KINDS, 0))
    payloads_unencrypted: int = 0
    redactions: Counter = field(default_factory=Counter)  # (entity, pass, action) -> count
    rehydrations: int = 0
    total_events: int = 0
    # policy sha256 -> [name, version, sessions, payloads persisted, upstream models]
    policies: dict[str, list] = field(default_factory=dict)
    agents: dict[str, list[int]] = field(default_factory=dict)  # agent id -> [sessions, events, alerts, broken]
    # one per session: (session_id, tree_size, merkle_root_hex | None, status | None, alerts, broken seq, reason)
    entries: list[tuple] = field(default_factory=list)
    root: MerkleAccumulator = field(default_factory=MerkleAccumulator)

    def new_tally(self) -> Tally:
        return Tally()

    def add(
        self, claims: SessionClaims, summary: ChainSummary | None, broken: AuditChainBroken | None, tally: Tally
    ) -> None:
        agent = self.agents.setdefault(claims.agent_id, [0, 0, 0, 0])
        agent[0] += 1
        if summary is None:
            self.alerts["integrity_broken"] += 1
            agent[2] += 1
            agent[3] += 1
            self.entries.append((claims.session_id, claims.tree_size, None, None, 1, broken.seq, broken.reason))
            self.root.append(period_leaf_hash(claims.session_id, claims.tree_size, None))
            return
        tally.count_census(summary.census)
        session_id = claims.session_id
        alerts = sum(tally.alerts.values())
        for kind, count in tally.alerts.items():
            self.alerts[kind] += count
        self.rehydration_failures.extend(tally.rehydration_failures, session_id)
        self.leaks.extend(tally.leaks, session_id)
        self.degraded.extend(tally.degraded, session_id)
        self.card_alerts.extend(tally.card_alerts, session_id)
        self.baa_alerts.extend(tally.baa_alerts, session_id)
        self.cards += tally.cards
        self.cards_luhn_valid += tally.cards_luhn_valid
        self.cards_masked += tally.cards_masked
        for key, count in tally.hop_counts.items():
            hop = self.hops.setdefault(key, [0, 0])
            hop[0] += count
            hop[1] += 1
        persisted = 0
        for what, count in tally.payloads.items():
            self.payloads[what] += count
            persisted += count
        self.payloads_unencrypted += tally.payloads_unencrypted
        self.redactions.update(tally.redactions)
        self.rehydrations += tally.rehydrations
        self.total_events += summary.tree_size
        started = tally.started
        policy = self.policies.get(claims.policy_sha256)
        if policy is None:
            policy = self.policies[claims.policy_sha256] = [
                started["policy"]["name"],
                started["policy"]["version"],
                0,
                0,
                set(),
            ]
        policy[2] += 1
        policy[3] += persisted
        policy[4].add(started["upstream_model"])
        agent[1] += summary.tree_size
        agent[2] += alerts
        status = tally.ended["status"] if tally.ended else "active"
        self.entries.append((session_id, summary.tree_size, summary.merkle_root_hex, status, alerts, None, None))
        self.root.append(period_leaf_hash(session_id, summary.tree_size, summary.merkle_root_hex))

    # --- partial folds: a report run walks its window in chunks (``reports.runs``), each on its own worker --------

    def to_json(self) -> dict[str, Any]:
        """The fold as JSON-ready values (never pickle: the database that keeps a chunk's partial figures is not
        trusted to hold code). The period root is left out: ``from_json`` and ``merge`` recompute it from the
        entries' period leaves."""
        return {
            "alerts": self.alerts,
            **{name: _capped_json(getattr(self, name)) for name in _CAPPED},
            "cards": [self.cards, self.cards_luhn_valid, self.cards_masked],
            "hops": [[list(key), value] for key, value in self.hops.items()],
            "payloads": self.payloads,
            "payloads_unencrypted": self.payloads_unencrypted,
            "redactions": [[list(key), count] for key, count in self.redactions.items()],
            "rehydrations": self.rehydrations,
            "total_events": self.total_events,
            "policies": {sha: [*row[:4], sorted(row[4])] for sha, row in self.policies.items()},
            "agents": self.agents,
            "entries": [list(entry) for entry in self.entries],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "PeriodFold":
        """The fold ``to_json`` wrote, its root recomputed from its entries."""
        return cls.merge([data])

    @classmethod
    def merge(cls, parts: list[dict[str, Any]]) -> "PeriodFold":
        """One fold from the ``to_json`` of folds over consecutive runs of sessions, given in session-id order: the
        fold a single walk over all of them would have made. Counters add up (in first-seen order, as one walk
        inserts them), capped lists keep their first ``LIST_LIMIT`` items in session order with every count, the
        entries are concatenated and the period root is folded over their leaves."""
        fold = cls()
        for part in parts:
            for kind, count in part["alerts"].items():
                fold.alerts[kind] = fold.alerts.get(kind, 0) + count
            for name in _CAPPED:
                _merge_capped(getattr(fold, name), part[name])
            cards, luhn_valid, masked = part["cards"]
            fold.cards += cards
            fold.cards_luhn_valid += luhn_valid
            fold.cards_masked += masked
            for key, (count, sessions) in part["hops"]:
                hop = fold.hops.setdefault(tuple(key), [0, 0])
                hop[0] += count
                hop[1] += sessions
            for what, count in part["payloads"].items():
                fold.payloads[what] = fold.payloads.get(what, 0) + count
            fold.payloads_unencrypted += part["payloads_unencrypted"]
            fold.redactions.update({tuple(key): count for key, count in part["redactions"]})
            fold.rehydrations += part["rehydrations"]
            fold.total_events += part["total_events"]
            for sha, (name, version, sessions, persisted, models) in part["policies"].items():
                policy = fold.policies.setdefault(sha, [name, version, 0, 0, set()])
                policy[2] += sessions
                policy[3] += persisted
                policy[4].update(models)
            for agent_id, row in part["agents"].items():
                into = fold.agents.setdefault(agent_id, [0, 0, 0, 0])
                for i, value in enumerate(row):
                    into[i] += value
            for entry in part["entries"]:
                session_id, size, root = entry[0], entry[1], entry[2]
                fold.entries.append(tuple(entry))
                fold.root.append(period_leaf_hash(session_id, size, root))
        return fold


_CAPPED = ("rehydration_failures", "leaks", "degraded", "card_alerts", "baa_alerts")


def _capped_json(capped: Capped) -> dict[str, Any]:
    return {
        "count": capped.count,
        "items": [
            [item.session_id, item.seq, item.turn, item.ts, [list(f) for f in item.fields]] for item in capped.items
        ],
    }


def _merge_capped(into: Capped, data: dict[str, Any]) -> None:
    into.count += data["count"]
    room = LIST_LIMIT - len(into.items)
    for session_id, seq, turn, ts, fields in data["items"][: max(room, 0)]:
        into.items.append(
            Item(seq=seq, turn=turn, ts=ts, fields=tuple(tuple(f) for f in fields), session_id=session_id)
        )


# --- the value ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PeriodReport:
    """A period report: its identity, and its sections as JSON-ready values computed once from the fold.
    ``as_json()`` is the ``"report"`` object of Masker Audit Schema v1 with ``scope`` ``agent`` or ``account``."""

    id: str
    scope: str
    account_id: str
    agent_id: str | None
    window: Window
    generated_at: datetime
    merkle_root_hex: str
    total_events: int
    sections: dict[str, Any]
    signature: Signature | None = None

    @property
    def generated_at_text(self) -> str:
        return format_ts(self.generated_at)

    @property
    def sessions(self) -> list[dict[str, Any]]:
        return self.sections["sessions"]

    @property
    def verdict(self) -> str:
        return self.sections["summary"]["verdict"]

    def as_json(self) -> dict[str, Any]:
        body = {
            "schema": SCHEMA,
            "id": self.id,
            "scope": self.scope,
            "session_id": None,
            "generated_at": self.generated_at_text,
            "merkle_root_hex": self.merkle_root_hex,
            **self.sections,
        }
        if self.signature is not None:
            body["signature"] = self.signature.as_json()
        return body


def sign_period_report(report: PeriodReport) -> PeriodReport:
    """The same report with ``signature``: Ed25519 over the RFC 8785 bytes of ``as_json()`` without it."""
    unsigned = replace(report, signature=None).as_json()
    return replace(report, signature=Signature(**sign_object(unsigned)))


def render_period_json(report: PeriodReport) -> bytes:
    """``{"report": ...}``, indented, UTF-8, newline-terminated (orjson: a window's session list is long)."""
    return orjson.dumps({"report": report.as_json()}, option=orjson.OPT_INDENT_2) + b"\n"


def period_filename(report: PeriodReport, extension: str) -> str:
    subject = report.agent_id if report.scope == "agent" else report.account_id
    return f"masker-report-{report.scope}-{subject}-{report.window.start:%Y%m%d}-{report.window.end:%Y%m%d}.{extension}"


def record_period_report(
    report: PeriodReport, *, report_format: str, generated_by: str, run_id: str | None = None, files: list | None = None
) -> ReportRecord:
    """Add an issued period report to the append-only register: scope, agent, window, period root, events; for a
    report run, the run and its stored files' names, sizes and SHA-256."""
    return ReportRecord.objects.create(
        run_id=run_id,
        files=files or [],
        id=report.id,
        account_id=report.account_id,
        scope=report.scope,
        session=None,
        agent_id=report.agent_id,
        window_from=report.window.start,
        window_to=report.window.end,
        format=report_format,
        merkle_root_hex=report.merkle_root_hex,
        tree_size=report.total_events,
        signature_kid=report.signature.kid if report.signature else "",
        generated_by=generated_by,
        generated_at=report.generated_at,
    )


# --- building -------------------------------------------------------------------------------------------------------


def max_sync_events() -> int:
    return int(getattr(settings, "MASKER_SYNC_REPORT_MAX_EVENTS", DEFAULT_MAX_EVENTS))


_ROW_FIELDS = ("id", "agent_id", "external_ref", "started_at", "status", "tree_size", "chain_head", "seal", "sealed_at")


class TextSHA256(SHA256):
    """SHA-256 of a text column's UTF-8 bytes, in hex, computed by the database: PostgreSQL's built-in ``sha256``
    (Django's own ``SHA256`` needs the pgcrypto extension there); SQLite through Django's Python function."""

    def as_postgresql(self, compiler, connection, **extra):
        template = "ENCODE(SHA256(CONVERT_TO(%(expressions)s, 'UTF8')), 'hex')"
        return self.as_sql(compiler, connection, template=template, **extra)


def window_sessions(account: Account, *, agent: Agent | None, window: Window):
    """The window's sessions (of the account, or of one agent), in session-id order, with the SHA-256 of each
    one's policy snapshot computed by the database (``snapshot_sha256``) rather than every snapshot fetched."""
    sessions = Session.objects.visible_to(account).filter(started_at__gte=window.start, started_at__lt=window.end)
    if agent is not None:
        sessions = sessions.filter(agent=agent)
    return sessions.order_by("id").only(*_ROW_FIELDS).annotate(snapshot_sha256=TextSHA256("policy_snapshot"))


def build_period_report(
    account: Account,
    *,
    agent: Agent | None = None,
    window: Window,
    generated_at: datetime,
    max_events: int | None = None,
) -> PeriodReport:
    """Walk and verify every session of the window (of ``agent``, else of the whole ``account``) and build the
    period report (unsigned; see ``sign_period_report``). Raises ``WindowTooLarge`` (422) when the sessions'
    recorded sizes add up to more than ``max_events`` (default ``MASKER_SYNC_REPORT_MAX_EVENTS``), before walking.

    Queries: the sessions, the agents, the anchors (one per anchor source), the walk (one statement on PostgreSQL),
    and one per broken session to name the altered event."""
    if generated_at.tzinfo is None:
        raise ValueError("generated_at must be timezone-aware")
    if agent is not None and agent.account_id != account.id:
        raise ValueError("the agent is not the account's")
    sessions = list(window_sessions(account, agent=agent, window=window))
    limit = max_sync_events() if max_events is None else max_events
    claimed = sum(session.tree_size for session in sessions)
    if claimed > limit:
        raise WindowTooLarge(
            f"The window holds {claimed} events, more than the {limit} a synchronous report covers; "
            "narrow the window or start a report run (POST /api/v1/report-runs).",
            details={"events": claimed, "max_events": limit, "report_runs": "/api/v1/report-runs"},
        )
    return _report_of(account, agent, window, generated_at, sessions, fold_sessions(sessions))


def fold_sessions(sessions: list) -> PeriodFold:
    """Walk and verify ``sessions`` (rows of ``window_sessions``, in its order) in one pass into a ``PeriodFold``:
    the whole window for a synchronous report, one chunk of it for a report run."""
    anchors = recorded_anchors([session.id for session in sessions]) if sessions else {}
    claims = [
        SessionClaims.of(session, anchors.get(session.id, ()), snapshot_sha256=session.snapshot_sha256)
        for session in sessions
    ]
    return walk_sessions(claims, PeriodFold())


def report_from_fold(
    account: Account,
    *,
    agent: Agent | None,
    window: Window,
    generated_at: datetime,
    session_ids: list[str],
    fold: PeriodFold,
) -> PeriodReport:
    """The period report of a fold made elsewhere (a report run's merged chunks) over ``session_ids`` (session-id
    order, the fold's entries' order): the same sections as ``build_period_report``'s, from the same code."""
    sessions = list(window_sessions(account, agent=agent, window=window).filter(id__in=session_ids))
    return _report_of(account, agent, window, generated_at, sessions, fold)


def _report_of(
    account: Account,
    agent: Agent | None,
    window: Window,
    generated_at: datetime,
    sessions: list[Session],
    fold: PeriodFold,
) -> PeriodReport:
    entries, broken = _session_entries(sessions, fold)
    policies = _policy_versions(sessions, fold)
    alert_count = sum(fold.alerts.values())
    broken_count = fold.alerts["integrity_broken"]
    verdict = "integrity_failed" if broken_count else ("alerts_present" if alert_count else "no_alerts")
    redactions_by_action, by_kind, by_pass = _redaction_sums(fold)
    hops = [
        {"hop": hop, "vendor": vendor, "baa": baa, "retention_days": days, "count": count, "sessions": used}
        for (hop, vendor, baa, days), (count, used) in sorted(fold.hops.items(), key=lambda kv: kv[0][:2])
    ]
    scope = "agent" if agent is not None else "account"
    sections = {
        "cover": {
            "account": {"id": account.id, "name": account.name},
            "agent": None if agent is None else _agent_json(agent),
            "time_window": {"from": window.from_text, "to": window.to_text},
            "agents": _agent_rows(fold, agent),
        },
        "summary": {
            "total_sessions": len(entries),
            "total_events": fold.total_events,
            "total_redactions": sum(fold.redactions.values()),
            "coverage_percent": policies.coverage_percent,
            "alert_count": alert_count,
            "alerts_by_type": dict(fold.alerts),
            "redactions_by_action": redactions_by_action,
            "sessions_verified": len(entries) - broken_count,
            "sessions_broken": broken_count,
            "verdict": verdict,
        },
        "safe_harbor_coverage": policies.coverage,
        "safe_harbor": {
            "basis": "policy_snapshot",
            "stamped_at": format_ts(generated_at),
            "statement": STATEMENT,
            "policy_versions": [
                {k: v for k, v in version.items() if k != "policy_snapshot"} for version in policies.versions
            ],
        },
        "pci_dss": _pci_dss(fold, policies.masks_cards if policies.versions else None),
        "leak_detection": _leak_detection(fold),
        "retention_attestation": _retention(fold, policies, hops),
        "baa_chain": {
            "egress_count": sum(h["count"] for h in hops),
            "all_baa": all(h["baa"] for h in hops),
            "hops": hops,
            "alert_count": fold.baa_alerts.count,
            "alerts": _items(fold.baa_alerts),
        },
        "redactions_by_kind": dict(sorted_counts(by_kind)),
        "redactions_by_pass": dict(sorted_counts(by_pass, PASSES)),
        "audit_integrity": _audit_integrity(fold, entries, broken),
        "policies": [
            {"policy": v["policy"], "sessions": v["sessions"], "policy_snapshot": v["policy_snapshot"]}
            for v in policies.versions
        ],
        "verification": _verification(scope, window),
        "sessions": entries,
    }
    return PeriodReport(
        id=new_id("rep"),
        scope=scope,
        account_id=account.id,
        agent_id=agent.id if agent else None,
        window=window,
        generated_at=generated_at,
        merkle_root_hex=fold.root.root().hex(),
        total_events=fold.total_events,
        sections=sections,
    )


def _redaction_sums(fold: PeriodFold) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """The window's redactions by action (every action), by entity kind and by pass."""
    by_action = dict.fromkeys(ACTIONS, 0)
    by_kind: dict[str, int] = {}
    by_pass: dict[str, int] = {}
    for (entity, pass_, action), count in fold.redactions.items():
        by_action[action] = by_action.get(action, 0) + count
        by_kind[entity] = by_kind.get(entity, 0) + count
        by_pass[pass_] = by_pass.get(pass_, 0) + count
    return by_action, by_kind, by_pass


def _session_entries(sessions: list[Session], fold: PeriodFold) -> tuple[list[dict], list[dict]]:
    """The ``sessions`` lines (in the fold's order) and the broken ones, each broken link pinpointed and logged."""
    entries = []
    broken = []
    for session, (session_id, size, root, status, alerts, seq, reason) in zip(sessions, fold.entries, strict=True):
        entry = {
            "session_id": session_id,
            "external_ref": session.external_ref,
            "started_at": format_ts(session.started_at),
            "status": status if root is not None else session.status,
            "tree_size": size,
            "merkle_root_hex": root,
            "sealed": session.is_sealed,
            "alerts": alerts,
            "integrity": "ok" if root is not None else "broken",
        }
        if root is None:
            named = pinpoint_break(session_id, AuditChainBroken(seq, reason))
            entry["broken_seq"] = named.seq
            entry["broken_reason"] = named.reason
            broken.append({"session_id": session_id, "seq": named.seq, "reason": named.reason})
            logger.error("audit chain broken: session %s at seq %s: %s", session_id, named.seq, named.reason)
        entries.append(entry)
    return entries, broken


@dataclass(frozen=True)
class _Policies:
    """The policy versions the window's sessions ran under, and what they add up to."""

    versions: list[dict]  # one per version, each with its matrix and (for ``policies``) its snapshot
    coverage: dict[str, str] | None  # each category's weakest status across the versions
    coverage_percent: float | None
    masks_cards: bool
    logs_payloads: bool
    retention_days: int | None
    consistent: bool  # no version that logs no payloads saw a payload persisted


def _policy_versions(sessions: list[Session], fold: PeriodFold) -> _Policies:
    # One snapshot per policy version seen (the fold's), fetched by one session that has it.
    first_of: dict[str, str] = {}
    for session in sessions:
        first_of.setdefault(session.snapshot_sha256, session.id)
    snapshots = {
        sha: snapshot
        for sha, snapshot in Session.objects.filter(id__in=[first_of[sha] for sha in fold.policies])
        .annotate(sha=TextSHA256("policy_snapshot"))
        .values_list("sha", "policy_snapshot")
    }
    versions = []
    worst: dict[str, str] = {}
    masks_cards, logs_payloads, consistent = True, False, True
    retention_days = []
    for sha, (name, version, count, persisted, models) in sorted(fold.policies.items(), key=lambda kv: kv[1][:2]):
        doc = parsed_policy(snapshots[sha])
        matrix = safe_harbor_matrix(doc)
        for key, status in matrix.coverage.items():
            if key not in worst or _STATUS_RANK[status] < _STATUS_RANK[worst[key]]:
                worst[key] = status
        card_rule = doc.entities.get("CREDIT_CARD")
        masks_cards &= bool(card_rule and card_rule.covers)
        logs_payloads |= doc.log_payloads
        retention_days.append(doc.retention_days)
        consistent &= doc.log_payloads or persisted == 0
        versions.append(
            {
                "policy": {"name": name, "version": version, "sha256": sha},
                "sessions": count,
                "upstream_models": sorted(models),
                "coverage": dict(matrix.coverage),
                "coverage_percent": float(matrix.coverage_percent),
                "applicable_categories": matrix.applicable_categories,
                "full": matrix.count("full"),
                "partial": matrix.count("partial"),
                "none": matrix.count("none"),
                "not_applicable": matrix.count("not_applicable"),
                "media": doc.media,
                "policy_snapshot": snapshots[sha],
            }
        )
    return _Policies(
        versions=versions,
        coverage={key: worst[key] for key in CATEGORIES} if worst else None,
        coverage_percent=min((v["coverage_percent"] for v in versions), default=None),
        masks_cards=masks_cards,
        logs_payloads=logs_payloads,
        retention_days=max(retention_days, default=None),
        consistent=consistent,
    )


def _agent_rows(fold: PeriodFold, agent: Agent | None) -> list[dict]:
    """Per agent of the window: its sessions, events, alerts and broken sessions, by name."""
    agents = {a.id: a for a in Agent.objects.filter(id__in=list(fold.agents) or [agent.id if agent else ""])}
    if agent is not None:
        agents.setdefault(agent.id, agent)
    return [
        {
            "id": agent_id,
            "name": agents[agent_id].name if agent_id in agents else "",
            "sessions": row[0],
            "events": row[1],
            "alerts": row[2],
            "broken_sessions": row[3],
        }
        for agent_id, row in sorted(fold.agents.items(), key=lambda kv: (agents[kv[0]].name, kv[0]))
    ]


def _pci_dss(fold: PeriodFold, policies_mask_cards: bool | None) -> dict[str, Any]:
    detections = fold.cards
    return {
        "card_data_detected": detections > 0,
        "detections": detections,
        "luhn_checked": detections > 0,
        "luhn_valid": fold.cards_luhn_valid,
        "masked_before_egress": fold.cards_masked,
        "all_masked_before_egress": fold.cards_masked == detections if detections else None,
        "policy_masks_card_numbers": policies_mask_cards,
        "outcome": "no_card_data"
        if detections == 0
        else ("all_masked" if fold.cards_masked == detections else "card_data_exposed"),
        "alert_count": fold.card_alerts.count,
        "alerts": _items(fold.card_alerts),
    }


def _retention(fold: PeriodFold, policies: _Policies, hops: list[dict]) -> dict[str, Any]:
    persisted = sum(fold.payloads.values())
    return {
        "policy_logs_payloads": policies.logs_payloads,
        "retention_days": policies.retention_days,
        "payloads_persisted": persisted,
        "payloads_by_what": dict(fold.payloads),
        "originals_persisted": fold.payloads["request"] + fold.payloads["response"] > 0,
        "all_payloads_encrypted": fold.payloads_unencrypted == 0 if persisted else None,
        "consistent_with_policy": policies.consistent,
        "max_vendor_retention_days": max((h["retention_days"] for h in hops), default=None),
        "statement": RETENTION_STATEMENT,
    }


def _audit_integrity(fold: PeriodFold, entries: list[dict], broken: list[dict]) -> dict[str, Any]:
    broken_count = fold.alerts["integrity_broken"]
    return {
        "hash_scheme": HASH_SCHEME,
        "canonicalization": CANONICALIZATION,
        "leaf_hash": "SHA-256(0x00 || canonical event bytes)",
        "period_leaf": (
            "SHA-256(0x00 || RFC 8785 bytes of {merkle_root_hex, session_id, tree_size}) of each session, "
            "in session-id order"
        ),
        "total_events": fold.total_events,
        "sessions_verified": len(entries) - broken_count,
        "sessions_broken": broken_count,
        "sessions_sealed": sum(1 for e in entries if e["sealed"]),
        "broken": broken[:LIST_LIMIT],
        "chain_verified": broken_count == 0,
    }


def _leak_detection(fold: PeriodFold) -> dict[str, Any]:
    return {
        "rehydrations": fold.rehydrations,
        "rehydration_failure_count": fold.rehydration_failures.count,
        "rehydration_failures": _items(fold.rehydration_failures),
        "residual_leak_count": fold.leaks.count,
        "residual_leaks": _items(fold.leaks),
        "detection_degraded_count": fold.degraded.count,
        "detection_degraded": _items(fold.degraded),
        "outcome": "clean"
        if not (fold.rehydration_failures.count or fold.leaks.count or fold.degraded.count)
        else "alerts_present",
    }


def _agent_json(agent: Agent) -> dict[str, Any]:
    return {"id": agent.id, "name": agent.name, "platform": agent.platform, "upstream_model": agent.upstream_model}


def _items(capped: Capped) -> list[dict[str, Any]]:
    return [item.as_period_json() for item in capped.items]


def _verification(scope: str, window: Window) -> dict[str, Any]:
    return {
        "merkle_root": (
            "merkle_root_hex is the RFC 9162 Merkle tree hash over the sessions listed in `sessions`, in that order "
            '(session-id order): leaf i is SHA-256(0x00 || RFC 8785 bytes of {"merkle_root_hex", "session_id", '
            '"tree_size"} of the i-th session); an empty window\'s root is SHA-256 of the empty string.'
        ),
        "sessions": (
            "Each session's merkle_root_hex is the RFC 9162 root over its first tree_size events: download them "
            "(/api/v1/sessions/{session_id}/events) and recompute it as for a session report. A session listed "
            'with integrity "broken" has no verified root (null).'
        ),
        "signature": (
            f"Fetch the public keys ({KEYS_URL}) and check the Ed25519 signature over the RFC 8785 bytes of this "
            "report object without its signature field."
        ),
        "offline_verifier": (
            "python3 masker-verify.pyz period masker-report.json --events-dir exports/ --keys keys.json"
        ),
        "urls": {"keys": KEYS_URL, "events": "/api/v1/sessions/{session_id}/events"},
        "scope": (
            f"Every session of {'one agent' if scope == 'agent' else 'the account'} that started in "
            f"[{window.from_text}, {window.to_text}): every event of each re-verified and tallied, as in a session "
            "report; figures sum the sessions whose chains verified."
        ),
        "limitations": list(LIMITATIONS),
    }


__all__ = [
    "PeriodFold",
    "PeriodReport",
    "Window",
    "WindowTooLarge",
    "build_period_report",
    "parse_window",
    "record_period_report",
    "render_period_json",
    "report_from_fold",
    "sign_period_report",
]
