"""Claim lines matched to authorizations, on SQLite and PostgreSQL (profile asa-reform unless stated)."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient

from tests.claims.helpers import AFTER_DOS, authorize, claim, line, post_claim
from wiserpa.policy.clock import FixedClock


def test_claim_with_utn_is_payable(client: TestClient, make_actor, clock: FixedClock) -> None:
    provider = make_actor("provider")
    auth = authorize(client, provider.headers)
    assert auth["status"] == "affirmed"
    clock.set(AFTER_DOS)
    r = post_claim(client, provider.headers, claim([line("62323", utn=auth["utn"]), line("99213")]))
    assert r.status_code == 201, r.text
    wiser, other = r.json()["lines"]
    assert wiser["outcome"] == "payable" and wiser["matched_by"] == "utn"
    assert wiser["authorization"] == {"request_id": auth["id"], "utn": auth["utn"]}
    assert wiser["allowed_usd"] == 240.0 and wiser["participant"] == "Cohere Health"
    assert other["outcome"] == "not_subject" and other["role"] == "other"
    assert r.headers["Location"] == f"/api/v1/claims/{r.json()['id']}"


def test_claim_without_utn_matches_by_beneficiary_code_and_date(
    client: TestClient, make_actor, clock: FixedClock
) -> None:
    provider = make_actor("provider")
    auth = authorize(client, provider.headers)
    clock.set(AFTER_DOS)
    # A different practice bills it: the match does not depend on who asked for the authorization.
    biller = make_actor("provider")
    r = post_claim(client, biller.headers, claim([line("62323")]))
    assert r.status_code == 201, r.text
    got = r.json()["lines"][0]
    assert got["outcome"] == "payable" and got["matched_by"] == "beneficiary_code_date"
    assert got["authorization"]["utn"] == auth["utn"]
    # Another beneficiary's claim for the same code does not match it.
    r2 = post_claim(client, biller.headers, claim([line("62323")], seed=9))
    assert r2.json()["lines"][0]["outcome"] == "suspended"


def test_date_of_service_after_expiry_is_suspended(client: TestClient, make_actor, clock: FixedClock) -> None:
    provider = make_actor("provider")
    auth = authorize(client, provider.headers)
    assert auth["valid_until"] == "2026-06-30"
    clock.set(dt.datetime(2026, 7, 10, 15, tzinfo=dt.UTC))
    r = post_claim(client, provider.headers, claim([line("62323", dos=dt.date(2026, 7, 1), utn=auth["utn"])]))
    assert r.status_code == 201, r.text
    got = r.json()["lines"][0]
    assert got["outcome"] == "suspended"
    assert "expired on 2026-06-30" in got["reason"]
    assert got["prepayment_review"]["status"] == "awaiting_documentation"
    # The last covered day still pays.
    ok = post_claim(client, provider.headers, claim([line("62323", dos=dt.date(2026, 6, 30))]))
    assert ok.json()["lines"][0]["outcome"] == "payable"


def test_wrong_code_is_not_covered(client: TestClient, make_actor, clock: FixedClock) -> None:
    provider = make_actor("provider")
    auth = authorize(client, provider.headers)  # 62323
    clock.set(AFTER_DOS)
    r = post_claim(client, provider.headers, claim([line("64483"), line("62321", utn=auth["utn"])]))
    assert r.status_code == 201, r.text
    a, b = r.json()["lines"]
    assert a["outcome"] == "suspended" and "no authorization" in a["reason"]
    assert b["outcome"] == "suspended" and f"UTN {auth['utn']} does not cover 62321" in b["reason"]
    # Both lines are one service episode: one review.
    assert a["prepayment_review"]["id"] == b["prepayment_review"]["id"]


def test_non_affirmed_line_is_denied_with_reasons_and_citations(
    client: TestClient, make_actor, clock: FixedClock
) -> None:
    provider = make_actor("provider")
    reviewer = make_actor("reviewer")
    pended = authorize(client, provider.headers, case="unmet")
    gap = next(r for r in pended["criteria_results"] if r["result"] == "unmet")
    d = client.post(
        f"/api/v1/requests/{pended['id']}/decision",
        json={"decision": "non_affirm", "reasons": [gap["criterion_id"]]},
        headers=reviewer.headers,
    )
    assert d.status_code == 200, d.text
    clock.set(AFTER_DOS)
    anesthesia = make_actor("provider")
    r = post_claim(client, provider.headers, claim([line("62323")]))
    got = r.json()["lines"][0]
    assert got["outcome"] == "denied" and got["participant"] == "Cohere Health"
    assert got["reasons"][0]["criterion_id"] == gap["criterion_id"]
    assert got["reasons"][0]["citation"] == gap["citation"]
    assert got["reasons"][0]["reviewer_npi"] == reviewer.principal.npi
    assert got["reasons"][0]["utn"] == pended["utn"] and got["reasons"][0]["decided_at"]
    assert got["reasons"][0]["decision"] and len(got["reasons"]) == 1
    r2 = post_claim(client, anesthesia.headers, claim([line("01938", units=30)]))
    assert r2.json()["lines"][0]["outcome"] == "denied"
    # The associated line cites the same decision.
    assert r2.json()["lines"][0]["reasons"] == got["reasons"]


def test_facility_professional_and_anesthesia_from_three_providers(
    client: TestClient, make_actor, clock: FixedClock
) -> None:
    surgeon = make_actor("provider")
    auth = authorize(client, surgeon.headers)
    clock.set(AFTER_DOS)
    hospital, anesthesia = make_actor("provider"), make_actor("provider")
    facility = post_claim(
        client,
        hospital.headers,
        claim([line("62323", utn=auth["utn"], revenue_code="0361")], claim_type="institutional"),
    )
    professional = post_claim(client, surgeon.headers, claim([line("62323")]))
    anesth = post_claim(client, anesthesia.headers, claim([line("01938", units=25, npi="1234567893")]))
    for r in (facility, professional, anesth):
        assert r.status_code == 201, r.text
        got = r.json()["lines"][0]
        assert got["outcome"] == "payable", got
        assert got["authorization"]["utn"] == auth["utn"]
    assert facility.json()["lines"][0]["allowed_usd"] == 900.0
    assert anesth.json()["lines"][0]["kind"] == "anesthesia"
    assert anesth.json()["lines"][0]["matched_by"] == "beneficiary_date_catalog"


def test_three_providers_without_authorization_share_one_review(
    client: TestClient, make_actor, clock: FixedClock
) -> None:
    clock.set(AFTER_DOS)
    ids = set()
    for claim_type, code in (
        ("institutional", "62323"),
        ("professional", "62323"),
        ("professional", "01938"),
    ):
        biller = make_actor("provider")
        r = post_claim(client, biller.headers, claim([line(code)], claim_type=claim_type))
        got = r.json()["lines"][0]
        assert got["outcome"] == "suspended", got
        ids.add(got["prepayment_review"]["id"])
    assert len(ids) == 1


def test_claim_read_is_scoped(client: TestClient, make_actor, clock: FixedClock) -> None:
    clock.set(AFTER_DOS)
    owner, other = make_actor("provider"), make_actor("provider")
    made = post_claim(client, owner.headers, claim([line("62323")])).json()
    assert client.get(f"/api/v1/claims/{made['id']}", headers=owner.headers).status_code == 200
    assert client.get(f"/api/v1/claims/{made['id']}", headers=other.headers).status_code == 404
    oversight = make_actor("oversight")
    assert client.get(f"/api/v1/claims/{made['id']}", headers=oversight.headers).status_code == 200
