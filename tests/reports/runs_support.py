"""Report runs in tests: a run's steps called in this process (the tasks' own code, without a broker), real
``celery`` worker and beat processes against the test database (on the broker and queue of the test settings), and a
report compared with another section by section, leaving out what differs between two issues of one report."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings

from masker.models import Account
from reports.models import ReportRun, RunChunk
from reports.run_views import run_request_of
from reports.runs import assemble_run, plan_run, run_chunk, start_run
from tests import live_gunicorn

# What two issues of the same report differ in: their identity, their time, their signature over both.
ISSUE_FIELDS = ("id", "generated_at", "signature")


def figures(report: dict[str, Any]) -> dict[str, Any]:
    """A report's JSON without ``ISSUE_FIELDS``; the stamp of the Safe Harbor section is its generation time."""
    body = {key: value for key, value in report.items() if key not in ISSUE_FIELDS}
    body["safe_harbor"] = {key: value for key, value in body["safe_harbor"].items() if key != "stamped_at"}
    return body


def start_here(account: Account, body: dict[str, Any]) -> ReportRun:
    """Start a run as the API does (its validation, ``start_run``), without a request."""
    run, _ = start_run(account, run_request_of(account, body), body=body, created_by="test", idempotency_key=None)
    return run


def run_here(run: ReportRun, *, worker: str = "test@here") -> ReportRun:
    """Plan the run, walk its chunks in order and assemble it, in this process."""
    plan_run(run.id)
    for chunk in RunChunk.objects.filter(run=run).order_by("index"):
        run_chunk(chunk.pk, worker=worker)
    assemble_run(run.id)
    run.refresh_from_db()
    return run


LEASE_SECONDS = 5  # a killed worker's chunk is queued again this long after it was claimed


def worker_environment() -> dict[str, str]:
    """A worker's environment: this test process's database, broker, queue and folders; small chunks, short leases."""
    return {
        **os.environ,  # the broker, its folder, the queue, the run-files folder and the keys folder of this process
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": live_gunicorn.test_database_url(),
        "MASKER_RUN_CHUNK_EVENTS": "1000",
        "MASKER_RUN_LEASE_SECONDS": str(LEASE_SECONDS),
        "MASKER_RUN_REQUEUE_INTERVAL": "1",
        "MASKER_DB_LOCK_TIMEOUT": "20",
        "MASKER_DB_STATEMENT_TIMEOUT": "60",
        "MASKER_LOG_LEVEL": "INFO",
    }


class Process:
    """A ``celery`` process (worker or beat) in its own process group, its output in ``log``."""

    def __init__(self, command: list[str], log: Path):
        self.log = log
        self.stream = log.open("ab")
        self.popen = subprocess.Popen(
            command,
            env=worker_environment(),
            cwd=live_gunicorn.ROOT,
            start_new_session=True,
            stdout=self.stream,
            stderr=self.stream,
        )

    def wait_for(self, text: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log.read_text(errors="replace"):
                return
            if self.popen.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"no {text!r} from {self.log.name}:\n{self.log.read_text(errors='replace')[-3000:]}")

    def signal(self, number: int) -> None:
        os.killpg(self.popen.pid, number)  # its own process group: the worker and its pool process

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.popen.wait()
        self.stream.close()


@contextmanager
def started(command: list[str], log: Path) -> Iterator[Process]:
    """The process for the ``with`` block; stopped (SIGTERM, then SIGKILL) when it ends."""
    process = Process(command, log)
    try:
        yield process
    finally:
        process.stop()


def celery_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "masker", *args]


def worker_command(name: str) -> list[str]:
    """A one-process worker named ``name`` on this test process's own queue."""
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    return celery_command(
        "worker", "-Q", queue, "-c", "1", "-n", name, "--loglevel", "INFO", "--without-mingle", "--without-gossip"
    )
