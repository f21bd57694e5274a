"""End to end over real HTTP: CRD → DTR → PAS with the answers (via the fhirclient library) → A1 with a UTN;
pended and deemed decisions notified by subscription to a local receiver."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from fhirclient import client as fhirclient_client
from sqlalchemy import select

from tests.fhir.apihelp import DAVINCI, assert_valid_response, claim_response, load, review_actions, wiser
from tests.fhir.test_crd_api import esi_order, info, order_sign
from wiserpa.app import create_app
from wiserpa.deadlines.service import sweep
from wiserpa.fhir import subscriptions
from wiserpa.fhir.dtr import CS_FACT_VALUE
from wiserpa.fhir.pas import EXT_AFFIRMATION_BASIS, parse_pas_bundle
from wiserpa.requests.models import PaRequest
from wiserpa.reviews import service as reviews


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(rt: Any) -> Iterator[str]:
    """The app on a real port (uvicorn in a thread), for a third-party client library."""
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(rt), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(200):
        if srv.started:
            break
        threading.Event().wait(0.02)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(5)


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """A local notification receiver (a plain HTTP server on loopback)."""
    received: list[tuple[dict[str, str], bytes]] = []
    handler = type("Receiver", (_Receiver,), {"received": received})
    httpd = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/notify", received
    httpd.shutdown()


def _answers(questionnaire: dict[str, Any], facts: dict[str, Any]) -> list[dict[str, Any]]:
    """A DTR QuestionnaireResponse's items, typed as the Questionnaire asks."""
    out = []
    for item in questionnaire["item"]:
        if item["linkId"] not in facts:
            continue
        value = facts[item["linkId"]]
        answer = {
            "boolean": {"valueBoolean": value},
            "decimal": {"valueDecimal": value},
            "integer": {"valueInteger": value},
            "choice": {"valueCoding": {"system": CS_FACT_VALUE, "code": value}},
        }[item["type"]]
        out.append({"linkId": item["linkId"], "answer": [answer]})
    return out


def test_crd_dtr_pas_with_fhirclient(server: str, rt: Any, make_actor: Any) -> None:
    prov = make_actor("provider", state="TX")
    smart = fhirclient_client.FHIRClient(settings={"app_id": "wiserpa-e2e", "api_base": f"{server}/fhir/"})
    smart.server.session.headers["Authorization"] = f"Bearer {prov.key}"
    # 1. CRD: does 64483 need PA here? (CDS Hooks is plain JSON; the same session posts it.)
    hook = smart.server.session.post(f"{server}/cds-services/order-sign", json=order_sign([esi_order()]))
    ci = info(hook.json()["systemActions"][0])
    assert ci["pa-needed"] == ["auth-needed"]
    [canonical] = ci["questionnaire"]
    # 2. DTR: fetch the questionnaire CRD pointed at.
    package = smart.server.post_json(
        "Questionnaire/$questionnaire-package",
        {
            "resourceType": "Parameters",
            "parameter": [
                {
                    "name": "coverage",
                    "resource": {
                        "resourceType": "Coverage",
                        "status": "active",
                        "beneficiary": {"reference": "Patient/p"},
                        "payor": [{"display": "Medicare"}],
                    },
                },
                {"name": "questionnaire", "valueCanonical": canonical},
            ],
        },
    ).json()
    questionnaire = package["parameter"][0]["resource"]["entry"][0]["resource"]
    # 3. PAS: the request Bundle carries the clinician's answers as a QuestionnaireResponse.
    bundle = wiser("standard", ident="E2E-1")
    facts = parse_pas_bundle(wiser("standard")).require_submit().clinical_facts
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "QuestionnaireResponse":
            entry["resource"]["questionnaire"] = canonical
            entry["resource"]["item"] = _answers(questionnaire, facts)
    response = smart.server.post_json("Claim/$submit", bundle).json()
    assert_valid_response(response, bundle)
    [(code, utn)] = review_actions(response)
    assert code == "A1" and utn
    # The library's own R4 model reads our answer too.
    from fhirclient.models.bundle import Bundle as ClientBundle

    parsed = ClientBundle(response)
    assert parsed.entry[0].resource.resource_type == "ClaimResponse"
    assert parsed.entry[0].resource.preAuthRef == utn
    meta = smart.server.request_json("metadata")
    assert meta["resourceType"] == "CapabilityStatement"


def _subscribe(client: Any, prov: Any, endpoint: str) -> str:
    sub = load(DAVINCI / "pas" / "ig-examples-2.2.1" / "Subscription-PASSubscriptionExample.json")
    sub["channel"]["endpoint"] = endpoint
    created = client.post("/fhir/Subscription", json=sub, headers=prov.headers).json()
    return next(
        e["valueString"] for e in created["extension"] if e["url"] == subscriptions.EXT_SIGNING_SECRET
    )


def _notified_response(received: list[tuple[dict[str, str], bytes]], secret: str) -> dict[str, Any]:
    [(headers, body)] = received
    assert headers[subscriptions.SIGNATURE_HEADER] == subscriptions.sign(
        secret, headers[subscriptions.TIMESTAMP_HEADER], body
    )
    notification = json.loads(body)
    return notification["entry"][1]["resource"]


def test_pended_then_reviewer_affirms_is_notified(
    client: Any, rt: Any, make_actor: Any, receiver: Any
) -> None:
    rt.settings.webhook_allow_private = True
    endpoint, received = receiver
    prov = make_actor("provider")
    secret = _subscribe(client, prov, endpoint)
    bundle = wiser("standard", ident="E2E-PEND", facts={"active_rehab_program": False})
    assert (
        review_actions(client.post("/fhir/Claim/$submit", json=bundle, headers=prov.headers).json())[0][0]
        == "A4"
    )
    reviewer = make_actor("reviewer", state="TX")
    with rt.sessions() as s:
        req = s.scalars(select(PaRequest)).one()
        reviews.decide(s, rt, principal=reviewer.principal, request_id=req.id, outcome="affirm")
        s.commit()
    assert subscriptions.deliver_due(rt).delivered == 1
    response = _notified_response(received, secret)
    assert_valid_response(response, bundle)
    assert review_actions(response) == [("A1", req.utn)]


def test_deemed_approval_is_notified(
    client: Any, rt: Any, clock: Any, make_actor: Any, receiver: Any
) -> None:
    rt.settings.webhook_allow_private = True
    endpoint, received = receiver
    prov = make_actor("provider")
    secret = _subscribe(client, prov, endpoint)
    bundle = wiser("standard", ident="E2E-DEEM", facts={"active_rehab_program": False})
    client.post("/fhir/Claim/$submit", json=bundle, headers=prov.headers)
    with rt.sessions() as s:
        due = s.scalars(select(PaRequest.due_at)).one()
    clock.set(due + dt.timedelta(minutes=1))
    with rt.sessions() as s:
        assert sweep(s, rt).deemed == 1
    result = subscriptions.deliver_due(rt)
    assert result.delivered == 1
    response = _notified_response(received, secret)
    assert_valid_response(response, bundle)
    assert review_actions(response)[0][0] == "A1"
    adj = claim_response(response)["item"][0]["adjudication"][0]
    assert any(
        e.get("valueCoding", {}).get("code") == "deemed"
        for e in adj["extension"]
        if e["url"] == EXT_AFFIRMATION_BASIS
    )
