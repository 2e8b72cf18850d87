"""Example answers of the audit API for the OpenAPI document.

``openapi_examples.json`` holds real answers of one run of the demo (``manage.py seed_demo``: Acme Health's intake
line and its first call, ``call-intake-0001``) and of the README's ingestion example (call ``call-42``), so ids
follow the id patterns and hashes, receipts and seals are the ones the service computed. Tests check every example
against its response schema, so an example cannot drift from the answer's shape.
"""

import json
from pathlib import Path
from typing import Any

from drf_spectacular.utils import OpenApiExample

EXAMPLES: dict[str, Any] = json.loads((Path(__file__).with_suffix(".json")).read_text(encoding="utf-8"))

SESSION_ID: str = EXAMPLES["session_detail"]["id"]
AGENT_ID: str = EXAMPLES["agent_detail"]["id"]
EVENT_BATCH: dict = EXAMPLES["event_batch"]


def example(name: str, key: str, *, status: int = 200, media_type: str = "application/json") -> OpenApiExample:
    """The response example ``EXAMPLES[key]`` for ``status``."""
    return OpenApiExample(
        name, value=EXAMPLES[key], response_only=True, status_codes=[str(status)], media_type=media_type
    )
