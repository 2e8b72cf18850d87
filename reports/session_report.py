"""Issuing a session compliance report: walk and verify the log, build the value, sign it, render it, record it.

``issue_session_report(session, *, report_format, actor, now)`` is the one entry point of the API view and the
bench. ``build_session_report(session, *, generated_at)`` walks the session's events once, in ``seq`` order,
streamed from the database (memory does not grow with the log): each stored canonical byte string is re-hashed and
checked against the chain (``audit.walk.walk_session``), the RFC 6962 root is computed incrementally, and every
figure is tallied from those same verified bytes -- never from the denormalised counters on ``Session``. If
anything does not verify, ``AuditChainBroken`` names the first bad seq and no report exists. The console shows
the built value; ``sign_report`` adds the Ed25519 signature over the RFC 8785 bytes of ``as_json()`` without
``signature``; ``record_report`` adds the issued report to the register.

Queries: one for the walk (plus the session's account and agent if the caller did not ``select_related`` them),
whatever the size of the log.
"""

import logging
from dataclasses import replace
from datetime import datetime

from audit.errors import AuditChainBroken
from audit.events import ACTIONS, ALERT_TYPES, PASSES, PAYLOAD_KINDS
from audit.models import Session
from audit.signing import sign_object
from audit.timestamps import format_ts
from audit.walk import ChainSummary, walk_session
from masker.ids import new_id
from reports.models import ReportRecord
from reports.rendering import render_report
from reports.safe_harbor import safe_harbor_matrix
from reports.tally import Tally, parsed_policy
from reports.values import (
    AccountRef,
    AgentRef,
    AuditIntegrity,
    BaaChain,
    BaaHop,
    Cover,
    LeakDetection,
    PciDss,
    PolicyRef,
    RetentionAttestation,
    SafeHarbor,
    Seal,
    SessionInfo,
    SessionReport,
    Signature,
    Summary,
)

logger = logging.getLogger("masker.reports")


def _walk(session: Session) -> tuple[ChainSummary, Tally]:
    """One streaming pass: verify every event and tally it. Raises ``AuditChainBroken`` at the first bad seq."""
    summary, tally = walk_session(session, Tally())
    tally.count_census(summary.census)
    return summary, tally


def _seal(chain: ChainSummary) -> Seal | None:
    """The seal the walk checked against the log and verified the signature of, or None for an open session."""
    seal = chain.seal
    if seal is None:
        return None
    return Seal(
        sealed_at=seal["sealed_at"],
        tree_size=seal["tree_size"],
        merkle_root_hex=seal["merkle_root_hex"],
        chain_head_hex=seal["chain_head_hex"],
        signature=Signature(**seal["signature"]),
        matches_log=chain.verified,
    )


def _cover(session: Session, tally: Tally) -> Cover:
    started, ended = tally.started, tally.ended
    return Cover(
        account=AccountRef(id=session.account.id, name=session.account.name),
        agent=AgentRef(
            id=started["agent_id"],
            name=session.agent.name,
            platform=started["platform"],
            upstream_model=started["upstream_model"],
        ),
        session=SessionInfo(
            id=session.id,
            external_ref=session.external_ref,
            status=ended["status"] if ended else "active",
            started_at=started["ts"],
            ended_at=ended["ts"] if ended else None,
            duration_ms=ended["duration_ms"] if ended else None,
        ),
        window_from=started["ts"],
        window_to=tally.last_ts,
    )


def _baa_chain(tally: Tally) -> BaaChain:
    return BaaChain(
        hops=tuple(
            BaaHop(
                hop=key[0],
                vendor=key[1],
                baa=key[2],
                retention_days=key[3],
                count=count,
                first_turn=turn,
                first_seq=seq,
            )
            for key, (turn, seq) in tally.hops.items()
            for count in (tally.hop_counts[key],)
        ),
        alerts=tally.baa_alerts.freeze(),
    )


def build_session_report(session: Session, *, generated_at: datetime) -> SessionReport:
    """Walk and verify ``session``'s audit log and build its report (unsigned; see ``sign_report``).

    ``generated_at`` must be an aware datetime. Raises ``AuditChainBroken`` (409) if the log does not verify, or
    if it disagrees with the session's recorded size, head, seal or policy snapshot.
    """
    if generated_at.tzinfo is None:
        raise ValueError("generated_at must be timezone-aware")
    try:
        chain, tally = _walk(session)
    except AuditChainBroken as broken:
        # Ids and the reason only (never event contents): a broken chain is an integrity incident.
        logger.error("audit chain broken: session %s at seq %s: %s", session.id, broken.seq, broken.reason)
        raise
    policy_doc = parsed_policy(session.policy_snapshot)
    matrix = safe_harbor_matrix(policy_doc)
    started = tally.started
    stamped = format_ts(generated_at)
    vendor_retention = [key[3] for key in tally.hops]
    card_rule = policy_doc.entities.get("CREDIT_CARD")
    return SessionReport(
        id=new_id("rep"),
        session_id=session.id,
        generated_at=generated_at,
        merkle_root_hex=chain.merkle_root_hex,
        cover=_cover(session, tally),
        summary=Summary(
            total_events=chain.tree_size,
            total_redactions=tally.total_redactions,
            coverage_percent=matrix.coverage_percent,
            alert_count=sum(tally.alerts.values()),
            alerts_by_type=tuple((kind, tally.alerts.get(kind, 0)) for kind in ALERT_TYPES),
            redactions_by_action=tuple((action, dict(tally.redaction_counts(2)).get(action, 0)) for action in ACTIONS),
        ),
        safe_harbor=SafeHarbor(matrix=matrix, stamped_at=stamped, media=policy_doc.media),
        pci_dss=PciDss(
            detections=tally.cards,
            luhn_valid=tally.cards_luhn_valid,
            masked_before_egress=tally.cards_masked,
            policy_masks_card_numbers=bool(card_rule and card_rule.covers),
            alerts=tally.card_alerts.freeze(),
        ),
        leak_detection=LeakDetection(
            rehydrations=tally.rehydrations,
            rehydration_failures=tally.rehydration_failures.freeze(),
            residual_leaks=tally.leaks.freeze(),
            detection_degraded=tally.degraded.freeze(),
        ),
        retention_attestation=RetentionAttestation(
            policy_logs_payloads=policy_doc.log_payloads,
            policy_retention_days=policy_doc.retention_days,
            payloads_by_what=tuple((what, tally.payloads[what]) for what in PAYLOAD_KINDS),
            payloads_unencrypted=tally.payloads_unencrypted,
            max_vendor_retention_days=max(vendor_retention) if vendor_retention else None,
        ),
        baa_chain=_baa_chain(tally),
        redactions_by_kind=tally.redaction_counts(0),
        redactions_by_pass=tally.redaction_counts(1, PASSES),
        audit_integrity=AuditIntegrity(chain=chain, seal=_seal(chain)),
        policy_snapshot=session.policy_snapshot,
        policy=PolicyRef(
            name=started["policy"]["name"], version=started["policy"]["version"], sha256=started["policy"]["sha256"]
        ),
        upstream_model=started["upstream_model"],
        timeline=tally.turns.freeze(),
    )


def record_report(
    report: SessionReport,
    *,
    report_format: str,
    generated_by: str,
    run_id: str | None = None,
    files: list | None = None,
) -> ReportRecord:
    """Add an issued report to the append-only register: id, scope, session, format, root, tree size, who, when;
    for a report run, the run and its stored files' names, sizes and SHA-256."""
    return ReportRecord.objects.create(
        run_id=run_id,
        files=files or [],
        id=report.id,
        account_id=report.cover.account.id,
        scope=report.scope,
        session_id=report.session_id,
        format=report_format,
        merkle_root_hex=report.merkle_root_hex,
        tree_size=report.tree_size,
        signature_kid=report.signature.kid if report.signature else "",
        generated_by=generated_by,
        generated_at=report.generated_at,
    )


def sign_report(report: SessionReport) -> SessionReport:
    """The same report with ``signature``: Ed25519 over the RFC 8785 bytes of ``as_json()`` without it."""
    unsigned = replace(report, signature=None).as_json()
    return replace(report, signature=Signature(**sign_object(unsigned)))


def issue_session_report(
    session: Session, *, report_format: str, actor: str, now: datetime
) -> tuple[SessionReport, bytes]:
    """Build, sign and render ``session``'s report (``json`` or ``pdf``) and record it as issued by ``actor``
    (``usr_…`` or ``key_…``): the report and its bytes. Recorded once rendered, so the register lists only
    reports that were actually handed out."""
    report = sign_report(build_session_report(session, generated_at=now))
    body = render_report(report, report_format)
    record_report(report, report_format=report_format, generated_by=actor)
    return report, body
