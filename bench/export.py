"""NDJSON export of a 1M-event session on PostgreSQL: >= 150,000 events/s, peak RSS growth <= 100 MB.

The export goes through the whole stack in this process -- WSGI handler, middleware, bearer-token authentication,
``SessionEventsView.get``, ``StreamingHttpResponse`` -- and is consumed block by block like a client reading a
socket, so the figures include everything but the network. RSS is sampled after every block (peak growth over
the baseline taken just before the request) and cross-checked with the process's ru_maxrss. The session is built
once by ``common.build_session`` and reused.

``--verify`` also saves one export and checks it with the offline verifier (``masker-verify.pyz``) against a signed
report of the session, to give the auditor's side of the cost.

Usage: .venv/bin/python bench/export.py [--events 1000000] [--runs 3] [--verify]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MASKER_ALLOWED_HOSTS", "testserver")

import common


def export_once(client, url: str, token: str) -> dict:
    rss_before = common.rss_mb()
    peak_before = common.peak_rss_mb()
    started = time.perf_counter()
    response = client.get(url, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.status_code
    lines = size = 0
    peak = rss_before
    first_byte = None
    for blocks, block in enumerate(response.streaming_content, start=1):
        if first_byte is None:
            first_byte = time.perf_counter() - started
        lines += block.count(b"\n")
        size += len(block)
        if blocks % 8 == 0:
            peak = max(peak, common.rss_mb())
    response.close()
    elapsed = time.perf_counter() - started
    peak = max(peak, common.rss_mb())
    return {
        "lines": lines,
        "bytes": size,
        "seconds": elapsed,
        "first_byte": first_byte or elapsed,
        "rate": lines / elapsed,
        "rss_growth": peak - rss_before,
        "maxrss_growth": common.peak_rss_mb() - peak_before,
    }


def verify_offline(client, session, token: str) -> None:
    """Save one export and a signed report, and time ``python3 masker-verify.pyz report`` on them."""
    from django.utils import timezone

    from audit.verifier_download import build_verifier_pyz
    from reports.rendering import render_report_json
    from reports.session_report import build_session_report, sign_report

    with tempfile.TemporaryDirectory(prefix="verify-bench-") as directory:
        events = Path(directory) / "events.ndjson"
        response = client.get(f"/api/v1/sessions/{session.id}/events", HTTP_AUTHORIZATION=f"Bearer {token}")
        with events.open("wb") as handle:
            for block in response.streaming_content:
                handle.write(block)
        report = Path(directory) / "report.json"
        report.write_bytes(render_report_json(sign_report(build_session_report(session, generated_at=timezone.now()))))
        keys = Path(directory) / "keys.json"
        keys.write_bytes(client.get("/api/v1/keys").content)
        verifier = Path(directory) / "masker-verify.pyz"
        verifier.write_bytes(build_verifier_pyz())
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-I", str(verifier), "report", str(report), "--events", str(events), "--keys", str(keys)],
            capture_output=True,
            text=True,
            check=False,
        )
        elapsed = time.perf_counter() - started
        verdict = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr
        print(
            f"offline verifier: exit {result.returncode} in {elapsed:.1f} s ({session.tree_size / elapsed:,.0f} "
            f"events/s): {verdict}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--verify", action="store_true", help="also time the offline verifier on one export")
    args = parser.parse_args()
    common.setup()
    from django.db import connection
    from django.test import Client

    from masker.models import ApiToken

    t = time.perf_counter()
    session = common.build_session(args.events)
    print(f"database: {connection.vendor} {connection.settings_dict['NAME']}")
    print(f"session {session.id}: {session.tree_size:,} events (ready in {time.perf_counter() - t:.1f} s)")
    _, token = ApiToken.issue(account=session.account, scopes=["sessions:read"], name="bench-export")
    client = Client()
    url = f"/api/v1/sessions/{session.id}/events"
    # Warm-up: the first request imports the URLconf's views (DRF, drf-spectacular, the report renderer): tens of
    # MB that have nothing to do with the export and are not counted against it.
    warm = export_once(client, url + "?to_seq=9", token)
    print(f"warm-up request (10 events): RSS growth {warm['rss_growth']:.1f} MB (module imports, not export data)")
    results = []
    for run in range(1, args.runs + 1):
        result = export_once(client, url, token)
        assert result["lines"] == session.tree_size, (result["lines"], session.tree_size)
        results.append(result)
        print(
            f"run {run}: {result['lines']:,} lines, {result['bytes'] / 1e6:,.0f} MB in {result['seconds']:.2f} s = "
            f"{result['rate']:,.0f} events/s ({result['bytes'] / 1e6 / result['seconds']:,.0f} MB/s); first byte "
            f"{result['first_byte'] * 1000:.0f} ms; RSS growth peak {result['rss_growth']:.1f} MB "
            f"(ru_maxrss +{result['maxrss_growth']:.1f} MB)"
        )
    rates = [r["rate"] for r in results]
    growth = max(r["rss_growth"] for r in results)
    print(
        f"export: median {statistics.median(rates):,.0f} events/s, worst {min(rates):,.0f} (target >= 150,000); "
        f"peak RSS growth {growth:.1f} MB (target <= 100)"
    )
    if args.verify:
        verify_offline(client, session, token)


if __name__ == "__main__":
    main()
