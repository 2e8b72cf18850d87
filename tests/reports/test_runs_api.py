"""Report runs through the API: validation, tenancy, idempotency, the cursor-paginated list, and a run's steps
(called here, without a broker) giving the synchronous report's figures in files whose SHA-256 the run and the
register hold."""

import hashlib
import io
import json
import subprocess
import sys
import zipfile
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from audit.models import Session
from reports.models import ReportRecord, ReportRun, RunChunk, RunFile
from reports.period import build_period_report, sign_period_report
from reports.runs import purge_expired_files, run_files_storage
from reports.session_report import build_session_report
from tests.audit.api_support import bearer_client, issue_token
from tests.reports.period_support import NOW, RANGE, WINDOW, World
from tests.reports.runs_support import figures, run_here

URL = "/api/v1/report-runs"


@pytest.fixture
def world(db) -> World:
    return World()


def _post(client, body, **headers):
    return client.post(URL, json.dumps(body), content_type="application/json", headers=headers)


def _error(response) -> dict:
    return response.json()["error"]


def _download(client, file: dict) -> bytes:
    response = client.get(file["url"])
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == file["content_type"]
    assert response["Cache-Control"] == "no-store"
    return b"".join(response.streaming_content)


# --- validation -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "scope"),
        ({"scope": "galaxy"}, "scope"),
        ({"scope": "agent"}, "agent_id"),
        ({"scope": "session"}, "session_id"),
        ({"scope": "account", "agent_id": "agt_01KB9Y00000000000000000000"}, "agent_id"),
        ({"scope": "account", "formats": []}, "formats"),
        ({"scope": "account", "formats": ["json", "json"]}, "formats"),
        ({"scope": "account", "formats": ["docx"]}, "formats"),
        ({"scope": "account", "colour": "red"}, "colour"),
        ({"scope": "account", "bundle": "maybe"}, "bundle"),
    ],
)
def test_invalid_bodies_are_400_naming_the_field(world, body, field):
    response = _post(world.client(), body)
    assert response.status_code == 400
    assert _error(response)["code"] == "validation_failed"
    assert field in _error(response)["details"]["fields"]
    assert not ReportRun.objects.exists()


def test_a_session_run_takes_no_window(world):
    body = {"scope": "session", "session_id": world.inside[0].id, "from": RANGE["from"], "bundle": True}
    fields = _error(_post(world.client(), body))["details"]["fields"]
    assert set(fields) == {"from", "bundle"}


@pytest.mark.parametrize(
    "window",
    [
        {"from": "2026-03-01"},
        {"from": RANGE["to"], "to": RANGE["from"]},
        {"from": "2025-01-01T00:00:00Z", "to": RANGE["to"]},
    ],
)
def test_the_window_is_checked_as_for_period_reports(world, window):
    response = _post(world.client(), {"scope": "account", **window})
    assert response.status_code == 400
    assert _error(response)["code"] == "validation_failed"


def test_another_accounts_agent_or_session_is_404(world):
    client = world.client()
    response = _post(client, {"scope": "agent", "agent_id": world.other_agent.id})
    assert (response.status_code, _error(response)["code"]) == (404, "agent_not_found")
    response = _post(client, {"scope": "session", "session_id": world.other_session.id})
    assert (response.status_code, _error(response)["code"]) == (404, "session_not_found")
    assert not ReportRun.objects.exists()


def test_a_token_needs_reports_read(world):
    client = bearer_client(issue_token(world.account, "sessions:read"))
    assert client.post(URL, {"scope": "account"}, format="json").status_code == 403
    client = bearer_client(issue_token(world.account, "reports:read"))
    assert client.post(URL, {"scope": "account"}, format="json").status_code == 202


# --- starting, reading, listing -------------------------------------------------------------------------------------


def test_post_answers_202_with_the_queued_run_and_its_location(world):
    response = _post(world.client(), {"scope": "agent", "agent_id": world.intake.id, **RANGE, "formats": ["pdf"]})
    assert response.status_code == 202
    run = response.json()
    assert response["Location"] == f"{URL}/{run['id']}"
    assert response["Cache-Control"] == "no-store"
    assert run["status"] == "queued" and run["id"].startswith("run_")
    assert run["progress"] == {"sessions_done": 0, "sessions_total": 0, "events_done": 0}
    assert run["files"] == [] and run["error"] is None and run["started_at"] is None
    assert run["time_window"] == {"from": "2026-03-01T00:00:00.000Z", "to": "2026-04-01T00:00:00.000Z"}
    assert (run["scope"], run["agent_id"], run["formats"], run["bundle"]) == ("agent", world.intake.id, ["pdf"], False)
    assert world.client().get(response["Location"]).json() == run


def test_the_window_defaults_to_the_last_30_days(world):
    before = timezone.now()
    run = ReportRun.objects.get(pk=_post(world.client(), {"scope": "account"}).json()["id"])
    assert run.window_to - run.window_from == timedelta(days=30)
    assert before <= run.window_to <= timezone.now()
    assert run.formats == ["json"] and run.bundle is False


def test_another_accounts_run_is_404(world):
    run_id = _post(world.client(), {"scope": "account"}).json()["id"]
    other = world.client(world.other)
    response = other.get(f"{URL}/{run_id}")
    assert (response.status_code, _error(response)["code"]) == (404, "run_not_found")
    assert other.get(f"{URL}/run_nonsense").status_code == 404
    assert other.get(URL).json() == {"report_runs": [], "next_cursor": None}


def test_idempotency_key_replays_the_run_and_refuses_another_body(world):
    client = world.client()
    body = {"scope": "account", **RANGE}
    first = _post(client, body, **{"Idempotency-Key": "run-1"})
    again = _post(
        client, {"to": RANGE["to"], "from": RANGE["from"], "scope": "account"}, **{"Idempotency-Key": "run-1"}
    )
    assert again.status_code == 202
    assert again.json()["id"] == first.json()["id"] and again["Location"] == first["Location"]
    assert again["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
    other = _post(client, {**body, "formats": ["pdf"]}, **{"Idempotency-Key": "run-1"})
    assert other.status_code == 400
    assert _error(other)["details"] == {"field": "Idempotency-Key"}
    bad = _post(client, body, **{"Idempotency-Key": "no spaces allowed"})
    assert bad.status_code == 400
    # keys belong to an account: Globex's run-1 is its own run
    theirs = _post(world.client(world.other), body, **{"Idempotency-Key": "run-1"})
    assert theirs.status_code == 202 and theirs.json()["id"] != first.json()["id"]
    assert ReportRun.objects.count() == 2


def test_the_list_is_newest_first_a_page_at_a_time(world):
    client = world.client()
    ids = [_post(client, {"scope": "account"}).json()["id"] for _ in range(3)]
    _post(world.client(world.other), {"scope": "account"})
    page = client.get(URL, {"limit": 2}).json()
    assert [run["id"] for run in page["report_runs"]] == ids[::-1][:2]
    rest = client.get(URL, {"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [run["id"] for run in rest["report_runs"]] == ids[:1] and rest["next_cursor"] is None
    for query in ({"cursor": "nope"}, {"limit": 0}, {"page": 2}):
        assert client.get(URL, query).status_code == 400


# --- a run's steps, in this process ---------------------------------------------------------------------------------


def test_an_account_run_gives_the_synchronous_report_in_its_files(world, settings):
    settings.MASKER_RUN_CHUNK_EVENTS = 15  # a chunk or two per session: several chunks
    client = world.client()
    run_id = _post(client, {"scope": "account", **RANGE, "formats": ["json", "pdf"]}).json()["id"]
    run = run_here(ReportRun.objects.get(pk=run_id))
    assert run.status == "succeeded", run.error
    assert RunChunk.objects.filter(run=run).count() > 2
    body = client.get(f"{URL}/{run_id}").json()
    assert body["progress"] == {
        "sessions_done": 6,
        "sessions_total": 6,
        "events_done": sum(s.tree_size for s in world.inside),
    }
    assert body["started_at"] and body["finished_at"] and body["report_id"].startswith("rep_")
    by_type = {f["content_type"]: f for f in body["files"]}
    assert set(by_type) == {"application/json", "application/pdf"}
    for file in body["files"]:
        content = _download(client, file)
        assert hashlib.sha256(content).hexdigest() == file["sha256"] and len(content) == file["size"]
    report = json.loads(_download(client, by_type["application/json"]))["report"]
    sync = sign_period_report(build_period_report(world.account, window=WINDOW, generated_at=NOW)).as_json()
    assert figures(report) == figures(sync)
    assert report["id"] == body["report_id"]
    assert _download(client, by_type["application/pdf"]).startswith(b"%PDF-")
    record = ReportRecord.objects.get(pk=body["report_id"])
    assert record.run_id == run_id and record.format == "json" and record.scope == "account"
    assert record.files == [{k: f[k] for k in ("name", "content_type", "size", "sha256")} for f in body["files"]]
    # another account: the run and its files are 404; an unknown name is 404 too
    other = world.client(world.other)
    assert other.get(by_type["application/json"]["url"]).status_code == 404
    missing = client.get(f"{URL}/{run_id}/files/other.json")
    assert (missing.status_code, _error(missing)["code"]) == (404, "file_not_found")


def test_running_a_step_twice_changes_nothing(world, settings):
    settings.MASKER_RUN_CHUNK_EVENTS = 15
    from reports.runs import assemble_run, plan_run, run_chunk

    run = ReportRun.objects.get(pk=_post(world.client(), {"scope": "account", **RANGE}).json()["id"])
    plan_run(run.id)
    plan_run(run.id)
    chunks = list(RunChunk.objects.filter(run=run))
    for chunk in chunks + chunks:
        run_chunk(chunk.pk, worker="w")
    run.refresh_from_db()
    assert (run.chunks_done, run.chunks_total, run.sessions_done) == (len(chunks), len(chunks), 6)
    assert {c.attempts for c in RunChunk.objects.filter(run=run)} == {1}
    assemble_run(run.id)
    assemble_run(run.id)
    run.refresh_from_db()
    assert run.status == "succeeded" and run.files.count() == 1
    assert ReportRecord.objects.filter(run=run).count() == 1


def test_a_session_run_gives_the_session_report(world):
    client = world.client()
    session = world.inside[1]
    run_id = _post(client, {"scope": "session", "session_id": session.id, "formats": ["json"]}).json()["id"]
    run = run_here(ReportRun.objects.get(pk=run_id))
    assert run.status == "succeeded", run.error
    assert (run.sessions_done, run.events_done, run.chunks_total) == (1, session.tree_size, 1)
    (file,) = client.get(f"{URL}/{run_id}").json()["files"]
    report = json.loads(_download(client, file))["report"]
    sync = build_session_report(Session.objects.get(pk=session.id), generated_at=NOW).as_json()
    assert report["scope"] == "session" and report["merkle_root_hex"] == sync["merkle_root_hex"]
    assert figures(report) == figures(sync)


def test_an_empty_window_succeeds(world):
    client = world.client()
    body = {"scope": "account", "from": "2020-01-01T00:00:00Z", "to": "2020-02-01T00:00:00Z"}
    run = run_here(ReportRun.objects.get(pk=_post(client, body).json()["id"]))
    assert run.status == "succeeded" and run.chunks_total == 0 and run.sessions_total == 0


def test_a_chunk_that_keeps_failing_fails_the_run_without_data(world, settings):
    from reports.runs import plan_run, run_chunk

    settings.MASKER_RUN_MAX_ATTEMPTS = 1
    run = ReportRun.objects.get(pk=_post(world.client(), {"scope": "account", **RANGE}).json()["id"])
    plan_run(run.id)
    chunk = RunChunk.objects.get(run=run)
    RunChunk.objects.filter(pk=chunk.pk).update(session_ids=[world.outside[0].id])  # not in the window: it raises
    run_chunk(chunk.pk, worker="w")
    run.refresh_from_db()
    assert run.status == "failed" and run.finished_at is not None
    assert run.error == "Chunk 0 failed 1 times: RuntimeError (see the worker's log)."
    body = world.client().get(f"{URL}/{run.id}").json()
    assert body["status"] == "failed" and body["error"] == run.error and body["files"] == []


# --- retention ------------------------------------------------------------------------------------------------------


def test_retention_deletes_expired_run_files_only(world):
    client = world.client()
    old_id = _post(client, {"scope": "account", **RANGE, "formats": ["json", "pdf"]}).json()["id"]
    new_id = _post(client, {"scope": "account", **RANGE}).json()["id"]
    old, new = (run_here(ReportRun.objects.get(pk=i)) for i in (old_id, new_id))
    world.account.report_retention_days = 30
    world.account.save()
    ReportRun.objects.filter(pk=old.pk).update(finished_at=timezone.now() - timedelta(days=31))
    old_files = list(RunFile.objects.filter(run=old).values_list("storage_name", flat=True))
    storage = run_files_storage()
    assert len(old_files) == 2 and all(storage.exists(name) for name in old_files)
    records, events = ReportRecord.objects.count(), sum(s.tree_size for s in Session.objects.all())

    assert purge_expired_files() == 2
    assert not any(storage.exists(name) for name in old_files)
    assert client.get(f"{URL}/{old_id}").json()["files"] == []
    assert len(client.get(f"{URL}/{new_id}").json()["files"]) == 1
    assert all(storage.exists(f.storage_name) for f in RunFile.objects.filter(run=new))
    assert ReportRecord.objects.count() == records
    assert len(ReportRecord.objects.get(run=old).files) == 2  # the register keeps the hashes
    assert sum(s.tree_size for s in Session.objects.all()) == events
    assert purge_expired_files() == 0


def test_retention_defaults_to_six_years(world):
    assert world.account.report_retention_days == 2190
    run = run_here(ReportRun.objects.get(pk=_post(world.client(), {"scope": "account", **RANGE}).json()["id"]))
    ReportRun.objects.filter(pk=run.pk).update(finished_at=timezone.now() - timedelta(days=2189))
    assert purge_expired_files() == 0
    ReportRun.objects.filter(pk=run.pk).update(finished_at=timezone.now() - timedelta(days=2191))
    assert purge_expired_files() == 1


def test_the_sweep_queues_abandoned_work_again(world, settings, django_capture_on_commit_callbacks):
    from reports.runs import plan_run, requeue_abandoned

    settings.MASKER_RUN_CHUNK_EVENTS = 15
    body = {"scope": "account", **RANGE}
    queued, planned = (ReportRun.objects.get(pk=_post(world.client(), body).json()["id"]) for _ in "ab")
    plan_run(planned.id)
    chunks = RunChunk.objects.filter(run=planned)
    assert requeue_abandoned() == 0  # every deadline ahead
    past = timezone.now() - timedelta(seconds=1)
    ReportRun.objects.filter(pk=queued.pk).update(due_at=past)  # its planning message was lost
    chunks.filter(index__lt=2).update(lease_until=past, worker="gone@host", attempts=1)  # its worker died
    with django_capture_on_commit_callbacks() as queued_again:
        assert requeue_abandoned() == 3
    assert len(queued_again) == 3
    assert all(c.lease_until > timezone.now() for c in chunks)
    queued.refresh_from_db()
    assert queued.due_at > timezone.now()
    assert requeue_abandoned() == 0


def test_a_bundle_run_stores_the_evidence_zip_which_verifies_offline(world, tmp_path):
    client = world.client()
    body = {"scope": "account", **RANGE, "formats": ["json", "pdf"], "bundle": True}
    run = run_here(ReportRun.objects.get(pk=_post(client, body).json()["id"]))
    assert run.status == "succeeded", run.error
    files = {f["content_type"]: f for f in client.get(f"{URL}/{run.id}").json()["files"]}
    bundle = files["application/zip"]
    assert bundle["name"] == f"evidence-{run.id}.zip"
    data = _download(client, bundle)
    assert hashlib.sha256(data).hexdigest() == bundle["sha256"]
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.read("report.json") == _download(client, files["application/json"])
    path = tmp_path / bundle["name"]
    path.write_bytes(data)
    checked = subprocess.run(
        [sys.executable, "-m", "verifier", "bundle", str(path)], capture_output=True, text=True, cwd=settings.BASE_DIR
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "VERIFIED" in checked.stdout
    registered = {k: bundle[k] for k in ("name", "content_type", "size", "sha256")}
    assert registered in ReportRecord.objects.get(run=run).files
