"""The OpenAPI schema documents every ingestion endpoint with its errors, scopes and body shapes."""

import json

import pytest
from django.test import Client

from audit.events import SERVER_KINDS

# What every operation may answer: a too-long URI (refused by gunicorn), rate limits, a sick database.
ANYWHERE = {"414", "429", "503"}
OPERATIONS = {
    ("/api/v1/sessions", "get"): {"200", "400", "401", "403"} | ANYWHERE,
    ("/api/v1/sessions", "post"): {"200", "201", "400", "401", "403", "404", "413"} | ANYWHERE,
    ("/api/v1/sessions/{session_id}", "get"): {"200", "401", "403", "404"} | ANYWHERE,
    ("/api/v1/sessions/{session_id}/events", "post"): {"201", "400", "401", "403", "404", "409", "413"} | ANYWHERE,
    ("/api/v1/sessions/{session_id}/end", "post"): {"200", "400", "401", "403", "404", "409", "413"} | ANYWHERE,
    ("/api/v1/agents", "get"): {"200", "400", "401", "403"} | ANYWHERE,
    ("/api/v1/agents/{agent_id}", "get"): {"200", "401", "403", "404"} | ANYWHERE,
}


@pytest.fixture
def openapi(db) -> dict:
    response = Client().get("/api/v1/schema", {"format": "json"}, HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return json.loads(response.content)


@pytest.mark.parametrize(("path", "method"), list(OPERATIONS), ids=[f"{m} {p}" for p, m in OPERATIONS])
def test_every_ingestion_operation_documents_its_errors_in_the_envelope(openapi, path, method):
    operation = openapi["paths"][path][method]

    assert set(operation["responses"]) == OPERATIONS[(path, method)]
    for status, response in operation["responses"].items():
        if status.startswith(("4", "5")):
            assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    assert {"bearerToken": []} in operation["security"] and {"cookieSession": []} in operation["security"]


def test_batch_body_documents_each_client_event_kind_strictly(openapi):
    operation = openapi["paths"]["/api/v1/sessions/{session_id}/events"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    batch = openapi["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
    kinds = batch["properties"]["events"]["items"]["oneOf"]

    assert batch["properties"]["events"]["maxItems"] == 1000
    assert {k["properties"]["kind"]["enum"][0] for k in kinds}.isdisjoint(SERVER_KINDS)
    assert all(k["additionalProperties"] is False for k in kinds)
    assert {p["name"] for p in operation["parameters"]} == {"session_id", "Idempotency-Key"}


def test_bearer_scheme_is_declared(openapi):
    assert openapi["components"]["securitySchemes"]["bearerToken"]["scheme"] == "bearer"


def test_request_bodies_are_closed_and_parameters_state_their_patterns(openapi):
    schemas = openapi["components"]["schemas"]
    for name in ("SessionStartRequest", "SessionEndRequest", "EventBatchRequest"):
        assert schemas[name]["additionalProperties"] is False, name
    sessions = {p["name"]: p["schema"] for p in openapi["paths"]["/api/v1/sessions"]["get"]["parameters"]}
    assert sessions["cursor"]["pattern"].startswith("^[0-9]")
    append = openapi["paths"]["/api/v1/sessions/{session_id}/events"]["post"]
    key = next(p for p in append["parameters"] if p["name"] == "Idempotency-Key")
    assert key["schema"]["pattern"] == "^[A-Za-z0-9][A-Za-z0-9._:-]{0,254}$"
    consistency = openapi["paths"]["/api/v1/sessions/{session_id}/consistency"]["get"]["parameters"]
    assert next(p for p in consistency if p["name"] == "first")["schema"]["minimum"] == 1
