"""Session report generation on PostgreSQL against the floor (issue 3).

For sessions of 1k, 100k and 1M events (built once through ``append_events`` and reused), in one process:

- floor: fetch the stored canonical bytes with psycopg COPY, SHA-256 leaf hashes, RFC 6962 root -- the least any
  verifying report must do;
- JSON: what the API does for ``format=json`` minus HTTP: build (walk + verify + tally), sign, render;
- PDF: the same value rendered to PDF/A-3b;

run interleaved (JSON, floor, PDF; ``--repeat`` times), then, for a 300-event session, the median of JSON and
PDF requests through the Django test client. Peak RSS growth covers all three, PDFs included.
Targets: JSON <= 1.5x the floor at 1M; peak RSS growth <= 150 MB at 1M; PDF <= JSON + 2 s at every size;
300 events: median JSON <= 25 ms, PDF <= 800 ms.

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


def json_report(session) -> tuple[float, str]:
    from django.utils import timezone

    from reports.domain import build_session_report, sign_report
    from reports.rendering import render_report_json

    started = time.perf_counter()
    report = sign_report(build_session_report(session, generated_at=timezone.now()))
    render_report_json(report)
    return time.perf_counter() - started, report.merkle_root_hex


def pdf_report(session) -> float:
    from django.utils import timezone

    from reports.domain import build_session_report, sign_report
    from reports.rendering import render_report_pdf

    started = time.perf_counter()
    render_report_pdf(sign_report(build_session_report(session, generated_at=timezone.now())))
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
    print("JSON/floor and PDF-JSON: the median over interleaved runs, then the same of the medians")
    print(f"{'events':>10} | {'floor s':>8} | {'JSON s':>8} | {'JSON/floor':>13} | {'PDF s':>7} | {'PDF-JSON s':>11} | "
          f"{'peak RSS growth MB':>18}")  # fmt: skip
    rows = []
    for size in args.sizes:
        session = sessions[size]
        json_times, floor_times, pdf_times = [], [], []
        for _ in range(args.repeat):  # interleaved, so all three see the same machine load
            seconds, report_root = json_report(session)
            json_times.append(seconds)
            seconds, floor_root = floor(session)
            floor_times.append(seconds)
            pdf_times.append(pdf_report(session))
            assert report_root == floor_root == session.merkle_root_hex, "roots disagree"
        growth = common.peak_rss_mb() - baseline
        j, f, p = (statistics.median(t) for t in (json_times, floor_times, pdf_times))
        # Per-run ratios and differences, then their medians: steadier than comparing medians on a shared machine.
        ratio = statistics.median(jt / ft for jt, ft in zip(json_times, floor_times, strict=True))
        extra = statistics.median(pt - jt for pt, jt in zip(pdf_times, json_times, strict=True))
        rows.append((size, f, j, p, growth, ratio, extra))
        print(f"{size:>10,} | {f:>8.2f} | {j:>8.2f} | {ratio:>5.2f}x {j / f:>5.2f}x | {p:>7.2f} | "
              f"{extra:>+5.2f} {p - j:>+5.2f} | {growth:>18.0f}")  # fmt: skip
    print(f"(the checking process of the long walks peaked at {common.children_peak_rss_mb():.0f} MB RSS, pages shared "
          "with this process included)")  # fmt: skip

    json_ms, pdf_ms = through_client(sessions[300], args.requests)
    print(f"\n300-event session through the Django test client, median of {args.requests}: JSON {json_ms:.1f} ms, "
          f"PDF {pdf_ms:.0f} ms")  # fmt: skip

    largest = rows[-1]
    print("\ntargets:")
    ratio_ok = "OK" if largest[5] <= 1.5 else "MISSED"
    print(f"  JSON <= 1.5x floor at {largest[0]:,}: {largest[5]:.2f}x (median over runs; ratio of medians "
          f"{largest[2] / largest[1]:.2f}x) {ratio_ok}")  # fmt: skip
    rss_ok = "OK" if largest[4] <= 150 else "MISSED"
    print(f"  peak RSS growth <= 150 MB at {largest[0]:,}: {largest[4]:.0f} MB {rss_ok}")
    worst = max(row[6] for row in rows)
    print(
        f"  PDF <= JSON + 2 s at every size: worst +{worst:.2f} s (median over runs) {'OK' if worst <= 2 else 'MISSED'}"
    )
    print(f"  300 events: JSON {json_ms:.1f} ms (<= 25) {'OK' if json_ms <= 25 else 'MISSED'}, "
          f"PDF {pdf_ms:.0f} ms (<= 800) {'OK' if pdf_ms <= 800 else 'MISSED'}")  # fmt: skip


if __name__ == "__main__":
    main()
