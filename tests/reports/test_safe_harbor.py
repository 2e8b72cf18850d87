"""The Safe Harbor matrix as a pure function of a policy (no database): docs/report.md's matrix, four policies
and the edges."""

from decimal import Decimal

import pytest

from audit.demo import CLINIC_BASIC, HEALTHCARE_DEFAULT
from audit.policy import parse_policy
from reports.safe_harbor import CATEGORIES, category_status, coverage_percent, safe_harbor_matrix
from tests.reports.report_support import AUDIO_FORWARDED, AUDIO_NOT_KEPT, DATES_PARTIAL, PASSTHROUGH, SAFE_HARBOR_KEYS

ALL_KEYS = list(SAFE_HARBOR_KEYS)


def matrix_of(text: str) -> dict[str, str]:
    return dict(safe_harbor_matrix(parse_policy(text)).coverage)


def test_matrix_has_all_eighteen_categories_in_regulation_order():
    assert list(CATEGORIES) == ALL_KEYS
    assert list(matrix_of(HEALTHCARE_DEFAULT)) == ALL_KEYS


def test_full_default_policy_is_full_everywhere_but_catch_all_and_not_applicable_media():
    matrix = safe_harbor_matrix(parse_policy(HEALTHCARE_DEFAULT))
    expected = dict.fromkeys(ALL_KEYS, "full") | {
        "P_biometric": "not_applicable",
        "Q_photo": "not_applicable",
        "R_other": "partial",
    }
    assert dict(matrix.coverage) == expected
    assert matrix.applicable_categories == 16
    assert matrix.coverage_percent == Decimal("96.9")  # (15 + 0.5) / 16 = 96.875, half-up


def test_dates_partial_policy():
    matrix = safe_harbor_matrix(parse_policy(DATES_PARTIAL))
    coverage = dict(matrix.coverage)
    assert coverage["C_dates"] == "partial"  # DOB covered, DATE disabled, AGE absent
    assert coverage["B_geo"] == "partial"  # ADDRESS without ZIP
    assert coverage["A_names"] == coverage["D_phone"] == "full"
    assert coverage["E_fax"] == coverage["R_other"] == "none"
    assert coverage["P_biometric"] == coverage["Q_photo"] == "not_applicable"
    # full: A, D (2); partial: B, C (2); applicable 16 -> 100 * 3 / 16 = 18.75 -> 18.8
    assert matrix.coverage_percent == Decimal("18.8")


def test_passthrough_kinds_do_not_count_as_covered():
    coverage = matrix_of(PASSTHROUGH)
    assert coverage["A_names"] == "none"
    assert coverage["D_phone"] == "none"
    assert coverage["F_email"] == "full"
    assert coverage["J_account"] == "partial"  # ACCOUNT tokenized, CREDIT_CARD only logged
    assert coverage["R_other"] == "none"


def test_audio_media_makes_voiceprints_applicable():
    forwarded = safe_harbor_matrix(parse_policy(AUDIO_FORWARDED))
    assert forwarded.coverage["P_biometric"] == "none"
    assert forwarded.coverage["Q_photo"] == "not_applicable"
    assert forwarded.applicable_categories == 17
    assert forwarded.coverage_percent == Decimal("5.9")  # A only: 100 / 17 = 5.88
    not_kept = safe_harbor_matrix(parse_policy(AUDIO_NOT_KEPT))
    assert not_kept.coverage["P_biometric"] == "full"
    assert not_kept.coverage_percent == Decimal("11.8")  # A and P: 200 / 17 = 11.76


def test_audio_defaults_to_retained_and_forwarded():
    assert matrix_of(CLINIC_BASIC)["P_biometric"] == "none"  # no `audio:` block: assume the worst
    assert matrix_of(CLINIC_BASIC)["C_dates"] == "none"  # DOB is passthrough


def test_catch_all_is_never_full():
    assert category_status(parse_policy(HEALTHCARE_DEFAULT), "R_other") == "partial"


def test_unknown_category_is_a_key_error():
    with pytest.raises(KeyError):
        category_status(parse_policy(HEALTHCARE_DEFAULT), "S_dna")


@pytest.mark.parametrize(
    ("full", "partial", "none", "expected"),
    [
        (16, 0, 0, "100.0"),
        (0, 0, 16, "0.0"),
        (0, 1, 0, "50.0"),
        (1, 0, 2, "33.3"),
        (2, 0, 1, "66.7"),
        (15, 1, 0, "96.9"),
        (0, 1, 15, "3.1"),
        (1, 0, 15, "6.3"),
    ],  # 6.25: half-up, not half-even
)
def test_coverage_percent_rounds_half_up_to_one_decimal(full, partial, none, expected):
    coverage = {f"k{i}": "full" for i in range(full)}
    coverage |= {f"p{i}": "partial" for i in range(partial)} | {f"n{i}": "none" for i in range(none)}
    coverage |= {"P_biometric": "not_applicable"}
    assert coverage_percent(coverage) == Decimal(expected)


def test_coverage_percent_of_nothing_applicable_is_zero():
    assert coverage_percent({"Q_photo": "not_applicable"}) == Decimal("0.0")
