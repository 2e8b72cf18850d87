"""The README, walked: every ```bash block, in order, in one shell, against a server started like `make run` does
(its own port, a temporary SQLite database, the demo data). A README that drifts from the product fails here.

Each block runs with ``set -euo pipefail``: a command that fails (``curl -fsS`` on an error status, a
``python3 -c`` that does not find the field it reads) stops the walk and names the command. A line carrying
``# (not run: …)`` is skipped; a block whose first line is such a comment is skipped whole. Files the examples
download are checked to be what they claim (JSON parses, a PDF starts with ``%PDF-``, NDJSON lines parse).
"""

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DEMO_URL = "http://127.0.0.1:8000"
FENCE = re.compile(r"^```(?:bash|sh)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
NOT_RUN = "# (not run"


def readme_blocks(text: str) -> list[str]:
    """The README's shell blocks that are meant to run, lines marked ``# (not run: …)`` left out."""
    blocks = []
    for match in FENCE.finditer(text):
        lines = match.group(1).rstrip("\n").split("\n")
        if lines and lines[0].lstrip().startswith(NOT_RUN):
            continue
        blocks.append("\n".join(line for line in lines if NOT_RUN not in line))
    return blocks


def test_readme_blocks_are_found_and_not_run_markers_honoured():
    text = (
        "a\n```bash\necho 1\necho 2  # (not run: why)\n```\n```\nplain\n```\n```bash\n# (not run: all)\necho 3\n```\n"
    )
    assert readme_blocks(text) == ["echo 1"]
    assert len(readme_blocks(README.read_text(encoding="utf-8"))) >= 3


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _walk_env(var_dir: Path) -> dict[str, str]:
    """A development configuration like the `.env` of `make run`, with its own files and database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MASKER_", "DATABASE_URL", "DJANGO_"))}
    env.update(
        MASKER_DEBUG="1",
        MASKER_SECRET_KEY="readme-walk-secret-key-only-for-this-test",
        MASKER_VAR_DIR=str(var_dir),
        MASKER_ENV_FILE="",  # not the developer's .env
        PYTHONUNBUFFERED="1",
    )
    return env


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=env, check=True, capture_output=True)


def _wait_until_serving(url: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the server exited: {server.stderr.read().decode(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/v1/keys", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    pytest.fail("the server did not answer within 60 s")


@pytest.fixture
def demo_server(tmp_path):
    """`make run`'s steps (migrate, seed_demo, runserver and a worker) on a free port and a temporary SQLite
    database."""
    env = _walk_env(tmp_path / "var")
    _manage(env, "migrate", "--noinput", "-v", "0")
    _manage(env, "seed_demo")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "runserver", f"127.0.0.1:{port}", "--noreload", "--skip-checks"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    # and, as `make run` does, a report-run worker with its beat beside it (the broker is a folder under var/)
    worker_log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "masker",
            "worker",
            "--beat",
            "--concurrency",
            "1",
            "--loglevel",
            "INFO",
            "--without-mingle",
            "--without-gossip",
            "--schedule",
            str(tmp_path / "celerybeat-schedule"),
        ],
        env=env,
        cwd=ROOT,
        stdout=worker_log,
        stderr=worker_log,
    )
    try:
        _wait_until_serving(url, server)
        _wait_until_ready(tmp_path / "worker.log", worker)
        yield url, env
    finally:
        for process in (server, worker):
            process.terminate()
            process.wait(timeout=30)
        server.stderr.close()
        worker_log.close()


def _wait_until_ready(log: Path, worker: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if " ready." in log.read_text(errors="replace"):
            return
        if worker.poll() is not None:
            break
        time.sleep(0.2)
    pytest.fail(f"the worker did not start: {log.read_text(errors='replace')[-2000:]}")


# The walk uses a SQLite database of its own whatever DATABASE_URL says: the PostgreSQL run would repeat it as is.
@pytest.mark.sqlite_only
def test_every_readme_example_runs_in_order_against_a_demo_server(demo_server, tmp_path):
    url, env = demo_server
    # The examples run "from the repository's folder": a folder of its own, with the repository's entry points.
    work = tmp_path / "work"
    work.mkdir()
    (work / ".venv").symlink_to(ROOT / ".venv")
    (work / "manage.py").symlink_to(ROOT / "manage.py")
    blocks = readme_blocks(README.read_text(encoding="utf-8"))
    script = ["set -euo pipefail", "trap 'echo \"README command failed: $BASH_COMMAND\" >&2' ERR"]
    for number, block in enumerate(blocks, 1):
        script += [block.replace(DEMO_URL, url), f"echo; echo '=== README block {number} done'"]

    walk = subprocess.run(
        ["bash", "-c", "\n".join(script)], cwd=work, env=env, capture_output=True, text=True, timeout=600
    )

    assert walk.returncode == 0, f"{walk.stderr[-3000:]}\n--- stdout ---\n{walk.stdout[-2000:]}"
    done = re.findall(r"^=== README block (\d+) done$", walk.stdout, re.M)
    assert done == [str(n) for n in range(1, len(blocks) + 1)]
    _check_downloads(work)


def _check_downloads(work: Path) -> None:
    files = {path.name: path for path in work.iterdir() if path.is_file() and not path.is_symlink()}
    assert any(name.startswith("masker-report-") and name.endswith(".pdf") for name in files), sorted(files)
    for name, path in files.items():
        data = path.read_bytes()
        assert data, f"{name} is empty"
        if name.endswith(".pdf"):
            assert data.startswith(b"%PDF-"), name
        elif name.endswith(".json"):
            json.loads(data)
        elif name.endswith(".ndjson"):
            assert all(json.loads(line) for line in data.splitlines()), name
