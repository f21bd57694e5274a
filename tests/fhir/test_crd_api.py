"""CRD over CDS Hooks: discovery, coverage-information systemActions for every hook, prefetch and fetch."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.servicerequest import ServiceRequest

from tests.fhir.apihelp import DAVINCI
from wiserpa.fhir import crd
from wiserpa.fhir.dtr import questionnaire_url
from wiserpa.fhir.validation import check_invariant

HOOKS = DAVINCI / "crd"
CPT = "http://www.ama-assn.org/go/cpt"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"


def esi_order(code: str = "64483", *, dx: str = "M54.16", oid: str = "esi-1") -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest",
        "id": oid,
        "status": "draft",
        "intent": "order",
        "code": {"coding": [{"system": CPT, "code": code}]},
        "subject": {"reference": "Patient/123"},
        "occurrenceDateTime": "2026-03-20",
        "reasonCode": [{"coding": [{"system": ICD, "code": dx}]}],
        "requester": {"reference": "Practitioner/doc"},
    }


def patient(state: str = "TX") -> dict[str, Any]:
    return {"resourceType": "Patient", "id": "123", "address": [{"use": "home", "state": state}]}


def order_sign(
    orders: list[dict[str, Any]], *, state: str | None = "TX", prefetch: bool = True
) -> dict[str, Any]:
    body = json.loads((HOOKS / "hooks-2.2.1" / "CRDServiceRequest.json").read_text())
    body["context"]["draftOrders"] = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": o} for o in orders],
    }
    body["prefetch"] = {}
    if prefetch and state:
        body["prefetch"]["patient"] = patient(state)
        body["prefetch"]["coverage"] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [
                {
                    "resource": {
                        "resourceType": "Coverage",
                        "id": "cov1",
                        "status": "active",
                        "beneficiary": {"reference": "Patient/123"},
                        "payor": [{"display": "Medicare"}],
                    }
                }
            ],
        }
        body["prefetch"]["practitioners"] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [
                {
                    "resource": {
                        "resourceType": "Practitioner",
                        "id": "doc",
                        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1042420012"}],
                    }
                }
            ],
        }
    return body


def info(action: dict[str, Any]) -> dict[str, Any]:
    ext = next(e for e in action["resource"]["extension"] if e["url"] == crd.EXT_COVERAGE_INFO)
    out: dict[str, Any] = {}
    for sub in ext["extension"]:
        value = next(v for k, v in sub.items() if k.startswith("value") or k == "extension")
        out.setdefault(sub["url"], []).append(value)
    return out


def test_discovery_lists_the_hooks(client: Any) -> None:
    services = client.get("/cds-services").json()["services"]
    assert {s["hook"] for s in services} == {
        "order-sign",
        "order-select",
        "order-dispatch",
        "appointment-book",
        "encounter-start",
    }
    assert all("patient" in s["prefetch"] and "coverage" in s["prefetch"] for s in services)


def test_wiser_service_in_tx_needs_auth_with_policy_and_questionnaire(client: Any, make_actor: Any) -> None:
    prov = make_actor("provider")
    order = esi_order()
    started = time.perf_counter()
    resp = client.post("/cds-services/order-sign", json=order_sign([order]), headers=prov.headers)
    assert time.perf_counter() - started < 5  # CRD found-2
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["cards"] == []
    [action] = body["systemActions"]
    assert action["type"] == "update"
    updated = action["resource"]
    ServiceRequest.model_validate(updated)
    # resp-37: nothing but the extension changed.
    assert {k: v for k, v in updated.items() if k != "extension"} == order
    ci = info(action)
    assert (
        ci["covered"] == ["covered"]
        and ci["pa-needed"] == ["auth-needed"]
        and ci["doc-needed"] == ["clinical"]
    )
    assert ci["questionnaire"] == [questionnaire_url("L36920")]
    assert ci["coverage"] == [{"reference": "Coverage/cov1"}]
    details = [{p["url"]: p for p in d} for d in ci["detail"]]
    assert any(
        d["code"]["valueCodeableConcept"]["coding"][0]["code"] == "policy-link"
        and "36920" in d["value"]["valueUrl"]
        for d in details
    )
    ext = next(e for e in updated["extension"] if e["url"] == crd.EXT_COVERAGE_INFO)
    for q in (  # CRD crd-ci-q2, q3, q1
        "extension.where(url = 'covered' and value != 'not-covered') implies "
        "extension.where(url = 'pa-needed').exists()",
        "extension.where(url = 'info-needed').exists() implies extension.where((url = 'covered' or "
        "url = 'pa-needed' or url = 'doc-needed') and value = 'conditional').count() >= 1",
        "extension.where(url='questionnaire' or url='response').exists() implies "
        "(extension.where(url = 'doc-needed').exists() and "
        "extension.where(url = 'doc-needed').all(value != 'no-doc'))",
    ):
        assert check_invariant({"resourceType": "Extension", **ext}, q)


def test_out_of_scope_is_no_auth_with_the_reason(client: Any, make_actor: Any) -> None:
    prov = make_actor("provider")
    resp = client.post(
        "/cds-services/order-sign",
        json=order_sign([esi_order(), esi_order("99213", oid="visit")], state="CA"),
        headers=prov.headers,
    )
    for action in resp.json()["systemActions"]:
        ci = info(action)
        assert ci["pa-needed"] == ["no-auth"]
        assert "instructions" in json.dumps(ci["detail"])


def test_time_sensitive_diagnosis_carries_the_exemption_reason(client: Any, make_actor: Any) -> None:
    prov = make_actor("provider")
    resp = client.post(
        "/cds-services/order-sign", json=order_sign([esi_order(dx="G89.11")]), headers=prov.headers
    )
    ci = info(resp.json()["systemActions"][0])
    assert ci["reason"][0]["coding"][0]["code"] == "time-sensitive"


@pytest.mark.parametrize(
    "name",
    [
        "hooks-2.2.1/CRDServiceRequest.json",
        "hooks-2.2.1/CRDServiceRequest2.json",
        "hooks-2.2.1/CRDServiceRequest3.json",
        "hooks-2.2.1/CRDServiceRequest4.json",
        "inferno-test-kit/hook-fixtures/appointment_book_hook_request.json",
        "inferno-test-kit/hook-fixtures/encounter_start_hook_request.json",
        "inferno-test-kit/hook-fixtures/order_dispatch_hook_request.json",
        "inferno-test-kit/hook-fixtures/order_select_hook_request.json",
        "inferno-test-kit/hook-fixtures/order_sign_hook_request.json",
    ],
)
def test_published_hook_requests_are_answered(client: Any, make_actor: Any, name: str) -> None:
    """The IG's and Inferno's hook requests; the EHR server they name is stubbed (404 for everything)."""
    prov = make_actor("provider")
    client.app.state.fhir_http_transport = httpx.MockTransport(lambda r: httpx.Response(404))
    body = json.loads((HOOKS / name).read_text())
    resp = client.post(f"/cds-services/{body['hook']}", json=body, headers=prov.headers)
    assert resp.status_code in (200, 412), resp.text
    if resp.status_code == 200:
        out = resp.json()
        for action in out["systemActions"]:
            ci = info(action)
            assert ci["covered"] and ci["date"] and ci["coverage-assertion-id"]
        if body["hook"] in ("order-sign", "appointment-book") and body["context"].get(
            "draftOrders", body["context"].get("appointments")
        ):
            assert out["systemActions"]  # primary hooks always get coverage information (hook-16)


def test_fetches_missing_prefetch_from_the_hooks_fhir_server_only(
    client: Any, rt: Any, make_actor: Any
) -> None:
    rt.settings.webhook_allow_private = True
    prov = make_actor("provider")
    seen: list[httpx.Request] = []

    def ehr(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/Patient/123"):
            return httpx.Response(200, json=patient("TX"))
        if "/Coverage" in request.url.path:
            return httpx.Response(
                200,
                json={
                    "resourceType": "Bundle",
                    "type": "searchset",
                    "entry": [{"resource": {"resourceType": "Coverage", "id": "c9"}}],
                },
            )
        return httpx.Response(404)

    client.app.state.fhir_http_transport = httpx.MockTransport(ehr)
    body = order_sign([esi_order()], prefetch=False)
    body["fhirServer"] = "http://ehr.local/fhir"
    body["fhirAuthorization"] = {
        "access_token": "tok-123",
        "token_type": "Bearer",
        "scope": "patient/*.read",
        "subject": "crd",
    }
    resp = client.post("/cds-services/order-sign", json=body, headers=prov.headers)
    ci = info(resp.json()["systemActions"][0])
    assert ci["pa-needed"] == ["auth-needed"] and ci["coverage"] == [{"reference": "Coverage/c9"}]
    assert seen and all(str(r.url).startswith("http://ehr.local/fhir/") for r in seen)
    assert all(r.headers["authorization"] == "Bearer tok-123" for r in seen)


def test_a_slow_ehr_server_does_not_break_the_hook(client: Any, rt: Any, make_actor: Any) -> None:
    rt.settings.webhook_allow_private = True
    prov = make_actor("provider")

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    client.app.state.fhir_http_transport = httpx.MockTransport(slow)
    body = order_sign([esi_order()], prefetch=False)
    body["fhirServer"] = "http://ehr.local/fhir"
    resp = client.post("/cds-services/order-sign", json=body, headers=prov.headers)
    assert resp.status_code == 200
    ci = info(resp.json()["systemActions"][0])
    # The caller's organization is in TX, so the answer still stands.
    assert ci["pa-needed"] == ["auth-needed"]


def test_private_fhir_server_is_not_called_outside_test_mode(client: Any, make_actor: Any) -> None:
    prov = make_actor("provider")
    called: list[Any] = []
    client.app.state.fhir_http_transport = httpx.MockTransport(
        lambda r: called.append(r) or httpx.Response(404)
    )
    body = order_sign([esi_order()], prefetch=False)
    body["fhirServer"] = "https://127.0.0.1/fhir"
    assert client.post("/cds-services/order-sign", json=body, headers=prov.headers).status_code == 200
    assert called == []


def test_bad_hook_calls(client: Any, make_actor: Any) -> None:
    prov = make_actor("provider")
    assert (
        client.post(
            "/cds-services/patient-view",
            json={"hook": "patient-view", "hookInstance": "x", "context": {}},
            headers=prov.headers,
        ).status_code
        == 404
    )
    assert (
        client.post(
            "/cds-services/order-sign",
            json={"hook": "order-select", "hookInstance": "x", "context": {}},
            headers=prov.headers,
        ).status_code
        == 400
    )
    assert client.post("/cds-services/order-sign", content=b"nope", headers=prov.headers).status_code == 400
    assert client.post("/cds-services/order-sign", json=order_sign([esi_order()])).status_code == 401


def test_unchanged_coverage_information_is_not_sent_again_and_supporting_hooks_ask_no_documents(
    client: Any, make_actor: Any
) -> None:
    prov = make_actor("provider")
    first = client.post(
        "/cds-services/order-sign", json=order_sign([esi_order()]), headers=prov.headers
    ).json()
    annotated = first["systemActions"][0]["resource"]
    again = client.post("/cds-services/order-sign", json=order_sign([annotated]), headers=prov.headers).json()
    assert again["systemActions"] == []  # resp-35
    select = order_sign([esi_order()])
    select["hook"] = "order-select"
    select["context"]["selections"] = ["ServiceRequest/esi-1"]
    ci = info(
        client.post("/cds-services/order-select", json=select, headers=prov.headers).json()["systemActions"][
            0
        ]
    )
    assert (
        ci["pa-needed"] == ["auth-needed"] and "doc-needed" not in ci and "questionnaire" not in ci
    )  # hook-19
