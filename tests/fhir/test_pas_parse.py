"""PAS request parsing/mapping against the Da Vinci fixtures (IG 2.2.1, Inferno, HL7 RI) and WISeR bundles."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from fhir.resources.R4B.operationoutcome import OperationOutcome

from wiserpa.fhir.outcome import FhirError, Issue, operation_outcome
from wiserpa.fhir.pas import (
    PasSubmission,
    parse_inquiry_bundle,
    parse_pas_bundle,
    parse_update_or_cancel,
    unwrap_parameters,
)
from wiserpa.fhir.validation import BundleIndex, fhirpath
from wiserpa.requests.schemas import (
    BeneficiaryIn,
    Channel,
    ProviderIn,
    ServiceLineIn,
    SubmitRequestIn,
    Urgency,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
DAVINCI = FIXTURES / "davinci"
IG = DAVINCI / "pas" / "ig-examples-2.2.1"
INFERNO = DAVINCI / "pas" / "inferno-test-kit"
RI = DAVINCI / "pas" / "prior-auth-ri"
WISER = FIXTURES / "fhir"
CRITERIA = Path(__file__).resolve().parents[2] / "src" / "wiserpa" / "data" / "criteria"

IG_REQUEST_BUNDLES = [
    "Bundle-HomecareAuthorizationBundleExample.json",
    "Bundle-HomecareAuthorizationUpdateBundleExample.json",
    "Bundle-MedicalServicesAuthorizationBundleExample.json",
    "Bundle-ReferralAuthorizationBundleExample.json",
    "Bundle-SurgicalRequestBundleExample.json",
]
INFERNO_NEGATIVES = [
    "invalid_first_entry_response_bundle.json",
    "missing_referenced_resource_request_bundle.json",
    "missing_referenced_resource_response_bundle.json",
    "nonconformant_pas_bundle_v110.json",
    "pa_response_bundle_missing_elements.json",
    "response_bundle_patient_wrong_fullurl.json",
    "PAS_notification_missing_elements.json",
    "PAS_Subscription_example_bad_topic_and_criteria.json",
    "PAS_Subscription_example_v221_bad.json",
]
INFERNO_CONFORMANT_REQUESTS = [
    "conformant_pas_bundle_v110.json",
    "conformant_pas_bundle_v110_multiple_items.json",
    "conformant_pas_bundle_v110_uuid.json",
]
ALL_DAVINCI = sorted(p.relative_to(DAVINCI).as_posix() for p in DAVINCI.rglob("*.json"))
RI_FILES = sorted(p.relative_to(RI).as_posix() for p in RI.rglob("*.json"))


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def wiser(name: str) -> dict[str, Any]:
    return load(WISER / f"pas-wiser-esi-64483-tx-{name}.json")


def assert_clean(err: FhirError) -> None:
    """A refusal every client can act on: 4xx, at least one issue, every issue naming an element."""
    assert 400 <= err.http_status < 500
    assert err.issues
    for issue in err.issues:
        assert issue.severity in ("error", "fatal")
        assert issue.expression and all(isinstance(e, str) and e for e in issue.expression)
    OperationOutcome.model_validate(err.operation_outcome())


def entry_index(bundle: dict[str, Any], resource_type: str) -> int:
    return next(i for i, e in enumerate(bundle["entry"]) if e["resource"]["resourceType"] == resource_type)


# --- the third-party fixtures


def test_fixtures_are_local_copies() -> None:
    assert len(ALL_DAVINCI) >= 100
    assert (DAVINCI / "PROVENANCE.md").read_text().count("Apache-2.0") > 10
    assert "MITRE" in (DAVINCI / "PROVENANCE.md").read_text()


@pytest.mark.parametrize("name", IG_REQUEST_BUNDLES)
def test_ig_request_examples_parse_and_map_or_fail_cleanly(name: str) -> None:
    parsed = parse_pas_bundle(load(IG / name))
    assert isinstance(parsed, PasSubmission)
    assert parsed.claim["resourceType"] == "Claim"
    assert parsed.bundle_identifier.startswith("http://example.org/SUBMITTER_TRANSACTION_IDENTIFIER|")
    # The IG's synthetic patients carry no MBI: structurally fine, not a WISeR request.
    assert parsed.submit is None
    with pytest.raises(FhirError) as exc:
        parsed.require_submit()
    assert_clean(exc.value)
    assert exc.value.http_status == 400
    assert any("Medicare Beneficiary Identifier" in i.diagnostics for i in exc.value.issues)


def test_ig_referral_example_names_each_unmappable_element() -> None:
    parsed = parse_pas_bundle(load(IG / "Bundle-ReferralAuthorizationBundleExample.json"))
    where = {e for i in parsed.errors for e in i.expression}
    assert "Bundle.entry[4].resource.identifier" in where  # the Patient: no MBI
    assert "Bundle.entry[0].resource.item[0].productOrService" in where  # X12 1365 "3" is not CPT/HCPCS


def test_ig_update_example_is_an_update_with_a_cancelled_item() -> None:
    raw = load(IG / "Bundle-HomecareAuthorizationUpdateBundleExample.json")
    assert parse_pas_bundle(raw).kind == "update"
    uc = parse_update_or_cancel(raw)
    assert uc.kind == "update"
    assert uc.original_reference == "Claim/HomecareAuthorizationExample"
    assert uc.original_identifier == "http://example.org/PATIENT_EVENT_TRACE_NUMBER|111099"
    assert uc.cancelled_sequences == [2]
    assert uc.changed_sequences == [2]
    assert uc.added_sequences == [3]


@pytest.mark.parametrize("name", INFERNO_NEGATIVES)
def test_every_inferno_negative_is_refused_with_an_expression(name: str) -> None:
    with pytest.raises(FhirError) as exc:
        parse_pas_bundle(load(INFERNO / name))
    assert_clean(exc.value)


def test_inferno_missing_reference_points_at_the_care_team() -> None:
    with pytest.raises(FhirError) as exc:
        parse_pas_bundle(load(INFERNO / "missing_referenced_resource_request_bundle.json"))
    assert ["Bundle.entry[0].resource.careTeam[0].provider"] in [i.expression for i in exc.value.issues]
    assert {i.code for i in exc.value.issues} == {"not-found"}


def test_inferno_empty_bundle_and_wrong_first_entry() -> None:
    with pytest.raises(FhirError) as exc:
        parse_pas_bundle(load(INFERNO / "nonconformant_pas_bundle_v110.json"))
    assert exc.value.issues[0].expression == ["Bundle.entry"]
    with pytest.raises(FhirError) as exc:
        parse_pas_bundle(load(INFERNO / "invalid_first_entry_response_bundle.json"))
    assert any(
        i.code == "invariant" and i.expression == ["Bundle.entry[0].resource"] for i in exc.value.issues
    )


def test_structural_errors_carry_fhirpath_of_the_element() -> None:
    with pytest.raises(FhirError) as exc:
        parse_pas_bundle(load(INFERNO / "pa_response_bundle_missing_elements.json"))
    assert exc.value.issues[0].expression == ["Bundle.entry[0].resource.created"]
    assert exc.value.issues[0].code == "required"


@pytest.mark.parametrize("name", INFERNO_CONFORMANT_REQUESTS)
def test_inferno_conformant_requests_are_accepted(name: str) -> None:
    parsed = parse_pas_bundle(load(INFERNO / name))
    assert parsed.kind == "new"
    # Inferno's fixtures omit item.category (1..1 in PAS 2.2.1): tolerated with a warning, not refused.
    assert any("category" in i.diagnostics for i in parsed.warnings)
    # Synthetic member ids are not MBIs, so mapping reports instead of crashing.
    assert parsed.submit is None and parsed.errors


@pytest.mark.parametrize("name", RI_FILES)
def test_prior_auth_ri_inputs_never_crash(name: str) -> None:
    raw = load(RI / name)
    try:
        parsed = parse_pas_bundle(raw)
    except FhirError as exc:
        assert_clean(exc)
    else:
        assert parsed.submit is not None or parsed.errors


def test_prior_auth_ri_messy_inputs_are_refused() -> None:
    # None of the RI's inputs is a PAS 2.2.1 request (no Bundle.identifier, Claim.insurance as object, ...).
    for name in RI_FILES:
        with pytest.raises(FhirError):
            parse_pas_bundle(load(RI / name))


@pytest.mark.parametrize("name", ALL_DAVINCI)
def test_every_parser_survives_every_fixture(name: str) -> None:
    raw = load(DAVINCI / name)
    for parser in (parse_pas_bundle, parse_inquiry_bundle, parse_update_or_cancel):
        try:
            parser(raw)
        except FhirError as exc:
            assert_clean(exc)


@pytest.mark.parametrize("name", ALL_DAVINCI)
def test_only_request_bundles_pass_the_profile_checks(name: str) -> None:
    raw = load(DAVINCI / name)
    accepted = True
    try:
        parse_pas_bundle(raw)
    except FhirError:
        accepted = False
    expected = (
        name.removeprefix("pas/ig-examples-2.2.1/") in IG_REQUEST_BUNDLES
        or name.removeprefix("pas/inferno-test-kit/") in INFERNO_CONFORMANT_REQUESTS
    )
    assert accepted == expected


def test_inquiry_bundles_are_refused_by_submit_and_parsed_by_inquire() -> None:
    for path in (
        IG / "Bundle-PASClaimInquiryBundleExample.json",
        INFERNO / "conformant_pas_inquire_bundle_v110.json",
    ):
        with pytest.raises(FhirError) as exc:
            parse_pas_bundle(load(path))
        assert exc.value.issues[0].expression == ["Bundle.meta.profile"]
        key = parse_inquiry_bundle(load(path))
        assert key.member_ids
        assert key.claim_identifier


def test_ig_inquiry_key() -> None:
    key = parse_inquiry_bundle(load(IG / "Bundle-PASClaimInquiryBundleExample.json"))
    assert key.claim_identifier == "http://example.org/PATIENT_EVENT_TRACE_NUMBER|111099"
    assert key.member_ids == ["12345678901", "1122334455"]
    assert key.mbi is None
    assert key.provider_npi == "8189991234"
    assert key.codes == ["G0154", "B4184"]


# --- the derived WISeR bundles

ESI_FACTS: dict[str, Any] = {
    "esi_indication": "radiculopathy",
    "spinal_region": "lumbar",
    "imaging_concordant_with_exam": True,
    "baseline_scale": "nrs",
    "baseline_scale_score": 7,
    "functional_impact_documented": True,
    "pain_duration_weeks": 8,
    "conservative_care_weeks": 6.5,
    "conservative_care_failed": True,
    "guidance_modality": "fluoroscopy",
    "contrast_used": True,
    "active_rehab_program": True,
    "regions_this_session": 1,
    "approach": "transforaminal",
    "levels_this_session": 1,
    "bilateral": False,
    "prior_esi_same_region": False,
    "prior_esi_no_response": False,
    "months_of_esi_treatment": 0,
    "predetermined_series": False,
}


def expected_standard() -> SubmitRequestIn:
    return SubmitRequestIn(
        state="TX",
        provider=ProviderIn(npi="1042420012", name="Dana Doctor"),
        organization_npi="1042420020",
        beneficiary=BeneficiaryIn(mbi="1EG4TE5MK73", birth_date=dt.date(1950, 4, 12)),
        lines=[ServiceLineIn(code="64483", modifiers=["RT"], units=1)],
        diagnosis_codes=["M54.16", "M48.061"],
        place_of_service="11",
        date_of_service=dt.date(2026, 2, 16),
        urgency=Urgency.STANDARD,
        channel=Channel.FHIR,
        clinical_facts=ESI_FACTS,
        notes="Right L5 radicular pain; MRI shows L5-S1 foraminal stenosis concordant with exam.",
    )


def test_wiser_standard_bundle_maps_exactly() -> None:
    parsed = parse_pas_bundle(wiser("standard"))
    assert parsed.errors == []
    assert parsed.submit == expected_standard()


def test_wiser_expedited_bundle_uses_uuids_and_a_practitioner_role() -> None:
    raw = wiser("expedited")
    assert all(e["fullUrl"].startswith("urn:uuid:") for e in raw["entry"])
    submit = parse_pas_bundle(raw).require_submit()
    assert submit.urgency is Urgency.EXPEDITED
    assert submit.model_dump(exclude={"urgency"}) == expected_standard().model_dump(exclude={"urgency"})


def test_wiser_time_sensitive_bundle_carries_the_attestation() -> None:
    submit = parse_pas_bundle(wiser("time-sensitive")).require_submit()
    assert submit.time_sensitive_attestation is True
    assert submit.diagnosis_codes[0] == "G8911"
    assert "time_sensitive_attestation" not in submit.clinical_facts


def test_wiser_cancel_bundle() -> None:
    raw = wiser("cancel")
    parsed = parse_pas_bundle(raw)
    assert parsed.kind == "cancel" and parsed.submit is None and parsed.errors == []
    uc = parse_update_or_cancel(raw)
    assert uc.kind == "cancel"
    assert uc.original_identifier == "urn:trnorg:1042420020|ESI-STANDARD-0001"
    assert uc.cancelled_sequences == [1]


def test_wiser_inquiry_bundle() -> None:
    key = parse_inquiry_bundle(wiser("inquiry"))
    assert key.mbi == "1EG4TE5MK73"
    assert key.authorization_numbers == ["JHA26000000123"]
    assert key.codes == ["64483"]
    assert key.service_date_from == key.service_date_to == dt.date(2026, 2, 16)


@pytest.mark.skipif(not (CRITERIA / "lcd-L36920.yaml").exists(), reason="criteria file not written yet")
def test_wiser_fixture_facts_are_declared_by_the_esi_criteria() -> None:
    declared = yaml.safe_load((CRITERIA / "lcd-L36920.yaml").read_text())["facts"]
    for name, value in ESI_FACTS.items():
        assert name in declared, name
        if declared[name].get("type") == "enum":
            assert value in declared[name]["values"], name


def test_wiser_standard_bundle_meets_every_esi_criterion() -> None:
    from wiserpa.policy import criteria

    policy = criteria.load_criteria().for_policy("L36920")
    assert policy is not None
    submit = parse_pas_bundle(wiser("standard")).require_submit()
    results = criteria.evaluate(
        policy,
        criteria.coerce_facts(policy, submit.clinical_facts),
        date_of_service=submit.date_of_service,
        category="epidural_steroid_injection",
    )
    assert results and {str(r.result) for r in results} == {"met"}


# --- mapping details, by mutation of the standard bundle


def mutated(fn: Any, name: str = "standard") -> PasSubmission:
    raw = wiser(name)
    fn(raw)
    return parse_pas_bundle(raw)


def error_paths(parsed: PasSubmission) -> list[str]:
    return [e for i in parsed.errors for e in i.expression]


def test_missing_mbi_names_the_patient_identifier() -> None:
    def drop(raw: dict[str, Any]) -> None:
        raw["entry"][entry_index(raw, "Patient")]["resource"]["identifier"] = []
        cov = raw["entry"][entry_index(raw, "Coverage")]["resource"]
        cov["subscriberId"] = "not-an-mbi"
        cov["identifier"][0]["value"] = "also-not"

    parsed = mutated(drop)
    assert parsed.submit is None
    assert error_paths(parsed) == [
        f"Bundle.entry[{entry_index(wiser('standard'), 'Patient')}].resource.identifier"
    ]


def test_mbi_falls_back_to_coverage_subscriber_id() -> None:
    def drop(raw: dict[str, Any]) -> None:
        raw["entry"][entry_index(raw, "Patient")]["resource"]["identifier"] = []

    assert mutated(drop).require_submit().beneficiary.mbi == "1EG4TE5MK73"


def test_invalid_npi_names_the_identifier_value() -> None:
    def bad(raw: dict[str, Any]) -> None:
        raw["entry"][entry_index(raw, "Practitioner")]["resource"]["identifier"][0]["value"] = "1042420013"

    parsed = mutated(bad)
    i = entry_index(wiser("standard"), "Practitioner")
    assert error_paths(parsed) == [f"Bundle.entry[{i}].resource.identifier[0].value"]


def test_group_npi_is_used_when_no_clinician_npi() -> None:
    def drop(raw: dict[str, Any]) -> None:
        raw["entry"][entry_index(raw, "Practitioner")]["resource"]["identifier"] = []

    submit = mutated(drop).require_submit()
    assert submit.provider.npi == "1042420020"
    assert submit.organization_npi is None


def test_non_cpt_code_names_the_product_or_service() -> None:
    def code(raw: dict[str, Any]) -> None:
        raw["entry"][0]["resource"]["item"][0]["productOrService"] = {
            "coding": [{"system": "https://codesystem.x12.org/005010/1365", "code": "3"}]
        }

    assert error_paths(mutated(code)) == [
        fhirpath("Bundle", "entry", 0, "resource", "item", 0, "productOrService")
    ]


def test_schema_errors_map_back_to_fhirpath() -> None:
    def fractional(raw: dict[str, Any]) -> None:
        raw["entry"][0]["resource"]["item"][0]["quantity"] = {"value": 120}

    # 120 units is a whole number but beyond ServiceLineIn's limit: the pydantic error comes back as FHIRPath.
    assert error_paths(mutated(fractional)) == ["Bundle.entry[0].resource.item[0].quantity"]

    def modifier(raw: dict[str, Any]) -> None:
        raw["entry"][0]["resource"]["item"][0]["modifier"] = [{"coding": [{"code": "RTX"}]}]

    assert error_paths(mutated(modifier)) == ["Bundle.entry[0].resource.item[0].modifier"]


def test_missing_diagnosis_is_a_mapping_error() -> None:
    def drop(raw: dict[str, Any]) -> None:
        del raw["entry"][0]["resource"]["diagnosis"]
        del raw["entry"][0]["resource"]["item"][0]["diagnosisSequence"]

    assert error_paths(mutated(drop)) == ["Bundle.entry[0].resource.diagnosis"]


def test_state_falls_back_to_patient_then_hint() -> None:
    def no_facility(raw: dict[str, Any]) -> None:
        raw["entry"][entry_index(raw, "Location")]["resource"]["address"]["state"] = "Texas"

    assert mutated(no_facility).require_submit().state == "TX"  # from the patient's home address

    raw = wiser("standard")
    raw["entry"][entry_index(raw, "Location")]["resource"]["address"].pop("state")
    raw["entry"][entry_index(raw, "Patient")]["resource"].pop("address")
    with pytest.raises(FhirError):
        parse_pas_bundle(copy.deepcopy(raw)).require_submit()
    assert parse_pas_bundle(raw, state_hint="tx").require_submit().state == "TX"


def test_qr_answer_types_become_json_facts() -> None:
    def answers(raw: dict[str, Any]) -> None:
        qr = raw["entry"][entry_index(raw, "QuestionnaireResponse")]["resource"]
        qr["item"].append(
            {
                "linkId": "extra",
                "item": [
                    {"linkId": "last_visit", "answer": [{"valueDate": "2026-01-20"}]},
                    {"linkId": "free_text", "answer": [{"valueString": "ok"}]},
                    {"linkId": "score", "answer": [{"valueQuantity": {"value": 4.5}}]},
                    {
                        "linkId": "multi",
                        "answer": [{"valueCoding": {"code": "a"}}, {"valueCoding": {"code": "b"}}],
                    },
                    {"linkId": "1.2", "answer": [{"valueString": "numeric linkIds are not facts"}]},
                ],
            }
        )

    facts = mutated(answers).require_submit().clinical_facts
    assert facts["last_visit"] == "2026-01-20"
    assert facts["free_text"] == "ok"
    assert facts["score"] == 4.5
    assert facts["multi"] == ["a", "b"]
    assert "1.2" not in facts


def test_attestation_from_supporting_info() -> None:
    def attest(raw: dict[str, Any]) -> None:
        raw["entry"][0]["resource"]["supportingInfo"].append(
            {
                "sequence": 3,
                "category": {
                    "coding": [
                        {
                            "system": "https://wiserpa.org/fhir/CodeSystem/supporting-info",
                            "code": "time-sensitive-attestation",
                        }
                    ]
                },
                "valueBoolean": True,
            }
        )

    assert mutated(attest).require_submit().time_sensitive_attestation is True


def test_item_without_location_is_refused_by_the_profile() -> None:
    raw = wiser("standard")
    del raw["entry"][0]["resource"]["item"][0]["locationCodeableConcept"]
    with pytest.raises(FhirError) as exc:
        parse_pas_bundle(raw)
    assert exc.value.issues[0].expression == ["Bundle.entry[0].resource.item[0].location"]


def test_parameters_wrapper_is_accepted() -> None:
    body = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": wiser("standard")}]}
    assert parse_pas_bundle(body).require_submit() == expected_standard()
    ig = load(IG / "Parameters-PASClaimInquiryOperationResponseExample.json")
    assert unwrap_parameters(ig)["resourceType"] == "Bundle"  # the IG's `responseBundle` spelling


def test_not_json_object_is_refused() -> None:
    for body in (None, [], "x", {"resourceType": "Patient"}):
        with pytest.raises(FhirError) as exc:
            parse_pas_bundle(body)
        assert_clean(exc.value)


def test_references_resolve_by_fullurl_and_relative_id() -> None:
    index = BundleIndex(wiser("standard"))
    claim = index.first()
    assert claim is not None
    assert index.resolve("Patient/WiserBeneficiary", from_full_url=claim.full_url) is not None
    assert index.resolve("http://example.org/fhir/Patient/WiserBeneficiary") is not None
    assert index.resolve("Patient/nope") is None


# --- OperationOutcome


def test_operation_outcome_is_valid_r4() -> None:
    oo = operation_outcome(
        [Issue("error", "value", "bad code", ["Bundle.entry[0].resource.item[1].productOrService"])]
    )
    OperationOutcome.model_validate(oo)
    assert oo["issue"][0]["expression"] == ["Bundle.entry[0].resource.item[1].productOrService"]
    OperationOutcome.model_validate(operation_outcome([]))
    err = FhirError.business_rule("64483 is not on the WISeR list in CA", "Bundle.entry[0].resource.item[0]")
    assert err.http_status == 422
    OperationOutcome.model_validate(err.operation_outcome())
    with pytest.raises(ValueError):
        FhirError([])


def test_immediate_certification_needs_a_level_of_service() -> None:
    """ImmediateLevelOfCare: an item certified as immediate (code 1) without levelOfServiceCode is refused."""
    from wiserpa.fhir.pas import EXT_CERTIFICATION_TYPE, EXT_LEVEL_OF_SERVICE

    bundle = wiser("standard")
    claim = bundle["entry"][0]["resource"]
    claim["extension"] = [e for e in claim.get("extension", []) if e.get("url") != EXT_LEVEL_OF_SERVICE]
    parse_pas_bundle(bundle)  # without an immediate item, no level of service is needed
    item = claim["item"][0]
    immediate = {
        "url": EXT_CERTIFICATION_TYPE,
        "valueCodeableConcept": {
            "coding": [{"system": "https://codesystem.x12.org/005010/1322", "code": "1"}]
        },
    }
    item["extension"] = [*item.get("extension", []), immediate]
    with pytest.raises(FhirError) as exc:
        parse_pas_bundle(bundle)
    assert any("ImmediateLevelOfCare" in i.diagnostics for i in exc.value.issues)

    level = {"url": EXT_LEVEL_OF_SERVICE, "valueCodeableConcept": {"coding": [{"code": "U"}]}}
    claim["extension"] = [*claim.get("extension", []), level]
    try:
        parse_pas_bundle(bundle)
    except FhirError as err:  # other findings are possible; this invariant must not be one of them
        assert not any("ImmediateLevelOfCare" in i.diagnostics for i in err.issues)
