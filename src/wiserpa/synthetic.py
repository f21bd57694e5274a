"""Synthetic, realistic requests for the demo, tests, benchmarks and the simulator (no real patients)."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from wiserpa.policy.catalog import Catalog
from wiserpa.policy.examples import COMPLETE_FACTS, VIOLATIONS
from wiserpa.policy.validation import make_valid_mbi, make_valid_npi

# Places of service that suit each category (most are hospital outpatient or ASC procedures).
_POS = {
    "epidural_steroid_injection": ("11", "22", "24"),
    "skin_substitutes": ("11", "22"),
    "trigeminal_neurolysis": ("22", "24"),
}
_DEFAULT_POS = ("22", "24")
# Diagnoses typical for each category; the exemption code sets (G89.3, Z51.5, C-codes) are added by case type.
_DX = {
    "epidural_steroid_injection": ("M54.16", "M54.17", "M51.16", "M48.062"),
    "vertebral_augmentation": ("M80.08XA", "M48.56XA"),
    "cervical_fusion": ("M50.121", "M47.22"),
    "hypoglossal_nerve_stimulation": ("G47.33",),
    "skin_substitutes": ("E11.621", "L97.412", "I83.012"),
    "knee_arthroscopy": ("M23.221", "M17.11"),
    "trigeminal_neurolysis": ("G50.0",),
    "vagus_nerve_stimulation": ("G40.219",),
    "phrenic_nerve_stimulation": ("G47.31",),
    "spinal_cord_stimulation": ("G89.29", "M96.1"),
    "incontinence_devices": ("N39.3", "R32"),
    "sacral_nerve_stimulation": ("N39.41", "R33.9"),
    "penile_prosthesis": ("N52.9", "N52.31"),
}
CASE_TYPES = ("complete", "incomplete", "unmet", "exempt")


def active_categories(catalog: Catalog) -> list[str]:
    """Keys of the categories that need PA in 2026."""
    return [c.key for c in catalog.categories.values() if c.active]


def _effective(catalog: Catalog, code: str, on: dt.date) -> bool:
    info = catalog.code_info(code)
    return info is not None and (info.effective_from is None or info.effective_from <= on)


def make_submission(
    catalog: Catalog,
    rng: random.Random,
    *,
    state: str,
    category: str,
    case: str = "complete",
    date_of_service: dt.date,
    npi: str | None = None,
    mbi: str | None = None,
    urgency: str = "standard",
    channel: str = "portal",
) -> dict[str, Any]:
    """A JSON submission for one service; `case` picks complete, incomplete, unmet or exempt facts."""
    cat = catalog.categories[category]
    primaries = [
        c for c in cat.codes if c not in cat.add_on_codes and _effective(catalog, c, date_of_service)
    ]
    code = rng.choice(primaries)
    info = catalog.code_info(code)
    lines: list[dict[str, Any]] = [{"code": code, "units": 1}]
    if info is not None:
        for cond in info.conditions:
            if cond.kind == "requires_codes":
                lines.append({"code": cond.codes[0], "units": 1})
    facts = dict(COMPLETE_FACTS.get(category, {}))
    if case == "incomplete" and facts:
        facts.pop(rng.choice(sorted(facts)))
    elif case == "unmet" and category in VIOLATIONS:
        fact, bad, _criterion = VIOLATIONS[category]
        facts[fact] = bad
    dx = [rng.choice(_DX.get(category, ("M54.5",)))]
    attestation = False
    if case == "exempt":
        dx.insert(0, rng.choice(("G89.3", "Z51.5", "G89.11", "C79.51")))
        attestation = True
    policy_id = catalog.governing_policy(category, state)
    return {
        "state": state,
        "provider": {"npi": npi or make_valid_npi(rng.randrange(10**8))},
        "beneficiary": {"mbi": mbi or make_valid_mbi(rng.randrange(10**9))},
        "lines": lines,
        "diagnosis_codes": dx,
        "place_of_service": rng.choice(_POS.get(category, _DEFAULT_POS)),
        "date_of_service": date_of_service.isoformat(),
        "urgency": urgency,
        "channel": channel,
        "time_sensitive_attestation": attestation,
        "clinical_facts": facts if policy_id else {},
    }
