"""The OpenAPI document explains the API to its users, and tells the truth about it.

Every operation has a summary and a description; every 2xx answer with a body has an example, and each JSON
example validates against its response schema; the response headers the document names are exactly the ones live
responses carry (checked on real requests through the Django test client).
"""

import json
from collections import defaultdict

from django.test import Client
from jsonschema import Draft202012Validator

from audit.demo import DEMO_EMAIL, DEMO_PASSWORD
from audit.writing import start_session
from reports.models import ReportRun
from tests.audit.api_support import bearer_client, issue_token, mixed_batch
from tests.conftest import T0
from tests.reports.runs_support import run_here

# Headers the HTTP stack puts on responses whatever the operation (content framing, DRF's Allow, Django's
# security middleware, CSP): transport, not the API's contract. The session cookie is renewed on every
# cookie-authenticated response (Set-Cookie), so it is documented where it matters, on sign-in only.
GENERIC_HEADERS = {
    "content-type",
    "content-length",
    "allow",
    "vary",
    "x-frame-options",
    "x-content-type-options",
    "referrer-policy",
    "cross-origin-opener-policy",
    "cross-origin-resource-policy",
    "content-security-policy",
    "strict-transport-security",
    "permissions-policy",
    "content-language",
}


def _operations(openapi: dict):
    for path, methods in openapi["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def test_every_operation_has_a_summary_and_a_description_for_users(openapi):
    operations = list(_operations(openapi))
    assert len(operations) >= 16
    for path, method, operation in operations:
        assert operation.get("summary"), f"{method} {path}"
        description = operation.get("description", "")
        assert len(description) > 40, f"{method} {path}"
        assert "``" not in description, f"{method} {path}"


def test_every_2xx_answer_with_a_body_has_an_example_that_fits_its_schema(openapi):
    components = openapi["components"]  # OpenAPI 3.1: schema objects are JSON Schema 2020-12 as they are
    checked = 0
    for path, method, operation in _operations(openapi):
        for status, response in operation["responses"].items():
            if not status.startswith("2"):
                continue
            content = response.get("content")
            if status == "204":
                assert not content, f"{method} {path} {status} has a body"
                continue
            assert content, f"{method} {path} {status} has no content"
            for media_type, body in content.items():
                examples = body.get("examples") or {}
                assert examples, f"{method} {path} {status} {media_type}: no example"
                if "json" not in media_type or body["schema"].get("format") == "binary":
                    continue
                validator = Draft202012Validator({**body["schema"], "components": components})
                for name, example in examples.items():
                    errors = [error.message for error in validator.iter_errors(example["value"])]
                    assert errors == [], f"{method} {path} {status} example {name}: {errors[:3]}"
                    checked += 1
    assert checked >= 12


def test_enum_values_are_explained_in_words_not_generated_lists(openapi):
    text = json.dumps(openapi)
    assert "* `" not in text
    status = openapi["components"]["schemas"]["SessionSummary"]["properties"]["status"]
    assert "`active` — the call is in progress" in status["description"]


def test_the_csrf_answer_is_documented_on_cookie_writes(openapi):
    append = openapi["paths"]["/api/v1/sessions/{session_id}/events"]["post"]
    assert "csrf_failed" in append["responses"]["403"]["description"]
    assert "X-CSRFToken" in append["responses"]["403"]["description"]


# --- headers: documented == sent, on live responses ------------------------------------------------------------


def _sent_headers(response) -> set[str]:
    names = {name.lower() for name in response.headers}
    if response.cookies:
        names.add("set-cookie")
    return names


def _live_answers(seeded, settings) -> list[tuple[str, str, object]]:
    """(path template, method, response) for requests covering every operation's 2xx answers and some errors."""
    session = next(s for s in seeded.sessions if s.external_ref == "call-intake-0001")
    agent_id = session.agent_id
    sid = session.id
    token = bearer_client(issue_token(seeded.account))
    cookie = Client()
    answers = []

    def record(template, method, response):
        answers.append((template, method, response))

    record(
        "/api/v1/auth/login",
        "post",
        cookie.post(
            "/api/v1/auth/login", {"email": DEMO_EMAIL, "password": DEMO_PASSWORD}, content_type="application/json"
        ),
    )
    record(
        "/api/v1/auth/login",
        "post",
        Client().post(
            "/api/v1/auth/login", {"email": DEMO_EMAIL, "password": "wrong-password"}, content_type="application/json"
        ),
    )
    record("/api/v1/me", "get", cookie.get("/api/v1/me"))
    record("/api/v1/me", "get", Client().get("/api/v1/me"))
    record("/api/v1/agents", "get", token.get("/api/v1/agents"))
    record("/api/v1/agents/{agent_id}", "get", token.get(f"/api/v1/agents/{agent_id}"))
    record("/api/v1/sessions", "get", token.get("/api/v1/sessions"))
    record("/api/v1/sessions", "get", token.get("/api/v1/sessions?colour=red"))
    body = {"agent_id": agent_id, "external_ref": "call-headers", "started_at": "2026-05-03T21:14:30.000Z"}
    batch = {"events": mixed_batch(0, 2)}  # times just after the start above
    record("/api/v1/sessions", "post", token.post("/api/v1/sessions", body, format="json"))
    started = token.post("/api/v1/sessions", body, format="json")
    record("/api/v1/sessions", "post", started)
    new_id = started.json()["id"]
    record("/api/v1/sessions/{session_id}", "get", token.get(f"/api/v1/sessions/{sid}"))
    record("/api/v1/sessions/{session_id}", "get", token.get("/api/v1/sessions/sess_nope"))
    events_url = f"/api/v1/sessions/{new_id}/events"
    for _ in range(2):  # the second is a replay
        record(
            "/api/v1/sessions/{session_id}/events",
            "post",
            token.post(events_url, batch, format="json", HTTP_IDEMPOTENCY_KEY="headers-1"),
        )
    record(
        "/api/v1/sessions/{session_id}/end",
        "post",
        token.post(f"/api/v1/sessions/{new_id}/end", {"status": "ok"}, format="json"),
    )
    record(
        "/api/v1/sessions/{session_id}/end",
        "post",
        token.post(f"/api/v1/sessions/{new_id}/end", {"status": "ok"}, format="json"),
    )
    record("/api/v1/sessions/{session_id}/events", "get", token.get(f"/api/v1/sessions/{sid}/events"))
    record(
        "/api/v1/sessions/{session_id}/events/{seq}/proof", "get", token.get(f"/api/v1/sessions/{sid}/events/1/proof")
    )
    record("/api/v1/sessions/{session_id}/consistency", "get", token.get(f"/api/v1/sessions/{sid}/consistency?first=2"))
    record("/api/v1/keys", "get", Client().get("/api/v1/keys"))
    record("/api/v1/verifier/masker-verify.pyz", "get", Client().get("/api/v1/verifier/masker-verify.pyz"))
    record("/api/v1/schemas/masker-audit-v1.json", "get", Client().get("/api/v1/schemas/masker-audit-v1.json"))
    report = f"/api/v1/sessions/{sid}/report"
    record("/api/v1/sessions/{session_id}/report", "get", token.get(report))
    record("/api/v1/sessions/{session_id}/report", "get", token.get(report + "?format=pdf"))
    record("/api/v1/sessions/{session_id}/report", "get", token.get(report + "?format=xml"))
    record("/api/v1/sessions/{session_id}/report", "get", token.get("/api/v1/sessions/sess_nope/report"))
    window = "from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z"
    for template, url in (
        ("/api/v1/agents/{agent_id}/report", f"/api/v1/agents/{agent_id}/report"),
        ("/api/v1/reports", "/api/v1/reports"),
    ):
        record(template, "get", token.get(f"{url}?{window}"))
        record(template, "get", token.get(f"{url}?{window}&format=pdf"))
        record(template, "get", token.get(f"{url}?colour=red"))
    record("/api/v1/agents/{agent_id}/report", "get", token.get("/api/v1/agents/agt_nope/report"))
    runs = "/api/v1/report-runs"
    run_body = {"scope": "agent", "agent_id": agent_id, "from": "2026-04-01T00:00:00Z", "formats": ["json"]}
    for _ in range(2):  # the second is a replay
        started_run = token.post(runs, run_body, format="json", HTTP_IDEMPOTENCY_KEY="headers-run")
        record(runs, "post", started_run)
    record(runs, "post", token.post(runs, {"scope": "agent"}, format="json"))
    run_id = started_run.json()["id"]
    run_here(ReportRun.objects.get(pk=run_id))
    record(runs, "get", token.get(runs))
    record(runs, "get", token.get(f"{runs}?cursor=nope"))
    record(runs + "/{run_id}", "get", token.get(f"{runs}/{run_id}"))
    record(runs + "/{run_id}", "get", token.get(f"{runs}/run_nope"))
    (file,) = token.get(f"{runs}/{run_id}").json()["files"]
    record(runs + "/{run_id}/files/{name}", "get", token.get(file["url"]))
    record(runs + "/{run_id}/files/{name}", "get", token.get(f"{runs}/{run_id}/files/nope.json"))
    record("/api/v1/auth/logout", "post", cookie.post("/api/v1/auth/logout"))
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"token": "1/min"}}
    limited = bearer_client(issue_token(seeded.account))
    limited.get("/api/v1/sessions")
    record("/api/v1/sessions", "get", limited.get("/api/v1/sessions"))
    return answers


def test_documented_response_headers_are_exactly_the_ones_sent(openapi, seeded, settings):
    sent: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for template, method, response in _live_answers(seeded, settings):
        sent[(template, method, str(response.status_code))] |= _sent_headers(response) - GENERIC_HEADERS

    for (template, method, status), names in sent.items():
        responses = openapi["paths"][template][method]["responses"]
        assert status in responses, f"{method} {template} answered an undocumented {status}"
        documented = {name.lower() for name in responses[status].get("headers", {})}
        if template != "/api/v1/auth/login":
            names = names - {"set-cookie"}
        assert names == documented, (
            f"{method} {template} {status}: sent {sorted(names)}, documented {sorted(documented)}"
        )

    exercised = {key for key in sent}
    for path, method, operation in _operations(openapi):
        for status in operation["responses"]:
            if status.startswith("2"):
                assert (path, method, status) in exercised, f"{method} {path} {status} not exercised"
    statuses = {status for _, _, status in exercised}
    assert {"400", "401", "404", "409", "429"} <= statuses


def test_a_replayed_append_says_so_in_a_header(agent):
    session, _ = start_session(agent, external_ref="call-replay", started_at=T0)
    client = bearer_client(issue_token(agent.account))
    url = f"/api/v1/sessions/{session.id}/events"
    batch = {"events": mixed_batch(0, 2)}
    first = client.post(url, batch, format="json", HTTP_IDEMPOTENCY_KEY="replay-1")
    again = client.post(url, batch, format="json", HTTP_IDEMPOTENCY_KEY="replay-1")
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
