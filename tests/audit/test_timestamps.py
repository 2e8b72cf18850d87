"""Event times: ``parse_ts`` reads exactly what ``strptime`` with the event format reads, fast path or not."""

from datetime import UTC, datetime

import pytest

from audit.timestamps import format_ts, parse_ts

FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


@pytest.mark.parametrize(
    "value",
    [
        "2026-06-01T09:00:00.000Z",
        "2026-06-01T09:00:00.5Z",
        "2026-06-01T09:00:00.12Z",
        "2026-06-01T09:00:00.1234Z",
        "2026-06-01T09:00:00.123456Z",
        "0001-01-01T00:00:00.000Z",
        "9999-12-31T23:59:59.999Z",
        "2026-6-1T9:00:00.1Z",  # not the fixed-width form, which strptime still reads
    ],
)
def test_parse_ts_reads_what_strptime_reads(value):
    assert parse_ts(value) == datetime.strptime(value, FORMAT).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    ["2026-02-29T00:00:00.000Z", "2026-06-01T24:00:00.000Z", "2026-06-01T09:00:00Z", "2026-06-01 09:00:00.000Z", ""],
)
def test_parse_ts_refuses_what_strptime_refuses(value):
    with pytest.raises(ValueError, match=r"does not match format|out of range"):
        datetime.strptime(value, FORMAT)
    with pytest.raises(ValueError, match=r"does not match format|out of range|must be in"):
        parse_ts(value)


def test_format_and_parse_round_trip():
    moment = datetime(2026, 6, 1, 9, 0, 0, 123000, tzinfo=UTC)
    assert parse_ts(format_ts(moment)) == moment
