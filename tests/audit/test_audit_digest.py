"""The audit entry's stored details and hash are what earlier versions computed: existing chains must verify."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import pytest

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
