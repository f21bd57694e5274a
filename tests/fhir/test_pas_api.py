"""PAS over HTTP: `$submit` (new, update, cancel, replay), `$inquire`, OperationOutcomes, metadata."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.parameters import Parameters
from sqlalchemy import func, select

from tests.fhir.apihelp import (
    DAVINCI,
    FHIR_JSON,
    assert_outcome,
    assert_valid_response,
    claim_response,
    load,
    review_actions,
    wiser,
)
from wiserpa.claims import service as claims
from wiserpa.fhir.models import FhirBundle
from wiserpa.fhir.pas import CS_AFFIRMATION_BASIS, EXT_AFFIRMATION_BASIS
from wiserpa.requests.models import PaRequest
from wiserpa.reviews import service as reviews

SUBMIT = "/fhir/Claim/$submit"
INQUIRE = "/fhir/Claim/$inquire"
PAS = DAVINCI / "pas"


def _count(rt: Any, model: Any) -> int:
    with rt.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _basis(body: dict[str, Any]) -> str:
    adj = claim_response(body)["item"][0]["adjudication"][0]
    return next(e["valueCoding"]["code"] for e in adj["extension"] if e["url"] == EXT_AFFIRMATION_BASIS)


# ---------------------------------------------------------------------------------------------- submit


def test_submit_affirms_with_utn_and_keeps_the_bundle(client: Any, rt: Any, make_actor: Any) -> None:
    prov = make_actor("provider")
    bundle = wiser("standard")
    resp = client.post(SUBMIT, content=json.dumps(bundle), headers={**prov.headers, **FHIR_JSON})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/fhir+json")
    body = resp.json()
    assert_valid_response(body, bundle)
    [(code, utn)] = review_actions(body)
    assert code == "A1" and utn and len(utn) == 14 and utn[2] in "AH"
    assert _basis(body) == "criteria"
    cr = claim_response(body)
    assert cr["preAuthRef"] == utn
    start, end = (dt.date.fromisoformat(cr["preAuthPeriod"][k]) for k in ("start", "end"))
    assert (end - start).days == rt.profile.timelines.affirmation_validity_days == 120
    with rt.sessions() as s:
        req = s.scalars(select(PaRequest)).one()
        stored = s.scalars(select(FhirBundle)).one()
        assert req.utn == utn and req.channel == "fhir"
        assert req.raw_submission["beneficiary"]["mbi"] == "1EG4TE5MK73"  # the mapped JSON
        assert stored.request_id == req.id and stored.bundle == bundle  # the FHIR Bundle as sent
        assert stored.organization_id == prov.organization_id


def test_the_items_issue_date_is_the_decisions_date_in_the_states_time_zone(
    client: Any, clock: Any, make_actor: Any
) -> None:
    # 04:30 UTC is the previous evening in every WISeR state: the authorization was issued that evening's date,
    # as its validity period says, not the UTC date.
    clock.set(dt.datetime(2026, 3, 3, 4, 30, tzinfo=dt.UTC))
    prov = make_actor("provider")
    resp = client.post(SUBMIT, content=json.dumps(wiser("standard")), headers={**prov.headers, **FHIR_JSON})
    cr = claim_response(resp.json())
    (issued,) = [
        e["valueDate"] for e in cr["item"][0]["extension"] if e["url"].endswith("itemPreAuthIssueDate")
    ]
    assert issued == cr["preAuthPeriod"]["start"] == "2026-03-02"


def test_a_late_affirmation_is_in_force_from_receipt_as_claims_pay_it(
    client: Any, rt: Any, clock: Any, make_actor: Any
) -> None:
    # Pended on 2 March (Texas time), affirmed by a clinician on 4 March: the authorization was issued on the 4th,
    # and a service performed while waiting is covered, as the claims engine pays it, so the period starts on the 2nd.
    clock.set(dt.datetime(2026, 3, 2, 16, 0, tzinfo=dt.UTC))
    prov = make_actor("provider")
    bundle = wiser("standard", ident="LATE-1", facts={"active_rehab_program": False})
    assert review_actions(client.post(SUBMIT, json=bundle, headers=prov.headers).json()) == [("A4", None)]
    clock.set(dt.datetime(2026, 3, 4, 16, 0, tzinfo=dt.UTC))
    reviewer = make_actor("reviewer", state="TX")
    with rt.sessions() as s:
        req = s.scalars(select(PaRequest)).one()
        reviews.decide(s, rt, principal=reviewer.principal, request_id=req.id, outcome="affirm")
        s.commit()
        utn = req.utn
    with rt.sessions() as s:
        window = claims.auth_state(rt, s.scalars(select(PaRequest)).one(), clock.now())
    out = client.post(INQUIRE, json=_inquiry(utn), headers=prov.headers)
    [result] = [p["resource"] for p in out.json()["parameter"] if p["name"] == "return"]
    cr = claim_response(result)
    (issued,) = [
        e["valueDate"] for e in cr["item"][0]["extension"] if e["url"].endswith("itemPreAuthIssueDate")
    ]
    assert issued == "2026-03-04"
    assert cr["preAuthPeriod"] == {"start": "2026-03-02", "end": "2026-07-02"}
    assert (window.valid_from.isoformat(), window.valid_until and window.valid_until.isoformat()) == (
        cr["preAuthPeriod"]["start"],
        cr["preAuthPeriod"]["end"],
    )


def test_parameters_wrapper_and_exempt_basis(client: Any, make_actor: Any) -> None:
    prov = make_actor("provider")
    bundle = wiser("time-sensitive")
    params = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": bundle}]}
    resp = client.post(SUBMIT, json=params, headers=prov.headers)
    assert resp.status_code == 200
    assert_valid_response(resp.json(), bundle)
    assert review_actions(resp.json())[0][0] == "A1"
    assert _basis(resp.json()) == "exempt"
    adj = claim_response(resp.json())["item"][0]["adjudication"][0]
    assert any(e.get("valueCoding", {}).get("system") == CS_AFFIRMATION_BASIS for e in adj["extension"])


def test_same_bundle_identifier_replays_and_another_body_is_409(
    client: Any, rt: Any, make_actor: Any
) -> None:
    prov = make_actor("provider")
    first = client.post(SUBMIT, json=wiser("standard"), headers=prov.headers)
    again = client.post(SUBMIT, json=wiser("standard"), headers=prov.headers)
    assert again.status_code == 200 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == first.json()
    changed = wiser("standard", facts={"conservative_care_weeks": 2})
    outcome = assert_outcome(client.post(SUBMIT, json=changed, headers=prov.headers), 409)
    assert outcome["issue"][0]["expression"] == ["Bundle.identifier"]
    assert _count(rt, PaRequest) == 1 and _count(rt, FhirBundle) == 1
    # Another organization's identical identifier is its own transaction, not a replay.
    other = make_actor("provider")
    assert client.post(SUBMIT, json=wiser("standard"), headers=other.headers).status_code == 200
    assert _count(rt, PaRequest) == 2


def test_unmet_criteria_pend_a4_then_clinician_non_affirms_a3_citing_criteria(
    client: Any, rt: Any, make_actor: Any
) -> None:
    prov = make_actor("provider")
    bundle = wiser("standard", ident="PEND-1", facts={"active_rehab_program": False})
    resp = client.post(SUBMIT, json=bundle, headers=prov.headers)
    assert resp.status_code == 200
    assert_valid_response(resp.json(), bundle)
    assert review_actions(resp.json()) == [("A4", None)]
    assert claim_response(resp.json())["outcome"] == "complete"  # PAS: no 'queued'
    reviewer = make_actor("reviewer", state="TX")
    with rt.sessions() as s:
        req = s.scalars(select(PaRequest)).one()
        unmet = [r["criterion_id"] for r in req.criteria_results if r["result"] != "met"]
        assert unmet
        reviews.decide(
            s, rt, principal=reviewer.principal, request_id=req.id, outcome="non_affirm", reasons=unmet
        )
        s.commit()
        utn = req.utn
    inquiry = _inquiry(utn)
    out = client.post(INQUIRE, json=inquiry, headers=prov.headers)
    assert out.status_code == 200
    Parameters.model_validate(out.json())
    [result] = [p["resource"] for p in out.json()["parameter"] if p["name"] == "return"]
    assert_valid_response_inquiry(result)
    [(code, number)] = review_actions(result)
    assert (code, number) == ("A3", utn)
    notes = " ".join(n["text"] for n in claim_response(result)["processNote"])
    assert all(cid in notes for cid in unmet) and "L36920" in notes


def assert_valid_response_inquiry(body: dict[str, Any]) -> None:
    from fhir.resources.R4B.bundle import Bundle

    from wiserpa.fhir.validation import validate_response_bundle

    Bundle.model_validate(body)
    assert validate_response_bundle(body, inquiry=True) == []


def _inquiry(utn: str) -> dict[str, Any]:
    inquiry = load("fhir/pas-wiser-esi-64483-tx-inquiry.json")
    claim = inquiry["entry"][0]["resource"]
    text = json.dumps(claim).replace("JHA26000000123", utn)
    inquiry["entry"][0]["resource"] = json.loads(text)
    return inquiry


def test_inquire_is_scoped_to_the_organization(client: Any, make_actor: Any) -> None:
    prov = make_actor("provider")
    utn = review_actions(client.post(SUBMIT, json=wiser("standard"), headers=prov.headers).json())[0][1]
    assert utn
    mine = client.post(INQUIRE, json=_inquiry(utn), headers=prov.headers).json()
    assert [p["name"] for p in mine["parameter"]] == ["return"]
    assert review_actions(mine["parameter"][0]["resource"]) == [("A1", utn)]
    other = make_actor("provider")
    theirs = client.post(INQUIRE, json=_inquiry(utn), headers=other.headers)
    assert theirs.status_code == 200 and "parameter" not in theirs.json()


def test_cancel_withdraws_the_request(client: Any, rt: Any, make_actor: Any) -> None:
    prov = make_actor("provider")
    client.post(SUBMIT, json=wiser("standard"), headers=prov.headers)
    cancel = wiser("cancel")
    resp = client.post(SUBMIT, json=cancel, headers=prov.headers)
    assert resp.status_code == 200
    assert_valid_response(resp.json(), cancel)
    assert review_actions(resp.json()) == [("C", None)]
    with rt.sessions() as s:
        assert s.scalars(select(PaRequest.status)).one() == "withdrawn"
    # Cancelling again: the request is already withdrawn, a business-rule refusal.
    again = wiser("cancel")
    again["identifier"]["value"] = "WISER-ESI-CANCEL-2"
    assert_outcome(client.post(SUBMIT, json=again, headers=prov.headers), 422)


def test_cancel_of_unknown_or_foreign_request_is_404_and_writes_nothing(
    client: Any, rt: Any, make_actor: Any
) -> None:
    owner, other = make_actor("provider"), make_actor("provider")
    client.post(SUBMIT, json=wiser("standard"), headers=owner.headers)
    body = assert_outcome(client.post(SUBMIT, json=wiser("cancel"), headers=other.headers), 404)
    assert body["issue"][0]["expression"] == ["Bundle.entry[0].resource.related"]
    with rt.sessions() as s:
        assert s.scalars(select(PaRequest.status)).one() == "affirmed"
    assert _count(rt, FhirBundle) == 1


def _update_of(original_claim_ident: str, *, ident: str, facts: dict[str, Any]) -> dict[str, Any]:
    """An update (profile-claim-update) of a WISeR request with changed answers."""
    bundle = wiser("standard", ident=ident, facts=facts)
    cancel = wiser("cancel")
    claim = bundle["entry"][0]["resource"]
    claim["related"] = [
        {
            "claim": {"identifier": {"system": "urn:trnorg:1042420020", "value": original_claim_ident}},
            "relationship": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/related-claim-relationship",
                        "code": "prior",
                    }
                ]
            },
        }
    ]
    assert cancel["entry"][0]["resource"]["related"]  # the fixture's shape this mirrors
    return bundle


def test_update_of_a_pended_request_replaces_it(client: Any, rt: Any, make_actor: Any) -> None:
    prov = make_actor("provider")
    first = wiser("standard", ident="UPD-0", facts={"conservative_care_weeks": 2})
    assert review_actions(client.post(SUBMIT, json=first, headers=prov.headers).json())[0][0] == "A4"
    update = _update_of("CLAIM-UPD-0", ident="UPD-1", facts={"conservative_care_weeks": 8})
    resp = client.post(SUBMIT, json=update, headers=prov.headers)
    assert resp.status_code == 200, resp.text
    assert_valid_response(resp.json(), update)
    assert review_actions(resp.json())[0][0] == "A1"
    with rt.sessions() as s:
        old, new = s.scalars(select(PaRequest).order_by(PaRequest.id)).all()
        assert old.status == "withdrawn" and new.predecessor_id == old.id
        assert s.scalars(select(FhirBundle.kind).order_by(FhirBundle.id)).all() == ["new", "update"]


def test_update_of_an_affirmed_request_is_refused(client: Any, rt: Any, make_actor: Any) -> None:
    prov = make_actor("provider")
    client.post(SUBMIT, json=wiser("standard", ident="AFF-0"), headers=prov.headers)
    update = _update_of("CLAIM-AFF-0", ident="AFF-1", facts={"conservative_care_weeks": 9})
    assert_outcome(client.post(SUBMIT, json=update, headers=prov.headers), 422)
    assert _count(rt, PaRequest) == 1


# ---------------------------------------------------------------------------------------------- errors


def test_engine_refusal_names_the_element(client: Any, rt: Any, make_actor: Any) -> None:
    prov = make_actor("provider")
    bundle = wiser("standard", facts={"conservative_care_weeks": -3})
    body = assert_outcome(client.post(SUBMIT, json=bundle, headers=prov.headers), 422)
    assert any(
        "item" in e and "QuestionnaireResponse" not in e for i in body["issue"] for e in i["expression"]
    )
    assert _count(rt, PaRequest) == 0 and _count(rt, FhirBundle) == 0


def test_auth_and_role_errors_are_operation_outcomes(client: Any, make_actor: Any) -> None:
    assert_outcome(client.post(SUBMIT, json=wiser()), 401)
    reviewer = make_actor("reviewer", state="TX")
    assert_outcome(client.post(SUBMIT, json=wiser(), headers=reviewer.headers), 403)


def test_bodies_that_are_not_json_bundles(client: Any, make_actor: Any) -> None:
    prov = make_actor("provider")
    assert_outcome(
        client.post(
            SUBMIT, content=b"<Bundle/>", headers={**prov.headers, "Content-Type": "application/fhir+xml"}
        ),
        415,
    )
    assert_outcome(client.post(SUBMIT, content=b"{not json", headers={**prov.headers, **FHIR_JSON}), 400)
    assert_outcome(client.post(SUBMIT, json=[1, 2], headers=prov.headers), 400)


def _files(*folders: Path) -> list[Path]:
    return sorted(p for f in folders for p in f.glob("*.json"))


IG_REQUESTS = [p for p in _files(PAS / "ig-examples-2.2.1") if p.name.startswith("Bundle-")]
INFERNO = _files(PAS / "inferno-test-kit")
RI = _files(PAS / "prior-auth-ri" / "database-resources", PAS / "prior-auth-ri" / "test-resources")


@pytest.mark.parametrize("path", IG_REQUESTS + INFERNO + RI, ids=lambda p: p.name)
def test_every_fixture_gets_a_clean_answer_never_5xx(
    client: Any, rt: Any, make_actor: Any, path: Path
) -> None:
    """IG examples (no MBI, non-WISeR codes), Inferno and RI inputs: a valid 2xx or a 4xx OO."""
    prov = make_actor("provider")
    resp = client.post(SUBMIT, content=path.read_bytes(), headers={**prov.headers, **FHIR_JSON})
    assert resp.status_code < 500
    if resp.status_code == 200:
        assert_valid_response(resp.json(), json.loads(path.read_bytes()))
    else:
        body = assert_outcome(resp)
        assert all(i.get("expression") for i in body["issue"]), body
        assert _count(rt, PaRequest) == 0


INFERNO_NEGATIVES = [
    "invalid_first_entry_response_bundle.json",
    "missing_referenced_resource_request_bundle.json",
    "nonconformant_pas_bundle_v110.json",
    "pa_response_bundle_missing_elements.json",
]


@pytest.mark.parametrize("name", INFERNO_NEGATIVES)
def test_inferno_negatives_are_4xx(client: Any, make_actor: Any, name: str) -> None:
    prov = make_actor("provider")
    resp = client.post(
        SUBMIT, content=(PAS / "inferno-test-kit" / name).read_bytes(), headers={**prov.headers, **FHIR_JSON}
    )
    assert_outcome(resp, 400)


def test_ig_inquiry_examples_answer_parameters(client: Any, make_actor: Any) -> None:
    prov = make_actor("provider")
    for path in (
        PAS / "ig-examples-2.2.1" / "Bundle-PASClaimInquiryBundleExample.json",
        PAS / "inferno-test-kit" / "conformant_pas_inquire_bundle_v110.json",
    ):
        resp = client.post(INQUIRE, content=path.read_bytes(), headers={**prov.headers, **FHIR_JSON})
        assert resp.status_code == 200, resp.text
        Parameters.model_validate(resp.json())


def test_inquire_refuses_a_submit_bundle(client: Any, make_actor: Any) -> None:
    prov = make_actor("provider")
    resp = client.post(INQUIRE, json=wiser("standard"), headers=prov.headers)
    assert resp.status_code in (200, 400)  # a request bundle also reads as a query by example, never a 5xx


def test_metadata_lists_operations(client: Any) -> None:
    resp = client.get("/fhir/metadata")
    assert resp.status_code == 200
    cs = resp.json()
    CapabilityStatement.model_validate(cs)
    ops = {o["name"] for r in cs["rest"][0]["resource"] for o in r.get("operation", [])}
    assert {"submit", "inquire", "questionnaire-package", "status"} <= ops
    sub = next(r for r in cs["rest"][0]["resource"] if r["type"] == "Subscription")
    assert {i["code"] for i in sub["interaction"]} >= {"create", "delete"}
