"""A period fold's JSON round-trip and merge: folds over consecutive chunks of a window, written as JSON and merged
in session-id order, are the fold of one walk over the whole window, root and capped lists included."""

import json

import pytest

from reports.period import PeriodFold, _report_of, fold_sessions, window_sessions
from reports.runs import split_into_chunks
from tests.reports.period_support import NOW, WINDOW, World, _tamper


@pytest.fixture
def world(db) -> World:
    return World()


def _sessions(world: World):
    return list(window_sessions(world.account, agent=None, window=WINDOW))


def _state(fold: PeriodFold) -> dict:
    return {**fold.to_json(), "root": fold.root.root().hex()}


@pytest.mark.parametrize("sizes", [[1] * 6, [2, 4], [3, 3], [5, 1], [6]])
def test_merged_chunks_equal_one_walk(world, sizes):
    _tamper(world.inside[2], 4)  # one broken session among them
    sessions = _sessions(world)
    whole = fold_sessions(sessions)
    parts, start = [], 0
    for size in sizes:
        parts.append(json.loads(json.dumps(fold_sessions(sessions[start : start + size]).to_json())))
        start += size
    merged = PeriodFold.merge(parts)
    assert _state(merged) == _state(whole)
    # the report built from the merged fold is the one built from the walk, figure for figure
    one = _report_of(world.account, None, WINDOW, NOW, sessions, whole)
    other = _report_of(world.account, None, WINDOW, NOW, sessions, merged)
    assert one.merkle_root_hex == other.merkle_root_hex
    assert json.dumps(one.sections) == json.dumps(other.sections)


def test_capped_lists_keep_the_first_in_session_order(world, monkeypatch):
    monkeypatch.setattr("reports.tally.LIST_LIMIT", 1)
    monkeypatch.setattr("reports.period.LIST_LIMIT", 1)
    sessions = _sessions(world)
    whole = fold_sessions(sessions)
    merged = PeriodFold.merge([fold_sessions([s]).to_json() for s in sessions])
    assert whole.baa_alerts.count == merged.baa_alerts.count == 2
    assert [i.session_id for i in merged.baa_alerts.items] == [i.session_id for i in whole.baa_alerts.items]
    assert len(merged.baa_alerts.items) == 1 and merged.baa_alerts.items[0].session_id == world.inside[1].id


def test_from_json_recomputes_the_root(world):
    fold = fold_sessions(_sessions(world))
    again = PeriodFold.from_json(json.loads(json.dumps(fold.to_json())))
    assert "root" not in fold.to_json()
    assert again.root.root() == fold.root.root()
    assert PeriodFold.merge([]).root.root() == PeriodFold().root.root()


def test_chunks_are_contiguous_whole_sessions_by_events():
    sessions = [("s1", 40), ("s2", 70), ("s3", 10), ("s4", 200), ("s5", 5)]
    assert split_into_chunks(sessions, 100) == [(["s1", "s2"], 110), (["s3", "s4"], 210), (["s5"], 5)]
    assert split_into_chunks(sessions, 1) == [([s], n) for s, n in sessions]
    assert split_into_chunks([], 100) == []
