"""R4 Subscriptions backport for PAS: CRUD, validation, the outbox written with the decision, delivery."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.subscription import Subscription
from sqlalchemy import event, select

from tests.conftest import build_runtime
from tests.factories import body
from tests.fhir.apihelp import DAVINCI, assert_outcome, assert_valid_response, review_actions, wiser
from wiserpa.fhir import subscriptions
from wiserpa.fhir.models import FhirOutbox
from wiserpa.policy.examples import VIOLATIONS
from wiserpa.requests.models import PaRequest
from wiserpa.reviews import service as reviews

SUBS = DAVINCI / "pas" / "inferno-test-kit"
RECEIVER = "https://receiver.example/fhir/notify"


def good(endpoint: str = RECEIVER, filter_: str = "org-identifier=8189991234") -> dict[str, Any]:
    sub = json.loads((SUBS / "PAS_Subscription_example_v221_good.json").read_text())
    sub["channel"]["endpoint"] = endpoint
    sub["_criteria"]["extension"][0]["valueString"] = filter_
    return sub


@pytest.fixture
def allow_private(rt: Any) -> Any:
    rt.settings.webhook_allow_private = True  # test mode: no DNS lookups, local receivers allowed
    return rt


def test_create_read_search_delete(client: Any, allow_private: Any, make_actor: Any) -> None:
    prov = make_actor("provider")
    resp = client.post("/fhir/Subscription", json=good(), headers=prov.headers)
    assert resp.status_code == 201, resp.text
    created = resp.json()
    Subscription.model_validate(created)
    assert created["status"] == "active"
    secret = next(
        e["valueString"] for e in created["extension"] if e["url"] == subscriptions.EXT_SIGNING_SECRET
    )
    sid = created["id"]
    read = client.get(f"/fhir/Subscription/{sid}", headers=prov.headers).json()
    assert read["status"] == "active" and secret not in json.dumps(read)  # the secret is shown once
    assert client.get("/fhir/Subscription", headers=prov.headers).json()["total"] == 1
    status = client.get(f"/fhir/Subscription/{sid}/$status", headers=prov.headers)
    assert status.status_code == 200
    Bundle.model_validate(status.json())
    other = make_actor("provider")
    assert_outcome(client.get(f"/fhir/Subscription/{sid}", headers=other.headers), 404)
    assert_outcome(client.delete(f"/fhir/Subscription/{sid}", headers=other.headers), 404)
    assert client.delete(f"/fhir/Subscription/{sid}", headers=prov.headers).status_code == 204
    assert_outcome(client.get(f"/fhir/Subscription/{sid}", headers=prov.headers), 404)


def test_both_filter_spellings(client: Any, allow_private: Any, make_actor: Any) -> None:
    prov = make_actor("provider")
    ig = json.loads(
        (DAVINCI / "pas" / "ig-examples-2.2.1" / "Subscription-PASSubscriptionExample.json").read_text()
    )
    assert "orgIdentifier=" in ig["_criteria"]["extension"][0]["valueString"]
    assert client.post("/fhir/Subscription", json=ig, headers=prov.headers).status_code == 201
    assert client.post("/fhir/Subscription", json=good(), headers=prov.headers).status_code == 201


@pytest.mark.parametrize(
    "name",
    [
        "PAS_Subscription_example_v221_bad.json",
        "PAS_Subscription_example_bad_topic_and_criteria.json",
        "PAS_Subscription_example_id_only.json",
    ],
)
def test_inferno_bad_subscriptions_are_refused(
    client: Any, allow_private: Any, make_actor: Any, name: str
) -> None:
    prov = make_actor("provider")
    assert_outcome(
        client.post("/fhir/Subscription", content=(SUBS / name).read_bytes(), headers=prov.headers), 400
    )


def test_private_and_plain_http_endpoints_are_refused_outside_test_mode(client: Any, make_actor: Any) -> None:
    prov = make_actor("provider")
    for url in (
        "http://receiver.example/x",
        "https://127.0.0.1/x",
        "https://10.1.2.3/hook",
        "https://[::1]/x",
    ):
        body = assert_outcome(client.post("/fhir/Subscription", json=good(url), headers=prov.headers), 400)
        assert body["issue"][0]["expression"] == ["Subscription.channel.endpoint"]


def test_only_providers_manage_subscriptions(client: Any, allow_private: Any, make_actor: Any) -> None:
    reviewer = make_actor("reviewer", state="TX")
    assert_outcome(client.post("/fhir/Subscription", json=good(), headers=reviewer.headers), 403)


class Receiver:
    """A local notification receiver behind httpx.MockTransport; fails the first ``fail`` posts."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.received: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.received.append(request)
        if len(self.received) <= self.fail:
            return httpx.Response(503)
        return httpx.Response(200)

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self))


def _pended(client: Any, prov: Any) -> dict[str, Any]:
    bundle = wiser("standard", ident="SUB-1", facts={"active_rehab_program": False})
    resp = client.post("/fhir/Claim/$submit", json=bundle, headers=prov.headers)
    assert review_actions(resp.json())[0][0] == "A4"
    return bundle


def test_decision_enqueues_in_its_transaction_and_delivery_is_signed(
    client: Any, allow_private: Any, make_actor: Any
) -> None:
    rt = allow_private
    prov = make_actor("provider")
    created = client.post("/fhir/Subscription", json=good(), headers=prov.headers).json()
    secret = next(
        e["valueString"] for e in created["extension"] if e["url"] == subscriptions.EXT_SIGNING_SECRET
    )
    request_bundle = _pended(client, prov)
    with rt.sessions() as s:
        assert s.scalars(select(FhirOutbox)).all() == []  # the synchronous answer was the A4; nothing queued
        req = s.scalars(select(PaRequest)).one()
        gaps = [r["criterion_id"] for r in req.criteria_results if r["result"] != "met"]
    reviewer = make_actor("reviewer", state="TX")
    with rt.sessions() as s:
        reviews.decide(
            s, rt, principal=reviewer.principal, request_id=req.id, outcome="non_affirm", reasons=gaps
        )
        s.rollback()  # an uncommitted decision leaves no notification behind
    with rt.sessions() as s:
        assert s.scalars(select(FhirOutbox)).all() == []
        reviews.decide(s, rt, principal=reviewer.principal, request_id=req.id, outcome="affirm")
        s.commit()
    receiver = Receiver()
    result = subscriptions.deliver_due(rt, client=receiver.client())
    assert (result.delivered, result.failed) == (1, 0)
    [sent] = receiver.received
    body = sent.content
    assert sent.headers["content-type"] == "application/fhir+json"
    assert sent.headers[subscriptions.SIGNATURE_HEADER] == subscriptions.sign(
        secret, sent.headers[subscriptions.TIMESTAMP_HEADER], body
    )
    notification = json.loads(body)
    Bundle.model_validate(notification)
    assert notification["type"] == "history"
    status = notification["entry"][0]["resource"]
    assert status["resourceType"] == "Parameters"
    assert {p["name"] for p in status["parameter"]} >= {"subscription", "topic", "type", "notification-event"}
    response = notification["entry"][1]["resource"]
    assert_valid_response(response, request_bundle)
    assert review_actions(response)[0][0] == "A1"
    assert subscriptions.deliver_due(rt, client=receiver.client()).delivered == 0  # delivered once


def test_a_request_that_did_not_come_through_fhir_queues_nothing_and_reads_no_subscription(
    client: Any, allow_private: Any, make_actor: Any
) -> None:
    rt = allow_private
    prov = make_actor("provider")
    assert client.post("/fhir/Subscription", json=good(), headers=prov.headers).status_code == 201
    data = body("epidural_steroid_injection")
    fact, bad, _ = VIOLATIONS["epidural_steroid_injection"]
    data["clinical_facts"][fact] = bad
    view = client.post("/api/v1/requests", json=data, headers=prov.headers).json()
    assert view["status"] == "pended" and view["channel"] == "portal"
    reviewer = make_actor("reviewer", state="TX")
    seen: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    with rt.sessions() as s:
        event.listen(rt.engine, "before_cursor_execute", note)
        try:
            reviews.decide(s, rt, principal=reviewer.principal, request_id=view["id"], outcome="affirm")
            s.commit()
        finally:
            event.remove(rt.engine, "before_cursor_execute", note)
        # No PAS Bundle to answer, so no subscriber is told (as before) and no subscription is even read.
        assert s.scalars(select(FhirOutbox)).all() == []
    assert not any("fhir_subscriptions" in q for q in seen), seen


def test_retries_with_backoff_and_survive_a_restart(
    client: Any, allow_private: Any, make_actor: Any, db_url: str, clock: Any
) -> None:
    rt = allow_private
    prov = make_actor("provider")
    client.post("/fhir/Subscription", json=good(), headers=prov.headers)
    _pended(client, prov)
    reviewer = make_actor("reviewer", state="TX")
    with rt.sessions() as s:
        req = s.scalars(select(PaRequest)).one()
        reviews.decide(s, rt, principal=reviewer.principal, request_id=req.id, outcome="affirm")
        s.commit()
    receiver = Receiver(fail=2)
    assert subscriptions.deliver_due(rt, client=receiver.client()).retried == 1
    assert subscriptions.deliver_due(rt, client=receiver.client()).delivered == 0  # not due yet
    clock.advance(dt.timedelta(seconds=11))
    assert subscriptions.deliver_due(rt, client=receiver.client()).retried == 1
    with rt.sessions() as s:
        row = s.scalars(select(FhirOutbox)).one()
        # Exponential: 10 s after the first failure, 20 s after the second.
        assert (row.next_attempt_at - clock.now()).total_seconds() == pytest.approx(20)
    # A new process on the same database (a restart) finds the row and delivers it.
    clock.advance(dt.timedelta(seconds=21))
    restarted = build_runtime(db_url, clock)
    restarted.settings.webhook_allow_private = True
    assert subscriptions.deliver_due(restarted, client=receiver.client()).delivered == 1
    restarted.engine.dispose()
    assert len(receiver.received) == 3


def test_gives_up_after_max_attempts_and_refuses_private_targets_at_delivery(
    client: Any, allow_private: Any, make_actor: Any, clock: Any
) -> None:
    rt = allow_private
    prov = make_actor("provider")
    client.post("/fhir/Subscription", json=good(), headers=prov.headers)
    _pended(client, prov)
    reviewer = make_actor("reviewer", state="TX")
    with rt.sessions() as s:
        req = s.scalars(select(PaRequest)).one()
        reviews.decide(s, rt, principal=reviewer.principal, request_id=req.id, outcome="affirm")
        s.commit()
    receiver = Receiver(fail=100)
    for _ in range(subscriptions.MAX_ATTEMPTS):
        subscriptions.deliver_due(rt, client=receiver.client())
        clock.advance(dt.timedelta(hours=2))
    with rt.sessions() as s:
        row = s.scalars(select(FhirOutbox)).one()
        assert row.status == "failed" and row.attempts == subscriptions.MAX_ATTEMPTS
    assert len(receiver.received) == subscriptions.MAX_ATTEMPTS


def test_endpoint_problem_rules() -> None:
    assert subscriptions.endpoint_problem("https://127.0.0.1/x", allow_private=False)
    assert subscriptions.endpoint_problem("https://192.168.1.5/x", allow_private=False)
    assert subscriptions.endpoint_problem("ftp://x.example/", allow_private=False)
    assert subscriptions.endpoint_problem("http://127.0.0.1:8000/x", allow_private=True) is None
