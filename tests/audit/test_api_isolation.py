"""Tenant isolation over every session- and agent-scoped ``/api/v1`` endpoint, listed from the URLconf.

The list is built from the live URLconf, so an endpoint added later (report, export, proofs…) is covered without
editing this file: any route under ``api/v1/`` with a ``session_id`` or ``agent_id`` parameter, every HTTP method
its view implements.
"""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from audit.models import AuditEvent, Session
from audit.writing import start_session
from tests.audit.api_support import bearer_client, issue_token, mixed_batch
from tests.conftest import T0

_PARAM = re.compile(r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>")
_METHODS = ("get", "post", "put", "patch", "delete")


def _walk(patterns, prefix=""):
    for entry in patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, route)
        elif isinstance(entry, URLPattern):
            yield route, entry


def scoped_api_routes() -> list[tuple[str, str, str]]:
    """(route, method, scope parameter) for every tenant-scoped API operation in the URLconf."""
    found = []
    for route, entry in _walk(get_resolver().url_patterns):
        view_class = getattr(entry.callback, "cls", None) or getattr(entry.callback, "view_class", None)
        names = {m.group("name") for m in _PARAM.finditer(route)}
        scope = "session_id" if "session_id" in names else "agent_id" if "agent_id" in names else None
        if not route.startswith("api/v1/") or scope is None or view_class is None:
            continue
        found += [(route, method, scope) for method in _METHODS if hasattr(view_class, method)]
    return sorted(set(found))


ROUTES = scoped_api_routes()
# Plausible values for any other path parameter (e.g. an event's seq in a proof route).
OTHER_PARAMS = {"int": "0", "str": "x", "slug": "x", "uuid": "00000000-0000-0000-0000-000000000000"}
# Query parameters that some endpoints require; harmless to the others.
# Each GET gets the valid query it takes (an unknown parameter is a 400 of its own, tested in tests/masker).
QUERIES = {"report": {"format": "json"}, "proof": {"tree_size": "1"}, "consistency": {"first": "1", "second": "1"}}


def _query(route: str) -> dict[str, str]:
    return next((query for suffix, query in QUERIES.items() if route.endswith(suffix)), {})


def test_the_route_list_covers_the_ingestion_endpoints():
    assert {
        ("api/v1/sessions/<str:session_id>", "get", "session_id"),
        ("api/v1/sessions/<str:session_id>/events", "post", "session_id"),
        ("api/v1/sessions/<str:session_id>/end", "post", "session_id"),
        ("api/v1/agents/<str:agent_id>", "get", "agent_id"),
    } <= set(ROUTES)


def _url(route: str, *, session_id: str, agent_id: str) -> str:
    def fill(match):
        name, converter = match.group("name"), match.group("converter") or "str"
        return {"session_id": session_id, "agent_id": agent_id}.get(name, OTHER_PARAMS.get(converter, "x"))

    return "/" + _PARAM.sub(fill, route)


def _body(route: str) -> dict:
    if route.endswith("/events"):
        return {"events": mixed_batch(0, 2)}
    if route.endswith("/end"):
        return {"status": "ok"}
    return {}


@pytest.fixture
def globex_session(globex_agent):
    return start_session(globex_agent, external_ref="globex-call", started_at=T0)[0]


@pytest.fixture(params=["token", "cookie"])
def acme_client(request, acme, alice):
    if request.param == "token":
        return bearer_client(issue_token(acme))
    client = APIClient()
    client.force_login(alice)  # an admin of Acme: may write through the cookie
    return client


@pytest.mark.parametrize(("route", "method", "scope"), ROUTES, ids=[f"{m.upper()} {r}" for r, m, _ in ROUTES])
def test_other_accounts_session_or_agent_is_404_on_every_endpoint(
    acme_client, agent, globex_agent, globex_session, route, method, scope
):
    url = _url(route, session_id=globex_session.id, agent_id=globex_agent.id)
    if method == "get":
        response = acme_client.get(url, _query(route))
    else:
        response = getattr(acme_client, method)(url, _body(route), format="json")

    expected = "session_not_found" if scope == "session_id" else "agent_not_found"
    assert response.status_code == 404, (url, response.status_code)
    assert response.json()["error"]["code"] == expected
    assert globex_session.id not in response.content.decode().replace(url, "")
    after = Session.objects.get(pk=globex_session.pk)
    assert (after.tree_size, after.is_sealed) == (1, False)
    assert AuditEvent.objects.filter(session=globex_session).count() == 1
