"""Event times: their one text form (RFC 3339 UTC, milliseconds, ``Z``) and the bounds an event's ``ts`` must keep.

An event may not claim a time more than ``MAX_SKEW`` before its session started (it would move the report's window
back) nor more than ``MAX_SKEW`` in the future (clocks drift a little; months do not). The writer checks both when
an event is appended; every walk re-checks the lower bound from the log itself (the upper one depends on when the
event was written, which only the writer knew).
"""

import re
from datetime import UTC, datetime, timedelta

MAX_SKEW = timedelta(minutes=5)


def format_ts(moment: datetime) -> str:
    """RFC 3339 UTC with milliseconds and ``Z``: the fixed-width form every event carries, so two such strings
    compare in time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# The shape ``parse_ts`` takes: ``fromisoformat`` reads it as ``strptime`` with the same format would, 50 times faster.
_TS_SHAPE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{1,6}Z\Z", re.ASCII)


def parse_ts(value: str) -> datetime:
    """An event time (``%Y-%m-%dT%H:%M:%S.%fZ``, UTC) as a datetime; ``ValueError`` for anything else."""
    if not _TS_SHAPE.match(value):
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)  # what else strptime takes
    return datetime.fromisoformat(value[:-1]).replace(tzinfo=UTC)


def earliest_ts(started_at: datetime | str) -> str:
    """The earliest ``ts`` an event of a session that started at ``started_at`` may carry, in event form."""
    started = parse_ts(started_at) if isinstance(started_at, str) else started_at
    return format_ts(started - MAX_SKEW)


def latest_ts(now: datetime) -> str:
    """The latest ``ts`` an event appended at ``now`` may carry, in event form."""
    return format_ts(now + MAX_SKEW)
