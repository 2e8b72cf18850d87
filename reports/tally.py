"""The tally: the figures of a report, folded from the verified events of a walk (``audit.walk``).

A session report tallies one session (``reports.session_report``); a period report sums one tally per session
(``reports.period``). Lists that could grow with the log (alerts) are capped at ``LIST_LIMIT`` entries each, next
to their exact counts.
"""

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from itertools import compress
from operator import attrgetter
from typing import Any

import msgspec

from audit.events import ALERT_TYPES, KIND_FIELDS, PAYLOAD_KINDS, event_alert
from audit.policy import PolicyDoc, parse_policy
from audit.walk import EGRESS, REDACTED, REHYDRATED, EventView
from reports.values import LIST_LIMIT, TIMELINE_BUCKETS, TIMELINE_COLUMNS, Item, Listing, Timeline, TurnBucket


class Capped:
    """Collects at most ``LIST_LIMIT`` items and counts all of them."""

    __slots__ = ("count", "items")

    def __init__(self) -> None:
        self.count = 0
        self.items: list[Item] = []

    def add(self, event: "EventView", *fields: tuple[str, Any]) -> None:
        self.count += 1
        if len(self.items) < LIST_LIMIT:
            self.items.append(Item(seq=event.seq, turn=event.turn, ts=event.ts, fields=fields))

    def extend(self, other: "Capped", session_id: str) -> None:
        """Add another list's items, as occurring in ``session_id``, and its count."""
        self.count += other.count
        room = LIST_LIMIT - len(self.items)
        if room > 0:
            self.items.extend(replace(item, session_id=session_id) for item in other.items[:room])

    def freeze(self) -> Listing:
        return Listing(count=self.count, items=tuple(self.items))


class _TurnHistogram:
    """Counts per turn in buckets of ``width`` turns (a power of two). When the turns seen span more than
    ``TIMELINE_BUCKETS`` buckets, the width doubles and neighbouring buckets merge, so memory is bounded whatever
    the log, and the final width depends only on the first and last turn (not on the order events came in)."""

    __slots__ = ("counts", "first", "last", "width")

    def __init__(self) -> None:
        self.width = 1
        self.first: int | None = None
        self.last: int | None = None
        self.counts: dict[int, list[int]] = {}  # bucket (turn // width) -> one count per TIMELINE_COLUMNS

    def add(self, turn: int, column: int, n: int = 1) -> None:
        first = self.first = turn if self.first is None else min(self.first, turn)
        last = self.last = turn if self.last is None else max(self.last, turn)
        row = self.counts.get(turn // self.width)
        if row is None:
            while last // self.width - first // self.width >= TIMELINE_BUCKETS:
                self._widen()
            row = self.counts.setdefault(turn // self.width, [0] * len(TIMELINE_COLUMNS))
        row[column] += n

    def _widen(self) -> None:
        self.width *= 2
        merged: dict[int, list[int]] = {}
        for key, row in self.counts.items():
            into = merged.setdefault(key // 2, [0] * len(TIMELINE_COLUMNS))
            for i, n in enumerate(row):
                into[i] += n
        self.counts = merged

    def freeze(self) -> Timeline:
        if self.first is None or self.last is None:
            return Timeline(bucket_size=1, buckets=())
        width, empty = self.width, [0] * len(TIMELINE_COLUMNS)
        buckets = []
        for key in range(self.first // width, self.last // width + 1):
            counts = self.counts.get(key, empty)
            buckets.append(TurnBucket(max(key * width, self.first), min((key + 1) * width - 1, self.last), *counts))
        return Timeline(bucket_size=width, buckets=tuple(buckets))


@dataclass
class Tally:
    """Everything the report counts from the verified events, fed a chunk at a time by ``walk_chain`` (which, for
    a long log, runs it in its checking process: it must stay picklable). Memory: O(distinct vendors and kinds),
    lists capped."""

    alerts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ALERT_TYPES, 0))
    rehydration_failures: Capped = field(default_factory=Capped)
    leaks: Capped = field(default_factory=Capped)
    degraded: Capped = field(default_factory=Capped)
    cards: int = 0
    cards_luhn_valid: int = 0
    cards_masked: int = 0
    card_alerts: Capped = field(default_factory=Capped)
    # (hop, vendor, baa, retention_days) -> (turn, seq) of its first use, in order of first use; counts: census.
    hops: dict[tuple[str, str, bool, int], tuple[int, int]] = field(default_factory=dict)
    hop_counts: dict[tuple[str, str, bool, int], int] = field(default_factory=dict)
    baa_alerts: Capped = field(default_factory=Capped)
    payloads: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PAYLOAD_KINDS, 0))
    payloads_unencrypted: int = 0
    turns: _TurnHistogram = field(default_factory=_TurnHistogram)
    started: dict | None = None
    ended: dict | None = None
    last_ts: str = ""
    # Set from the walk's census once it is done (``count_census``): (entity, pass, action) -> count.
    redactions: dict[tuple[str, str, str], int] = field(default_factory=dict)
    rehydrations: int = 0

    def add_events(self, events: list[EventView], kinds: list[str]) -> None:
        """Tally a verified chunk: redactions and rehydrations (most of any log) come from the walk's census
        (``count_census``); every other event goes through ``_add_one``."""
        for event in compress(events, map(_ONE_BY_ONE.__contains__, kinds)):
            self._add_one(event)
        if EGRESS in kinds:
            self._add_egress(list(compress(events, map(EGRESS.__eq__, kinds))))
        for turn, count in Counter(map(_TURN, compress(events, map(REDACTED.__eq__, kinds)))).items():
            if turn is not None:
                self.turns.add(turn, 0, count)
        self.last_ts = events[-1].ts

    def count_census(self, census: Counter) -> None:
        """Take the redaction and rehydration figures from the walk's census of (kind, entity, pass, action)."""
        for (kind, entity, pass_, action, hop, vendor, baa, retention_days), count in census.items():
            if kind == REDACTED:
                key = (entity, pass_, action)
                self.redactions[key] = self.redactions.get(key, 0) + count
            elif kind == REHYDRATED:
                self.rehydrations += count
            elif kind == EGRESS:
                key = (hop, vendor, baa, retention_days)
                self.hop_counts[key] = self.hop_counts.get(key, 0) + count

    def _add_egress(self, egress: list[EventView]) -> None:
        """Egress hops of a chunk: counted by the census; only a hop's first use and non-BAA hops (alerts) need a
        look at single events."""
        for turn, count in Counter(map(_TURN, egress)).items():
            self.turns.add(turn, 1, count)
        keys = set(map(_HOP_KEY, egress))
        if keys <= self.hops.keys() and all(key[2] for key in keys):
            return
        for event in egress:
            key = _HOP_KEY(event)
            if key not in self.hops:
                self.hops[key] = (event.turn, event.seq)
            alert = event_alert(EGRESS, event)
            if alert is not None:
                self.alerts[alert] = self.alerts.get(alert, 0) + 1
                self.turns.add(event.turn, 2)
                self.baa_alerts.add(event, ("hop", key[0]), ("vendor", key[1]), ("retention_days", key[3]))

    def _add_one(self, event: EventView) -> None:
        kind = event.kind
        alert = event_alert(kind, event)
        if alert is not None:
            self.alerts[alert] = self.alerts.get(alert, 0) + 1
            if event.turn is not None:
                self.turns.add(event.turn, 2)
        if kind == "phi.rehydration_failed":
            self.rehydration_failures.add(event, ("entity_kind", event.entity_kind), ("reason", event.reason))
        elif kind == "leak.detected":
            self.leaks.add(event, ("entity_kind", event.entity_kind), ("stage", event.stage))
        elif kind == "pci.card_detected":
            self.cards += 1
            self.cards_luhn_valid += event.luhn_valid
            self.cards_masked += event.masked_before_egress
            if alert is not None:
                self.card_alerts.add(event, ("luhn_valid", event.luhn_valid), ("action", event.action))
        elif kind == "detection.degraded":
            self.degraded.add(event, ("reason", event.reason))
        elif kind == "payload.persisted":
            self.payloads[event.what] += 1
            self.payloads_unencrypted += not event.encrypted
        elif kind == "session.started":
            self.started = msgspec.structs.asdict(event)
        elif kind == "session.ended":
            self.ended = msgspec.structs.asdict(event)

    def redaction_counts(self, position: int, order: Iterable[str] | None = None) -> tuple[tuple[str, int], ...]:
        """Redactions summed by one element of the (entity, pass, action) key: alphabetical, or in ``order``
        (then keys of ``order`` with no redaction are left out)."""
        counts: dict[str, int] = {}
        for key, count in self.redactions.items():
            counts[key[position]] = counts.get(key[position], 0) + count
        return sorted_counts(counts, order)

    @property
    def total_redactions(self) -> int:
        return sum(self.redactions.values())


_HOP_KEY = attrgetter("hop", "vendor", "baa", "retention_days")
# Kinds the tally reads event by event: all but redactions, rehydrations and egress hops (most of any log), which
# the walk's census counts.
_ONE_BY_ONE = frozenset(KIND_FIELDS) - {REDACTED, REHYDRATED, EGRESS}
_TURN = attrgetter("turn")


@lru_cache(maxsize=128)
def parsed_policy(snapshot: str) -> PolicyDoc:
    """The parsed policy snapshot. Cached by its text: parsing YAML cost more than walking a 300-event log, and a
    snapshot never changes (sessions share a handful of policy versions). Treat the result as read-only."""
    return parse_policy(snapshot)


def sorted_counts(counts: dict[str, int], order: Iterable[str] | None = None) -> tuple[tuple[str, int], ...]:
    if order is None:
        return tuple(sorted(counts.items()))
    return tuple((key, counts[key]) for key in order if counts.get(key))
