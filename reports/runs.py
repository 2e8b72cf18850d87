"""Report runs: a report built by the job engine (Celery, ``reports.tasks``) instead of inside a web request.

A run goes ``queued`` → ``running`` → ``succeeded`` or ``failed``; its state, progress and files are rows here
(``ReportRun``, ``RunChunk``, ``RunFile``), never a Celery result backend. The steps, each a task:

1. ``plan_run``: lists the window's sessions (``window_sessions``) and splits them, in session-id order, into
   contiguous chunks of about ``MASKER_RUN_CHUNK_EVENTS`` events (whole sessions); one task per chunk is queued.
   A session run is one chunk of its one session.
2. ``run_chunk``: walks and verifies the chunk's sessions with the one read side (``fold_sessions``, i.e.
   ``audit.walk.walk_sessions`` with ``PeriodFold``, as the synchronous report does) and stores the chunk's
   figures as JSON (``PeriodFold.to_json``). Marking the chunk done, adding its progress and counting it in
   ``chunks_done`` happen in one transaction under the chunk's and the run's row locks, and only if the chunk was
   not done yet: a chunk that runs twice (a redelivered message, a requeued lease) counts once and changes nothing
   the second time. The transaction that counts the last chunk queues the assembly.
3. ``assemble_run``: merges the chunks' figures in session-id order (``PeriodFold.merge``), builds the report
   through the same code as the synchronous report (``report_from_fold`` → ``_report_of``), signs it, renders the
   formats asked for (and the evidence bundle), writes each file once through the run-files storage, records the
   report with the files' SHA-256 in the register and marks the run succeeded, in one transaction.

A worker that dies loses nothing: tasks are acknowledged late and rejected back to the queue when their worker
process is lost; a worker machine that vanishes leaves a claimed chunk whose lease (``MASKER_RUN_LEASE_SECONDS``)
runs out, and the periodic ``requeue_abandoned`` queues it again (and any planning or assembly whose message was
lost), whatever the broker. A chunk that raises is retried up to ``MASKER_RUN_MAX_ATTEMPTS`` starts; then the run
fails with a message naming the step and the error's class, never data.
"""

import hashlib
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO, Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import storages
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from audit.idempotency import json_fingerprint, refuse_reused_key
from audit.models import Agent, Session
from masker.celery import app
from masker.errors import ApiError
from masker.ids import new_id
from masker.models import Account
from reports.models import ReportRun, RunChunk, RunFile
from reports.period import (
    PeriodFold,
    Window,
    fold_sessions,
    period_filename,
    record_period_report,
    render_period_json,
    report_from_fold,
    sign_period_report,
    window_sessions,
)
from reports.period_rendering import render_period_pdf
from reports.rendering import render_report, report_filename
from reports.session_report import build_session_report, record_report, sign_report

logger = logging.getLogger("reports.runs")

CONTENT_TYPES = {"json": "application/json", "pdf": "application/pdf", "zip": "application/zip"}
Status = ReportRun.Status


# --- starting a run -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRequest:
    """What a caller asked for, validated (``reports.run_views``): the subject, the window, the outputs."""

    scope: str
    session: Session | None
    agent: Agent | None
    window: Window | None
    formats: tuple[str, ...]
    bundle: bool


def start_run(
    account: Account, request: RunRequest, *, body: object, created_by: str, idempotency_key: str | None
) -> tuple[ReportRun, bool]:
    """Create a queued run and queue its planning once the row is committed; returns ``(run, replayed)``.

    With ``idempotency_key``, a request already made with that key returns the run it created (``replayed``), and
    the same key with another body is a 400, as for event batches (``audit.idempotency``); two concurrent requests
    with one key meet at the unique constraint and the second returns the first's run."""
    fingerprint = json_fingerprint(body)
    if idempotency_key is not None:
        existing = ReportRun.objects.filter(account=account, idempotency_key=idempotency_key).first()
        if existing is not None:
            return _replay(existing, fingerprint), True
    window = request.window
    try:
        with transaction.atomic():
            run = ReportRun.objects.create(
                account=account,
                scope=request.scope,
                session=request.session,
                agent=request.agent,
                window_from=window.start if window else None,
                window_to=window.end if window else None,
                formats=list(request.formats),
                bundle=request.bundle,
                created_by=created_by,
                idempotency_key=idempotency_key,
                request_sha256=fingerprint,
                due_at=_lease_end(),
            )
            _enqueue(run_planning, run.id)
    except IntegrityError:
        existing = ReportRun.objects.filter(account=account, idempotency_key=idempotency_key).first()
        if idempotency_key is None or existing is None:
            raise
        return _replay(existing, fingerprint), True
    return run, False


def _replay(run: ReportRun, fingerprint: str) -> ReportRun:
    if run.request_sha256 != fingerprint:
        refuse_reused_key("report run")
    return run


# --- the steps (each called by its task in reports.tasks) -----------------------------------------------------------


def plan_run(run_id: str) -> None:
    """Split a queued run into chunks and queue them (nothing if it was planned already)."""
    with transaction.atomic():
        run = (
            ReportRun.objects.select_for_update(of=("self",))
            .select_related("account", "agent")
            .filter(pk=run_id)
            .first()
        )
        if run is None or run.status != Status.QUEUED:
            return
        plan: list[tuple[list[str], int]]
        if run.scope == "session":
            session = Session.objects.only("id", "tree_size").get(pk=run.session_id)
            plan = [([session.id], session.tree_size)]
        else:
            rows = window_sessions(run.account, agent=run.agent, window=_window(run)).values_list("id", "tree_size")
            plan = split_into_chunks(list(rows), chunk_events())
        chunks = RunChunk.objects.bulk_create(
            RunChunk(run=run, index=i, session_ids=ids, events=events, lease_until=_lease_end())
            for i, (ids, events) in enumerate(plan)
        )
        run.status = Status.RUNNING
        run.started_at = timezone.now()
        run.chunks_total = len(chunks)
        run.sessions_total = sum(len(ids) for ids, _ in plan)
        run.due_at = _lease_end() if not chunks else None
        run.save(update_fields=["status", "started_at", "chunks_total", "sessions_total", "due_at"])
        for chunk in RunChunk.objects.filter(run=run).values_list("pk", flat=True):
            _enqueue(run_chunk_work, chunk)
        if not chunks:  # an empty window: nothing to walk, the report is assembled at once
            _enqueue(run_assembly, run.id)


def split_into_chunks(sessions: list[tuple[str, int]], events_per_chunk: int) -> list[tuple[list[str], int]]:
    """``(session_id, tree_size)`` in session-id order → contiguous ``(session ids, events)`` chunks of whole
    sessions, each closed once it holds at least ``events_per_chunk`` events."""
    chunks: list[tuple[list[str], int]] = []
    ids: list[str] = []
    events = 0
    for session_id, size in sessions:
        ids.append(session_id)
        events += size
        if events >= events_per_chunk:
            chunks.append((ids, events))
            ids, events = [], 0
    if ids:
        chunks.append((ids, events))
    return chunks


def run_chunk(chunk_id: int, *, worker: str) -> None:
    """Claim, walk and complete one chunk (see the module docstring). Idempotent."""
    with transaction.atomic():
        chunk = RunChunk.objects.select_for_update().select_related("run").filter(pk=chunk_id).first()
        if chunk is None or chunk.done or chunk.run.status != Status.RUNNING:
            return
        if chunk.attempts >= max_attempts():
            _fail(chunk.run_id, f"Chunk {chunk.index} did not finish in {chunk.attempts} attempts.")
            return
        chunk.attempts += 1
        chunk.worker = worker
        chunk.lease_until = _lease_end()
        chunk.save(update_fields=["attempts", "worker", "lease_until"])
    run = chunk.run
    try:
        if run.scope == "session":  # the session report walks its log when assembled
            partial: dict[str, Any] | None = None
            sessions_done, events_done = 1, chunk.events
        else:
            sessions = list(
                window_sessions(run.account, agent=run.agent, window=_window(run)).filter(id__in=chunk.session_ids)
            )
            if [s.id for s in sessions] != chunk.session_ids:
                raise RuntimeError("the chunk's sessions are no longer in the run's window")
            partial = fold_sessions(sessions).to_json()
            sessions_done, events_done = len(sessions), sum(s.tree_size for s in sessions)
    except Exception as exc:
        logger.error("report run %s: chunk %s failed: %s", run.id, chunk.index, type(exc).__name__)
        _chunk_failed(chunk, exc)
        return
    with transaction.atomic():
        chunk = RunChunk.objects.select_for_update().get(pk=chunk_id)
        if chunk.done:  # another attempt finished it first: it counted then
            return
        run = ReportRun.objects.select_for_update().get(pk=chunk.run_id)
        chunk.done, chunk.partial, chunk.worker = True, partial, worker
        chunk.finished_at, chunk.lease_until = timezone.now(), None
        chunk.save(update_fields=["done", "partial", "worker", "finished_at", "lease_until"])
        run.chunks_done = F("chunks_done") + 1
        run.sessions_done = F("sessions_done") + sessions_done
        run.events_done = F("events_done") + events_done
        run.save(update_fields=["chunks_done", "sessions_done", "events_done"])
        run.refresh_from_db(fields=["chunks_done", "chunks_total", "status"])
        if run.chunks_done == run.chunks_total and run.status == Status.RUNNING:
            ReportRun.objects.filter(pk=run.pk).update(due_at=_lease_end())
            _enqueue(run_assembly, run.id)


def _chunk_failed(chunk: RunChunk, exc: Exception) -> None:
    with transaction.atomic():
        chunk = RunChunk.objects.select_for_update().get(pk=chunk.pk)
        if chunk.done:
            return
        if chunk.attempts >= max_attempts():
            _fail(chunk.run_id, f"Chunk {chunk.index} failed {chunk.attempts} times: {_describe(exc)}")
            return
        chunk.lease_until = _lease_end()
        chunk.save(update_fields=["lease_until"])
        _enqueue(run_chunk_work, chunk.pk, countdown=2**chunk.attempts)


def assemble_run(run_id: str) -> None:
    """Merge, build, sign, render, store and record the run's report once every chunk is done. Idempotent: a run
    that is not running, or not complete, is left alone; of two concurrent assemblies (a lease that ran out) the
    first to commit wins and the other deletes the files it wrote (each attempt writes under its own folder)."""
    with transaction.atomic():
        run = ReportRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status != Status.RUNNING or run.chunks_done < run.chunks_total:
            return
        run.due_at = _lease_end()
        run.save(update_fields=["due_at"])
    run = ReportRun.objects.select_related("account", "agent", "session").get(pk=run_id)
    storage = run_files_storage()
    folder = f"{run.account_id}/{run.id}/{new_id('rep')[4:].lower()}"
    written: list[RunFile] = []
    try:
        record = _build_and_store(run, storage, folder, written)
        with transaction.atomic():
            locked = ReportRun.objects.select_for_update().get(pk=run_id)
            if locked.status != Status.RUNNING:
                raise _Superseded
            RunFile.objects.bulk_create(written)
            report_id = record([file.as_register_json() for file in written])
            locked.status, locked.finished_at, locked.report_id, locked.due_at = (
                Status.SUCCEEDED,
                timezone.now(),
                report_id,
                None,
            )
            locked.save(update_fields=["status", "finished_at", "report_id", "due_at"])
    except _Superseded:
        _delete_files(storage, written)
    except Exception as exc:
        logger.error("report run %s: assembly failed: %s", run_id, type(exc).__name__)
        _delete_files(storage, written)
        _fail(run_id, f"The report could not be assembled: {_describe(exc)}")


class _Superseded(Exception):  # control flow inside assemble_run only
    pass


def _build_and_store(
    run: ReportRun, storage, folder: str, written: list[RunFile]
) -> Callable[[list[dict[str, Any]]], str]:
    """Build and sign the report, write its files; return what records it in the register (with the files)."""
    now = timezone.now()

    def store(name: str, content_type: str, source: IO[bytes]) -> None:
        digest, size = hashlib.sha256(), 0
        source.seek(0)
        while block := source.read(1 << 20):
            digest.update(block)
            size += len(block)
        source.seek(0)
        storage_name = f"{folder}/{name}"
        if storage.save(storage_name, File(source, name=name)) != storage_name:
            raise RuntimeError("the run-files storage renamed a file")
        written.append(
            RunFile(
                run=run,
                name=name,
                content_type=content_type,
                size=size,
                sha256=digest.hexdigest(),
                storage_name=storage_name,
            )
        )

    def store_bytes(name: str, content_type: str, body: bytes) -> None:
        with tempfile.TemporaryFile() as spool:
            spool.write(body)
            store(name, content_type, spool)

    primary = "json" if "json" in run.formats else "pdf"
    if run.session is not None:  # scope session
        session_report = sign_report(build_session_report(run.session, generated_at=now))
        for fmt in run.formats:
            store_bytes(report_filename(session_report, fmt), CONTENT_TYPES[fmt], render_report(session_report, fmt))
        return lambda files: (
            record_report(
                session_report, report_format=primary, generated_by=run.created_by, run_id=run.id, files=files
            ).id
        )

    chunks = list(run.chunks.order_by("index").values_list("partial", "session_ids"))
    parts = [partial for partial, _ in chunks if partial is not None]
    if len(parts) != len(chunks):
        raise RuntimeError("a chunk of the run holds no figures")
    fold = PeriodFold.merge(parts)
    report = sign_period_report(
        report_from_fold(
            run.account,
            agent=run.agent,
            window=_window(run),
            generated_at=now,
            session_ids=[session_id for _, ids in chunks for session_id in ids],
            fold=fold,
        )
    )
    report_json = render_period_json(report)
    report_pdf = render_period_pdf(report) if "pdf" in run.formats or run.bundle else None
    if "json" in run.formats:
        store_bytes(period_filename(report, "json"), CONTENT_TYPES["json"], report_json)
    if report_pdf is not None and "pdf" in run.formats:
        store_bytes(period_filename(report, "pdf"), CONTENT_TYPES["pdf"], report_pdf)
    if run.bundle:
        from reports.bundle import write_bundle

        with tempfile.TemporaryFile() as spool:
            write_bundle(spool, report, report_json=report_json, report_pdf=report_pdf)
            store(f"evidence-{run.id}.zip", CONTENT_TYPES["zip"], spool)
    return lambda files: (
        record_period_report(report, report_format=primary, generated_by=run.created_by, run_id=run.id, files=files).id
    )


def _delete_files(storage, files: list[RunFile]) -> None:
    for file in files:
        storage.delete(file.storage_name)


def _fail(run_id: str, message: str) -> None:
    ReportRun.objects.filter(pk=run_id, status__in=[Status.QUEUED, Status.RUNNING]).update(
        status=Status.FAILED, error=message, finished_at=timezone.now(), due_at=None
    )


def _describe(exc: Exception) -> str:
    """An error for the run's ``error``: our own errors' messages (they never carry PHI), else the class only."""
    return exc.message if isinstance(exc, ApiError) else f"{type(exc).__name__} (see the worker's log)."


# --- housekeeping (periodic, celery beat) ---------------------------------------------------------------------------


def requeue_abandoned(now: datetime | None = None) -> int:
    """Queue again every step whose deadline passed: a planning or an assembly not done in time, a chunk queued or
    claimed and not finished within its lease (its message or its worker was lost). Returns how many."""
    now = now or timezone.now()
    count = 0
    with transaction.atomic():
        for chunk in RunChunk.objects.select_for_update(skip_locked=True).filter(
            done=False, lease_until__lt=now, run__status=Status.RUNNING
        ):
            chunk.lease_until = _lease_end(now)
            chunk.save(update_fields=["lease_until"])
            _enqueue(run_chunk_work, chunk.pk)
            count += 1
        for run in ReportRun.objects.select_for_update(skip_locked=True).filter(
            status__in=[Status.QUEUED, Status.RUNNING], due_at__lt=now
        ):
            run.due_at = _lease_end(now)
            run.save(update_fields=["due_at"])
            if run.status == Status.QUEUED:
                _enqueue(run_planning, run.id)
            elif run.chunks_done == run.chunks_total:
                _enqueue(run_assembly, run.id)
            count += 1
    return count


def purge_expired_files(now: datetime | None = None) -> int:
    """Delete the stored files of succeeded runs older than their account's retention (``report_retention_days``
    after the run finished), and their ``RunFile`` rows. Audit events and the register (which keeps the files'
    hashes) are never touched. Returns how many files were deleted."""
    now = now or timezone.now()
    storage = run_files_storage()
    deleted = 0
    for account in Account.objects.filter(report_runs__status=Status.SUCCEEDED).distinct():
        expired = ReportRun.objects.filter(
            account=account,
            status=Status.SUCCEEDED,
            files_purged_at__isnull=True,
            finished_at__lt=now - timedelta(days=account.report_retention_days),
        )
        for run in expired:
            with transaction.atomic():
                files = list(RunFile.objects.select_for_update().filter(run=run))
                for file in files:
                    storage.delete(file.storage_name)
                RunFile.objects.filter(pk__in=[file.pk for file in files]).delete()
                ReportRun.objects.filter(pk=run.pk).update(files_purged_at=now)
            deleted += len(files)
    return deleted


# --- helpers --------------------------------------------------------------------------------------------------------


def run_files_storage():
    """The storage of run files (``STORAGES["run_files"]``: a folder by default, any Django storage backend)."""
    return storages["run_files"]


def chunk_events() -> int:
    return int(settings.MASKER_RUN_CHUNK_EVENTS)


def max_attempts() -> int:
    return int(settings.MASKER_RUN_MAX_ATTEMPTS)


def _lease_end(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) + timedelta(seconds=int(settings.MASKER_RUN_LEASE_SECONDS))


def _window(run: ReportRun) -> Window:
    if run.window_from is None or run.window_to is None:
        raise ValueError("a session run has no window")
    return Window(run.window_from, run.window_to)


# The tasks (reports.tasks), by name; queued only once the transaction that decided them commits.
run_planning = "reports.plan_run"
run_chunk_work = "reports.run_chunk"
run_assembly = "reports.assemble_run"


def _enqueue(task_name: str, argument: Any, *, countdown: int | None = None) -> None:
    """Queue a step once the transaction that decided it commits. A broker that cannot be reached is logged, not
    raised: the step's deadline is already recorded, so ``requeue_abandoned`` queues it once the broker is back."""

    def publish() -> None:
        try:
            app.send_task(task_name, args=[argument], countdown=countdown)
        except Exception as exc:
            logger.warning("could not queue %s %s: %s", task_name, argument, type(exc).__name__)

    transaction.on_commit(publish)
