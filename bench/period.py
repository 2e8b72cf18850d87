"""Account period reports on PostgreSQL against a best-read floor over the same bytes.

Two windows of 1M events each, built once in the bench database and reused across runs: 2,000 sessions of 500
events, and 20,000 sessions of 50 (many small sessions: per-session overhead must not dominate). Each session is
built through the writer's own steps (``build_sessions``): every row is correctly chained, hashed and inserted by
``audit.writing._append_locked`` and every session sealed and signed as ``end_session`` does; skipping per-batch
schema validation and a transaction per step is what makes 2M events affordable to build. A window is built in its
own account, over four agents.

Per window, in one process:

- best-read floors: the sessions' ids and sizes, one binary server-side cursor over the window's events in
  (session, seq) order (text loaded as bytes, rows built in C), SHA-256 leaf hashes, each session's RFC 6962 root
  and the period root over them -- the least any verifying period report must do; once as a plain sequential read
  (issue 16's floor), once with the next batch fetched by a thread meanwhile (``audit.walk.fetched_ahead``), which
  is faster and so the floor the targets are judged against;
- JSON: what the API does for ``format=json`` minus HTTP: build (walk + verify + tally every session), sign,
  render;
- PDF: the same value rendered to PDF/A-3b;

interleaved (``--repeat`` times) with both cores, then JSON and the floors again pinned to one core
(``os.sched_setaffinity``; the walk's forked helper inherits it). Peak RSS growth covers all runs, PDFs included,
for this process and the helper. Targets: JSON <= 1.2x the floor with both cores, <= 1.7x pinned to one core; peak
RSS growth <= 150 MB; PDF <= JSON + 2 s.

Usage: .venv/bin/python bench/period.py [--windows 2000x500 20000x50] [--repeat 3]
"""

import argparse
import os
import statistics
import time
from datetime import timedelta

import common


def window_account(sessions: int, events: int):
    """The bench account of one window shape, with its sessions built (or completed) once: see ``build_sessions``."""
    from audit.models import Agent, Policy, Session
    from masker.models import Account

    base = common.bench_agent()
    account, _ = Account.objects.get_or_create(name=f"Bench period {sessions}x{events}")
    policy, _ = Policy.objects.get_or_create(
        account=account,
        name=base.policy.name,
        version=base.policy.version,
        defaults={"yaml_text": base.policy.yaml_text},
    )
    agents = [
        Agent.objects.get_or_create(
            account=account,
            name=f"Line {n}",
            defaults={"policy": policy, "platform": "vapi", "upstream_model": "openai:gpt-4o-mini"},
        )[0]
        for n in range(4)
    ]
    done = set(Session.objects.filter(account=account).values_list("external_ref", flat=True))
    missing = [i for i in range(sessions) if f"period-{i:06d}" not in done]
    started = time.perf_counter()
    for lo in range(0, len(missing), 100):
        build_sessions(agents, missing[lo : lo + 100], events)
        print(
            f"  {lo + len(missing[lo : lo + 100])} of {len(missing)} sessions of {events} events built "
            f"({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    return account


def build_sessions(agents, numbers: list[int], events: int) -> None:
    """Sessions ``period-<n>`` of exactly ``events`` events each, in one transaction, through the writer's own
    steps: the session row as ``start_session`` creates it, then its whole log (``session.started``, the body,
    ``session.ended``) hashed, chained and inserted by ``audit.writing._append_locked`` (COPY), then the seal as
    ``end_session`` signs it. What this skips is per-batch schema validation and a transaction per step."""
    from django.db import transaction

    from audit.models import Session
    from audit.signing import sign_object
    from audit.timestamps import format_ts
    from audit.writing import _append_locked

    with transaction.atomic():
        for n in numbers:
            agent = agents[n % len(agents)]
            policy = agent.policy
            start = common.T0 + timedelta(minutes=n)
            end = start + timedelta(hours=1)
            session = Session.objects.create(
                account_id=agent.account_id,
                agent=agent,
                external_ref=f"period-{n:06d}",
                platform=agent.platform,
                upstream_model=agent.upstream_model,
                started_at=start,
                policy=policy,
                policy_snapshot=policy.yaml_text,
                policy_name=policy.name,
                policy_version=policy.version,
                policy_sha256=policy.sha256,
            )
            log = [
                {
                    "ts": format_ts(start),
                    "kind": "session.started",
                    "agent_id": agent.id,
                    "platform": agent.platform,
                    "upstream_model": agent.upstream_model,
                    "policy": {"name": policy.name, "version": policy.version, "sha256": policy.sha256},
                },
                *(common.sample_event(k, start=start) for k in range(1, events - 1)),
                {"ts": format_ts(end), "kind": "session.ended", "status": "ok", "duration_ms": 3_600_000},
            ]
            _append_locked(session, log)
            seal = {
                "session_id": session.id,
                "tree_size": session.tree_size,
                "merkle_root_hex": session.merkle_root_hex,
                "chain_head_hex": session.chain_head,
                "sealed_at": format_ts(end),
            }
            session.seal = {**seal, "signature": sign_object(seal)}
            session.sealed_at, session.ended_at, session.status = end, end, "ok"
            session.save(update_fields=["seal", "sealed_at", "ended_at", "status"])


def window_of(account):
    from audit.models import Session
    from reports.period import Window

    sessions = Session.objects.filter(account=account)
    first = sessions.order_by("started_at").first().started_at
    last = sessions.order_by("-started_at").first().started_at
    return Window(first, last + timedelta(seconds=1))


def best_read_floor(account, window, *, ahead: bool) -> tuple[float, str]:
    """The window's sessions (id, size), then one binary server-side cursor over their events in (session, seq)
    order: leaf hashes, each session's root, the period root. One process; ``ahead``: the next batch fetched by a
    thread meanwhile (``audit.walk.fetched_ahead``), else a plain sequential read. Returns (seconds, root)."""
    import hashlib

    from django.db import connection, transaction
    from psycopg.types.string import ByteaBinaryLoader

    from audit.merkle import MerkleAccumulator
    from audit.models import Session
    from audit.walk import SELECT_WINDOW, fetched_ahead
    from verifier.period import period_leaf_hash

    started = time.perf_counter()
    rows = (
        Session.objects.filter(account=account, started_at__gte=window.start, started_at__lt=window.end)
        .order_by("id")
        .values_list("id", "tree_size")
    )
    ids, sizes = zip(*rows, strict=True)
    # the walk's own statement: every session here is complete, so ``seq < longest`` already bounds each one
    period = MerkleAccumulator()
    sha256 = hashlib.sha256
    current, accumulator, size = None, None, 0
    with transaction.atomic():
        connection.ensure_connection()
        with connection.connection.cursor(name="period_best_read_floor", binary=True) as cursor:
            cursor.adapters.register_loader("text", ByteaBinaryLoader)
            cursor.execute(SELECT_WINDOW, {"ids": list(ids), "longest": max(sizes)})
            for fetched in fetched_ahead(cursor, common.FETCH_ROWS) if ahead else common.plain_batches(cursor):
                for session_id, _seq, row in fetched:
                    if session_id != current:
                        if current is not None:
                            period.append(period_leaf_hash(current, size, accumulator.root().hex()))
                        current, accumulator, size = session_id, MerkleAccumulator(), 0
                    accumulator.append(sha256(b"\x00" + row).digest())
                    size += 1
    if current is not None:
        period.append(period_leaf_hash(current, size, accumulator.root().hex()))
    return time.perf_counter() - started, period.root().hex()


def json_report(account, window) -> tuple[float, str]:
    from django.utils import timezone

    from reports.period import build_period_report, render_period_json, sign_period_report

    started = time.perf_counter()
    report = sign_period_report(build_period_report(account, window=window, generated_at=timezone.now()))
    render_period_json(report)
    assert report.verdict != "integrity_failed"
    return time.perf_counter() - started, report.merkle_root_hex


def pdf_report(account, window) -> float:
    from django.utils import timezone

    from reports.period import build_period_report, sign_period_report
    from reports.period_rendering import render_period_pdf

    started = time.perf_counter()
    render_period_pdf(sign_period_report(build_period_report(account, window=window, generated_at=timezone.now())))
    return time.perf_counter() - started


def pinned_runs(account, window, repeat: int) -> tuple[float, float]:
    """JSON / plain floor and JSON / read-ahead floor, medians of interleaved runs pinned to one core."""
    everywhere = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(everywhere)})
    try:
        json_times, plain_times, ahead_times = [], [], []
        for _ in range(repeat):
            json_times.append(json_report(account, window)[0])
            plain_times.append(best_read_floor(account, window, ahead=False)[0])
            ahead_times.append(best_read_floor(account, window, ahead=True)[0])
    finally:
        os.sched_setaffinity(0, everywhere)
    return common.median_ratio(json_times, plain_times), common.median_ratio(json_times, ahead_times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", nargs="+", default=["2000x500", "20000x50"], help="SESSIONSxEVENTS")
    parser.add_argument("--repeat", type=int, default=3, help="runs per window; the median is reported")
    parser.add_argument("--build-only", action="store_true", help="build the windows' sessions and stop")
    args = parser.parse_args()
    common.setup()
    from django.db import connection

    print(f"database: {connection.vendor} {connection.settings_dict['NAME']}; load {os.getloadavg()}")
    shapes = [tuple(int(n) for n in spec.split("x")) for spec in args.windows]
    accounts = {}
    for sessions, events in shapes:
        started = time.perf_counter()
        accounts[(sessions, events)] = window_account(sessions, events)
        print(f"window {sessions:,} x {events}: ready in {time.perf_counter() - started:.1f} s", flush=True)
    if args.build_only:
        return
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE audit_auditevent")
        cursor.execute("ANALYZE audit_session")
    baseline = common.rss_mb()
    print(f"\nRSS after setup: {baseline:.0f} MB; median of {args.repeat} interleaved runs")
    print("floors: plain = binary server-side cursor; ahead = the same, fetched a batch ahead (the best known)")
    print(
        f"{'window':>12} | {'plain s':>7} | {'ahead s':>7} | {'JSON s':>6} | {'JSON/plain':>10} | {'JSON/ahead':>10} | "
        f"{'1 core /plain':>13} | {'1 core /ahead':>13} | {'PDF-JSON s':>10} | {'RSS growth MB':>13} | "
        f"{'helper +MB':>10} | load"
    )
    results = []
    for shape, account in accounts.items():
        window = window_of(account)
        json_times, plain_times, ahead_times, pdf_times = [], [], [], []
        for _ in range(args.repeat):
            seconds, report_root = json_report(account, window)
            json_times.append(seconds)
            seconds, plain_root = best_read_floor(account, window, ahead=False)
            plain_times.append(seconds)
            seconds, ahead_root = best_read_floor(account, window, ahead=True)
            ahead_times.append(seconds)
            pdf_times.append(pdf_report(account, window))
            assert report_root == plain_root == ahead_root, "period roots disagree"
        pinned_plain, pinned_ahead = pinned_runs(account, window, args.repeat)
        growth = common.peak_rss_mb() - baseline
        helper = common.children_peak_rss_mb() - baseline  # its peak counts the pages it shares with this process
        plain, ahead = common.median_ratio(json_times, plain_times), common.median_ratio(json_times, ahead_times)
        extra = statistics.median(p - j for p, j in zip(pdf_times, json_times, strict=True))
        p, a, j = (statistics.median(t) for t in (plain_times, ahead_times, json_times))
        load = os.getloadavg()[0]
        results.append((shape, plain, ahead, pinned_plain, pinned_ahead, growth, helper, extra))
        print(
            f"{shape[0]:>6}x{shape[1]:<5} | {p:>7.2f} | {a:>7.2f} | {j:>6.2f} | {plain:>9.2f}x | {ahead:>9.2f}x | "
            f"{pinned_plain:>12.2f}x | {pinned_ahead:>12.2f}x | {extra:>+10.2f} | {growth:>13.0f} | {helper:>10.0f} | "
            f"{load:.1f}",
            flush=True,
        )
    print("\ntargets (JSON <= 1.2x the floor with both cores, <= 1.7x on one core; the read-ahead floor is the best):")
    for (sessions, events), plain, ahead, pinned_plain, pinned_ahead, growth, helper, extra in results:
        for name, both, one in (("read-ahead", ahead, pinned_ahead), ("plain", plain, pinned_plain)):
            print(
                f"  {sessions:,} x {events}, {name} floor: both cores {both:.2f}x "
                f"{'OK' if both <= 1.2 else 'MISSED'}; one core {one:.2f}x {'OK' if one <= 1.7 else 'MISSED'}"
            )
        print(
            f"  {sessions:,} x {events}: RSS growth {growth:.0f} MB, helper growth {helper:.0f} MB (<= 150) "
            f"{'OK' if max(growth, helper) <= 150 else 'MISSED'}; PDF-JSON {extra:+.2f} s (<= 2) "
            f"{'OK' if extra <= 2 else 'MISSED'}"
        )


if __name__ == "__main__":
    main()
