"""Ingestion over HTTP: gunicorn on PostgreSQL, several client processes posting batches of 500.

Target: >= 2,000 events/s sustained with p99 batch latency < 500 ms. Everything stays on the loopback interface
(127.0.0.1) and is bounded: a fixed number of client processes, each running for ``--seconds`` (and at most
``--max-batches``), the server started and stopped by this script. Each client opens its own session
(``POST /api/v1/sessions``), posts pre-serialised batches with an ``Idempotency-Key`` (as the proxy does),
and ends the session; afterwards every session's chain is re-verified from the stored bytes.

``--rate`` paces the clients to a total offered load in events/s (open loop, as calls arrive in production):
each batch has a scheduled send time and its latency is counted from that time, so a server falling behind
shows up in the latency (no coordinated omission). ``--rate 0`` sends back to back (closed loop): the
saturation throughput, whose latency is mostly queueing behind the other clients.

Usage: .venv/bin/python bench/ingest.py [--rate 3000] [--clients 4] [--workers 3] [--seconds 20] [--batch 500]
"""

import argparse
import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import common
import requests

HOST = "127.0.0.1"


def start_server(args) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "masker.settings",
        "MASKER_DEBUG": "0",
        "MASKER_ALLOWED_HOSTS": HOST,
        "MASKER_DB_CONN_MAX_AGE": "60",  # persistent connections, as a deployment would run
        "MASKER_LOG_LEVEL": "WARNING",
    }
    command = [
        str(Path(sys.executable).parent / "gunicorn"),
        "masker.wsgi:application",
        "--bind",
        f"{HOST}:{args.port}",
        "--workers",
        str(args.workers),
        "--worker-class",
        "sync",
        "--timeout",
        "60",
        "--log-level",
        "warning",
        "--chdir",
        str(common.ROOT),
    ]
    return subprocess.Popen(command, env=env, cwd=common.ROOT, start_new_session=True)


def wait_ready(base: str, secret: str, server: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited with {server.returncode}")
        try:
            if requests.get(f"{base}/api/v1/me", headers={"Authorization": f"Bearer {secret}"}, timeout=10).ok:
                return
        except requests.RequestException:  # not listening yet, or still importing
            pass
        time.sleep(0.2)
    raise SystemExit("gunicorn did not answer within 30 s")


def stop_server(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGTERM)  # our own process group (start_new_session): gunicorn and its workers
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def run_client(client_no: int, base: str, secret: str, agent_id: str, args, ready, results) -> None:
    http = requests.Session()
    http.headers.update({"Authorization": f"Bearer {secret}", "Content-Type": "application/json"})
    started = http.post(
        f"{base}/api/v1/sessions",
        json={"agent_id": agent_id, "external_ref": f"bench-ingest-{uuid.uuid4().hex}"},
        timeout=30,
    )
    started.raise_for_status()
    session_id = started.json()["id"]
    # Serialised before the clock starts, so the client's own JSON encoding is not what is measured.
    needed = int(args.seconds * args.rate / args.clients / args.batch) + 2 if args.rate else args.max_batches
    bodies = []
    for b in range(min(needed, args.max_batches)):
        lo = b * args.batch
        bodies.append(json.dumps({"events": [common.sample_event(i) for i in range(lo, lo + args.batch)]}).encode())
    ready.wait()  # every client has its batches serialised; all start together
    start_at = time.time()
    latencies, sent, errors = [], 0, 0
    stop_at = start_at + args.seconds
    # Paced: this client's share of the offered rate, its first send offset so the clients interleave.
    interval = args.clients * args.batch / args.rate if args.rate else 0.0
    for number, body in enumerate(bodies):
        scheduled = start_at + (number + client_no / args.clients) * interval
        if scheduled >= stop_at or time.time() >= stop_at:
            break
        if scheduled > time.time():
            time.sleep(scheduled - time.time())
        t = time.time() if not interval else scheduled
        response = http.post(
            f"{base}/api/v1/sessions/{session_id}/events",
            data=body,
            timeout=60,
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
        latencies.append(time.time() - t)
        if response.status_code == 201:
            sent += args.batch
        else:
            errors += 1
    finished = time.time()
    http.post(f"{base}/api/v1/sessions/{session_id}/end", json={"status": "ok"}, timeout=30).raise_for_status()
    results.put(
        {
            "session_id": session_id,
            "latencies": latencies,
            "events": sent,
            "errors": errors,
            "started": start_at,
            "finished": finished,
        }
    )


def percentile(sorted_values: list[float], p: float) -> float:
    index = max(0, min(len(sorted_values) - 1, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=3000, help="offered events/s in total; 0 = back to back")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=3, help="gunicorn sync workers")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the clients post")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--max-batches", type=int, default=400, help="per client, an upper bound on the run")
    parser.add_argument("--port", type=int, default=8201)
    args = parser.parse_args()
    if not (1 <= args.clients <= 16 and 1 <= args.workers <= 16 and 0 < args.seconds <= 300 and args.rate >= 0):
        raise SystemExit("bounded run: 1-16 clients, 1-16 workers, at most 300 s, a rate >= 0")

    common.setup()
    from django.db import connection

    from audit.models import Session
    from audit.walk import verify_session
    from masker.models import ApiToken

    agent = common.bench_agent()
    _, secret = ApiToken.issue(account=agent.account, scopes=["events:write", "sessions:read"], name="bench-ingest")
    base = f"http://{HOST}:{args.port}"
    server = start_server(args)
    try:
        wait_ready(base, secret, server)
        results = multiprocessing.Queue()
        ready = multiprocessing.Barrier(args.clients)
        clients = [
            multiprocessing.Process(target=run_client, args=(n, base, secret, agent.id, args, ready, results))
            for n in range(args.clients)
        ]
        for process in clients:
            process.start()
        outcomes = [results.get(timeout=args.seconds + 180) for _ in clients]
        for process in clients:
            process.join(timeout=30)
    finally:
        stop_server(server)
        ApiToken.objects.filter(name="bench-ingest", revoked_at__isnull=True).update(revoked_at=common.T0)

    elapsed = max(o["finished"] for o in outcomes) - min(o["started"] for o in outcomes)
    events = sum(o["events"] for o in outcomes)
    latencies = sorted(t for o in outcomes for t in o["latencies"])
    errors = sum(o["errors"] for o in outcomes)
    print(
        f"database: {connection.vendor} {connection.settings_dict['NAME']}; gunicorn {args.workers} sync workers on "
        f"{HOST}:{args.port}; {args.clients} client processes; batches of {args.batch}; {os.cpu_count()} CPUs"
    )
    print(f"appended {events:,} events in {len(latencies)} batches ({errors} errors) in {elapsed:.2f} s")
    offered = f"offered {args.rate:,.0f} events/s" if args.rate else "back to back (closed loop)"
    print(f"throughput: {events / elapsed:,.0f} events/s, {offered} (target >= 2,000)")
    print(
        f"batch latency: median {statistics.median(latencies) * 1000:.1f} ms, "
        f"p99 {percentile(latencies, 99) * 1000:.1f} ms (target < 500 ms), max {latencies[-1] * 1000:.1f} ms"
    )
    t = time.perf_counter()
    for outcome in outcomes:
        session = Session.objects.get(pk=outcome["session_id"])
        summary = verify_session(session)
        assert session.is_sealed
        assert summary.merkle_root_hex == session.seal["merkle_root_hex"]
        assert summary.tree_size == outcome["events"] + 2, "every acknowledged event is in the chain, once"
    print(f"verify_chain: {len(outcomes)} sealed sessions re-verified in {time.perf_counter() - t:.2f} s")


if __name__ == "__main__":
    main()
