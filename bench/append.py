"""Sustained appends through ``append_events`` on PostgreSQL, in batches of 1,000 (target: >= 5,000 events/s).

Usage: .venv/bin/python bench/append.py [--events 200000] [--batch 1000]
"""

import argparse
import statistics
import time

import common


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    common.setup()
    from django.db import connection

    from audit.walk import verify_session
    from audit.writing import append_events, start_session

    agent = common.bench_agent()
    session, _ = start_session(agent, external_ref=f"bench-append-{time.time_ns()}", started_at=common.T0)
    batches = [[common.sample_event(i) for i in range(lo, lo + args.batch)] for lo in range(0, args.events, args.batch)]
    latencies = []
    rss_before = common.rss_mb()
    started = time.perf_counter()
    for batch in batches:
        t = time.perf_counter()
        append_events(session, batch)
        latencies.append(time.perf_counter() - t)
    elapsed = time.perf_counter() - started
    total = len(batches) * args.batch
    latencies.sort()
    print(f"database: {connection.vendor} {connection.settings_dict['NAME']}")
    print(f"appended {total:,} events in {len(batches)} batches of {args.batch} in {elapsed:.2f} s")
    print(f"throughput: {total / elapsed:,.0f} events/s (target >= 5,000)")
    print(
        f"batch latency: median {statistics.median(latencies) * 1000:.1f} ms, "
        f"p99 {latencies[int(len(latencies) * 0.99) - 1] * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms"
    )
    print(f"RSS growth during appends: {common.rss_mb() - rss_before:.1f} MB")
    t = time.perf_counter()
    summary = verify_session(session)
    print(f"verify_chain: {summary.tree_size:,} events verified in {time.perf_counter() - t:.2f} s")


if __name__ == "__main__":
    main()
