"""Schemathesis hooks of the live fuzz stage (loaded with ``SCHEMATHESIS_HOOKS=tests.fuzz.hooks``).

The append operation has rules the OpenAPI document cannot state, so each generated batch is brought within them
just before it is sent, and everything else the generator drew is sent as drawn:
- it appends to an open session: each case starts a call of its own (``POST /api/v1/sessions``) and appends to it
  (a batch may end its session, which then refuses every later batch: 409);
- an event's ``ts`` lies within ``MAX_SKEW`` of the server's clock (``audit.timestamps``): every well-formed
  ``ts`` becomes now (a malformed one, drawn to be refused, stays as it is);
- an ``Idempotency-Key`` names one batch: each case gets a key of its own (the generator repeats short keys).
A report run's file is read from the run the test made (``MASKER_FUZZ_RUN``, its file ``MASKER_FUZZ_RUN_FILE``):
ids drawn at random only ever name no run. The server, token and agent come from ``MASKER_FUZZ_BASE``,
``MASKER_FUZZ_TOKEN`` and ``MASKER_FUZZ_AGENT``.
"""

import os
import uuid
from datetime import UTC, datetime

import requests
import schemathesis

from audit.timestamps import format_ts

APPEND = "POST /api/v1/sessions/{session_id}/events"
RUN_FILE = "GET /api/v1/report-runs/{run_id}/files/{name}"


def _well_formed(value) -> bool:
    try:
        datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return False
    return True


# A call reference of letters only: hex digits can spell a date (``…f20240108a…``) or a phone number, which the
# service refuses in an external_ref (PHI-shaped), about once in 20,000 references.
_LETTERS_FOR_DIGITS = str.maketrans("0123456789", "ghijklmnop")


def _ref(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex.translate(_LETTERS_FOR_DIGITS)}"


def _open_session() -> str:
    started = requests.post(
        f"{os.environ['MASKER_FUZZ_BASE']}/api/v1/sessions",
        json={"agent_id": os.environ["MASKER_FUZZ_AGENT"], "external_ref": _ref("fuzz")},
        headers={"Authorization": f"Bearer {os.environ['MASKER_FUZZ_TOKEN']}"},
        timeout=30,
    )
    started.raise_for_status()
    return started.json()["id"]


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    if case.operation.label == RUN_FILE:
        case.path_parameters.update(run_id=os.environ["MASKER_FUZZ_RUN"], name=os.environ["MASKER_FUZZ_RUN_FILE"])
        return
    if case.operation.label != APPEND:
        return
    case.path_parameters["session_id"] = _open_session()
    events = case.body.get("events") if isinstance(case.body, dict) else None
    for event in events if isinstance(events, list) else ():
        if isinstance(event, dict) and _well_formed(event.get("ts")):
            event["ts"] = format_ts(datetime.now(UTC))
    if case.headers and "Idempotency-Key" in case.headers:
        case.headers["Idempotency-Key"] = uuid.uuid4().hex
