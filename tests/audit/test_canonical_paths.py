"""``canonical_bytes`` takes a fast path for plain values: on every value it must give exactly the bytes of the
``rfc8785`` package (or fail where it fails)."""

import math

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.canonical import _plain, canonical_bytes

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.floats(min_value=1e-4, max_value=1e16, allow_nan=False)
    | st.text()
    | st.text(alphabet=st.characters(max_codepoint=0x7F))
    | st.sampled_from(["\u2028", "\x7f", '\x00\x1f\b\f\n\r\t"\\/', "\ud7ff\ue000\uffff\U0001f600"])
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.text(max_size=4) | st.sampled_from(["a", "é", "\U0001f600", "\ue000", "B"]), children, max_size=5
        )
    ),
    max_leaves=30,
)


def _reference(value):
    try:
        return rfc8785.dumps(value)
    except Exception as exc:  # the package's own error types
        return type(exc)


@settings(max_examples=600, deadline=None)
@given(values)
def test_canonical_bytes_equal_rfc8785_on_any_value(value):
    expected = _reference(value)
    if isinstance(expected, bytes):
        assert canonical_bytes(value) == expected
    else:
        with pytest.raises(Exception):  # noqa: B017, PT011 (whatever rfc8785 raises)
            canonical_bytes(value)


@settings(max_examples=1000, deadline=None)
@given(st.floats(min_value=1e-4, max_value=1e16, allow_nan=False, exclude_max=True))
def test_floats_of_the_fast_path_print_as_rfc8785_prints_them(number):
    for value in (number, -number):
        assert canonical_bytes({"x": value}) == rfc8785.dumps({"x": value})


@pytest.mark.parametrize(
    ("value", "plain"),
    [
        ({"a": [1, "x", None, True, 66.7]}, True),
        ({"é": 1}, False),  # non-ASCII keys sort by UTF-16 code units: rfc8785
        (1.0, False),
        (1e-5, False),
        (2**53 - 1, True),
        (math.pi * 1e16, False),
    ],
)
def test_what_takes_the_fast_path(value, plain):
    assert _plain(value) is plain
    assert canonical_bytes(value) == rfc8785.dumps(value)


def test_integers_beyond_ijson_fail_as_rfc8785_does():
    assert not _plain(2**53)
    with pytest.raises(rfc8785.IntegerDomainError):
        canonical_bytes(2**53)
