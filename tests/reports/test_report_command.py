"""``manage.py report``: an operator writes the same period report as the API, recorded in the register."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from reports.models import ReportRecord
from tests.reports.period_support import World
from tests.reports.report_support import pdf_attachments, schema_errors, verify_report_signature

pytestmark = pytest.mark.django_db
WINDOW = ["--from", "2026-03-01T00:00:00Z", "--to", "2026-04-01T00:00:00Z"]


@pytest.fixture
def world() -> World:
    return World()


def test_account_report_to_a_json_file(world, tmp_path):
    target = tmp_path / "account.json"
    err = io.StringIO()
    call_command("report", "--account", world.account.id, *WINDOW, "--output", str(target), stderr=err)
    document = json.loads(target.read_bytes())
    assert schema_errors(document) == []
    report = document["report"]
    verify_report_signature(report)
    assert [e["session_id"] for e in report["sessions"]] == sorted(s.id for s in world.inside)
    assert f"{report['id']}: account report, 6 session(s)" in err.getvalue()
    record = ReportRecord.objects.get(id=report["id"])
    assert (record.scope, record.generated_by, record.format) == ("account", "manage.py report", "json")


def test_agent_report_to_a_pdf_file(world, tmp_path):
    target = tmp_path / "agent.pdf"
    call_command(
        "report", "--agent", world.triage.id, *WINDOW, "--format", "pdf", "--output", str(target), stderr=io.StringIO()
    )
    (attached,) = pdf_attachments(target.read_bytes()).values()
    report = json.loads(attached)["report"]
    assert (report["scope"], report["cover"]["agent"]["id"]) == ("agent", world.triage.id)


def test_bad_input_is_a_command_error(world, tmp_path):
    out = str(tmp_path / "x.json")
    with pytest.raises(CommandError, match="agent agt_nope not found"):
        call_command("report", "--agent", "agt_nope", *WINDOW, "--output", out)
    with pytest.raises(CommandError, match="validation_failed"):
        call_command(
            "report",
            "--account",
            world.account.id,
            "--from",
            "2026-03-01T00:00:00Z",
            "--to",
            "2026-03-01T00:00:00Z",
            "--output",
            out,
        )
    with pytest.raises(CommandError, match="window_too_large"):
        call_command("report", "--account", world.account.id, *WINDOW, "--max-events", "5", "--output", out)
    assert not ReportRecord.objects.exists()
