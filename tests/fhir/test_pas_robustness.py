"""Bug hunt over the FHIR HTTP interface with the mistakes real EHR traffic makes.

Each test sends what an EHR actually gets wrong (hostile nesting, a misspelled resource type, a NUL byte,
foreign id shapes, unserved interactions, XML or R5 negotiation) and checks the non-negotiables: a 4xx
OperationOutcome naming the element, never a 500, nothing written; plus what a retry and a deadline must
look like through PAS.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.factories import body as rest_body
from tests.fhir.apihelp import FHIR_JSON, assert_outcome, claim_response, load, review_actions, wiser
from wiserpa.fhir.models import FhirBundle
from wiserpa.fhir.pas import EXT_AFFIRMATION_BASIS
from wiserpa.fhir.validation import validate_response_bundle
from wiserpa.requests.models import PaRequest

SUBMIT = "/fhir/Claim/$submit"
INQUIRE = "/fhir/Claim/$inquire"


def _count(rt: Any, model: Any) -> int:
    with rt.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _nothing_written(rt: Any) -> None:
    assert _count(rt, PaRequest) == 0 and _count(rt, FhirBundle) == 0


def _expressions(body: dict[str, Any]) -> list[str]:
    return [e for issue in body["issue"] for e in issue.get("expression", [])]


def _inquiry(utn: str) -> dict[str, Any]:
    text = json.dumps(load("fhir/pas-wiser-esi-64483-tx-inquiry.json")).replace("JHA26000000123", utn)
    parsed: dict[str, Any] = json.loads(text)
    return parsed


# ---------------------------------------------------------------------------------------------- bodies


@pytest.mark.parametrize(
    "path", [SUBMIT, INQUIRE, "/fhir/Subscription", "/fhir/Questionnaire/$questionnaire-package"]
)
def test_pathologically_nested_json_is_a_400_not_a_500(
    client: Any, rt: Any, make_actor: Any, path: str
) -> None:
    """A body nested past the JSON parser's recursion limit, or past any real FHIR depth, is refused cleanly."""
    prov = make_actor("provider")
    too_deep_to_parse = b'{"resourceType": "Bundle", "entry": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    body = assert_outcome(
        client.post(path, content=too_deep_to_parse, headers={**prov.headers, **FHIR_JSON}), 400
    )
    assert body["issue"][0]["code"] == "structure"
    # Parseable, but deeper than any FHIR resource: an extension chain 200 levels deep inside the Claim.
    bundle = wiser("standard")
    node = bundle["entry"][0]["resource"]
    for _ in range(200):
        child: dict[str, Any] = {"url": "http://example.org/x"}
        node["extension"] = [child]
        node = child
    body = assert_outcome(client.post(path, json=bundle, headers=prov.headers), 400)
    assert _expressions(body)[0].startswith(("Bundle.entry[0].resource.extension[0]", "Bundle"))
    _nothing_written(rt)


def test_a_misspelled_resource_type_names_the_entry(client: Any, rt: Any, make_actor: Any) -> None:
    """An entry of a type R4 does not define (a typo, or an R5-only type) is a 400 naming that entry."""
    prov = make_actor("provider")
    bundle = wiser("standard")
    assert bundle["entry"][5]["resource"]["resourceType"] == "Practitioner"
    bundle["entry"][5]["resource"]["resourceType"] = "Practioner"
    body = assert_outcome(client.post(SUBMIT, json=bundle, headers=prov.headers), 400)
    assert _expressions(body) == ["Bundle.entry[5].resource"]
    assert "Practioner" in body["issue"][0]["diagnostics"]
    # The same mistake inside the Claim's contained resources, and in an inquiry.
    bundle = wiser("standard")
    bundle["entry"][0]["resource"]["contained"] = [{"resourceType": "RequestOrchestration", "id": "x"}]
    body = assert_outcome(client.post(SUBMIT, json=bundle, headers=prov.headers), 400)
    assert _expressions(body) == ["Bundle.entry[0].resource.contained[0]"]
    inquiry = _inquiry("JHA26000000123")
    inquiry["entry"][1]["resource"]["resourceType"] = "Foo"
    assert _expressions(assert_outcome(client.post(INQUIRE, json=inquiry, headers=prov.headers), 400)) == [
        "Bundle.entry[1].resource"
    ]
    _nothing_written(rt)


def test_a_nul_character_is_refused_on_every_backend(client: Any, rt: Any, make_actor: Any) -> None:
    """A NUL byte pasted into a note (PostgreSQL cannot store it) is a 400 naming the string, not a 500."""
    prov = make_actor("provider")
    bundle = wiser("standard")
    claim = bundle["entry"][0]["resource"]
    assert claim["supportingInfo"][1]["valueString"]
    claim["supportingInfo"][1]["valueString"] = "Right L5 radicular pain\u0000"
    body = assert_outcome(client.post(SUBMIT, json=bundle, headers=prov.headers), 400)
    assert _expressions(body) == ["Bundle.entry[0].resource.supportingInfo[1].valueString"]
    ident = wiser("standard")
    ident["identifier"]["value"] = "WISER\u0000-1"
    body = assert_outcome(client.post(SUBMIT, json=ident, headers=prov.headers), 400)
    assert _expressions(body) == ["Bundle.identifier.value"]
    _nothing_written(rt)
    # The same EHR, its data fixed, goes through.
    assert client.post(SUBMIT, json=wiser("standard"), headers=prov.headers).status_code == 200


# ---------------------------------------------------------------------------------------------- routes


@pytest.mark.parametrize("sub_id", ["99999999999999999999999", "9223372036854775808", "\u0661", "0"])
def test_subscription_ids_that_name_nothing_are_404(client: Any, make_actor: Any, sub_id: str) -> None:
    """Ids past 64 bits or in non-ASCII digits are not found (they were a 500 through `$status`)."""
    prov = make_actor("provider")
    for method, suffix in (("GET", ""), ("GET", "/$status"), ("DELETE", "")):
        resp = client.request(method, f"/fhir/Subscription/{sub_id}{suffix}", headers=prov.headers)
        assert _expressions(assert_outcome(resp, 404)) == ["Subscription.id"]


def test_unserved_fhir_interactions_answer_operation_outcomes(client: Any, make_actor: Any) -> None:
    """`GET /fhir/Patient/1` or `GET` on an operation gets a FHIR 404/405, the REST API keeps its format."""
    prov = make_actor("provider")
    body = assert_outcome(client.get("/fhir/Patient/1", headers=prov.headers), 404)
    assert body["issue"][0]["code"] == "not-found" and "/fhir/metadata" in body["issue"][0]["diagnostics"]
    resp = client.get(SUBMIT, headers=prov.headers)
    assert_outcome(resp, 405)
    assert "POST" in resp.headers["allow"]
    rest = client.get("/api/v1/no-such-thing", headers=prov.headers)
    assert rest.status_code == 404 and rest.json().get("resourceType") != "OperationOutcome"


def _declared(cs: dict[str, Any]) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """What /fhir/metadata promises: (method, path) per interaction, and (type, name) per operation."""
    verbs = {"create": "POST", "read": "GET", "delete": "DELETE", "search-type": "GET"}
    interactions = {("GET", "/fhir/metadata")}
    operations = set()
    for res in cs["rest"][0]["resource"]:
        for interaction in res.get("interaction", []):
            suffix = "/{id}" if interaction["code"] in ("read", "delete") else ""
            interactions.add((verbs[interaction["code"]], f"/fhir/{res['type']}{suffix}"))
        operations |= {(res["type"], op["name"]) for op in res.get("operation", [])}
    return interactions, operations


def test_capability_statement_declares_exactly_the_routes_served(client: Any) -> None:
    """Every FHIR route served is in /fhir/metadata (POST /fhir/Claim was not), and nothing more is promised."""
    interactions: set[tuple[str, str]] = set()
    operations: set[tuple[str, str]] = set()
    for template, methods in client.get("/openapi.json").json()["paths"].items():
        if not template.startswith("/fhir/"):
            continue
        parts = template.split("/")
        if parts[-1].startswith("$"):
            operations.add((parts[2], parts[-1][1:]))
        else:
            path = "/".join("{id}" if p.startswith("{") else p for p in parts)
            interactions |= {(method.upper(), path) for method in methods}
    assert _declared(client.get("/fhir/metadata").json()) == (interactions, operations)


# ---------------------------------------------------------------------------------------------- formats


def test_format_negotiation_refuses_before_anything_is_written(client: Any, rt: Any, make_actor: Any) -> None:
    """XML via `_format`/Accept is a 406 and an R5 body a 415, before the request is committed."""
    prov = make_actor("provider")
    bundle = wiser("standard")
    for query, headers in (
        ("?_format=xml", {}),
        ("?_format=application/fhir+xml", {}),
        ("", {"Accept": "application/fhir+xml"}),
        ("", {"Accept": "application/fhir+json; fhirVersion=5.0"}),
    ):
        resp = client.post(SUBMIT + query, json=bundle, headers={**prov.headers, **headers})
        assert_outcome(resp, 406)
    r5 = {**prov.headers, "Content-Type": "application/fhir+json; fhirVersion=5.0"}
    assert _expressions(assert_outcome(client.post(SUBMIT, json=bundle, headers=r5), 415)) == ["Content-Type"]
    _nothing_written(rt)
    assert client.get("/fhir/metadata?_format=xml").status_code == 406
    assert client.get("/fhir/metadata", headers={"Accept": "application/fhir+xml"}).status_code == 406
    # What EHRs send for R4 JSON is accepted.
    r4 = {
        **prov.headers,
        "Content-Type": "application/fhir+json; fhirVersion=4.0",
        "Accept": "application/fhir+json; fhirVersion=4.0, application/json+fhir;q=0.9",
    }
    assert client.post(SUBMIT + "?_format=json", json=bundle, headers=r4).status_code == 200
    assert client.get("/fhir/metadata", headers={"Accept": "application/json"}).status_code == 200


# ---------------------------------------------------------------------------------------------- retries


def test_a_retry_in_another_envelope_replays_and_creates_no_second_request(
    client: Any, rt: Any, make_actor: Any
) -> None:
    """The same Bundle retried wrapped in Parameters, reformatted, or with a charset parameter is one request."""
    prov = make_actor("provider")
    bundle = wiser("standard", ident="RETRY-1")
    first = client.post(SUBMIT, content=json.dumps(bundle), headers={**prov.headers, **FHIR_JSON})
    assert first.status_code == 200 and "Idempotent-Replayed" not in first.headers
    wrapped = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": bundle}]}
    pretty = json.dumps(bundle, indent=2)
    for content, ctype in (
        (json.dumps(wrapped), "application/fhir+json"),
        (pretty, "application/fhir+json; charset=utf-8"),
        (json.dumps(bundle), "application/json"),
    ):
        again = client.post(SUBMIT, content=content, headers={**prov.headers, "Content-Type": ctype})
        assert again.status_code == 200 and again.headers.get("Idempotent-Replayed") == "true"
        assert again.json() == first.json()
    assert _count(rt, PaRequest) == 1 and _count(rt, FhirBundle) == 1


# ---------------------------------------------------------------------------------------------- deadlines


def test_inquire_reads_a_request_past_due_as_deemed_affirmed_before_any_sweep(
    client: Any, rt: Any, clock: Any, make_actor: Any
) -> None:
    """Past its due time and undecided, a pended request answers A1 (deemed) with its UTN at once."""
    prov = make_actor("provider")
    bundle = wiser("standard", ident="DUE-1", facts={"active_rehab_program": False})
    assert review_actions(client.post(SUBMIT, json=bundle, headers=prov.headers).json()) == [("A4", None)]
    with rt.sessions() as s:
        request = s.scalars(select(PaRequest)).one()
        due, utn = request.due_at, request.utn
    clock.set(due - dt.timedelta(seconds=1))
    before = client.post(INQUIRE, json=_inquiry(utn), headers=prov.headers).json()
    assert review_actions(before["parameter"][0]["resource"]) == [("A4", None)]
    clock.set(due + dt.timedelta(seconds=1))
    after = client.post(INQUIRE, json=_inquiry(utn), headers=prov.headers).json()
    [result] = [p["resource"] for p in after["parameter"]]
    assert review_actions(result) == [("A1", utn)]
    cr = claim_response(result)
    assert cr["preAuthRef"] == utn and dt.date.fromisoformat(cr["preAuthPeriod"]["start"]) <= due.date()
    basis = cr["item"][0]["adjudication"][0]["extension"]
    assert any(
        e.get("valueCoding", {}).get("code") == "deemed" for e in basis if e["url"] == EXT_AFFIRMATION_BASIS
    )
    # Another practice asking for the same UTN still learns nothing, deemed or not.
    other = make_actor("provider")
    assert "parameter" not in client.post(INQUIRE, json=_inquiry(utn), headers=other.headers).json()
    with rt.sessions() as s:
        assert s.scalars(select(PaRequest.status)).one() == "pended"  # a read materializes nothing


# ---------------------------------------------------------------------------------------------- size


def test_more_service_lines_than_a_request_holds_names_claim_item(
    client: Any, rt: Any, make_actor: Any
) -> None:
    """A 25-line episode is refused naming Claim.item (it named the whole Claim), nothing written."""
    prov = make_actor("provider")
    bundle = wiser("standard")
    claim = bundle["entry"][0]["resource"]
    line = claim["item"][0]
    claim["item"] = [{**json.loads(json.dumps(line)), "sequence": n} for n in range(1, 26)]
    body = assert_outcome(client.post(SUBMIT, json=bundle, headers=prov.headers), 400)
    assert _expressions(body) == ["Bundle.entry[0].resource.item"]
    assert "20" in body["issue"][0]["diagnostics"]
    _nothing_written(rt)


def test_a_bundle_over_the_body_limit_is_a_413_operation_outcome(
    client: Any, rt: Any, make_actor: Any
) -> None:
    """An EHR attaching a scanned chart inline past the size limit gets a FHIR 413 naming the body."""
    prov = make_actor("provider")
    bundle = wiser("standard")
    bundle["entry"][0]["resource"]["supportingInfo"][1]["valueString"] = "x" * (
        rt.settings.max_body_bytes + 1
    )
    resp = client.post(SUBMIT, json=bundle, headers=prov.headers)
    assert resp.status_code == 413
    _nothing_written(rt)
    assert_outcome(resp, 413)


def test_a_retry_after_the_due_time_answers_deemed_not_the_stale_pended_snapshot(
    client: Any, rt: Any, clock: Any, make_actor: Any
) -> None:
    """An EHR re-sending its `$submit` days later gets one request and its current state: deemed A1."""
    prov = make_actor("provider")
    bundle = wiser("standard", ident="LATE-RETRY", facts={"active_rehab_program": False})
    first = client.post(SUBMIT, json=bundle, headers=prov.headers)
    assert review_actions(first.json()) == [("A4", None)]
    with rt.sessions() as s:
        request = s.scalars(select(PaRequest)).one()
        due, utn = request.due_at, request.utn
    clock.set(due + dt.timedelta(hours=1))
    again = client.post(SUBMIT, json=bundle, headers=prov.headers)
    assert again.status_code == 200 and again.headers.get("Idempotent-Replayed") == "true"
    assert review_actions(again.json()) == [("A1", utn)]
    assert "Deemed" in claim_response(again.json())["disposition"]
    assert again.json()["identifier"] == bundle["identifier"]
    assert _count(rt, PaRequest) == 1 and _count(rt, FhirBundle) == 1
    # The same identifier with another body is still refused, whatever the time.
    changed = wiser("standard", ident="LATE-RETRY", facts={"active_rehab_program": True})
    assert_outcome(client.post(SUBMIT, json=changed, headers=prov.headers), 409)


def test_inquiry_by_patient_only_about_a_web_form_request_carries_the_decision(
    client: Any, make_actor: Any
) -> None:
    """A request filed on the web/REST, asked about over PAS naming no service, still answers A1 + UTN."""
    prov = make_actor("provider")
    submitted = rest_body("epidural_steroid_injection", state="TX")
    created = client.post(
        "/api/v1/requests", json=submitted, headers={**prov.headers, "Idempotency-Key": "w1"}
    )
    assert created.status_code == 201 and created.json()["status"] == "affirmed"
    utn = created.json()["utn"]
    inquiry = json.loads(
        json.dumps(_inquiry("UNUSED")).replace("1EG4TE5MK73", submitted["beneficiary"]["mbi"])
    )
    del inquiry["entry"][0]["resource"]["item"]  # by patient and provider only
    answer = client.post(INQUIRE, json=inquiry, headers=prov.headers)
    assert answer.status_code == 200
    [result] = [p["resource"] for p in answer.json()["parameter"]]
    assert validate_response_bundle(result, inquiry=True) == []
    assert review_actions(result) == [("A1", utn)] * len(claim_response(result)["item"])
    codes = [line["code"] for line in submitted["lines"]]
    assert [i["itemSequence"] for i in claim_response(result)["item"]] == list(range(1, len(codes) + 1))


def _update_by_reference(reference: str, *, ident: str, facts: dict[str, Any]) -> dict[str, Any]:
    """An update naming its prior Claim only by reference, the prior Claim left out (the IG example's way)."""
    bundle = wiser("standard", ident=ident, facts=facts)
    bundle["entry"][0]["resource"]["related"] = [
        {
            "claim": {"reference": reference},
            "relationship": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/ex-relatedclaimrelationship",
                        "code": "prior",
                    }
                ]
            },
        }
    ]
    return bundle


def test_an_update_naming_the_prior_claim_by_reference_finds_it(
    client: Any, rt: Any, make_actor: Any
) -> None:
    """`related.claim.reference = Claim/<id>` without identifier or UTN replaces the pended request (was 404)."""
    prov, other = make_actor("provider"), make_actor("provider")
    first = wiser("standard", ident="REF-0", facts={"conservative_care_weeks": 2})
    claim_id = first["entry"][0]["resource"]["id"]
    assert review_actions(client.post(SUBMIT, json=first, headers=prov.headers).json())[0][0] == "A4"
    # Another practice naming the same Claim id finds nothing of this one.
    foreign = _update_by_reference(f"Claim/{claim_id}", ident="REF-X", facts={"conservative_care_weeks": 8})
    assert_outcome(client.post(SUBMIT, json=foreign, headers=other.headers), 404)
    update = _update_by_reference(f"Claim/{claim_id}", ident="REF-1", facts={"conservative_care_weeks": 8})
    resp = client.post(SUBMIT, json=update, headers=prov.headers)
    assert resp.status_code == 200, resp.text
    assert review_actions(resp.json())[0][0] == "A1"
    with rt.sessions() as s:
        old, new = s.scalars(select(PaRequest).order_by(PaRequest.id)).all()
        assert old.status == "withdrawn" and new.predecessor_id == old.id


@pytest.mark.parametrize("path", ["/fhir/Claim", SUBMIT, "/fhir/Subscription"])
def test_every_fhir_refusal_is_an_operation_outcome_even_before_the_route_runs(
    client: Any, rt: Any, make_actor: Any, path: str
) -> None:
    """No key or a malformed body: the REST error shape never reaches a FHIR client."""
    anonymous = client.post(path, content=b"{}", headers=FHIR_JSON)
    assert [i["code"] for i in assert_outcome(anonymous, 401)["issue"]] == ["login"]
    prov = make_actor("provider")
    broken = client.post(path, content=b"{not json", headers={**prov.headers, **FHIR_JSON})
    assert_outcome(broken)
    _nothing_written(rt)
