"""Public policy lookups: does a code need PA here, and what does Medicare's policy require for it (R6)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from wiserpa.errors import FieldError, Invalid
from wiserpa.http import RuntimeDep
from wiserpa.policy.criteria import requirements as policy_requirements

router = APIRouter(prefix="/api/v1", tags=["policy"])

Code = Annotated[str, Query(min_length=4, max_length=5, description="CPT/HCPCS code")]
StateQ = Annotated[str, Query(min_length=2, max_length=2)]
# The catalog's COVERAGE_TYPES, as a type: an unknown coverage is a 422 naming `coverage`, not a crash.
Coverage = Literal["original_medicare", "medicare_advantage", "va", "ihs"]


@router.get("/catalog")
def catalog(rt: RuntimeDep) -> dict[str, Any]:
    """The versioned WISeR catalog: states, categories, codes, governing policies, associated services."""
    cat = rt.catalog
    return {
        "version": cat.version,
        "requests_from": cat.requests_from.isoformat(),
        "services_from": cat.services_from.isoformat(),
        "states": [dataclasses.asdict(s) for s in cat.states.values()],
        "categories": [
            {
                "key": c.key,
                "title": c.title,
                "active": c.active,
                "codes": list(c.codes),
                "add_on_codes": list(c.add_on_codes),
                "national_policy": c.national_policy,
                "lcd_by_jurisdiction": dict(c.lcd_by_jurisdiction),
                "associated": [dataclasses.asdict(a) for a in c.associated],
            }
            for c in cat.categories.values()
        ],
    }


@router.get("/catalog/lookup")
def lookup(
    rt: RuntimeDep,
    code: Code,
    state: StateQ,
    date_of_service: dt.date,
    place_of_service: Annotated[str, Query(pattern=r"^\d{2}$")] = "11",
    coverage: Coverage = "original_medicare",
    emergency: bool = False,
) -> dict[str, Any]:
    """Does this code, in this state, on this date of service, at this place of service, need PA? And why."""
    answer = rt.catalog.requires_pa(
        code=code.upper(),
        state=state.upper(),
        date_of_service=date_of_service,
        place_of_service=place_of_service,
        coverage=coverage,
        emergency=emergency,
    )
    return dataclasses.asdict(answer)


@router.get("/requirements")
def requirements(
    rt: RuntimeDep,
    code: Code,
    state: StateQ,
    date_of_service: dt.date,
    place_of_service: Annotated[str, Query(pattern=r"^\d{2}$")] = "22",
) -> dict[str, Any]:
    """The documentation checklist for a service: only what its NCD/LCD requires, each item cited."""
    answer = rt.catalog.requires_pa(
        code=code.upper(),
        state=state.upper(),
        date_of_service=date_of_service,
        place_of_service=place_of_service,
    )
    if not answer.required or answer.category is None:
        raise Invalid(answer.reason, [FieldError("code", answer.reason)])
    policy_id = rt.catalog.governing_policy(answer.category, state.upper())
    policy = rt.criteria.for_policy(policy_id) if policy_id else None
    return {
        "code": code.upper(),
        "state": state.upper(),
        "category": answer.category,
        "policy_id": policy_id,
        "policy_title": policy.title if policy else None,
        "profile": {"id": rt.profile.id, "version": rt.profile.version},
        "items": policy_requirements(policy) if policy else [],
        "note": None
        if policy
        else "No NCD/LCD criteria govern this service here; nothing beyond it may be asked.",
    }
