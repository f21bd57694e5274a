"""DTR: FHIR Questionnaires generated from the criteria files, and `$questionnaire-package`.

Each question is one declared fact of the governing NCD/LCD (``policy.criteria.requirements``), so the form
asks nothing the policy does not require (R6). Every item carries the criteria that need it and their
citations in ``item.code``; its linkId is the fact name, which is what ``fhir/pas.py`` reads back from a
QuestionnaireResponse in a PAS Bundle, so DTR answers become the engine's ``clinical_facts`` unchanged.
"""

from __future__ import annotations

import re
from typing import Any

from wiserpa.fhir.outcome import FhirError
from wiserpa.fhir.pas import ATTESTATION_LINK_ID, CS_CRITERION, WISERPA_FHIR_BASE
from wiserpa.policy.criteria import PolicyCriteria, requirements
from wiserpa.runtime import Runtime

__all__ = [
    "CS_FACT_VALUE",
    "questionnaire",
    "questionnaire_id",
    "questionnaire_package",
    "questionnaire_url",
]

CS_FACT_VALUE = f"{WISERPA_FHIR_BASE}/CodeSystem/fact-value"
EXT_CITATION = f"{WISERPA_FHIR_BASE}/StructureDefinition/extension-citation"
EXT_UNIT = "http://hl7.org/fhir/StructureDefinition/questionnaire-unit"
EXT_MIN = "http://hl7.org/fhir/StructureDefinition/minValue"
EXT_MAX = "http://hl7.org/fhir/StructureDefinition/maxValue"
DTR_STD_QUESTIONNAIRE = "http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/dtr-std-questionnaire"
DTR_QR = "http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/dtr-questionnaireresponse"
_ITEM_TYPE = {
    "boolean": "boolean",
    "number": "decimal",
    "integer": "integer",
    "enum": "choice",
    "date": "date",
    "string": "string",
    "codes": "open-choice",
}
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9\-.]")


def questionnaire_id(policy_id: str) -> str:
    """The Questionnaire id of a policy (``L36920`` → wiserpa-L36920, ``NCD 160.7`` → wiserpa-NCD-160.7)."""
    return "wiserpa-" + _ID_UNSAFE.sub("-", policy_id)


def questionnaire_url(policy_id: str) -> str:
    """The canonical URL CRD hands out and DTR resolves."""
    return f"{WISERPA_FHIR_BASE}/Questionnaire/{questionnaire_id(policy_id)}"


def _number(value: float) -> dict[str, Any]:
    return {"valueInteger": int(value)} if float(value).is_integer() else {"valueDecimal": value}


def _fact_item(req: dict[str, Any]) -> dict[str, Any]:
    item: dict[str, Any] = {"linkId": req["name"]}
    ext: list[dict[str, Any]] = []
    if req.get("unit"):
        ext.append({"url": EXT_UNIT, "valueCoding": {"display": req["unit"]}})
    kind = "decimal" if req["type"] == "number" else "integer"
    for url, key in ((EXT_MIN, "minimum"), (EXT_MAX, "maximum")):
        if req.get(key) is not None and req["type"] in ("number", "integer"):
            value = _number(req[key])
            ext.append({"url": url, (f"value{kind.capitalize()}"): next(iter(value.values()))})
    for cite in req["citations"]:
        ext.append(
            {
                "url": EXT_CITATION,
                "valueString": f"{cite['criterion_id']}: {cite['policy']}, {cite['section']}",
            }
        )
    if ext:
        item["extension"] = ext
    item["code"] = [
        {"system": CS_CRITERION, "code": c["criterion_id"], "display": f"{c['policy']}, {c['section']}"[:250]}
        for c in req["citations"]
    ]
    item["text"] = req["label"] or req["name"]
    item["type"] = _ITEM_TYPE.get(req["type"], "string")
    if req["type"] == "enum" and req.get("values"):
        item["answerOption"] = [
            {"valueCoding": {"system": CS_FACT_VALUE, "code": v, "display": v.replace("_", " ")}}
            for v in req["values"]
        ]
    return item


def questionnaire(rt: Runtime, policy: PolicyCriteria) -> dict[str, Any]:
    """The DTR Questionnaire of one NCD/LCD: one item per declared fact, documents as display items."""
    items: list[dict[str, Any]] = []
    docs = 0
    for req in requirements(policy):
        if req["kind"] == "fact":
            items.append(_fact_item(req))
        else:
            docs += 1
            cite = req["citations"][0]
            items.append(
                {
                    "linkId": f"document_{docs}",
                    "code": [
                        {
                            "system": CS_CRITERION,
                            "code": f"{policy.policy_id}.document.{docs}",
                            "display": f"{cite['policy']}, {cite['section']}"[:250],
                        }
                    ],
                    "text": f"Keep in the record: {req['text']} ({cite['policy']}, {cite['section']})",
                    "type": "display",
                }
            )
    ex = rt.profile.exemptions
    if ex.enabled and ex.require_attestation:
        # Not a coverage question: the policy profile's time-sensitive exemption (R1) needs this attestation.
        items.append(
            {
                "linkId": ATTESTATION_LINK_ID,
                "code": [
                    {
                        "system": f"{WISERPA_FHIR_BASE}/CodeSystem/profile-rule",
                        "code": "R1",
                        "display": f"Policy profile {rt.profile.id}: time-sensitive care exemption",
                    }
                ],
                "text": "The clinician attests that delaying this service would pose a substantial risk "
                "(time-sensitive care exemption; answer only if it applies)",
                "type": "boolean",
            }
        )
    qid = questionnaire_id(policy.policy_id)
    return {
        "resourceType": "Questionnaire",
        "id": qid,
        "meta": {"profile": [DTR_STD_QUESTIONNAIRE]},
        "url": questionnaire_url(policy.policy_id),
        "version": policy.version,
        "name": qid.replace("-", "_").replace(".", "_"),
        "title": f"{policy.kind} {policy.policy_id.removeprefix('NCD ')}: {policy.title} — documentation",
        "status": "active",
        "subjectType": ["Patient"],
        "description": f"Facts {policy.kind} {policy.policy_id} ({policy.contractor}) requires for WISeR "
        "prior authorization; each item cites the criteria that need it.",
        "item": items,
    }


def _policy_for_questionnaire(rt: Runtime, canonical: str) -> PolicyCriteria | None:
    url = canonical.split("|", 1)[0]
    for policy in rt.criteria.policies.values():
        if questionnaire_url(policy.policy_id) == url or url.endswith(
            "/" + questionnaire_id(policy.policy_id)
        ):
            return policy
    return None


def policy_for_questionnaire_id(rt: Runtime, qid: str) -> PolicyCriteria | None:
    """The policy behind a Questionnaire id, or None."""
    return next((p for p in rt.criteria.policies.values() if questionnaire_id(p.policy_id) == qid), None)


def _order_codes(order: dict[str, Any]) -> list[str]:
    concepts = [order.get(k) for k in ("code", "codeCodeableConcept", "medicationCodeableConcept")]
    concepts += list(order.get("serviceType") or [])
    out = []
    for concept in concepts:
        for coding in (concept or {}).get("coding") or [] if isinstance(concept, dict) else []:
            if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                out.append(coding["code"].strip().upper())
    return out


def questionnaire_package(rt: Runtime, raw: Any, *, state_hint: str | None) -> dict[str, Any]:
    """`$questionnaire-package`: Parameters in (coverage, order*, questionnaire*), Parameters out."""
    if not isinstance(raw, dict) or raw.get("resourceType") != "Parameters":
        raise FhirError.single("structure", "The body must be a Parameters resource", "Parameters")
    params = [p for p in raw.get("parameter") or [] if isinstance(p, dict)]
    if not any(p.get("name") == "coverage" and isinstance(p.get("resource"), dict) for p in params):
        raise FhirError.single(
            "required", "The coverage parameter (a Coverage) is required", "Parameters.parameter"
        )
    policies: dict[str, PolicyCriteria] = {}
    for i, p in enumerate(params):
        if p.get("name") == "questionnaire":
            canonical = str(p.get("valueCanonical") or p.get("valueUri") or "")
            found = _policy_for_questionnaire(rt, canonical)
            if found is None:
                raise FhirError.single(
                    "not-found",
                    f"Unknown questionnaire {canonical!r}",
                    f"Parameters.parameter[{i}]",
                    http_status=404,
                )
            policies[found.policy_id] = found
    for i, p in enumerate(params):
        if p.get("name") != "order" or not isinstance(p.get("resource"), dict):
            continue
        for code in _order_codes(p["resource"]):
            cat = rt.catalog.category_for_code(code)
            if cat is None:
                continue
            policy_id = cat.national_policy
            if policy_id is None and state_hint:
                policy_id = rt.catalog.governing_policy(cat.key, state_hint)
            if policy_id is None:
                raise FhirError.single(
                    "business-rule",
                    f"{code} is governed by a MAC's LCD and the state is unknown: pass the questionnaire "
                    "canonical CRD returned",
                    f"Parameters.parameter[{i}].resource",
                    http_status=422,
                )
            policy = rt.criteria.for_policy(policy_id)
            if policy is not None:
                policies[policy.policy_id] = policy
    context = next(
        (str(p.get("valueString")) for p in params if p.get("name") == "context" and p.get("valueString")),
        None,
    )
    out: list[dict[str, Any]] = []
    for policy in policies.values():
        q = questionnaire(rt, policy)
        qr: dict[str, Any] = {
            "resourceType": "QuestionnaireResponse",
            "id": f"{q['id']}-draft",
            "meta": {"profile": [DTR_QR]},
            "questionnaire": f"{q['url']}|{q['version']}",
            "status": "in-progress",
        }
        if context:
            qr["extension"] = [
                {
                    "url": "http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/qr-context",
                    "valueString": context,
                }
            ]
        out.append(
            {
                "name": "packagebundle",
                "resource": {
                    "resourceType": "Bundle",
                    "type": "collection",
                    "entry": [
                        {"fullUrl": q["url"], "resource": q},
                        {"fullUrl": f"urn:uuid:{_uuid(q['id'])}", "resource": qr},
                    ],
                },
            }
        )
    if not out:
        out.append(
            {
                "name": "outcome",
                "resource": {
                    "resourceType": "OperationOutcome",
                    "issue": [
                        {
                            "severity": "information",
                            "code": "informational",
                            "diagnostics": "No WISeR documentation requirements apply to these orders",
                        }
                    ],
                },
            }
        )
    return {"resourceType": "Parameters", "parameter": out}


def _uuid(name: str) -> str:
    import uuid

    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{WISERPA_FHIR_BASE}/QuestionnaireResponse/{name}"))
