"""PAS response Bundles: every decision kind satisfies the PAS response profile's required elements."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.parameters import Parameters

from wiserpa.fhir.pas import (
    CS_AFFIRMATION_BASIS,
    EXT_AFFIRMATION_BASIS,
    EXT_ITEM_PREAUTH_PERIOD,
    EXT_REVIEW_ACTION,
    EXT_REVIEW_ACTION_CODE,
    X12_306,
    PasOutcome,
    inquiry_parameters,
    inquiry_response_bundle,
    parse_inquiry_bundle,
    pas_response_bundle,
    unwrap_parameters,
)
from wiserpa.fhir.validation import validate_response_bundle

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
IG = FIXTURES / "davinci" / "pas" / "ig-examples-2.2.1"
INFERNO = FIXTURES / "davinci" / "pas" / "inferno-test-kit"
WISER = FIXTURES / "fhir"

NOW = dt.datetime(2026, 2, 3, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=-6)))
UTN = "JHA26000000123"
FROM = dt.date(2026, 2, 3)
UNTIL = FROM + dt.timedelta(days=119)  # 120 days including the first
REASONS = [
    (
        "esi.conservative_care",
        "LCD L36920, Coverage Indications: indication 3",
        "At least 4 weeks of noninvasive conservative care failed",
    ),
    (
        "esi.concordant_imaging",
        "LCD L36920, Coverage Indications: history, exam and concordant imaging",
        "History, physical exam and MRI or CT agree at the level and side treated",
    ),
]


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def affirmed(kind: Any) -> PasOutcome:
    return PasOutcome("affirmed", 42, kind, UTN, FROM, UNTIL, status_text=f"Provisionally affirmed ({kind})")


OUTCOMES = {
    "criteria": affirmed("criteria"),
    "clinician": affirmed("clinician"),
    "deemed": affirmed("deemed"),
    "exempt": affirmed("exempt"),
    "gold_card": affirmed("gold_card"),
    "non_affirmed": PasOutcome(
        "non_affirmed",
        42,
        None,
        "JHA26000000124",
        reasons=REASONS,
        status_text="Non-affirmed by a clinician reviewer",
    ),
    "pended": PasOutcome("pended", 42, status_text="Waiting for clinician review"),
    "cancelled": PasOutcome("cancelled", 42, status_text="Cancelled by the requester"),
}
REQUESTS = ["standard", "expedited", "time-sensitive"]


def request(name: str) -> dict[str, Any]:
    return load(WISER / f"pas-wiser-esi-64483-tx-{name}.json")


def review_action(bundle: dict[str, Any], item: int = 0) -> dict[str, Any]:
    adj = bundle["entry"][0]["resource"]["item"][item]["adjudication"][0]
    (action,) = [e for e in adj["extension"] if e["url"] == EXT_REVIEW_ACTION]
    subs: dict[str, Any] = {}
    for sub in action["extension"]:
        subs.setdefault(sub["url"], []).append(sub)
    return subs


def action_code(bundle: dict[str, Any]) -> str:
    (code,) = review_action(bundle)[EXT_REVIEW_ACTION_CODE]
    (coding,) = code["valueCodeableConcept"]["coding"]
    assert coding["system"] == X12_306
    return str(coding["code"])


@pytest.mark.parametrize("req", REQUESTS)
@pytest.mark.parametrize("key", list(OUTCOMES))
def test_every_response_is_valid_pas(key: str, req: str) -> None:
    raw = request(req)
    bundle = pas_response_bundle(request_bundle=raw, outcome=OUTCOMES[key], now=NOW)
    Bundle.model_validate(bundle)
    assert validate_response_bundle(bundle, request_bundle=raw) == []
    assert bundle["entry"][0]["resource"]["resourceType"] == "ClaimResponse"
    assert bundle["identifier"] == raw["identifier"]
    assert bundle["timestamp"] == "2026-02-03T10:00:00-06:00"
    cr = bundle["entry"][0]["resource"]
    assert cr["outcome"] == "complete"
    assert cr["request"] == {"identifier": raw["entry"][0]["resource"]["identifier"][0]}
    assert [i["itemSequence"] for i in cr["item"]] == [1]


@pytest.mark.parametrize("kind", ["criteria", "clinician", "deemed", "exempt", "gold_card"])
def test_affirmations_are_a1_with_utn_validity_and_basis(kind: str) -> None:
    bundle = pas_response_bundle(request_bundle=request("standard"), outcome=OUTCOMES[kind], now=NOW)
    assert action_code(bundle) == "A1"
    assert review_action(bundle)["number"] == [{"url": "number", "valueString": UTN}]
    cr = bundle["entry"][0]["resource"]
    assert cr["preAuthRef"] == UTN
    assert cr["preAuthPeriod"] == {"start": "2026-02-03", "end": "2026-06-02"}
    item = cr["item"][0]
    (period,) = [e for e in item["extension"] if e["url"] == EXT_ITEM_PREAUTH_PERIOD]
    assert period["valuePeriod"] == cr["preAuthPeriod"]
    (basis,) = [e for e in item["adjudication"][0]["extension"] if e["url"] == EXT_AFFIRMATION_BASIS]
    assert basis["valueCoding"]["system"] == CS_AFFIRMATION_BASIS
    assert basis["valueCoding"]["code"] == kind.replace("_", "-")
    human = cr["extension"][0]["extension"][0]
    assert human == {"url": "wasHumanReviewedFlag", "valueBoolean": kind == "clinician"}


def test_non_affirmation_is_a3_citing_each_unmet_criterion() -> None:
    bundle = pas_response_bundle(
        request_bundle=request("standard"), outcome=OUTCOMES["non_affirmed"], now=NOW
    )
    assert action_code(bundle) == "A3"
    subs = review_action(bundle)
    assert subs["number"][0]["valueString"] == "JHA26000000124"
    reasons = subs["reasonCode"]
    assert [r["valueCodeableConcept"]["coding"][0]["code"] for r in reasons] == [r[0] for r in REASONS]
    for (cid, citation, _statement), reason in zip(REASONS, reasons, strict=True):
        assert cid in reason["valueCodeableConcept"]["text"]
        assert citation in reason["valueCodeableConcept"]["text"]
    cr = bundle["entry"][0]["resource"]
    assert [n["number"] for n in cr["processNote"]] == [1, 2]
    assert cr["item"][0]["noteNumber"] == [1, 2]
    assert "preAuthPeriod" not in cr
    # Only a clinician may non-affirm (WISeR): the response says a human reviewed it.
    assert cr["extension"][0]["extension"][0]["valueBoolean"] is True


def test_pended_is_a4_without_utn() -> None:
    bundle = pas_response_bundle(request_bundle=request("standard"), outcome=OUTCOMES["pended"], now=NOW)
    assert action_code(bundle) == "A4"
    assert "number" not in review_action(bundle)
    cr = bundle["entry"][0]["resource"]
    assert "preAuthRef" not in cr
    assert cr["disposition"] == "Waiting for clinician review"


def test_cancelled_is_c() -> None:
    bundle = pas_response_bundle(request_bundle=request("standard"), outcome=OUTCOMES["cancelled"], now=NOW)
    assert action_code(bundle) == "C"


def test_echoed_resources_keep_request_fullurls() -> None:
    raw = request("expedited")
    bundle = pas_response_bundle(request_bundle=raw, outcome=OUTCOMES["criteria"], now=NOW)
    request_urls = {e["fullUrl"] for e in raw["entry"]}
    echoed = [e["fullUrl"] for e in bundle["entry"][1:]]
    assert echoed and set(echoed) <= request_urls
    types = {e["resource"]["resourceType"] for e in bundle["entry"][1:]}
    # Patient, insurer and requestor, plus what the PractitionerRole requestor references.
    assert {"Patient", "Organization", "PractitionerRole", "Practitioner", "Location"} <= types
    assert "Claim" not in types
    cr = bundle["entry"][0]["resource"]
    assert cr["patient"]["reference"] in request_urls


def test_outcome_contract_is_enforced() -> None:
    raw = request("standard")
    with pytest.raises(ValueError):
        pas_response_bundle(request_bundle=raw, outcome=OUTCOMES["criteria"], now=NOW.replace(tzinfo=None))
    with pytest.raises(ValueError):
        pas_response_bundle(request_bundle=raw, outcome=PasOutcome("non_affirmed", 1, utn=UTN), now=NOW)
    with pytest.raises(ValueError):
        pas_response_bundle(request_bundle=raw, outcome=PasOutcome("affirmed", 1, "criteria"), now=NOW)


def test_response_is_deterministic() -> None:
    raw = request("standard")
    a = pas_response_bundle(request_bundle=raw, outcome=OUTCOMES["deemed"], now=NOW)
    b = pas_response_bundle(request_bundle=raw, outcome=OUTCOMES["deemed"], now=NOW)
    assert a == b


def test_extension_urls_match_the_ig_examples() -> None:
    approved = load(IG / "Bundle-ReferralAuthorizationResponseBundleExample.json")
    adj = approved["entry"][0]["resource"]["item"][0]["adjudication"][0]
    ig_action = adj["extension"][0]
    assert ig_action["url"] == EXT_REVIEW_ACTION
    urls = {e["url"] for e in ig_action["extension"]}
    assert urls == {"number", EXT_REVIEW_ACTION_CODE}
    code = next(e for e in ig_action["extension"] if e["url"] == EXT_REVIEW_ACTION_CODE)
    assert code["valueCodeableConcept"]["coding"][0]["system"] == X12_306
    ig_item_urls = {e["url"] for e in approved["entry"][0]["resource"]["item"][0]["extension"]}
    assert EXT_ITEM_PREAUTH_PERIOD in ig_item_urls


# --- inquiry


def test_inquiry_response_is_valid_and_wrapped_as_return() -> None:
    inquiry = request("inquiry")
    parse_inquiry_bundle(inquiry)
    bundle = inquiry_response_bundle(
        inquiry_bundle=inquiry, request_bundle=request("standard"), outcome=OUTCOMES["criteria"], now=NOW
    )
    Bundle.model_validate(bundle)
    assert validate_response_bundle(bundle, inquiry=True) == []
    assert bundle["identifier"] == inquiry["identifier"]
    assert bundle["meta"]["profile"] == [
        "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-pas-inquiry-response-bundle"
    ]
    params = inquiry_parameters([bundle])
    Parameters.model_validate(params)
    assert params["parameter"][0]["name"] == "return"
    assert unwrap_parameters(params) == bundle


# --- the validator against third-party responses


def codes_and_paths(issues: list[Any]) -> set[tuple[str, str]]:
    return {(i.code, i.expression[0]) for i in issues}


# Inferno's "valid" responses predate two PAS 2.2.1 minimums: Bundle.identifier, ClaimResponse.request 1..1.
INFERNO_LEGACY = {("required", "Bundle.identifier"), ("required", "Bundle.entry[0].resource.request")}


def test_inferno_valid_responses_only_miss_the_221_minimums() -> None:
    for name in ("valid_pa_response_bundle.json", "valid_pa_response_bundle_denial.json"):
        assert codes_and_paths(validate_response_bundle(load(INFERNO / name))) == INFERNO_LEGACY


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("invalid_first_entry_response_bundle.json", ("invariant", "Bundle.entry[0]")),
        (
            "missing_referenced_resource_response_bundle.json",
            ("not-found", "Bundle.entry[0].resource.patient"),
        ),
        ("pa_response_bundle_missing_elements.json", ("required", "Bundle.entry[0].resource.created")),
        ("response_bundle_patient_wrong_fullurl.json", ("value", "Bundle.entry[3].resource")),
    ],
)
def test_inferno_negative_responses_are_flagged(name: str, expected: tuple[str, str]) -> None:
    req = load(INFERNO / "conformant_pas_bundle_v110.json")
    issues = validate_response_bundle(load(INFERNO / name), request_bundle=req)
    assert expected in codes_and_paths(issues)


def test_ig_response_examples() -> None:
    assert validate_response_bundle(load(IG / "Bundle-RejectionResponseBundleExample.json")) == []
    assert validate_response_bundle(load(IG / "Bundle-ErrorResponseBundleExample.json")) == []
    assert (
        validate_response_bundle(load(IG / "Bundle-PASClaimInquiryResponseBundleExample.json"), inquiry=True)
        == []
    )
    # The IG's approved and pended examples name a PractitionerRole requestor they do not include (spec-33).
    for name in (
        "Bundle-ReferralAuthorizationResponseBundleExample.json",
        "Bundle-ReferralPendingAuthorizationResponseBundleExample.json",
    ):
        assert codes_and_paths(validate_response_bundle(load(IG / name))) == {
            ("not-found", "Bundle.entry[0].resource.requestor")
        }
