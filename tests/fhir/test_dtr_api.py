"""DTR: Questionnaires generated from the criteria files, one item per fact the NCD/LCD requires (R6)."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B.parameters import Parameters
from fhir.resources.R4B.questionnaire import Questionnaire

from tests.fhir.apihelp import assert_outcome
from wiserpa.fhir import dtr
from wiserpa.fhir.pas import ATTESTATION_LINK_ID, CS_CRITERION
from wiserpa.policy.criteria import load_criteria

COVERAGE = {
    "resourceType": "Coverage",
    "id": "c1",
    "status": "active",
    "beneficiary": {"reference": "Patient/p"},
    "payor": [{"display": "Medicare"}],
}


def package_params(*, order_code: str | None = None, canonical: str | None = None) -> dict[str, Any]:
    params: list[dict[str, Any]] = [{"name": "coverage", "resource": COVERAGE}]
    if order_code:
        params.append(
            {
                "name": "order",
                "resource": {
                    "resourceType": "ServiceRequest",
                    "status": "draft",
                    "intent": "order",
                    "subject": {"reference": "Patient/p"},
                    "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": order_code}]},
                },
            }
        )
    if canonical:
        params.append({"name": "questionnaire", "valueCanonical": canonical})
    return {"resourceType": "Parameters", "parameter": params}


@pytest.mark.parametrize("policy_id", sorted(load_criteria().policies))
def test_every_policy_yields_a_valid_traced_questionnaire(rt: Any, policy_id: str) -> None:
    policy = rt.criteria.for_policy(policy_id)
    q = dtr.questionnaire(rt, policy)
    Questionnaire.model_validate(q)
    questions = [i for i in q["item"] if i["type"] != "display" and i["linkId"] != ATTESTATION_LINK_ID]
    # R6: exactly the facts the policy declares, no more.
    assert {i["linkId"] for i in questions} == set(policy.facts)
    for item in questions:
        assert item["code"] and all(c["system"] == CS_CRITERION for c in item["code"])
        assert all(policy.policy_id in c["display"] for c in item["code"])
        spec = policy.facts[item["linkId"]]
        if spec.type == "enum":
            assert [o["valueCoding"]["code"] for o in item["answerOption"]] == list(spec.values or ())


def test_package_for_an_order_in_the_callers_state(client: Any, make_actor: Any) -> None:
    prov = make_actor("provider", state="TX")
    resp = client.post(
        "/fhir/Questionnaire/$questionnaire-package",
        json=package_params(order_code="64483"),
        headers=prov.headers,
    )
    assert resp.status_code == 200, resp.text
    Parameters.model_validate(resp.json())
    [bundle] = [p["resource"] for p in resp.json()["parameter"] if p["name"] == "packagebundle"]
    q, qr = (e["resource"] for e in bundle["entry"])
    assert q["url"] == dtr.questionnaire_url("L36920") and qr["resourceType"] == "QuestionnaireResponse"
    read = client.get(f"/fhir/Questionnaire/{q['id']}", headers=prov.headers)
    assert read.json() == q


def test_package_by_canonical_and_unknown_ones(client: Any, make_actor: Any) -> None:
    prov = make_actor("provider")
    ok = client.post(
        "/fhir/Questionnaire/$questionnaire-package",
        json=package_params(canonical=dtr.questionnaire_url("NCD 160.7")),
        headers=prov.headers,
    )
    assert ok.status_code == 200
    assert_outcome(
        client.post(
            "/fhir/Questionnaire/$questionnaire-package",
            json=package_params(canonical="http://x/Questionnaire/nope"),
            headers=prov.headers,
        ),
        404,
    )
    assert_outcome(
        client.post(
            "/fhir/Questionnaire/$questionnaire-package",
            json={"resourceType": "Parameters"},
            headers=prov.headers,
        ),
        400,
    )
    none = client.post(
        "/fhir/Questionnaire/$questionnaire-package",
        json=package_params(order_code="99213"),
        headers=prov.headers,
    )
    assert [p["name"] for p in none.json()["parameter"]] == ["outcome"]
