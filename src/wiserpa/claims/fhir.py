"""FHIR R4 `Claim` (use = claim) to `SubmitClaimIn`, and the claim's outcome as a `ClaimResponse`.

Mapping (each element read from the raw JSON after fhir.resources.R4B has validated the structure):

| Claim element | SubmitClaimIn |
|---|---|
| `type.coding.code` (claim-type: professional / institutional) | `claim_type` |
| `provider` (identifier, or a `#contained` resource) with system us-npi | `billing_provider.npi` |
| `patient` (identifier, or `#contained` Patient) with system us-mbi | `beneficiary.mbi` |
| extension `STATE_EXTENSION`, else `item[].locationAddress.state`, else the Patient's address | `state` |
| `diagnosis[].diagnosisCodeableConcept.coding.code` | `diagnosis_codes` |
| `insurance[].preAuthRef[0]` (the UTN) | every line's `utn` |
| `item[].productOrService`, `modifier`, `quantity`, `servicedDate`, `locationCodeableConcept` | line fields |
| `careTeam[item.careTeamSequence[0]].provider` (NPI), else the billing provider | `lines[].rendering_npi` |
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from fhir.resources.R4B.claim import Claim as FhirClaim
from pydantic import ValidationError

from wiserpa.claims.schemas import SubmitClaimIn
from wiserpa.fhir.outcome import FhirError, Issue

NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
MBI_SYSTEM = "http://hl7.org/fhir/sid/us-mbi"
CLAIM_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/claim-type"
ADJUDICATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/adjudication"
# The project's own code system for a line's WISeR outcome (payable, denied, suspended, not_subject).
OUTCOME_SYSTEM = "https://wiserpa.org/fhir/CodeSystem/claim-line-outcome"
# Where the service was rendered; item.location[x] is a choice, so it cannot carry both the place-of-service
# code and an address: the state travels in this extension instead.
STATE_EXTENSION = "https://wiserpa.org/fhir/StructureDefinition/service-state"


def _first_code(concept: Any) -> str | None:
    if not isinstance(concept, dict):
        return None
    for c in concept.get("coding") or []:
        if isinstance(c, dict) and c.get("code"):
            return str(c["code"])
    return None


def _contained(raw: dict[str, Any], ref: str) -> dict[str, Any] | None:
    if not ref.startswith("#"):
        return None
    for res in raw.get("contained") or []:
        if isinstance(res, dict) and res.get("id") == ref[1:]:
            return res
    return None


def _identifier(raw: dict[str, Any], ref: Any, system: str) -> str | None:
    """The identifier value with `system` on a Reference (logical identifier or a contained resource)."""
    if not isinstance(ref, dict):
        return None
    ident = ref.get("identifier")
    if isinstance(ident, dict) and ident.get("value") and ident.get("system") in (None, system):
        return str(ident["value"])
    target = _contained(raw, str(ref.get("reference") or ""))
    for ident in (target or {}).get("identifier") or []:
        if isinstance(ident, dict) and ident.get("system") == system and ident.get("value"):
            return str(ident["value"])
    return None


def _state(raw: dict[str, Any], items: list[Any]) -> str | None:
    for ext in raw.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == STATE_EXTENSION and ext.get("valueCode"):
            return str(ext["valueCode"])
    for it in items:
        addr = it.get("locationAddress") if isinstance(it, dict) else None
        if isinstance(addr, dict) and addr.get("state"):
            return str(addr["state"])
    patient = _contained(raw, str((raw.get("patient") or {}).get("reference") or ""))
    for addr in (patient or {}).get("address") or []:
        if isinstance(addr, dict) and addr.get("state"):
            return str(addr["state"])
    return None


def fhir_path(field: str) -> str:
    """Our field path (`lines[2].utn`) as the closest Claim FHIRPath (`Claim.item[2]`)."""
    m = re.match(r"^lines\[(\d+)\]", field)
    if m:
        return f"Claim.item[{m.group(1)}]"
    return {
        "state": "Claim.extension",
        "claim_type": "Claim.type",
        "billing_provider.npi": "Claim.provider",
        "beneficiary.mbi": "Claim.patient",
        "diagnosis_codes": "Claim.diagnosis",
    }.get(field.split("[")[0], f"Claim.{field}")


def to_claim_in(raw: Any) -> SubmitClaimIn:
    """Validate a FHIR R4 Claim and map it; raise FhirError (OperationOutcome, 4xx) naming the element."""
    if not isinstance(raw, dict) or raw.get("resourceType") != "Claim":
        raise FhirError.single("structure", "the body must be a FHIR R4 Claim resource", "Claim")
    try:
        FhirClaim.model_validate(raw)
    except (ValidationError, ValueError, TypeError) as exc:
        errors = exc.errors() if isinstance(exc, ValidationError) else [{"loc": (), "msg": str(exc)}]
        raise FhirError(
            [
                Issue(
                    "error",
                    "structure",
                    str(e.get("msg", "invalid")),
                    [
                        "Claim"
                        + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.get("loc", ()))
                    ],
                )
                for e in errors[:20]
            ]
        ) from exc
    if raw.get("use") != "claim":
        raise FhirError.single(
            "business-rule",
            "only Claim.use = claim is accepted here (pre-authorizations go to PAS)",
            "Claim.use",
        )
    issues: list[Issue] = []
    claim_type = _first_code(raw.get("type"))
    billing_npi = _identifier(raw, raw.get("provider"), NPI_SYSTEM)
    mbi = _identifier(raw, raw.get("patient"), MBI_SYSTEM)
    if billing_npi is None:
        issues.append(Issue("error", "required", "the provider needs an NPI identifier", ["Claim.provider"]))
    if mbi is None:
        issues.append(Issue("error", "required", "the patient needs an MBI identifier", ["Claim.patient"]))
    items = raw.get("item") or []
    if not items:
        issues.append(Issue("error", "required", "a claim needs at least one item", ["Claim.item"]))
    state = _state(raw, items)
    if state is None and items:
        issues.append(
            Issue("error", "required", f"give the state of service (extension {STATE_EXTENSION})", ["Claim"])
        )
    if issues:
        raise FhirError(issues)
    utn = next(
        (str(ref[0]) for ins in raw.get("insurance") or [] if (ref := ins.get("preAuthRef"))),
        None,
    )
    care_team = {
        ct.get("sequence"): _identifier(raw, ct.get("provider"), NPI_SYSTEM)
        for ct in raw.get("careTeam") or []
    }
    lines = []
    for it in items:
        seqs = it.get("careTeamSequence") or []
        rendering = care_team.get(seqs[0]) if seqs else None
        quantity = (it.get("quantity") or {}).get("value", 1)
        line: dict[str, Any] = {
            "code": _first_code(it.get("productOrService")) or "",
            "modifiers": [c for m in it.get("modifier") or [] if (c := _first_code(m))],
            # A whole number only: 30.7 minutes is refused (422 naming the item), not cut to 30.
            "units": int(quantity) if isinstance(quantity, float) and quantity.is_integer() else quantity,
            "date_of_service": it.get("servicedDate") or (it.get("servicedPeriod") or {}).get("start"),
            "rendering_npi": rendering or billing_npi,
            "place_of_service": _first_code(it.get("locationCodeableConcept")) or "",
            "utn": utn,
        }
        revenue = _first_code(it.get("revenue"))
        if revenue:
            line["revenue_code"] = revenue
        lines.append(line)
    body = {
        "state": state,
        "claim_type": claim_type,
        "billing_provider": {"npi": billing_npi},
        "beneficiary": {"mbi": mbi},
        "diagnosis_codes": [
            c for d in raw.get("diagnosis") or [] if (c := _first_code(d.get("diagnosisCodeableConcept")))
        ],
        "lines": lines,
    }
    try:
        return SubmitClaimIn.model_validate(body)
    except ValidationError as exc:
        out = []
        for e in exc.errors():
            loc = [str(p) for p in e.get("loc", ())]
            field = ".".join(loc).replace(".0.", "[0].")
            if loc and loc[0] == "lines" and len(loc) > 1:
                field = f"lines[{loc[1]}]" + "".join(f".{p}" for p in loc[2:])
            out.append(Issue("error", "invalid", f"{field}: {e.get('msg')}", [fhir_path(field)]))
        raise FhirError(out, 422) from exc


def claim_response(view: dict[str, Any], raw: dict[str, Any], *, now: dt.datetime) -> dict[str, Any]:
    """The claim's adjudication as a FHIR R4 ClaimResponse (one item per line, outcome and allowed amount)."""
    items = []
    for ln in view["lines"]:
        adjudication: list[dict[str, Any]] = [
            {
                "category": {"coding": [{"system": ADJUDICATION_SYSTEM, "code": "eligible"}]},
                "reason": {
                    "coding": [{"system": OUTCOME_SYSTEM, "code": ln["outcome"]}],
                    "text": ln["reason"],
                },
            }
        ]
        if ln["allowed_usd"] is not None:
            adjudication[0]["amount"] = {"value": ln["allowed_usd"], "currency": "USD"}
        item: dict[str, Any] = {"itemSequence": ln["seq"] + 1, "adjudication": adjudication}
        items.append(item)
    suspended = any(ln["outcome"] == "suspended" for ln in view["lines"])
    return {
        "resourceType": "ClaimResponse",
        "id": str(view["id"]),
        "identifier": [{"system": "https://wiserpa.org/fhir/claim-id", "value": str(view["id"])}],
        "status": "active",
        "type": raw.get("type") or {"coding": [{"system": CLAIM_TYPE_SYSTEM, "code": view["claim_type"]}]},
        "use": "claim",
        "patient": raw.get("patient")
        or {"identifier": {"system": MBI_SYSTEM, "value": view["beneficiary_mbi"]}},
        "created": now.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "insurer": {"display": f"Medicare (WISeR participant {view['participant']})"},
        "outcome": "partial" if suspended else "complete",
        "item": items,
    }
