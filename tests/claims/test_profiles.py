"""wiser-2026 against asa-reform: deemed approval reaching anesthesia, and missed review clocks."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient

from tests.claims.helpers import AFTER_DOS, authorize, claim, line, post_claim
from tests.factories import body
from wiserpa.policy.clock import FixedClock
from wiserpa.requests.models import PaRequest


@pytest.fixture(params=["asa-reform", "wiser-2026"])
def profile_name(request: pytest.FixtureRequest) -> str:
    """Run every test here under both profiles."""
    return str(request.param)


def test_anesthesia_of_a_deemed_epidural(
    client: TestClient, make_actor, clock: FixedClock, rt, profile_name
) -> None:
    surgeon = make_actor("provider")
    pended = authorize(client, surgeon.headers, case="incomplete")
    assert pended["status"] == "pended"
    # Past the due time; no sweep runs in this test.
    clock.set(AFTER_DOS)
    anesthesiologist = make_actor("provider")
    r = post_claim(client, anesthesiologist.headers, claim([line("01938", units=30)]))
    assert r.status_code == 201, r.text
    got = r.json()["lines"][0]
    assert got["kind"] == "anesthesia" and got["utn"] is None
    if profile_name == "asa-reform":
        assert got["outcome"] == "payable", got
        assert got["authorization"]["utn"] == pended["utn"]
        assert "deemed_affirmed" in got["reason"]
    else:
        assert got["outcome"] == "suspended", got
        assert "still undecided" in got["reason"]
        assert got["prepayment_review"]["status"] == "awaiting_documentation"
    with rt.sessions() as s:
        assert s.get(PaRequest, pended["id"]).status == "pended"  # computed on read, nothing materialized


def test_prepayment_review_end_to_end_with_a_missed_clock(
    client: TestClient, make_actor, clock: FixedClock, profile_name
) -> None:
    clock.set(AFTER_DOS)
    provider, reviewer = make_actor("provider"), make_actor("reviewer")
    made = post_claim(client, provider.headers, claim([line("62323"), line("01938", units=20)])).json()
    proc, anesth = made["lines"]
    assert proc["outcome"] == anesth["outcome"] == "suspended"
    rid = proc["prepayment_review"]["id"]
    assert anesth["prepayment_review"]["id"] == rid
    review = client.get(f"/api/v1/claims/reviews/{rid}", headers=provider.headers).json()
    assert review["status"] == "awaiting_documentation"
    assert review["documentation_due_at"] == "2026-05-05T15:00:00Z"  # 45 calendar days
    assert review["documentation_request"] and all(
        c["citations"] for c in review["documentation_request"] if c["kind"] == "fact"
    )
    assert (
        client.get(f"/api/v1/claims/reviews/{rid}", headers=make_actor("provider").headers).status_code == 404
    )
    # Incomplete documentation: the engine pends it for a clinician; the 3-day clock starts at receipt.
    facts = body(case="incomplete")["clinical_facts"]
    docs = client.post(
        f"/api/v1/claims/reviews/{rid}/documents", json={"clinical_facts": facts}, headers=provider.headers
    )
    assert docs.status_code == 200, docs.text
    assert docs.json()["status"] == "under_review"
    assert docs.json()["decision_due_at"] == "2026-03-24T15:00:00Z"
    work = client.get("/api/v1/claims/reviews", headers=reviewer.headers).json()["items"]
    assert [w["id"] for w in work] == [rid]
    clock.set(dt.datetime(2026, 3, 24, 16, tzinfo=dt.UTC))  # clock missed
    seen = client.get(f"/api/v1/claims/{made['id']}", headers=provider.headers).json()
    gaps = [c["criterion_id"] for c in docs.json()["criteria_results"] if c["result"] != "met"]
    late = client.post(
        f"/api/v1/claims/reviews/{rid}/decision",
        json={"decision": "non_affirm", "reasons": gaps[:1]},
        headers=reviewer.headers,
    )
    assert late.status_code == 200, late.text
    final = client.get(f"/api/v1/claims/{made['id']}", headers=provider.headers).json()
    if profile_name == "asa-reform":
        assert [ln["outcome"] for ln in seen["lines"]] == ["payable", "payable"]
        assert late.json()["applied"] is False and late.json()["status"] == "deemed_payable"
        assert [ln["outcome"] for ln in final["lines"]] == ["payable", "payable"]
    else:
        assert [ln["outcome"] for ln in seen["lines"]] == ["suspended", "suspended"]
        assert late.json()["applied"] is True and late.json()["status"] == "non_affirmed"
        assert [ln["outcome"] for ln in final["lines"]] == ["denied", "denied"]
        assert final["lines"][0]["reasons"][0]["criterion_id"] == gaps[0]
        assert final["lines"][0]["participant"] == "Cohere Health"
