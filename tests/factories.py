"""Request bodies for tests, built from the project's own example facts (wiserpa.policy.examples)."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from wiserpa.policy.catalog import load_catalog
from wiserpa.policy.validation import make_valid_mbi, make_valid_npi
from wiserpa.synthetic import make_submission

DOS = dt.date(2026, 3, 20)


def _json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def body(
    category: str = "epidural_steroid_injection",
    *,
    state: str = "TX",
    case: str = "complete",
    seed: int = 1,
    dos: dt.date = DOS,
    **overrides: Any,
) -> dict[str, Any]:
    """A JSON-ready submission; `case` is complete, incomplete, unmet or exempt."""
    rng = random.Random(seed)
    data = make_submission(
        load_catalog(),
        rng,
        state=state,
        category=category,
        case=case,
        date_of_service=dos,
        npi=make_valid_npi(100 + seed),
        mbi=make_valid_mbi(1000 + seed),
    )
    data = _json(data)
    data.update(overrides)
    return data
