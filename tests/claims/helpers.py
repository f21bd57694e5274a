"""Claim bodies and small helpers shared by the claims tests."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.factories import DOS, body
from wiserpa.policy.validation import make_valid_mbi, make_valid_npi

# After the default date of service, so claims bill services already rendered.
AFTER_DOS = dt.datetime(2026, 3, 21, 15, 0, tzinfo=dt.UTC)


def mbi(seed: int = 1) -> str:
    """The beneficiary that tests.factories.body(seed=...) uses."""
    return make_valid_mbi(1000 + seed)


def line(
    code: str, *, dos: dt.date = DOS, utn: str | None = None, pos: str = "22", **kw: Any
) -> dict[str, Any]:
    """One claim line."""
    out: dict[str, Any] = {
        "code": code,
        "date_of_service": dos.isoformat(),
        "rendering_npi": kw.pop("npi", make_valid_npi(500)),
        "place_of_service": pos,
        **kw,
    }
    if utn:
        out["utn"] = utn
    return out


def claim(
    lines: list[dict[str, Any]], *, seed: int = 1, claim_type: str = "professional", state: str = "TX"
) -> dict[str, Any]:
    """A claim for the beneficiary of body(seed=...)."""
    return {
        "state": state,
        "claim_type": claim_type,
        "billing_provider": {"npi": make_valid_npi(700 + seed)},
        "beneficiary": {"mbi": mbi(seed)},
        "diagnosis_codes": ["M54.16"],
        "lines": lines,
    }


def authorize(client: TestClient, headers: dict[str, str], **kw: Any) -> dict[str, Any]:
    """Submit a PA request (tests.factories.body) and return its JSON."""
    r = client.post("/api/v1/requests", json=body(**kw), headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def post_claim(client: TestClient, headers: dict[str, str], data: dict[str, Any], **kw: Any) -> Any:
    """POST /api/v1/claims."""
    return client.post("/api/v1/claims", json=data, headers=headers, **kw)


def count(rt: Any, model: Any) -> int:
    """Rows in a table."""
    with rt.sessions() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def fhir_claim(
    *, utn: str | None = None, use: str = "claim", minutes: float = 30, diagnosis: bool = True
) -> dict[str, Any]:
    """A FHIR R4 Claim for the beneficiary of body(seed=1) with one anesthesia item (01938) of `minutes`."""
    out: dict[str, Any] = {
        "resourceType": "Claim",
        "status": "active",
        "use": use,
        "extension": [
            {"url": "https://wiserpa.org/fhir/StructureDefinition/service-state", "valueCode": "TX"}
        ],
        "type": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]
        },
        "patient": {"identifier": {"system": "http://hl7.org/fhir/sid/us-mbi", "value": mbi(1)}},
        "created": "2026-03-21",
        "provider": {"identifier": {"system": "http://hl7.org/fhir/sid/us-npi", "value": make_valid_npi(42)}},
        "priority": {"coding": [{"code": "normal"}]},
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"display": "Medicare Part B"}}],
        "item": [
            {
                "sequence": 1,
                "productOrService": {
                    "coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "01938"}]
                },
                "servicedDate": "2026-03-20",
                "quantity": {"value": minutes},
                "locationCodeableConcept": {"coding": [{"code": "22"}]},
            }
        ],
    }
    if diagnosis:
        out["diagnosis"] = [{"sequence": 1, "diagnosisCodeableConcept": {"coding": [{"code": "M54.16"}]}}]
    if utn:
        out["insurance"][0]["preAuthRef"] = [utn]
    return out
