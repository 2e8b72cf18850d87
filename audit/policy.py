"""Policy documents (docs/report.md, configuration snapshot): YAML text, parsed and validated strictly; invalid
ones are refused at creation."""

import hashlib
from dataclasses import dataclass
from typing import Any

import yaml

from audit.events import ACTIONS, ENTITY_KINDS
from masker.errors import ValidationFailed

TOKENIZATIONS = ("vault-deterministic", "reversible-aead")
MEDIA = ("text", "audio")
PASS_NAMES = ("regex", "ner", "diarize")
TOP_LEVEL = {"name", "version", "kid", "tokenization", "passes", "media", "entities", "audit", "audio"}
ENTITY_KEYS = {"enabled", "ner", "regex", "confidence_threshold", "action"}
AUDIT_KEYS = {"log_payloads", "retention_days"}
AUDIO_KEYS = {"retained", "forwarded"}


@dataclass(frozen=True)
class EntityRule:
    enabled: bool
    action: str

    @property
    def covers(self) -> bool:
        """Counts towards Safe Harbor coverage: enabled and actually replaced (passthrough is only logged)."""
        return self.enabled and self.action != "passthrough"


@dataclass(frozen=True)
class PolicyDoc:
    name: str
    version: int
    kid: str
    tokenization: str
    passes: tuple[str, ...]
    media: str
    entities: dict[str, EntityRule]
    log_payloads: bool
    retention_days: int
    audio_retained: bool
    audio_forwarded: bool


def policy_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _fail(field: str, message: str):
    raise ValidationFailed(f"Invalid policy: {field}: {message}", details={"field": field})


def _check_keys(mapping: Any, allowed: set[str], where: str) -> dict:
    if not isinstance(mapping, dict):
        _fail(where, "must be a mapping")
    unknown = sorted(str(k) for k in set(mapping) - allowed)
    if unknown:
        _fail(f"{where}.{unknown[0]}" if where else unknown[0], "unknown key")
    return mapping


def parse_policy(text: str) -> PolicyDoc:
    """Parse and validate a policy's YAML text; raise ``ValidationFailed`` naming the first bad field."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValidationFailed(f"Invalid policy: YAML does not parse{where}.", details={"field": "yaml"}) from None
    data = _check_keys(data, TOP_LEVEL, "")
    for key in ("name", "version", "entities"):
        if key not in data:
            _fail(key, "is required")
    name, version = data["name"], data["version"]
    if not isinstance(name, str) or not name or len(name) > 100:
        _fail("name", "must be a non-empty string of at most 100 characters")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        _fail("version", "must be a positive integer")
    tokenization = data.get("tokenization", "vault-deterministic")
    if tokenization not in TOKENIZATIONS:
        _fail("tokenization", f"must be one of {', '.join(TOKENIZATIONS)}")
    passes = data.get("passes", ["regex"])
    if not isinstance(passes, list) or any(p not in PASS_NAMES for p in passes):
        _fail("passes", f"must be a list of {', '.join(PASS_NAMES)}")
    media = data.get("media", "text")
    if media not in MEDIA:
        _fail("media", f"must be one of {', '.join(MEDIA)}")
    kid = data.get("kid", "")
    if not isinstance(kid, str):
        _fail("kid", "must be a string")
    entities = {}
    for kind, rule in _check_keys(data["entities"], set(ENTITY_KINDS), "entities").items():
        rule = _check_keys(rule, ENTITY_KEYS, f"entities.{kind}")
        enabled = rule.get("enabled", True)
        action = rule.get("action", "tokenize")
        if not isinstance(enabled, bool):
            _fail(f"entities.{kind}.enabled", "must be true or false")
        if action not in ACTIONS:
            _fail(f"entities.{kind}.action", f"must be one of {', '.join(ACTIONS)}")
        threshold = rule.get("confidence_threshold", 0.5)
        if not isinstance(threshold, int | float) or isinstance(threshold, bool) or not 0 <= threshold <= 1:
            _fail(f"entities.{kind}.confidence_threshold", "must be a number between 0 and 1")
        for flag in ("ner", "regex"):
            if flag in rule and not isinstance(rule[flag], bool):
                _fail(f"entities.{kind}.{flag}", "must be true or false")
        entities[kind] = EntityRule(enabled=enabled, action=action)
    audit = _check_keys(data.get("audit", {}), AUDIT_KEYS, "audit")
    log_payloads = audit.get("log_payloads", False)
    retention_days = audit.get("retention_days", 0)
    if not isinstance(log_payloads, bool):
        _fail("audit.log_payloads", "must be true or false")
    if not isinstance(retention_days, int) or isinstance(retention_days, bool) or retention_days < 0:
        _fail("audit.retention_days", "must be a non-negative integer")
    audio = _check_keys(data.get("audio", {}), AUDIO_KEYS, "audio")
    flags = {k: audio.get(k, True) for k in AUDIO_KEYS}
    for key, value in flags.items():
        if not isinstance(value, bool):
            _fail(f"audio.{key}", "must be true or false")
    return PolicyDoc(
        name=name,
        version=version,
        kid=kid,
        tokenization=tokenization,
        passes=tuple(passes),
        media=media,
        entities=entities,
        log_payloads=log_payloads,
        retention_days=retention_days,
        audio_retained=flags["retained"],
        audio_forwarded=flags["forwarded"],
    )
