"""Report runs on real workers: two ``celery -A masker worker`` processes (and ``celery beat``) against the test
database, on the broker of the test settings (Redis on PostgreSQL, the filesystem broker on SQLite), on a queue of
this test process's own. A run over an account of several agents is verified in chunks by both workers and
equals the synchronous period report; a worker killed (SIGKILL) in the middle of a chunk loses nothing."""

import json
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta

import psycopg
from django.db import connection

from audit.models import Agent, AuditEvent
from reports.models import ReportRun, RunChunk
from reports.period import build_period_report, sign_period_report
from tests import live_gunicorn
from tests.reports.period_support import FROM, NOW, RANGE, WINDOW, World, _call
from tests.reports.runs_support import Process, celery_command, figures, started, worker_command

URL = "/api/v1/report-runs"


def _wait_run(run_id: str, timeout: float = 180) -> ReportRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = ReportRun.objects.get(pk=run_id)
        if run.status in ("succeeded", "failed"):
            return run
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} still {run.status} after {timeout} s: {run.chunks_done}/{run.chunks_total}")


@contextmanager
def _events_held() -> Iterator:
    """On PostgreSQL, another connection holds the events table (ACCESS EXCLUSIVE) until ``release()``: a worker
    that claimed a chunk then waits in its walk, so it is certainly killed in the middle of one. SQLite has no lock
    that blocks a read but not the claim (a write): there a chunk's walk is slow enough to be caught in (below)."""
    if connection.vendor != "postgresql":
        yield lambda: None
        return
    held = psycopg.connect(live_gunicorn.test_database_url())
    held.execute(f"LOCK TABLE {AuditEvent._meta.db_table} IN ACCESS EXCLUSIVE MODE")
    try:
        yield held.rollback
    finally:
        held.close()


def _kill_in_chunk(victim: "Process", run_id: str, host: str) -> RunChunk:
    """SIGKILL ``victim`` while it holds a claimed, unfinished chunk of the run: stopped (SIGSTOP) the moment a claim
    of its shows, killed if the chunk is still unfinished, let go on (SIGCONT) to try its next one otherwise."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        claimed = RunChunk.objects.filter(run_id=run_id, done=False, worker__startswith=host).first()
        if claimed is None:
            continue
        victim.signal(signal.SIGSTOP)
        if RunChunk.objects.filter(pk=claimed.pk, done=False).exists():
            victim.signal(signal.SIGKILL)
            victim.popen.wait()
            return claimed
        victim.signal(signal.SIGCONT)
    raise AssertionError("the worker never held an unfinished chunk")


def _report_of(client, run_id: str) -> dict:
    body = client.get(f"{URL}/{run_id}").json()
    (file,) = body["files"]
    return json.loads(b"".join(client.get(file["url"]).streaming_content))["report"]


def test_runs_on_two_workers_equal_the_synchronous_report_and_survive_a_killed_worker(live_db, tmp_path):
    world = World()
    agents = [world.intake, world.billing, world.triage]
    for i in range(24):  # about a thousand events a chunk: a chunk takes long enough to be caught mid-walk
        _call(agents[i % 3], f"bulk-{i}", FROM + timedelta(days=5, minutes=i), 340, alerts=i % 5 == 0)
    assert Agent.objects.filter(account=world.account).count() == 3
    expected = figures(
        sign_period_report(build_period_report(world.account, window=WINDOW, generated_at=NOW)).as_json()
    )
    client, other = world.client(), world.client(world.other)
    token = uuid.uuid4().hex[:8]
    names = {"a": f"a-{token}@%h", "b": f"b-{token}@%h"}

    with ExitStack() as stack:
        workers = {
            key: stack.enter_context(started(worker_command(name), tmp_path / f"{key}.log"))
            for key, name in names.items()
        }
        beat = stack.enter_context(
            started(
                celery_command("beat", "-s", str(tmp_path / "beat-schedule"), "--loglevel", "INFO"),
                tmp_path / "beat.log",
            )
        )
        for worker in workers.values():
            worker.wait_for("ready.")
        beat.wait_for("beat: Starting")

        # 1. a run on both workers
        key = {"Idempotency-Key": f"acceptance-{token}"}
        response = client.post(
            URL, json.dumps({"scope": "account", **RANGE}), content_type="application/json", headers=key
        )
        assert response.status_code == 202
        run_id = response.json()["id"]
        run = _wait_run(run_id)
        assert run.status == "succeeded", run.error
        chunks = list(RunChunk.objects.filter(run=run))
        assert len(chunks) > 4 and all(c.done for c in chunks)
        hosts = {c.worker.split("@")[0] for c in chunks}
        assert hosts == {f"a-{token}", f"b-{token}"}, hosts
        assert figures(_report_of(client, run_id)) == expected
        assert (run.sessions_done, run.sessions_total) == (30, 30)
        # the same key and body: the same run; another account: 404
        again = client.post(
            URL, json.dumps({"scope": "account", **RANGE}), content_type="application/json", headers=key
        )
        assert again.status_code == 202 and again.json()["id"] == run_id and again["Idempotent-Replayed"] == "true"
        assert other.get(f"{URL}/{run_id}").status_code == 404
        assert ReportRun.objects.count() == 1

        # 2. worker a killed in the middle of a chunk: the chunk runs again on b, the result is the same
        with _events_held() as release:
            response = client.post(URL, json.dumps({"scope": "account", **RANGE}), content_type="application/json")
            run_id = response.json()["id"]
            killed = _kill_in_chunk(workers["a"], run_id, f"a-{token}@")
            release()
        run = _wait_run(run_id)
        assert run.status == "succeeded", run.error
        rerun = RunChunk.objects.get(pk=killed.pk)
        assert rerun.attempts >= 2 and rerun.worker.startswith(f"b-{token}@")
        assert figures(_report_of(client, run_id)) == expected
        assert (run.chunks_done, run.sessions_done) == (run.chunks_total, 30)
