"""The HIPAA Safe Harbor matrix (45 CFR 164.514(b)(2)(i); docs/report.md), computed from a policy alone.

Pure: a parsed policy (``audit.policy.PolicyDoc``) in, statuses out; no database, no clock. Coverage is what the
policy *would* replace, not what a call happened to contain: a category is ``full`` when every entity kind it
needs is enabled with an action other than ``passthrough`` (``EntityRule.covers``), ``partial`` when some are,
``none`` when none are. Three categories follow their own rules:

- ``P_biometric`` (voiceprints) is ``not_applicable`` to text; for audio it is ``none`` unless the policy declares
  the audio neither retained nor forwarded (``audio: {retained: false, forwarded: false}``), then ``full``.
- ``Q_photo`` (full-face photos) is ``not_applicable``: Masker handles text and audio only.
- ``R_other`` (any other unique identifying number) is at most ``partial``: a catch-all is never complete by
  detection alone.

``coverage_percent`` = 100 * (full + partial / 2) / applicable categories, rounded half-up to one decimal.
"""

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from types import MappingProxyType

from audit.policy import PolicyDoc

FULL, PARTIAL, NONE, NOT_APPLICABLE = "full", "partial", "none", "not_applicable"
STATUSES = (FULL, PARTIAL, NONE, NOT_APPLICABLE)

# Key -> label, in the regulation's order (A..R). Read-only: the matrix has exactly these 18 rows.
CATEGORIES: MappingProxyType[str, str] = MappingProxyType(
    {
        "A_names": "Names",
        "B_geo": "Geographic subdivisions smaller than a state",
        "C_dates": "Dates (except year) and ages over 89",
        "D_phone": "Telephone numbers",
        "E_fax": "Fax numbers",
        "F_email": "Email addresses",
        "G_ssn": "Social Security numbers",
        "H_mrn": "Medical record numbers",
        "I_health_plan": "Health plan beneficiary numbers",
        "J_account": "Account numbers",
        "K_license": "Certificate and license numbers",
        "L_vehicle": "Vehicle identifiers and license plates",
        "M_device": "Device identifiers and serial numbers",
        "N_url": "Web URLs",
        "O_ip": "IP addresses",
        "P_biometric": "Biometric identifiers, including voiceprints",
        "Q_photo": "Full-face photographs and comparable images",
        "R_other": "Any other unique identifying number or code",
    }
)

# The entity kinds each detection-based category needs for ``full`` (docs/report.md).
REQUIRED_KINDS: MappingProxyType[str, tuple[str, ...]] = MappingProxyType(
    {
        "A_names": ("NAME",),
        "B_geo": ("ADDRESS", "ZIP"),
        "C_dates": ("DOB", "DATE", "AGE"),
        "D_phone": ("PHONE",),
        "E_fax": ("FAX",),
        "F_email": ("EMAIL",),
        "G_ssn": ("SSN",),
        "H_mrn": ("MRN",),
        "I_health_plan": ("HEALTH_PLAN_ID",),
        "J_account": ("ACCOUNT", "CREDIT_CARD"),
        "K_license": ("LICENSE",),
        "L_vehicle": ("VIN", "LICENSE_PLATE"),
        "M_device": ("DEVICE_ID",),
        "N_url": ("URL",),
        "O_ip": ("IP_ADDRESS",),
        "R_other": ("OTHER_ID",),
    }
)

STATEMENT = (
    "This matrix shows which of the 18 HIPAA Safe Harbor identifier categories the session's policy removes "
    "(45 CFR 164.514(b)(2)(i)). Safe Harbor de-identification also requires that the covered entity has no actual "
    "knowledge that the remaining information could identify an individual (164.514(b)(2)(ii)); software cannot "
    "attest to that, so this report does not claim de-identification on its own."
)


@dataclass(frozen=True)
class SafeHarborMatrix:
    """The 18 statuses (``CATEGORIES`` order) and the figures derived from them."""

    coverage: MappingProxyType[str, str]
    coverage_percent: Decimal
    applicable_categories: int

    def count(self, status: str) -> int:
        return sum(1 for value in self.coverage.values() if value == status)


def _detection_status(policy: PolicyDoc, kinds: tuple[str, ...]) -> str:
    covered = sum(1 for kind in kinds if kind in policy.entities and policy.entities[kind].covers)
    if covered == len(kinds):
        return FULL
    return PARTIAL if covered else NONE


def category_status(policy: PolicyDoc, key: str) -> str:
    """The status of one category under ``policy``; raises ``KeyError`` for an unknown key."""
    if key not in CATEGORIES:
        raise KeyError(key)
    if key == "Q_photo":
        return NOT_APPLICABLE
    if key == "P_biometric":
        if policy.media != "audio":
            return NOT_APPLICABLE
        return FULL if not policy.audio_retained and not policy.audio_forwarded else NONE
    status = _detection_status(policy, REQUIRED_KINDS[key])
    if key == "R_other" and status == FULL:
        return PARTIAL
    return status


def coverage_percent(coverage: dict[str, str] | MappingProxyType[str, str]) -> Decimal:
    """100 * (full + partial / 2) / applicable, ROUND_HALF_UP to one decimal; 0.0 when nothing applies."""
    applicable = [status for status in coverage.values() if status != NOT_APPLICABLE]
    if not applicable:
        return Decimal("0.0")
    points = Decimal(sum(2 for s in applicable if s == FULL) + sum(1 for s in applicable if s == PARTIAL))
    return (Decimal(100) * points / (2 * len(applicable))).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def safe_harbor_matrix(policy: PolicyDoc) -> SafeHarborMatrix:
    """All 18 categories for ``policy``, in order, with coverage_percent and the applicable count."""
    coverage = MappingProxyType({key: category_status(policy, key) for key in CATEGORIES})
    applicable = sum(1 for status in coverage.values() if status != NOT_APPLICABLE)
    return SafeHarborMatrix(
        coverage=coverage, coverage_percent=coverage_percent(coverage), applicable_categories=applicable
    )
