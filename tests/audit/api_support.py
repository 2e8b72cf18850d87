"""Helpers shared by the ingestion API tests: tokens, clients and sample events."""

from datetime import timedelta

from rest_framework.test import APIClient

from audit.timestamps import format_ts
from masker.models import Account, ApiToken
from tests.conftest import T0

ALL_SCOPES = ("events:write", "sessions:read", "reports:read")


def issue_token(account: Account, *scopes: str) -> str:
    """A fresh token of the account with the given scopes (all by default); returns its secret."""
    _, secret = ApiToken.issue(account=account, scopes=list(scopes or ALL_SCOPES), name="test")
    return secret


def bearer_client(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def redacted(i: int, **overrides) -> dict:
    """A valid ``phi.redacted`` event (turn i), with optional overrides."""
    event = {
        "ts": format_ts(T0 + timedelta(seconds=1 + i)),
        "kind": "phi.redacted",
        "turn": i,
        "pass": "ner",
        "entity_kind": "NAME",
        "span": [0, 9],
        "confidence": 0.93,
        "action": "tokenize",
        "token_kind": "MSKV1",
        "kid": "K_HEALTHCARE",
    }
    return {**event, **overrides}


def egress(i: int, **overrides) -> dict:
    event = {
        "ts": format_ts(T0 + timedelta(seconds=1 + i)),
        "kind": "egress.forwarded",
        "turn": i,
        "hop": "llm",
        "vendor": "openai",
        "baa": True,
        "retention_days": 0,
    }
    return {**event, **overrides}


def mixed_batch(start: int, size: int) -> list[dict]:
    return [redacted(i) if i % 3 else egress(i) for i in range(start, start + size)]
