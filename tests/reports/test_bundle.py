"""``write_bundle`` streams: a session's export goes into its zip entry block by block from the database cursor,
so writing a bundle holds a small fraction of the events in memory, and the zip is written to a stream that
cannot seek (a response, a pipe) as well as to a file."""

import tracemalloc
import zipfile
from datetime import timedelta
from typing import BinaryIO

import pytest

from audit.export import FETCH_CHUNK
from audit.writing import append_events, end_session, start_session
from reports.bundle import write_bundle
from reports.period import build_period_report, render_period_json, sign_period_report
from tests.reports.period_support import FROM, NOW, WINDOW, World, _events
from tests.verifier.support import run_verifier
from verifier.bundle import export_name

pytestmark = pytest.mark.django_db
EVENTS = 50_949  # 51 batches
BATCH = 999  # a batch holds at most 1000 events; a multiple of 3 keeps the pattern of _events


class Unseekable:
    """A write-only stream that cannot seek or tell, as a response body or a pipe: writes through to a file."""

    def __init__(self, target: BinaryIO) -> None:
        self.target = target

    def write(self, data: bytes) -> int:
        return self.target.write(data)

    def flush(self) -> None:
        self.target.flush()


def test_write_bundle_keeps_a_fraction_of_a_large_export_in_memory(tmp_path):
    world = World()
    session, _ = start_session(world.intake, external_ref="long-call", started_at=FROM + timedelta(days=5))
    start = FROM + timedelta(days=5)
    for offset in range(0, EVENTS, BATCH):
        append_events(session, _events(start + timedelta(seconds=offset), BATCH, alerts=False), now=NOW)
    end_session(session, status="ok", now=NOW)
    session.refresh_from_db()
    report = sign_period_report(build_period_report(world.account, agent=world.intake, window=WINDOW, generated_at=NOW))
    report_json = render_period_json(report)

    path = tmp_path / "evidence.zip"
    with path.open("wb") as out:
        tracemalloc.start()
        try:
            write_bundle(Unseekable(out), report, report_json=report_json, report_pdf=None)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

    with zipfile.ZipFile(path) as archive:
        export_size = archive.getinfo(export_name(session.id)).file_size
    assert export_size > 15_000_000  # the 50k events' NDJSON
    # What is held at once is the export's database fetch (FETCH_CHUNK rows, the next one arriving while the last
    # is written) and one compressed block: a constant, not the export.
    chunk_bytes = FETCH_CHUNK * export_size / session.tree_size
    assert peak < min(4 * chunk_bytes, export_size / 2.5), (peak, export_size)
    code, out = run_verifier("bundle", path)
    assert code == 0, out
