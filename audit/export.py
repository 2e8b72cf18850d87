"""The audit log export: a session's events as NDJSON, streamed in constant memory.

Each line is one event's stored canonical bytes (RFC 8785, exactly as hashed at append) followed by ``\\n`` --
nothing else: no header, no trailer, no re-serialisation. Anyone can therefore recompute every leaf hash as
SHA-256(0x00 || line without its newline), check the ``prev_hash`` links and the Merkle root, without trusting
the server (``python3 masker-verify.pyz report …``).

The export does not verify the chain (it is raw evidence, and cheap); a report or ``verify_chain`` does. It is
bounded by the session's ``tree_size`` as read when the export starts, so an export of a live call is a
consistent prefix even while the proxy keeps appending.

Memory: rows are fetched with ``.iterator(chunk_size=…)`` over ``values_list("canonical")`` (a server-side cursor
on PostgreSQL) and written out in blocks of about ``BLOCK_BYTES``, so neither the process nor the
response buffers grow with the log.
"""

from collections.abc import Iterator
from dataclasses import dataclass

from audit.models import AuditEvent, Session

FETCH_CHUNK = 5000
BLOCK_BYTES = 256 * 1024


@dataclass(frozen=True)
class ExportRange:
    """Inclusive seq bounds of an export; ``None`` means from the first / to the last event."""

    from_seq: int | None = None
    to_seq: int | None = None

    def __post_init__(self) -> None:
        for name in ("from_seq", "to_seq"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"{name} must be a non-negative integer")
        if self.from_seq is not None and self.to_seq is not None and self.from_seq > self.to_seq:
            raise ValueError("from_seq must not exceed to_seq")


def export_filename(session: Session) -> str:
    return f"masker-events-{session.id}.ndjson"


def iter_event_lines(
    session: Session,
    *,
    seq_range: ExportRange | None = None,
    size: int | None = None,
    chunk_size: int = FETCH_CHUNK,
    block_bytes: int = BLOCK_BYTES,
) -> Iterator[bytes]:
    """The NDJSON export of ``session`` as an iterator of byte blocks, each made of whole lines.

    Covers the events with ``seq`` in ``seq_range`` (inclusive) and below ``size`` (default: the session's
    ``tree_size`` as of this call, so events appended while the response streams are not included), in ``seq``
    order. An empty range yields nothing. One query, run when the first block is asked for, streamed.
    """
    seq_range = seq_range or ExportRange()
    size = session.tree_size if size is None else size
    events = AuditEvent.objects.filter(session_id=session.pk, seq__lt=size)
    if seq_range.from_seq is not None:
        events = events.filter(seq__gte=seq_range.from_seq)
    if seq_range.to_seq is not None:
        events = events.filter(seq__lte=seq_range.to_seq)
    rows = events.order_by("seq").values_list("canonical", flat=True)
    return _blocks(rows.iterator(chunk_size=chunk_size), block_bytes)


def _blocks(lines: Iterator[str], block_bytes: int) -> Iterator[bytes]:
    """Join stored canonical texts into newline-terminated UTF-8 blocks of about ``block_bytes``."""
    block: list[str] = []
    pending = 0
    for canonical in lines:
        block.append(canonical)
        pending += len(canonical) + 1
        if pending >= block_bytes:
            block.append("")  # the newline after the block's last line
            yield "\n".join(block).encode("utf-8")
            block, pending = [], 0
    if block:
        block.append("")
        yield "\n".join(block).encode("utf-8")
