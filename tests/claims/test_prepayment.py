"""Pre-payment review: documentation affirmed by the engine, clinician rules, and the sweep."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient

from tests.claims.helpers import AFTER_DOS, claim, line, post_claim
from tests.factories import body
from wiserpa.claims import service
from wiserpa.claims.models import PrepaymentReview
from wiserpa.policy.clock import FixedClock


def test_complete_documentation_is_affirmed_by_the_engine(
    client: TestClient, make_actor, clock: FixedClock
) -> None:
    clock.set(AFTER_DOS)
    provider = make_actor("provider")
    made = post_claim(client, provider.headers, claim([line("62323")])).json()
    rid = made["lines"][0]["prepayment_review"]["id"]
    docs = client.post(
        f"/api/v1/claims/reviews/{rid}/documents",
        json={"clinical_facts": body()["clinical_facts"]},
        headers=provider.headers,
    )
    assert docs.status_code == 200, docs.text
    assert docs.json()["status"] == "affirmed" and docs.json()["decision_kind"] == "criteria"
    line0 = client.get(f"/api/v1/claims/{made['id']}", headers=provider.headers).json()["lines"][0]
    assert line0["outcome"] == "payable" and line0["outcome_at_intake"] == "payable"
    # A later anesthesia claim for the same episode is paid on the review's outcome.
    later = post_claim(client, make_actor("provider").headers, claim([line("01938", units=15)])).json()
    assert later["lines"][0]["outcome"] == "payable"
    again = client.post(
        f"/api/v1/claims/reviews/{rid}/documents", json={"clinical_facts": {}}, headers=provider.headers
    )
    assert again.status_code == 409


def test_bad_facts_name_the_field_and_write_nothing(
    client: TestClient, make_actor, clock: FixedClock, rt
) -> None:
    clock.set(AFTER_DOS)
    provider = make_actor("provider")
    made = post_claim(client, provider.headers, claim([line("62323")])).json()
    rid = made["lines"][0]["prepayment_review"]["id"]
    r = client.post(
        f"/api/v1/claims/reviews/{rid}/documents",
        json={"clinical_facts": {"pain_duration_weeks": "lots"}},
        headers=provider.headers,
    )
    assert r.status_code == 422
    assert r.json()["error"]["fields"][0]["field"].startswith("clinical_facts")
    with rt.sessions() as s:
        assert s.get(PrepaymentReview, rid).status == "awaiting_documentation"


def test_only_a_clinician_non_affirms_citing_unmet_criteria(
    client: TestClient, make_actor, clock: FixedClock
) -> None:
    clock.set(AFTER_DOS)
    provider = make_actor("provider")
    made = post_claim(client, provider.headers, claim([line("62323")])).json()
    rid = made["lines"][0]["prepayment_review"]["id"]
    docs = client.post(
        f"/api/v1/claims/reviews/{rid}/documents",
        json={"clinical_facts": body(case="unmet")["clinical_facts"]},
        headers=provider.headers,
    ).json()
    assert docs["status"] == "under_review"
    unmet = [c["criterion_id"] for c in docs["criteria_results"] if c["result"] == "unmet"]
    staff = make_actor("reviewer", clinician=False)
    url = f"/api/v1/claims/reviews/{rid}/decision"
    assert (
        client.post(url, json={"decision": "non_affirm", "reasons": unmet}, headers=staff.headers).status_code
        == 403
    )
    clinician = make_actor("reviewer")
    no_reason = client.post(url, json={"decision": "non_affirm"}, headers=clinician.headers)
    assert no_reason.status_code == 422 and no_reason.json()["error"]["fields"][0]["field"] == "reasons"
    assert (
        client.post(
            url, json={"decision": "non_affirm", "reasons": ["made-up"]}, headers=clinician.headers
        ).status_code
        == 422
    )
    ok = client.post(url, json={"decision": "non_affirm", "reasons": unmet[:1]}, headers=clinician.headers)
    assert ok.status_code == 200 and ok.json()["status"] == "non_affirmed"
    assert ok.json()["reasons"][0]["citation"]
    assert (
        client.get(f"/api/v1/claims/{made['id']}", headers=provider.headers).json()["lines"][0]["outcome"]
        == "denied"
    )


def test_sweep_materializes_missed_clocks_once(client: TestClient, make_actor, clock: FixedClock, rt) -> None:
    clock.set(AFTER_DOS)
    provider = make_actor("provider")
    made = post_claim(client, provider.headers, claim([line("62323")])).json()
    rid = made["lines"][0]["prepayment_review"]["id"]
    client.post(
        f"/api/v1/claims/reviews/{rid}/documents",
        json={"clinical_facts": body(case="incomplete")["clinical_facts"]},
        headers=provider.headers,
    )
    with rt.sessions() as s:
        assert service.sweep_prepayment_reviews(s, rt, now=clock.now()) == 0
    clock.advance(dt.timedelta(days=4))
    with rt.sessions() as s:
        assert service.sweep_prepayment_reviews(s, rt, now=clock.now()) == 1
        s.commit()
        assert service.sweep_prepayment_reviews(s, rt, now=clock.now()) == 0
        review = s.get(PrepaymentReview, rid)
        assert review.status == "deemed_payable" and review.decided_at == review.decision_due_at
    line0 = client.get(f"/api/v1/claims/{made['id']}", headers=provider.headers).json()["lines"][0]
    assert line0["outcome"] == "payable"
