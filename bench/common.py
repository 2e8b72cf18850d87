"""Shared set-up for the benchmarks: Django on PostgreSQL (BENCH_DATABASE_URL), a bench account and agent,
sessions of a given size built through ``append_events``, and RSS readings.

Run a bench as ``.venv/bin/python bench/<name>.py``; it migrates the bench database itself.
"""

import os
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault(
    "DATABASE_URL", os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/masker_bench")
)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "masker.settings")
os.environ.setdefault("MASKER_SECRET_KEY", "bench-only-secret")
os.environ.setdefault("MASKER_CREATE_DEV_KEY", "1")
os.environ.setdefault("MASKER_VAR_DIR", str(ROOT / "var" / "bench"))
os.environ.setdefault("MASKER_LOG_LEVEL", "WARNING")

import django  # noqa: E402

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
# Rows per FETCH of the floors' server-side cursors, as the walk fetches (``audit.walk.FETCH_ROWS``): with the
# fetch a batch ahead, 1M events took 1.07 s at 512 rows and 0.99 s at 2,048 (plain fetches: within noise).
FETCH_ROWS = 2048


def setup() -> None:
    """Create the bench database if needed, then configure Django and migrate."""
    import psycopg

    url = os.environ["DATABASE_URL"]
    name = url.rsplit("/", 1)[1]
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def bench_agent():
    from audit.demo import HEALTHCARE_DEFAULT
    from audit.models import Agent, Policy
    from masker.models import Account

    account, _ = Account.objects.get_or_create(name="Bench Health")
    policy = Policy.objects.filter(account=account, name="healthcare-default", version=3).first()
    if policy is None:
        policy = Policy.objects.create(
            account=account, name="healthcare-default", version=3, yaml_text=HEALTHCARE_DEFAULT
        )
    agent, _ = Agent.objects.get_or_create(
        account=account,
        name="Bench line",
        defaults={"policy": policy, "platform": "vapi", "upstream_model": "openai:gpt-4o-mini"},
    )
    return agent


def sample_event(i: int, *, start: datetime = T0) -> dict:
    """A realistic mix: mostly redactions, some egress and rehydrations, a rare alert."""
    from audit.timestamps import format_ts

    ts = format_ts(start + timedelta(milliseconds=i * 37))
    turn = i // 10
    r = i % 10
    if r < 6:
        kinds = ("NAME", "PHONE", "DOB", "MRN", "ADDRESS", "EMAIL")
        event = {
            "ts": ts,
            "kind": "phi.redacted",
            "turn": turn,
            "pass": "ner" if r % 2 else "regex",
            "entity_kind": kinds[r],
            "span": [r * 7, r * 7 + 9],
            "action": "tokenize",
            "token_kind": "MSKV1",
            "kid": "K_HEALTHCARE",
        }
        if r % 2:
            event["confidence"] = 0.9
        return event
    if r < 8:
        return {
            "ts": ts,
            "kind": "egress.forwarded",
            "turn": turn,
            "hop": "llm",
            "vendor": "openai",
            "baa": True,
            "retention_days": 0,
        }
    if r == 8:
        return {"ts": ts, "kind": "phi.rehydrated", "turn": turn, "entity_kind": "NAME", "token_kind": "MSKV1"}
    if i % 1000 == 9:
        return {"ts": ts, "kind": "leak.detected", "turn": turn, "entity_kind": "PHONE", "stage": "response"}
    return {"ts": ts, "kind": "phi.rehydrated", "turn": turn, "entity_kind": "PHONE", "token_kind": "MSKV1"}


def build_session(size: int, *, ref: str | None = None, batch: int = 1000, end: bool = True):
    """A session of exactly ``size`` events (including session.started/ended), reused if it already exists."""
    from audit.models import Session
    from audit.writing import append_events, end_session, start_session

    agent = bench_agent()
    ref = ref or f"bench-{size}"
    existing = Session.objects.filter(agent=agent, external_ref=ref).first()
    if existing is not None and existing.tree_size == size:
        return existing
    if existing is not None:
        ref = f"{ref}-{int(time.time())}"
    session, _ = start_session(agent, external_ref=ref, started_at=T0)
    body = size - 1 - (1 if end else 0)
    for lo in range(0, body, batch):
        append_events(session, [sample_event(i) for i in range(lo, min(body, lo + batch))])
    if end:
        end_session(session, status="ok", now=T0 + timedelta(hours=10))
    return session


def plain_batches(rows):
    """A server-side cursor's rows, ``FETCH_ROWS`` at a time, each fetched when the last one is done with."""
    while fetched := rows.fetchmany(FETCH_ROWS):
        yield fetched


def median_ratio(times: list[float], floors: list[float]) -> float:
    """The median of the per-run ratios of interleaved runs: steadier than the ratio of medians on a shared machine."""
    import statistics

    return statistics.median(t / f for t, f in zip(times, floors, strict=True))


def rss_mb() -> float:
    """Current resident set size in MB (from /proc; peak via ``peak_rss_mb``)."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def children_peak_rss_mb() -> float:
    """The largest peak RSS of this process's finished children (the report walk's checking process)."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e3
