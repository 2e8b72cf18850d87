"""Session report generation on PostgreSQL against two floors.

For sessions of 1k, 100k and 1M events (built once through ``append_events`` and reused), in one process:

- COPY floor: fetch the stored canonical bytes with psycopg COPY, SHA-256 leaf hashes, RFC 6962 root;
- best-read floor: the best plain read known here -- a binary server-side cursor with the text loaded as bytes
  (psycopg builds the rows in C), SHA-256 leaf hashes, the RFC 6962 root, one process: the least any verifying
  report must do;
- JSON: what the API does for ``format=json`` minus HTTP: build (walk + verify + tally), sign, render;
- PDF: the same value rendered to PDF/A-3b;

run interleaved (JSON, both floors, PDF; ``--repeat`` times) with both cores, then JSON and the best-read floor
again pinned to one core (``os.sched_setaffinity``; the walk's forked helper inherits it), then, for a 300-event
session, the median of JSON and PDF requests through the Django test client. Peak RSS growth covers all runs, PDFs
included; the helper's peak RSS is printed next to this process's.
Targets: JSON <= 1.1x the best-read floor at 1M with both cores, <= 1.6x pinned to one core; peak RSS growth
<= 150 MB at 1M; PDF <= JSON + 2 s at every size; 300 events: median JSON <= 25 ms, PDF <= 800 ms.

Usage: .venv/bin/python bench/report.py [--sizes 1000 100000 1000000] [--repeat 3] [--requests 15]
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("MASKER_ALLOWED_HOSTS", "testserver")  # the test client's host, for the 300-event requests

import common


def floor(session) -> tuple[float, str]:
    """COPY the canonical bytes in seq order, leaf-hash each, fold the RFC 6962 root. Returns (seconds, root)."""
    import hashlib

    from django.db import connection

    from audit.merkle import MerkleAccumulator

    started = time.perf_counter()
    accumulator = MerkleAccumulator()
    append, sha256 = accumulator.append, hashlib.sha256
    sql = "COPY (SELECT canonical FROM audit_auditevent WHERE session_id = %s AND seq < %s ORDER BY seq) TO STDOUT"
    with connection.cursor() as cursor, cursor.cursor.copy(sql, (session.id, session.tree_size)) as copy:
        for block in copy:  # libpq returns one whole row per block: b"<canonical>\n"
            row = bytes(block)[:-1]
            if b"\\" in row:  # COPY text format doubles backslashes (canonical JSON has no raw control characters)
                row = row.replace(b"\\\\", b"\\")
            append(sha256(b"\x00" + row).digest())
    return time.perf_counter() - started, accumulator.root().hex()


def best_read_floor(session) -> tuple[float, str]:
    """A binary server-side cursor over the canonical bytes in seq order (text loaded as bytes, rows built in C),
    leaf-hash each, fold the RFC 6962 root, in this one process. Returns (seconds, root)."""
    import hashlib

    from django.db import connection, transaction
    from psycopg.types.string import ByteaBinaryLoader

    from audit.merkle import MerkleAccumulator

    started = time.perf_counter()
    accumulator = MerkleAccumulator()
    append, sha256 = accumulator.append, hashlib.sha256
    sql = "SELECT canonical FROM audit_auditevent WHERE session_id = %s AND seq < %s ORDER BY seq"
    with transaction.atomic():
        connection.ensure_connection()
        with connection.connection.cursor(name="best_read_floor", binary=True) as rows:
            rows.adapters.register_loader("text", ByteaBinaryLoader)
            rows.execute(sql, (session.id, session.tree_size))
            while fetched := rows.fetchmany(512):
                for (row,) in fetched:
                    append(sha256(b"\x00" + row).digest())
    return time.perf_counter() - started, accumulator.root().hex()


def json_report(session) -> tuple[float, str]:
    """The API's JSON report (``issue_session_report``: walk, build, sign, render, record)."""
    from django.utils import timezone

    from reports.session_report import issue_session_report

    started = time.perf_counter()
    report, _ = issue_session_report(session, report_format="json", actor="bench", now=timezone.now())
    return time.perf_counter() - started, report.merkle_root_hex


def pdf_report(session) -> float:
    from django.utils import timezone

    from reports.session_report import issue_session_report

    started = time.perf_counter()
    issue_session_report(session, report_format="pdf", actor="bench", now=timezone.now())
    return time.perf_counter() - started


def through_client(session, requests: int) -> tuple[float, float]:
    """Median ms of ``format=json`` and ``format=pdf`` requests through the Django test client (cookie auth)."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    from masker.models import Membership

    user, created = get_user_model().objects.get_or_create(username="bench@masker.local")
    if created:
        Membership.objects.create(user=user, account_id=session.account_id, role="viewer")
    client = Client()
    client.force_login(user)
    url = f"/api/v1/sessions/{session.id}/report"
    medians = []
    for fmt in ("json", "pdf"):
        assert client.get(url, {"format": fmt}).status_code == 200  # warm-up (fonts, templates)
        times = []
        for _ in range(requests):
            started = time.perf_counter()
            response = client.get(url, {"format": fmt})
            times.append(time.perf_counter() - started)
            assert response.status_code == 200, response.content[:200]
        medians.append(statistics.median(times) * 1000)
    return medians[0], medians[1]


def pinned_runs(session, repeat: int) -> tuple[float, float]:
    """JSON and the best-read floor, interleaved, with this process (and the walk's helper) on one core. Returns the
    medians of JSON / best-read floor and of the JSON seconds."""
    everywhere = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(everywhere)})
    try:
        json_times, floor_times = [], []
        for _ in range(repeat):
            json_times.append(json_report(session)[0])
            floor_times.append(best_read_floor(session)[0])
    finally:
        os.sched_setaffinity(0, everywhere)
    ratio = statistics.median(jt / ft for jt, ft in zip(json_times, floor_times, strict=True))
    return ratio, statistics.median(json_times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3, help="runs per size; the median is reported")
    parser.add_argument("--requests", type=int, default=15, help="requests per format for the 300-event session")
    args = parser.parse_args()
    common.setup()
    from django.db import connection

    from audit.models import Session

    print(f"database: {connection.vendor} {connection.settings_dict['NAME']}")
    sessions = {}
    for size in [*args.sizes, 300]:
        started = time.perf_counter()
        built = common.build_session(size)
        sessions[size] = Session.objects.select_related("agent", "account").get(pk=built.pk)
        print(f"session of {size:>9,} events: {built.id} (ready in {time.perf_counter() - started:.1f} s)")

    with connection.cursor() as cursor:
        # As autovacuum would within a minute of a bulk load: without statistics the planner sorts the log on disk.
        cursor.execute("ANALYZE audit_auditevent")
    baseline = common.rss_mb()
    print(f"\nRSS after setup: {baseline:.0f} MB (peak so far {common.peak_rss_mb():.0f} MB); median of {args.repeat}")
    print("ratios and PDF-JSON: the median over interleaved runs of the per-run figure; both cores, then one core")
    print(
        f"{'events':>10} | {'COPY s':>7} | {'best s':>7} | {'JSON s':>7} | {'JSON/COPY':>9} | {'JSON/best':>9} | "
        f"{'1 core JSON/best':>16} | {'PDF-JSON s':>10} | {'peak RSS growth MB':>18}"
    )
    rows = []
    for size in args.sizes:
        session = sessions[size]
        json_times, copy_times, best_times, pdf_times = [], [], [], []
        for _ in range(args.repeat):  # interleaved, so all see the same machine load
            seconds, report_root = json_report(session)
            json_times.append(seconds)
            seconds, copy_root = floor(session)
            copy_times.append(seconds)
            seconds, best_root = best_read_floor(session)
            best_times.append(seconds)
            pdf_times.append(pdf_report(session))
            assert report_root == copy_root == best_root == session.merkle_root_hex, "roots disagree"
        pinned_ratio, _ = pinned_runs(session, args.repeat)
        growth = common.peak_rss_mb() - baseline
        j, c, b = (statistics.median(t) for t in (json_times, copy_times, best_times))
        # Per-run ratios and differences, then their medians: steadier than comparing medians on a shared machine.
        copy_ratio = statistics.median(jt / ft for jt, ft in zip(json_times, copy_times, strict=True))
        best_ratio = statistics.median(jt / ft for jt, ft in zip(json_times, best_times, strict=True))
        extra = statistics.median(pt - jt for pt, jt in zip(pdf_times, json_times, strict=True))
        rows.append((size, b, j, growth, best_ratio, pinned_ratio, extra))
        print(
            f"{size:>10,} | {c:>7.2f} | {b:>7.2f} | {j:>7.2f} | {copy_ratio:>8.2f}x | {best_ratio:>8.2f}x | "
            f"{pinned_ratio:>15.2f}x | {extra:>+10.2f} | {growth:>18.0f}"
        )
    print(
        f"peak RSS: this process {common.peak_rss_mb():.0f} MB; the walk's helper process "
        f"{common.children_peak_rss_mb():.0f} MB (pages shared with this process included)"
    )

    json_ms, pdf_ms = through_client(sessions[300], args.requests)
    print(
        f"\n300-event session through the Django test client, median of {args.requests}: JSON {json_ms:.1f} ms, "
        f"PDF {pdf_ms:.0f} ms"
    )

    largest = rows[-1]
    print("\ntargets:")
    ratio_ok = "OK" if largest[4] <= 1.1 else "MISSED"
    print(
        f"  JSON <= 1.1x best-read floor at {largest[0]:,}, both cores: {largest[4]:.2f}x (median of runs; ratio of "
        f"medians {largest[2] / largest[1]:.2f}x) {ratio_ok}"
    )
    pinned_ok = "OK" if largest[5] <= 1.6 else "MISSED"
    print(f"  JSON <= 1.6x best-read floor at {largest[0]:,}, one core: {largest[5]:.2f}x {pinned_ok}")
    rss_ok = "OK" if largest[3] <= 150 else "MISSED"
    print(f"  peak RSS growth <= 150 MB at {largest[0]:,}: {largest[3]:.0f} MB {rss_ok}")
    worst = max(row[6] for row in rows)
    print(
        f"  PDF <= JSON + 2 s at every size: worst +{worst:.2f} s (median over runs) {'OK' if worst <= 2 else 'MISSED'}"
    )
    print(
        f"  300 events: JSON {json_ms:.1f} ms (<= 25) {'OK' if json_ms <= 25 else 'MISSED'}, "
        f"PDF {pdf_ms:.0f} ms (<= 800) {'OK' if pdf_ms <= 800 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
