"""Session report generation on PostgreSQL against two floors.

For sessions of 1k, 100k and 1M events (built once through ``append_events`` and reused), in one process:

- COPY floor: fetch the stored canonical bytes with psycopg COPY, SHA-256 leaf hashes, RFC 6962 root;
- best-read floors: the best plain read known here -- a binary server-side cursor with the text loaded as bytes
  (psycopg builds the rows in C), SHA-256 leaf hashes, the RFC 6962 root, one process: the least any verifying
  report must do; once as a plain sequential read (issue 12's floor), once with the next batch fetched by a thread
  while this one hashes (``audit.walk.fetched_ahead``: the database works while Python does), which is faster and so
  the floor the targets are judged against;
- JSON: what the API does for ``format=json`` minus HTTP: build (walk + verify + tally), sign, render;
- PDF: the same value rendered to PDF/A-3b;

run interleaved (JSON, the floors, PDF; ``--repeat`` times) with both cores, then JSON and the best-read floors
again pinned to one core (``os.sched_setaffinity``; the walk's forked helper inherits it), then, for a 300-event
session, the median of JSON and PDF requests through the Django test client. Peak RSS growth covers all runs, PDFs
included; the helper's peak RSS is printed next to this process's.
Targets: JSON <= 1.1x the (read-ahead) best-read floor at 1M with both cores, <= 1.6x pinned to one core; peak RSS
growth <= 150 MB at 1M; PDF <= JSON + 2 s at every size; 300 events: median JSON <= 25 ms, PDF <= 800 ms.

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


def best_read_floor(session, *, ahead: bool) -> tuple[float, str]:
    """A binary server-side cursor over the canonical bytes in seq order (text loaded as bytes, rows built in C),
    leaf-hash each, fold the RFC 6962 root, in this one process. ``ahead``: a thread fetches the next batch while
    this one hashes (``audit.walk.fetched_ahead``), so the database works while Python does -- the best read known
    here; without it, the plain sequential read issue 12 names. Returns (seconds, root)."""
    import hashlib

    from django.db import connection, transaction
    from psycopg.types.string import ByteaBinaryLoader

    from audit.merkle import MerkleAccumulator
    from audit.walk import fetched_ahead

    started = time.perf_counter()
    accumulator = MerkleAccumulator()
    append, sha256 = accumulator.append, hashlib.sha256
    sql = "SELECT canonical FROM audit_auditevent WHERE session_id = %s AND seq < %s ORDER BY seq"
    with transaction.atomic():
        connection.ensure_connection()
        with connection.connection.cursor(name="best_read_floor", binary=True) as rows:
            rows.adapters.register_loader("text", ByteaBinaryLoader)
            rows.execute(sql, (session.id, session.tree_size))
            batches = fetched_ahead(rows, common.FETCH_ROWS) if ahead else common.plain_batches(rows)
            for fetched in batches:
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
    """JSON and both best-read floors, interleaved, with this process (and the walk's threads) on one core. Returns
    the medians of JSON / plain floor and JSON / read-ahead floor."""
    everywhere = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(everywhere)})
    try:
        json_times, plain_times, ahead_times = [], [], []
        for _ in range(repeat):
            json_times.append(json_report(session)[0])
            plain_times.append(best_read_floor(session, ahead=False)[0])
            ahead_times.append(best_read_floor(session, ahead=True)[0])
    finally:
        os.sched_setaffinity(0, everywhere)
    return common.median_ratio(json_times, plain_times), common.median_ratio(json_times, ahead_times)


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
    print("floors: COPY; plain = binary server-side cursor; ahead = the same, fetched a batch ahead (the best known)")
    print(
        f"{'events':>10} | {'COPY s':>6} | {'plain s':>7} | {'ahead s':>7} | {'JSON s':>6} | {'JSON/COPY':>9} | "
        f"{'JSON/plain':>10} | {'JSON/ahead':>10} | {'1 core /plain':>13} | {'1 core /ahead':>13} | "
        f"{'PDF-JSON s':>10} | {'RSS growth MB':>13}"
    )
    rows = []
    for size in args.sizes:
        session = sessions[size]
        json_times, copy_times, plain_times, ahead_times, pdf_times = [], [], [], [], []
        for _ in range(args.repeat):  # interleaved, so all see the same machine load
            seconds, report_root = json_report(session)
            json_times.append(seconds)
            seconds, copy_root = floor(session)
            copy_times.append(seconds)
            seconds, plain_root = best_read_floor(session, ahead=False)
            plain_times.append(seconds)
            seconds, ahead_root = best_read_floor(session, ahead=True)
            ahead_times.append(seconds)
            pdf_times.append(pdf_report(session))
            assert report_root == copy_root == plain_root == ahead_root == session.merkle_root_hex, "roots disagree"
        pinned_plain, pinned_ahead = pinned_runs(session, args.repeat)
        growth = common.peak_rss_mb() - baseline
        j, c, p, a = (statistics.median(t) for t in (json_times, copy_times, plain_times, ahead_times))
        ratios = [common.median_ratio(json_times, f) for f in (copy_times, plain_times, ahead_times)]
        extra = statistics.median(pt - jt for pt, jt in zip(pdf_times, json_times, strict=True))
        rows.append((size, growth, ratios[1], ratios[2], pinned_plain, pinned_ahead, extra))
        print(
            f"{size:>10,} | {c:>6.2f} | {p:>7.2f} | {a:>7.2f} | {j:>6.2f} | {ratios[0]:>8.2f}x | {ratios[1]:>9.2f}x | "
            f"{ratios[2]:>9.2f}x | {pinned_plain:>12.2f}x | {pinned_ahead:>12.2f}x | {extra:>+10.2f} | {growth:>13.0f}"
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
    size = f"{largest[0]:,}"
    print("\ntargets:")
    for name, both, one in (("read-ahead", largest[3], largest[5]), ("plain", largest[2], largest[4])):
        print(f"  JSON <= 1.1x the {name} floor at {size}, both cores: {both:.2f}x {'OK' if both <= 1.1 else 'MISSED'}")
        print(f"  JSON <= 1.6x the {name} floor at {size}, one core: {one:.2f}x {'OK' if one <= 1.6 else 'MISSED'}")
    rss_ok = "OK" if largest[1] <= 150 else "MISSED"
    print(f"  peak RSS growth <= 150 MB at {size}: {largest[1]:.0f} MB {rss_ok}")
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
