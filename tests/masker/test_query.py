"""Unknown and repeated query parameters are a 400 validation_failed on every list, evidence and report endpoint."""

import pytest
from django.test import Client

from audit.models import AuditEvent
from reports.models import ReportRecord


def _endpoints(seeded) -> dict[str, str]:
    session = seeded.session("call-intake-0001")
    return {
        "sessions": "/api/v1/sessions",
        "agents": "/api/v1/agents",
        "events export": f"/api/v1/sessions/{session.id}/events",
        "inclusion proof": f"/api/v1/sessions/{session.id}/events/1/proof",
        "consistency proof": f"/api/v1/sessions/{session.id}/consistency?first=1",
        "report": f"/api/v1/sessions/{session.id}/report",
    }


ENDPOINTS = ["sessions", "agents", "events export", "inclusion proof", "consistency proof", "report"]


def _get(client: Client, url: str, extra: str):
    return client.get(url + ("&" if "?" in url else "?") + extra)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_unknown_query_parameter_is_400_naming_it(acme_client, seeded, endpoint):
    url = _endpoints(seeded)[endpoint]
    assert _get(acme_client, url, "").status_code == 200  # the endpoint works without the stray parameter

    response = _get(acme_client, url, "extrnal_ref=call-intake-0001")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    assert list(error["details"]["fields"]) == ["extrnal_ref"]
    assert error["details"]["fields"]["extrnal_ref"][0].startswith("unknown query parameter")


@pytest.mark.parametrize(
    ("endpoint", "repeated"),
    [
        ("sessions", "limit=1&limit=2"),
        ("agents", "limit=5&limit=5"),
        ("events export", "from_seq=0&from_seq=1"),
        ("inclusion proof", "tree_size=2&tree_size=3"),
        ("consistency proof", "first=1"),
        ("report", "format=xml&format=json"),
    ],
)
def test_repeated_single_valued_parameter_is_400(acme_client, seeded, endpoint, repeated):
    registered = ReportRecord.objects.count()

    response = _get(acme_client, _endpoints(seeded)[endpoint], repeated)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    name = repeated.split("=")[0]
    assert error["details"]["fields"] == {name: ["given more than once; give it once"]}
    assert ReportRecord.objects.count() == registered


def test_format_is_not_a_renderer_switch_outside_the_report(acme_client, seeded):
    response = acme_client.get("/api/v1/sessions?format=xml")
    assert response.status_code == 400
    assert list(response.json()["error"]["details"]["fields"]) == ["format"]


def test_a_parameter_name_that_is_not_identifier_like_is_not_echoed(acme_client, seeded):
    response = acme_client.get("/api/v1/sessions", {"John Smith 555-0100": "1"})
    assert response.status_code == 400
    assert "John" not in response.content.decode()
    assert list(response.json()["error"]["details"]["fields"]) == ["<unexpected parameter>"]


def test_a_refused_query_writes_nothing(acme_client, seeded):
    events, reports = AuditEvent.objects.count(), ReportRecord.objects.count()
    acme_client.get(_endpoints(seeded)["report"] + "?format=pdf&download=1")
    assert (AuditEvent.objects.count(), ReportRecord.objects.count()) == (events, reports)
