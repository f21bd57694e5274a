"""Identifier checks: NPI Luhn, MBI format, ICD-10-CM shape."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wiserpa.policy.validation import (
    format_icd10cm,
    is_valid_icd10cm_shape,
    is_valid_mbi,
    is_valid_npi,
    make_valid_mbi,
    make_valid_npi,
    normalize_icd10cm,
    npi_check_digit,
)


def test_npi_standard_example() -> None:
    # The CMS NPI check-digit example: 123456789 -> check digit 3.
    assert npi_check_digit("123456789") == "3"
    assert is_valid_npi("1234567893")


@pytest.mark.parametrize("bad", ["1234567890", "123456789", "12345678931", "12345678a3", "", " 1234567893"])
def test_npi_rejects(bad: str) -> None:
    assert not is_valid_npi(bad)


def test_npi_check_digit_needs_nine_digits() -> None:
    with pytest.raises(ValueError):
        npi_check_digit("12345")


@given(st.integers(min_value=0, max_value=10**9))
def test_generated_npis_are_valid(seed: int) -> None:
    assert is_valid_npi(make_valid_npi(seed))


@given(st.from_regex(r"[0-9]{9}", fullmatch=True), st.integers(1, 9))
def test_single_digit_error_detected(first9: str, delta: int) -> None:
    npi = first9 + npi_check_digit(first9)
    wrong = npi[:9] + str((int(npi[9]) + delta) % 10)
    assert not is_valid_npi(wrong)


def test_mbi_cms_example() -> None:
    assert is_valid_mbi("1EG4TE5MK73")


@pytest.mark.parametrize(
    "bad",
    [
        "0EG4TE5MK73",  # position 1 must be 1-9
        "1SG4TE5MK73",  # S is excluded
        "1EG4TE5MK7",  # too short
        "1EG4TE5MK733",  # too long
        "1EGATE5MK73",  # position 4 must be a digit
        "1EG4TE5MKL3",  # position 10 must be a digit
        "1eg4te5mk73",  # lowercase is not the format
        "1EG4-TE5-MK73",  # dashes are display-only
        "1BG4TE5MK73",  # B excluded
        "1EG4TE5MZ73",  # Z excluded
    ],
)
def test_mbi_rejects(bad: str) -> None:
    assert not is_valid_mbi(bad)


@given(st.integers(min_value=0, max_value=10**12))
def test_generated_mbis_are_valid(seed: int) -> None:
    assert is_valid_mbi(make_valid_mbi(seed))


def test_generators_are_deterministic_and_distinct() -> None:
    assert make_valid_mbi(7) == make_valid_mbi(7)
    assert len({make_valid_mbi(i) for i in range(1000)}) == 1000
    assert len({make_valid_npi(i) for i in range(1000)}) == 1000


def test_icd10_normalize_and_format() -> None:
    assert normalize_icd10cm(" g89.11 ") == "G8911"
    assert format_icd10cm("g8911") == "G89.11"
    assert format_icd10cm("M54") == "M54"
    assert format_icd10cm("M54.16") == "M54.16"


@pytest.mark.parametrize("good", ["G89.11", "M5416", "C50", "U07.1", "S72.001A", "z51.5"])
def test_icd10_shape_accepts(good: str) -> None:
    assert is_valid_icd10cm_shape(good)


@pytest.mark.parametrize("bad", ["", "G8", "8G911", "GA911", "S72.001AB", "G89.1-"])
def test_icd10_shape_rejects(bad: str) -> None:
    assert not is_valid_icd10cm_shape(bad)


def test_npi_answers_repeat_from_the_cache() -> None:
    # Valid NPIs' check digits are cached: a repeated question gets the same answer, and a value that is not a
    # string (unhashable, too) is still refused before the cache is asked.
    for npi, valid in (("1234567893", True), ("1234567890", False)):
        assert [is_valid_npi(npi) for _ in range(3)] == [valid] * 3
    assert not is_valid_npi(["1234567893"])  # type: ignore[arg-type]
