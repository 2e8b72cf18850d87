"""Example answers of the audit API for the OpenAPI document, taken from the demo data (``manage.py seed_demo``:
Acme Health's intake line and its first call) and from the README's ingestion example (call ``call-42``).

Ids follow the id patterns and hashes are the real ones of those calls; tests check every example against its
response schema, so an example cannot drift from the answer's shape.
"""

from drf_spectacular.utils import OpenApiExample

AGENT_ID = "agt_01M8QE5VJWB8JERXYW5CWBC05Z"
SESSION_ID = "sess_01M8QE5VMPNB972MFV10PMGDRQ"
NEW_SESSION_ID = "sess_01M8QE6MJJZ39093FGMS2RA80K"
KID = "ed25519-76cffd88b8ecae21"
POLICY = {
    "name": "healthcare-default",
    "version": 3,
    "sha256": "043cf08fb4b25d9c10e208df8efbd91b214e3fa9a5605fdd51509c796a5916ab",
}
ROOT = "e14ef4a9baecb97803b6c10151b27988423c9a38f5561bd6e36de437aadcd2c9"
HEAD = "280fe2b8cb4019f1043910ea934f4ae5137abeebcc642d6f0fa8df8628b8001a"

AGENT = {
    "id": AGENT_ID,
    "name": "Intake line",
    "platform": "vapi",
    "upstream_model": "openai:gpt-4o-mini",
    "policy": {"id": "pol_01M8QE5VHBCEG1YCVK5RDZ5VVJ", **POLICY},
    "created_at": "2026-11-20T13:55:53.820Z",
}
SESSION_SUMMARY = {
    "id": SESSION_ID,
    "agent_id": AGENT_ID,
    "external_ref": "call-intake-0001",
    "platform": "vapi",
    "upstream_model": "openai:gpt-4o-mini",
    "status": "ok",
    "started_at": "2026-11-20T14:00:00.000Z",
    "ended_at": "2026-11-20T14:00:41.500Z",
    "duration_ms": 41500,
    "policy": POLICY,
    "tree_size": 14,
    "merkle_root_hex": ROOT,
    "chain_head_hex": HEAD,
    "sealed": True,
    "redaction_count": 7,
    "alert_count": 0,
}
SESSION_DETAIL = {
    **SESSION_SUMMARY,
    "seal": {
        "session_id": SESSION_ID,
        "tree_size": 14,
        "merkle_root_hex": ROOT,
        "chain_head_hex": HEAD,
        "sealed_at": "2026-11-20T14:00:41.500Z",
        "signature": {
            "alg": "Ed25519",
            "kid": KID,
            "sig": "TU5ohTtvGIKkfbeUGm_tyIQhDbXv5o8G61NSKTawDLDGRUKtJx3PaCPovrlF4OXgRYwXSu8pFUfQGAr7X9zfBg",
        },
    },
    "counts_by_kind": {
        "egress.forwarded": 3,
        "phi.redacted": 7,
        "phi.rehydrated": 2,
        "session.ended": 1,
        "session.started": 1,
    },
}
STARTED_SESSION = {
    **SESSION_SUMMARY,
    "id": NEW_SESSION_ID,
    "external_ref": "call-42",
    "status": "active",
    "started_at": "2026-11-30T23:56:19.394Z",
    "ended_at": None,
    "duration_ms": None,
    "tree_size": 1,
    "merkle_root_hex": "57b652ff619283d361a09196c28f9db15937ac1c29087a4efb1593edf1b710f3",
    "chain_head_hex": "57b652ff619283d361a09196c28f9db15937ac1c29087a4efb1593edf1b710f3",
    "sealed": False,
    "redaction_count": 0,
    "seal": None,
    "counts_by_kind": {"session.started": 1},
}
ENDED_SESSION = {
    **STARTED_SESSION,
    "status": "ok",
    "ended_at": "2026-11-30T23:56:19.591Z",
    "duration_ms": 197,
    "tree_size": 4,
    "merkle_root_hex": "8c1fcd4b15b67d2d8a27337982b35c9746f97fc64a376bd0bc53cbc49e1e079e",
    "chain_head_hex": "785e635a3d192fadd5a876e6cee7e5f7adb8d6ea3856823322af1b996c34b63a",
    "sealed": True,
    "redaction_count": 1,
    "seal": {
        "session_id": NEW_SESSION_ID,
        "tree_size": 4,
        "merkle_root_hex": "8c1fcd4b15b67d2d8a27337982b35c9746f97fc64a376bd0bc53cbc49e1e079e",
        "chain_head_hex": "785e635a3d192fadd5a876e6cee7e5f7adb8d6ea3856823322af1b996c34b63a",
        "sealed_at": "2026-11-30T23:56:19.591Z",
        "signature": {
            "alg": "Ed25519",
            "kid": KID,
            "sig": "b28lZS130OHwaxOsd-W7R-xYWeD45baNm6dri5k97rHf5p_Asp6DJMK3yRWpr6V78fkh74BEMLxMAq0bEUlYAQ",
        },
    },
    "counts_by_kind": {"egress.forwarded": 1, "phi.redacted": 1, "session.ended": 1, "session.started": 1},
}
APPEND_RESULT = {
    "session_id": NEW_SESSION_ID,
    "appended": 2,
    "first_seq": 1,
    "last_seq": 2,
    "tree_size": 3,
    "chain_head_hex": "85ad0dda2d4808bf9da53ed379032ca451a76beda58c06f402737858babcfd1f",
    "merkle_root_hex": "29eefbbca0f1029cc3084aa2bc99402873014c0a7c4b538a3fb8d572c2653612",
}
EVENT_BATCH = {
    "events": [
        {"kind": "phi.redacted", "ts": "2026-05-03T21:14:32.481Z", "turn": 1, "pass": "ner", "entity_kind": "NAME",
         "span": [11, 24], "confidence": 0.94, "action": "tokenize", "token_kind": "MSKV1", "kid": "K_HEALTHCARE"},
        {"kind": "egress.forwarded", "ts": "2026-05-03T21:14:32.700Z", "turn": 1, "hop": "llm", "vendor": "openai",
         "baa": True, "retention_days": 0},
    ]
}  # fmt: skip
EVENTS_NDJSON = (
    '{"agent_id":"agt_01M8QE5VJWB8JERXYW5CWBC05Z","id":"evt_01M8QE5VN3NVC8QXDD914R6WPT","kind":"session.started",'
    '"platform":"vapi","policy":{"name":"healthcare-default","sha256":'
    '"043cf08fb4b25d9c10e208df8efbd91b214e3fa9a5605fdd51509c796a5916ab","version":3},"prev_hash":'
    '"0000000000000000000000000000000000000000000000000000000000000000","seq":0,"session_id":'
    '"sess_01M8QE5VMPNB972MFV10PMGDRQ","ts":"2026-11-20T14:00:00.000Z","upstream_model":"openai:gpt-4o-mini","v":1}\n'
    '{"action":"tokenize","confidence":0.94,"entity_kind":"NAME","id":"evt_01M8QE5VNZAB4R2Y1BVDMZ4S5W","kid":'
    '"K_HEALTHCARE","kind":"phi.redacted","pass":"ner","prev_hash":'
    '"540fe82043be2377537fd4634601805994fcefabd56298f69a35b8a8c48e4af4","seq":1,"session_id":'
    '"sess_01M8QE5VMPNB972MFV10PMGDRQ","span":[11,24],"token_kind":"MSKV1","ts":"2026-11-20T14:00:03.200Z","turn":1,'
    '"v":1}\n'
)
INCLUSION_PROOF = {
    "type": "inclusion",
    "session_id": SESSION_ID,
    "seq": 1,
    "leaf_index": 1,
    "tree_size": 14,
    "leaf_hash_hex": "464c4d9ce3ba9bb9bae7f63169af351df461999d8d79feb02cb10edea4bd71d7",
    "path_hex": [
        "540fe82043be2377537fd4634601805994fcefabd56298f69a35b8a8c48e4af4",
        "53de84c497e114ee4d0c4e6d811e710891839739f6fac806fd70f5b2936c106f",
        "2bda98acc9201eef3b1f7c10d2677dc9af46b16a0774b94dcdc1abd1f12c46dc",
        "f5062950a6dad6b754efd83bc3c022147887d7e576f06bf939d9d71f2afd0be1",
    ],
    "root_hex": ROOT,
}
CONSISTENCY_PROOF = {
    "type": "consistency",
    "session_id": SESSION_ID,
    "first": 2,
    "second": 14,
    "first_root_hex": "0b54ff4333cd3522513bb02788dd9cd84ba982e240f8cc984831170331f3b836",
    "second_root_hex": ROOT,
    "proof_hex": [
        "53de84c497e114ee4d0c4e6d811e710891839739f6fac806fd70f5b2936c106f",
        "2bda98acc9201eef3b1f7c10d2677dc9af46b16a0774b94dcdc1abd1f12c46dc",
        "f5062950a6dad6b754efd83bc3c022147887d7e576f06bf939d9d71f2afd0be1",
    ],
}
KEYS = {
    "keys": [
        {"kty": "OKP", "crv": "Ed25519", "x": "LZOVdnFDyMGx6rM-1R_iBV7FNR_sjo-VenbDccO43l8", "kid": KID, "use": "sig",
         "status": "current"},
    ]
}  # fmt: skip


def example(name: str, value, *, status: int = 200, media_type: str = "application/json") -> OpenApiExample:
    """A response example for ``status`` (request examples are written inline)."""
    return OpenApiExample(name, value=value, response_only=True, status_codes=[str(status)], media_type=media_type)
