"""The audit entry's stored details and hash are what earlier versions computed: existing chains must verify."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wiserpa.audit import service as audit

AT = dt.datetime(2026, 3, 2, 10, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=-8)))

DETAILS: list[dict[str, Any] | None] = [
    None,
    {},
    {"utn": "WA1A00000000001", "predecessor_id": None},
    {"count": 3, "rate": 0.25, "late": True, "nan": float("nan")},
    {"due_at": AT, "day": AT.date()},
    {"ids": [1, 2, 3], "nested": {"b": 1, "a": [AT]}},
    {1: "numeric key", "text": "é ✓"},  # type: ignore[dict-item]  # callers may pass non-text keys
]


def _old_details(details: dict[str, Any] | None) -> dict[str, Any]:
    # The round trip every entry took before the scalar fast path.
    return json.loads(json.dumps(details, default=str)) if details else {}


def _old_digest(details: dict[str, Any]) -> str:
    payload = {
        "id": 7,
        "at": AT.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "actor": "user:3",
        "role": "provider",
        "action": "request.submit",
        "object_type": "request",
        "object_id": "42",
        "outcome": "affirmed",
        "details": details,
        "prev": audit.GENESIS,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@pytest.mark.parametrize("details", DETAILS)
def test_details_and_digest_match_the_original_formula(details: dict[str, Any] | None) -> None:
    stored = audit._json_details(details)
    old = _old_details(details)
    assert json.dumps(stored, sort_keys=True) == json.dumps(old, sort_keys=True)
    assert stored is not details  # a copy: a later change to the caller's dict cannot alter the entry
    digest = audit._digest(
        7, AT, "user:3", "provider", "request.submit", "request", "42", "affirmed", stored, audit.GENESIS
    )
    assert digest == _old_digest(old)


# Text of every kind: any code point, lone surrogates and control characters included.
_TEXT = st.text(st.characters(codec=None) | st.characters(categories=["Cs", "Cc"]), max_size=12)
_ZONES = st.sampled_from(
    [dt.UTC, ZoneInfo("UTC"), ZoneInfo("America/Chicago"), dt.timezone(dt.timedelta(hours=5))]
)
_INSTANTS = st.datetimes(
    min_value=dt.datetime(2, 1, 1), max_value=dt.datetime(9998, 12, 31), timezones=_ZONES
)
_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | _TEXT | _INSTANTS | st.dates()
_KEYS = _TEXT | st.integers() | st.floats() | st.booleans() | st.none()
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
)
_DETAILS = (
    st.dictionaries(_TEXT, _VALUES, max_size=5) | st.dictionaries(_KEYS, _SCALARS, max_size=3) | _VALUES
)


def _general_digest(*fields: Any) -> str:
    """The digest as the general encoder gives it, field by field (the formula every stored chain used)."""
    entry_id, at, actor, role, action, object_type, object_id, outcome, details, prev = fields
    payload = {
        "id": entry_id, "at": at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "actor": actor,
        "role": role, "action": action, "object_type": object_type, "object_id": object_id,
        "outcome": outcome, "details": details, "prev": prev,
    }  # fmt: skip
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _outcome(digest: Callable[..., str], fields: tuple[Any, ...]) -> str:
    try:
        return digest(*fields)
    except (TypeError, ValueError) as exc:  # e.g. details whose keys cannot be sorted
        return type(exc).__name__


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.tuples(
        st.integers(min_value=0) | st.booleans(),
        _INSTANTS | st.datetimes(min_value=dt.datetime(2, 1, 1), max_value=dt.datetime(1100, 1, 1), timezones=_ZONES),
        _TEXT, _TEXT, _TEXT, _TEXT, st.none() | _TEXT, _TEXT, _DETAILS, _TEXT,
    )
)  # fmt: skip
def test_the_digest_is_the_general_encoders_for_any_values(fields: tuple[Any, ...]) -> None:
    # _digest writes the canonical text out field by field; existing chains verify only if it is the very text
    # the general encoder gives, for every value an entry can hold (and a refusal where that refuses).
    assert _outcome(audit._digest, fields) == _outcome(_general_digest, fields)


@given(_DETAILS)
def test_details_are_what_a_json_round_trip_gives(details: Any) -> None:
    if not isinstance(details, dict):
        return
    try:
        expected = _old_details(details)
        # Text with surrogate code points is not Unicode and never reaches the log: the JSON columns' encoder
        # (orjson) refuses it. A JSON round trip would join two such code points into one character.
        json.dumps(details, ensure_ascii=False).encode()
    except (TypeError, ValueError):
        return
    assert json.dumps(audit._json_details(details), sort_keys=True) == json.dumps(expected, sort_keys=True)
