"""Keyset pagination, the one way every list of the API pages: a page is the rows after the last row the client
saw, in a fixed total order, so pages stay consistent while rows are added and cost the same at any depth.

Each list encodes its position in its own documented ``cursor`` format (an id, or a time and an id), so a
malformed cursor is a 400 from the query serializer before any query. (DRF's ``CursorPagination`` would make the
cursor an opaque base64 of a position and an offset, answer a bad one with 404, and pass a forged position
straight into a filter.)
"""

from typing import Any

from django.db.models import Q, QuerySet


def keyset_page(queryset: QuerySet, ordering: tuple[str, ...], after: tuple | None, limit: int) -> tuple[list, Any]:
    """Up to ``limit`` rows of ``queryset`` in ``ordering`` (field names, ``-`` for descending; together they must
    be unique) that come after the position ``after`` (the ordering's values of the last row seen, or None for the
    first page). Returns the rows and the position of the last one when more rows follow, else None."""
    if after is not None:
        condition = Q()
        equal: dict[str, Any] = {}
        for field, value in zip(ordering, after, strict=True):
            name = field.lstrip("-")
            condition |= Q(**equal, **{f"{name}__{'lt' if field.startswith('-') else 'gt'}": value})
            equal[name] = value
        queryset = queryset.filter(condition)
    rows = list(queryset.order_by(*ordering)[: limit + 1])
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, tuple(getattr(rows[-1], field.lstrip("-")) for field in ordering)
