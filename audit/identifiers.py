"""The shapes of identifier fields: what a vendor, platform, key id, reason code or call reference may look like.

These fields are the only strings a client writes into the audit log and the session table, so they are tight by
construction: a transcript, a name, a phone number, an SSN, an e-mail address or a date of birth must not fit.

- ``SLUG`` (``vendor``, ``platform``): up to five lower-case words joined by ``-`` or ``_``, the first starting
  with a letter, each either letters then at most three digits or a number of at most three digits (``openai``,
  ``deepgram``, ``azure-openai``, ``gpt4o``, ``writer-2``). No dots, capitals or runs of four digits, so
  ``John.Smith``, ``555-123-4567`` or ``smith-1980`` cannot pass.
- ``KID`` (key ids): upper-case words joined by ``_`` (``K_HEALTHCARE``, ``K_CLINIC_V2``).
- ``REASON`` (``reason``): a snake_case code of at most five letter-only words (``ner_timeout``).
- ``EXTERNAL_REF`` (the platform's call id): letters, digits and ``. _ : -``, so UUIDs and platform call ids fit,
  but not when it holds the shape of a phone number, an SSN, a date or a PHI label (``mrn``, ``dob``, ``ssn``,
  ``patient``): ``PHI_SHAPE`` (used as JSON Schema ``not``).

The patterns are ECMA-262 compatible (no look-around), so the OpenAPI document states exactly what is accepted.
Error messages name the field and the rule, never the value.
"""

import re

SLUG = r"^[a-z]+([0-9]{1,3}[a-z]*)?([-_]([a-z]+([0-9]{1,3}[a-z]*)?|[0-9]{1,3})){0,4}$"
KID = r"^[A-Z]+([0-9]{1,3})?(_[A-Z]+([0-9]{1,3})?){0,5}$"
REASON = r"^[a-z]+(_[a-z]+){0,4}$"
EXTERNAL_REF = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"

_SSN = r"(^|[^0-9])[0-9]{3}[-. ][0-9]{2}[-. ][0-9]{4}([^0-9]|$)"
_PHONE = (
    r"(^|[^0-9A-Za-z])([0-9]{3}[-.])?[0-9]{3}[-.][0-9]{4}([^0-9A-Za-z]|$)|(^|[^0-9A-Za-z])[0-9]{10,11}([^0-9A-Za-z]|$)"
)
_ISO_DATE = r"(^|[^0-9])(19|20)[0-9]{2}[-/._]?(0[1-9]|1[0-2])[-/._]?(0[1-9]|[12][0-9]|3[01])([^0-9]|$)"
_US_DATE = r"(^|[^0-9])[0-9]{1,2}[-/.][0-9]{1,2}[-/.]([0-9]{4}|[0-9]{2})([^0-9]|$)"
_LABEL = r"(^|[^A-Za-z])([Mm][Rr][Nn]|[Dd][Oo][Bb]|[Ss][Ss][Nn]|[Pp][Aa][Tt][Ii][Ee][Nn][Tt])([^A-Za-z]|$)"
PHI_SHAPE = "|".join([_SSN, _PHONE, _ISO_DATE, _US_DATE, _LABEL, "@"])

SLUG_SCHEMA = {"type": "string", "pattern": SLUG, "maxLength": 48}
KID_SCHEMA = {"type": "string", "pattern": KID, "maxLength": 64}
REASON_SCHEMA = {"type": "string", "pattern": REASON, "maxLength": 48}
EXTERNAL_REF_SCHEMA = {"type": "string", "pattern": EXTERNAL_REF, "maxLength": 128, "not": {"pattern": PHI_SHAPE}}

_PHI_SHAPE = re.compile(PHI_SHAPE)


def is_phi_shaped(value: str) -> bool:
    """Whether ``value`` holds something shaped like a phone number, SSN, date, e-mail address or PHI label."""
    return bool(_PHI_SHAPE.search(value))
