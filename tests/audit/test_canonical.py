"""The worked audit-chain example of tests/vectors/rfc6962.json, byte for byte, through our own code."""

import json
from pathlib import Path

import pytest
from jsonschema import Draft7Validator

from audit.canonical import canonical_bytes
from audit.events import stored_event_schema
from audit.merkle import leaf_hash, merkle_root

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "rfc6962.json"


@pytest.fixture(scope="module")
def example():
    assert VECTORS.exists(), f"test vectors missing at {VECTORS}"
    return json.loads(VECTORS.read_text())["audit_chain_example"]


def test_canonical_bytes_of_example_events_match_byte_for_byte(example):
    for item in example["events"]:
        assert canonical_bytes(item["event"]) == item["canonical_utf8"].encode("utf-8")


def test_event_hashes_and_prev_links_of_example_match(example):
    previous = "0" * 64
    for item in example["events"]:
        digest = leaf_hash(canonical_bytes(item["event"]))
        assert digest.hex() == item["event_hash_hex"]
        assert item["event"]["prev_hash"] == previous
        previous = digest.hex()


def test_merkle_root_of_example_matches(example):
    hashes = [leaf_hash(canonical_bytes(item["event"])) for item in example["events"]]
    assert merkle_root(hashes).hex() == example["merkle_root_hex"]


def test_example_events_conform_to_the_stored_event_schema(example):
    for item in example["events"]:
        event = item["event"]
        Draft7Validator(stored_event_schema(event["kind"])).validate(event)


def test_canonical_bytes_are_rfc8785_not_json_dumps():
    # json.dumps would write 1.0 and 1e-05; RFC 8785 writes 1 and 0.00001.
    assert canonical_bytes({"b": 1.0, "a": 1e-05, "é": "ü"}) == '{"a":0.00001,"b":1,"é":"ü"}'.encode()
