"""Fixtures of the report tests: the seeded demo world and signed-in clients."""

import pytest
from django.test import Client

from audit.demo import seed_demo
from masker.models import Membership


@pytest.fixture
def seeded(db):
    """The demo world of ``audit.demo.seed_demo()``: Acme Health's six calls and Globex's one."""
    return seed_demo()


def _client_for(account) -> Client:
    client = Client()
    client.force_login(Membership.objects.filter(account=account).select_related("user").first().user)
    return client


@pytest.fixture
def acme_client(seeded) -> Client:
    return _client_for(seeded.account)


@pytest.fixture
def globex_client(seeded) -> Client:
    return _client_for(seeded.other_account)
