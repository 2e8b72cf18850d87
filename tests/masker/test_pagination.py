"""Keyset pages cover every row once, in order, through ties in the leading field."""

from audit.models import Session
from audit.writing import start_session
from masker.pagination import keyset_page
from tests.conftest import T0


def test_pages_walk_every_row_once_in_order_through_ties(agent):
    for i in range(7):
        start_session(agent, external_ref=f"call-{i}", started_at=T0 if i < 5 else T0.replace(hour=T0.hour - 1))
    ordering = ("-started_at", "-id")
    expected = list(Session.objects.order_by(*ordering).values_list("id", flat=True))
    seen, after = [], None
    for _ in range(10):
        page, after = keyset_page(Session.objects.all(), ordering, after, 2)
        seen += [session.id for session in page]
        if after is None:
            break
    assert seen == expected and len(seen) == 7


def test_a_full_last_page_says_nothing_follows(agent):
    for i in range(2):
        start_session(agent, external_ref=f"call-{i}", started_at=T0)
    page, after = keyset_page(Session.objects.all(), ("id",), None, 2)
    assert len(page) == 2 and after is None
