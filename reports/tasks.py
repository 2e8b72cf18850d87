"""Celery tasks of report runs: thin wrappers of the steps in ``reports.runs``, where the logic and its guarantees
live. Each is acknowledged late and handed back to the queue if its worker process dies (``acks_late``,
``reject_on_worker_lost``); each step is idempotent, so running one twice changes nothing."""

from celery import shared_task

from reports import runs

_RELIABLE = {"acks_late": True, "reject_on_worker_lost": True, "ignore_result": True}


@shared_task(name=runs.run_planning, **_RELIABLE)
def plan_run(run_id: str) -> None:
    runs.plan_run(run_id)


@shared_task(name=runs.run_chunk_work, bind=True, **_RELIABLE)
def run_chunk(self, chunk_id: int) -> None:
    runs.run_chunk(chunk_id, worker=self.request.hostname or "")


@shared_task(name=runs.run_assembly, **_RELIABLE)
def assemble_run(run_id: str) -> None:
    runs.assemble_run(run_id)


@shared_task(name="reports.requeue_abandoned", ignore_result=True)
def requeue_abandoned() -> int:
    return runs.requeue_abandoned()


@shared_task(name="reports.purge_expired_files", ignore_result=True)
def purge_expired_files() -> int:
    return runs.purge_expired_files()
