"""The CI fuzz stage: schemathesis against a live gunicorn on PostgreSQL, every operation, every check.

Runs ``schemathesis run`` on the served OpenAPI document with a bearer token of the seeded demo account (all
scopes), deterministic generation and a fixed budget per operation (``MASKER_FUZZ_EXAMPLES``, default 30), and
the examples, coverage and fuzzing phases (the stateful phase infers links from error bodies into query
parameters the operations do not declare, which the API refuses by design), and
requires at least ``MIN_CASES`` cases, no server error and no mismatch between the document and the answers.
The in-process run of ``tests/audit/test_schemathesis.py`` covers both databases; this one covers the deployed
shape (gunicorn, PostgreSQL, DEBUG off).
"""

import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from audit.demo import seed_demo
from reports.models import ReportRun
from tests.audit.api_support import issue_token
from tests.live_gunicorn import ROOT, gunicorn
from tests.reports.runs_support import run_here

CONFIG = Path(__file__).with_name("schemathesis.toml")
EXAMPLES = int(os.environ.get("MASKER_FUZZ_EXAMPLES", "30"))
MIN_CASES = 1000


@pytest.mark.postgres_only
def test_live_api_survives_a_schemathesis_run_with_every_check(live_db, tmp_path):
    demo = seed_demo()
    secret = issue_token(demo.account)
    now = timezone.now()
    run = run_here(
        ReportRun.objects.create(
            account=demo.account,
            scope="account",
            window_from=now - timedelta(days=30),
            window_to=now,
            formats=["json"],
            created_by="fuzz",
        )
    )
    schemathesis = Path(sys.executable).parent / "schemathesis"
    with gunicorn(workers=2, timeout=60) as base:
        command = [
            str(schemathesis),
            "--config-file",
            str(CONFIG),
            "run",
            f"{base}/api/v1/schema",
            "--header",
            f"Authorization: Bearer {secret}",
            "--checks",
            "all",
            "--max-examples",
            str(EXAMPLES),
            "--generation-deterministic",
            "--phases",
            "examples,coverage,fuzzing",
            "--request-timeout",
            "30",
            "--no-color",
            "--report",
            "junit",
            "--report-dir",
            str(tmp_path),
        ]
        environment = {
            **os.environ,
            "SCHEMATHESIS_HOOKS": "tests.fuzz.hooks",
            "PYTHONPATH": str(ROOT),
            "MASKER_FUZZ_BASE": base,
            "MASKER_FUZZ_TOKEN": secret,
            "MASKER_FUZZ_AGENT": demo.session("call-intake-0001").agent_id,
            "MASKER_FUZZ_RUN": run.id,
            "MASKER_FUZZ_RUN_FILE": run.files.get().name,
        }
        run = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False, env=environment)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-6000:]
    tally = re.search(r"(\d+) generated, (\d+) passed", output)
    assert tally is not None, output[-3000:]
    assert int(tally.group(1)) >= MIN_CASES, output[-3000:]
    assert tally.group(1) == tally.group(2), output[-3000:]  # every case passed every check
    # Schemathesis's own warnings: an operation whose generated requests the API mostly refuses (the document
    # promises more than the server accepts) or never gets past 404.
    assert "Schema validation mismatch" not in output, output[-3000:]
    assert "Missing test data" not in output, output[-3000:]
