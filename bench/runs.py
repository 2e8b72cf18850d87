"""Report runs on PostgreSQL with Redis: one account's window of 4,000 sessions x 500 events (2M events), built once
in the bench database (``bench/period.py``'s ``window_account``: the writer's own steps) and reused across runs.

Timed over the same window, in this order:

- the synchronous period report (what ``GET /api/v1/reports?format=json`` does minus HTTP: build, sign, render);
- a report run (JSON) on 1 worker, then on 2 workers: real ``celery -A masker worker`` processes (concurrency 1,
  prefork, as the README runs them), on a queue of this bench's own, from ``start_run`` to ``succeeded``; with the
  machine's cores shared among them (``MASKER_WALK_PROCESSES``: one worker walks each chunk in two processes, two
  workers on two cores each walk theirs in one).

The run's report must equal the synchronous one figure for figure (everything but id, generated_at, signature).
Peak RSS (VmHWM) of every process is printed: this one, each worker's main process and its pool process.
Rounds (``--repeat``) interleave the three so that a slow spell of the machine hits all of them; the targets are
judged on the medians: 2 workers <= 0.75x the 1-worker time; 1 worker <= 1.3x the synchronous report.

Usage: .venv/bin/python bench/runs.py [--window 4000x500] [--workers 1 2] [--pool prefork] [--repeat 3]
       (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/masker_runs_bench; BENCH_BROKER_URL, default
       redis://127.0.0.1:6379/0)
"""

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

os.environ.setdefault("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/masker_runs_bench")
os.environ.setdefault("MASKER_BROKER_URL", os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/0"))
os.environ.setdefault("MASKER_RUN_QUEUE", f"masker-bench-{uuid.uuid4().hex[:8]}")

import common
import period


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def process_tree(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(p for child in children for p in process_tree(int(child)))]


class Workers:
    """``count`` celery workers, each in its own process group; ``peaks()`` reads their processes' VmHWM."""

    def __init__(self, count: int, pool: str, log_dir: Path):
        self.processes = []
        self.logs = []
        # as the README deploys them: the machine's cores shared among its worker processes, so one worker walks
        # each chunk in two processes on two cores, and two workers each walk theirs in one
        self.walk_processes = max(1, min(2, len(os.sched_getaffinity(0)) // count))
        env = {**os.environ, "MASKER_WALK_PROCESSES": str(self.walk_processes)}
        for n in range(count):
            log = log_dir / f"bench-worker-{n}.log"
            log.write_text("")
            command = [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "masker",
                "worker",
                "-Q",
                os.environ["MASKER_RUN_QUEUE"],
                "-c",
                "1",
                "--pool",
                pool,
                "-n",
                f"bench{n}@%h",
                "--loglevel",
                "INFO",
                "--without-mingle",
                "--without-gossip",
            ]
            stream = log.open("ab")
            self.processes.append(
                subprocess.Popen(
                    command, cwd=common.ROOT, env=env, start_new_session=True, stdout=stream, stderr=stream
                )
            )
            self.logs.append(log)
        deadline = time.monotonic() + 120
        for log in self.logs:
            while " ready." not in log.read_text(errors="replace"):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"worker not ready: {log.read_text()[-2000:]}")
                time.sleep(0.1)

    def task_seconds(self) -> dict[str, list[float]]:
        """Per task name, the durations the workers logged ("Task reports.run_chunk[…] succeeded in 1.23s")."""
        found: dict[str, list[float]] = {}
        for log in self.logs:
            for name, seconds in re.findall(r"Task (reports\.\w+)\[[^]]+\] succeeded in ([0-9.]+)s", log.read_text()):
                found.setdefault(name, []).append(float(seconds))
        return found

    def peaks(self) -> list[list[float]]:
        return [[vm_hwm_mb(pid) for pid in process_tree(p.pid)] for p in self.processes]

    def stop(self) -> None:
        for process in self.processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            process.wait(timeout=60)


def sync_report(account, window) -> tuple[float, dict]:
    from django.utils import timezone

    from reports.period import build_period_report, render_period_json, sign_period_report

    started = time.perf_counter()
    report = sign_period_report(
        build_period_report(account, window=window, generated_at=timezone.now(), max_events=10**9)
    )
    body = render_period_json(report)
    return time.perf_counter() - started, json.loads(body)["report"]


def run_report(account, window) -> tuple[float, dict, int]:
    from reports.runs import RunRequest, run_files_storage, start_run

    request = RunRequest(scope="account", session=None, agent=None, window=window, formats=("json",), bundle=False)
    started = time.perf_counter()
    run, _ = start_run(account, request, body={"bench": str(uuid.uuid4())}, created_by="bench", idempotency_key=None)
    while run.status not in ("succeeded", "failed"):
        time.sleep(0.05)
        run.refresh_from_db()
    seconds = time.perf_counter() - started
    if run.status != "succeeded":
        raise RuntimeError(f"run failed: {run.error}")
    (file,) = run.files.all()
    with run_files_storage().open(file.storage_name, "rb") as stored:
        report = json.load(stored)["report"]
    return seconds, report, run.chunks_total


def figures(report: dict) -> dict:
    body = {key: value for key, value in report.items() if key not in ("id", "generated_at", "signature")}
    body["safe_harbor"] = {key: value for key, value in body["safe_harbor"].items() if key != "stamped_at"}
    return body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--window", default="4000x500", help="SESSIONSxEVENTS")
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--pool", default="prefork", help="the workers' pool (prefork, solo)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds; the medians are judged")
    args = parser.parse_args()
    common.setup()
    from django.conf import settings
    from django.db import connection

    sessions, events = (int(n) for n in args.window.split("x"))
    print(
        f"database: {connection.settings_dict['NAME']}; broker {settings.CELERY_BROKER_URL}; "
        f"cores {len(os.sched_getaffinity(0))}; load {os.getloadavg()}",
        flush=True,
    )
    account = period.window_account(sessions, events)
    window = period.window_of(account)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE audit_auditevent")
        cursor.execute("ANALYZE audit_session")
    print(
        f"window {sessions:,} x {events} = {sessions * events:,} events; chunks of "
        f"{settings.MASKER_RUN_CHUNK_EVENTS:,} events; pool {args.pool}",
        flush=True,
    )

    syncs: list[float] = []
    times: dict[int, list[float]] = {count: [] for count in args.workers}
    log_dir = Path(settings.VAR_DIR)
    for repeat in range(1, args.repeat + 1):
        sync_seconds, sync = sync_report(account, window)
        syncs.append(sync_seconds)
        print(f"[{repeat}] synchronous report: {sync_seconds:.1f} s (load {os.getloadavg()[0]:.1f})", flush=True)
        for count in args.workers:
            workers = Workers(count, args.pool, log_dir)
            try:
                seconds, report, chunks = run_report(account, window)
                peaks = workers.peaks()
                tasks = workers.task_seconds()
            finally:
                workers.stop()
            assert figures(report) == figures(sync), "the run's report differs from the synchronous one"
            times[count].append(seconds)
            rss = "; ".join(
                f"worker {n}: " + " + ".join(f"{mb:.0f}" for mb in peak) + " MB" for n, peak in enumerate(peaks)
            )
            walks = tasks.get("reports.run_chunk", [])
            print(
                f"[{repeat}] {count} worker(s), walking in {workers.walk_processes} process(es) each: "
                f"{seconds:.1f} s for {chunks} chunks = "
                f"{seconds / sync_seconds:.2f}x this round's synchronous; peak RSS {rss} "
                f"(load {os.getloadavg()[0]:.1f})\n"
                f"    chunk tasks: {len(walks)}, {sum(walks):.1f} s in all "
                f"(mean {statistics.mean(walks or [0]):.2f} s); "
                f"planning {sum(tasks.get('reports.plan_run', [])):.2f} s; assembly "
                f"{sum(tasks.get('reports.assemble_run', [])):.2f} s",
                flush=True,
            )
    sync_median = statistics.median(syncs)
    medians = {count: statistics.median(seconds) for count, seconds in times.items()}
    print(
        f"\nmedians of {args.repeat} interleaved rounds: synchronous {sync_median:.2f} s; "
        + "; ".join(f"{count} worker(s) {seconds:.2f} s" for count, seconds in medians.items())
    )
    print(f"this process: peak RSS {common.peak_rss_mb():.0f} MB; walk helper {common.children_peak_rss_mb():.0f} MB")
    print("\ntargets:")
    if 1 in medians and 2 in medians:
        ratio = medians[2] / medians[1]
        print(f"  2 workers / 1 worker: {ratio:.2f}x (<= 0.75) {'OK' if ratio <= 0.75 else 'MISSED'}")
    if 1 in medians:
        ratio = medians[1] / sync_median
        print(f"  1 worker / synchronous: {ratio:.2f}x (<= 1.3) {'OK' if ratio <= 1.3 else 'MISSED'}")


if __name__ == "__main__":
    main()
