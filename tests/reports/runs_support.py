"""Report runs in tests: a run's steps called in this process (the tasks' own code, without a broker), and a
report compared with another section by section, leaving out what differs between two issues of one report."""

from typing import Any

from reports.models import ReportRun, RunChunk
from reports.runs import assemble_run, plan_run, run_chunk

# What two issues of the same report differ in: their identity, their time, their signature over both.
ISSUE_FIELDS = ("id", "generated_at", "signature")


def figures(report: dict[str, Any]) -> dict[str, Any]:
    """A report's JSON without ``ISSUE_FIELDS``; the stamp of the Safe Harbor section is its generation time."""
    body = {key: value for key, value in report.items() if key not in ISSUE_FIELDS}
    body["safe_harbor"] = {key: value for key, value in body["safe_harbor"].items() if key != "stamped_at"}
    return body


def run_here(run: ReportRun, *, worker: str = "test@here") -> ReportRun:
    """Plan the run, walk its chunks in order and assemble it, in this process."""
    plan_run(run.id)
    for chunk in RunChunk.objects.filter(run=run).order_by("index"):
        run_chunk(chunk.pk, worker=worker)
    assemble_run(run.id)
    run.refresh_from_db()
    return run
