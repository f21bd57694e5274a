"""UTN format (S37)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wiserpa.policy.utn import is_valid_utn, make_utn, utn_part_for_place_of_service


def test_make_utn() -> None:
    assert make_utn(prefix2="CH", part="H", serial=42) == "CHH00000000042"
    assert len(make_utn(prefix2="ZY", part="A", serial=0)) == 14


def test_serial_limit() -> None:
    assert make_utn(prefix2="GZ", part="A", serial=10**11 - 1) == "GZA99999999999"
    with pytest.raises(ValueError):
        make_utn(prefix2="GZ", part="A", serial=10**11)
    with pytest.raises(ValueError):
        make_utn(prefix2="GZ", part="A", serial=-1)


@pytest.mark.parametrize("prefix,part", [("C", "H"), ("CHX", "H"), ("C-", "H"), ("CH", "B"), ("CH", "")])
def test_bad_parts(prefix: str, part: str) -> None:
    with pytest.raises(ValueError):
        make_utn(prefix2=prefix, part=part, serial=1)


@pytest.mark.parametrize("bad", ["CHH0000000004", "CHX00000000042", "CHH0000000004A", "chH00000000042", ""])
def test_is_valid_rejects(bad: str) -> None:
    assert not is_valid_utn(bad)


def test_part_letter_by_place_of_service() -> None:
    assert utn_part_for_place_of_service("22") == "A"
    assert utn_part_for_place_of_service("19") == "A"
    assert utn_part_for_place_of_service("11") == "H"
    assert utn_part_for_place_of_service("24") == "H"


@given(
    st.from_regex(r"[A-Z0-9]{2}", fullmatch=True),
    st.sampled_from("AH"),
    st.integers(min_value=0, max_value=10**11 - 1),
)
def test_roundtrip(prefix: str, part: str, serial: int) -> None:
    utn = make_utn(prefix2=prefix, part=part, serial=serial)
    assert is_valid_utn(utn)
    assert int(utn[3:]) == serial
