"""Anesthesia claims at the edges: exclusions, shared anesthesia codes, late and resubmitted authorizations."""

from __future__ import annotations

import datetime as dt
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.claims.helpers import AFTER_DOS, authorize, claim, count, fhir_claim, line, post_claim
from tests.factories import body
from wiserpa.claims import service as claims
from wiserpa.claims.models import Claim, ClaimLine, PrepaymentReview
from wiserpa.claims.schemas import SubmitClaimIn
from wiserpa.policy.clock import FixedClock
from wiserpa.requests.models import PaRequest
from wiserpa.runtime import Runtime


def _non_affirm(client: TestClient, request: dict[str, Any], reviewer: Any) -> None:
    gap = next(r for r in request["criteria_results"] if r["result"] == "unmet")
    d = client.post(
        f"/api/v1/requests/{request['id']}/decision",
        json={"decision": "non_affirm", "reasons": [gap["criterion_id"]]},
        headers=reviewer.headers,
    )
    assert d.status_code == 200, d.text


def test_anesthesia_of_an_excluded_service_is_not_subject_and_opens_no_review(
    client: TestClient, make_actor: Any, clock: FixedClock, rt: Runtime
) -> None:
    """Medicare Advantage, emergency and inpatient anesthesia is outside WISeR like its procedure."""
    auth = authorize(client, make_actor("provider").headers, seed=5)
    clock.set(AFTER_DOS)
    anesthesia = make_actor("provider")
    advantage = {**claim([line("62323"), line("01938", units=30)]), "coverage": "medicare_advantage"}
    cases = {
        "Medicare Advantage": advantage,
        "Emergency": claim([line("01938", units=30, pos="23")], seed=2),
        "Modifier ET": claim([line("01938", units=30, modifiers=["QK", "ET"])], seed=3),
        "Inpatient": claim([line("01938", units=30, pos="21")], seed=4),
    }
    for why, data in cases.items():
        r = post_claim(client, anesthesia.headers, data)
        assert r.status_code == 201, r.text
        got = r.json()["lines"][-1]
        assert got["outcome"] == "not_subject", (why, got)
        assert why in got["reason"] and got["prepayment_review"] is None
    assert count(rt, PrepaymentReview) == 0
    # The same anesthesia in an outpatient setting, with the usual anesthesia modifiers, follows the procedure.
    for mods in (["AA"], ["QK", "QS"], ["QX"], ["QZ"]):
        r = post_claim(client, anesthesia.headers, claim([line("01938", units=47, modifiers=mods)], seed=5))
        got = r.json()["lines"][0]
        assert got["outcome"] == "payable" and got["authorization"]["utn"] == auth["utn"], (mods, got)
        assert got["modifiers"] == mods and got["allowed_usd"] == 122.0  # priced per case, not per minute


def test_a_shared_anesthesia_code_joins_its_procedures_episode_whichever_claim_comes_first(
    client: TestClient, make_actor: Any, clock: FixedClock
) -> None:
    """01991 is listed by trigeminal neurolysis and epidural injections: the epidural's review takes it."""
    clock.set(AFTER_DOS)
    surgeon, anesthesia = make_actor("provider"), make_actor("provider")
    # Anesthesia billed first, then the epidural: one review, for epidural steroid injection.
    first = post_claim(client, anesthesia.headers, claim([line("01991", units=20)])).json()["lines"][0]
    proc = post_claim(client, surgeon.headers, claim([line("62323")])).json()["lines"][0]
    assert first["outcome"] == proc["outcome"] == "suspended"
    rid = proc["prepayment_review"]["id"]
    assert first["prepayment_review"]["id"] == rid
    review = client.get(f"/api/v1/claims/reviews/{rid}", headers=surgeon.headers).json()
    assert review["category"] == "epidural_steroid_injection" and review["policy_id"] == "L36920"
    # The procedure first (another beneficiary), and the procedure on the anesthesia claim itself.
    for seed, bills in (
        (2, [[line("62323")], [line("01991", units=20)]]),
        (3, [[line("62323"), line("01991")]]),
    ):
        lines = [
            ln
            for bill in bills
            for ln in post_claim(client, surgeon.headers, claim(bill, seed=seed)).json()["lines"]
        ]
        assert {ln["category"] for ln in lines} == {"epidural_steroid_injection"}
        assert len({ln["prepayment_review"]["id"] for ln in lines}) == 1
    # Documentation meeting the epidural criteria pays the anesthesia claim too.
    docs = client.post(
        f"/api/v1/claims/reviews/{rid}/documents",
        json={"clinical_facts": body()["clinical_facts"]},
        headers=surgeon.headers,
    )
    assert docs.status_code == 200 and docs.json()["status"] == "affirmed", docs.text
    # The anesthesiologist sees the review its line is under.
    assert client.get(f"/api/v1/claims/reviews/{rid}", headers=anesthesia.headers).status_code == 200
    mine = post_claim(client, anesthesia.headers, claim([line("01992", units=20)])).json()["lines"][0]
    assert mine["outcome"] == "payable" and mine["prepayment_review"]["id"] == rid


def test_a_line_waiting_for_its_authorization_is_paid_once_it_is_affirmed_or_deemed(
    client: TestClient, make_actor: Any, clock: FixedClock, rt: Runtime
) -> None:
    """R3 on claims read later: the deemed or late-affirmed procedure pays its anesthesia, no sweep run."""
    surgeon, anesthesia, reviewer = make_actor("provider"), make_actor("provider"), make_actor("reviewer")
    oversight = make_actor("oversight")
    clock.set(dt.datetime(2026, 3, 18, 15, tzinfo=dt.UTC))
    deemed = authorize(client, surgeon.headers, case="incomplete")
    decided = authorize(client, surgeon.headers, case="incomplete", seed=2)
    assert deemed["status"] == decided["status"] == "pended" and deemed["due_at"] == "2026-03-21T15:00:00Z"
    clock.set(dt.datetime(2026, 3, 20, 20, tzinfo=dt.UTC))  # the anesthesia bills before anything is decided
    waiting = [
        post_claim(client, anesthesia.headers, claim([line("01938", units=30)], seed=seed)).json()
        for seed in (1, 2)
    ]
    assert [c["lines"][0]["outcome"] for c in waiting] == ["suspended", "suspended"]
    assert "still undecided" in waiting[0]["lines"][0]["reason"]
    # The clinician affirms one in time; the other passes its due time with nobody deciding.
    ok = client.post(
        f"/api/v1/requests/{decided['id']}/decision", json={"decision": "affirm"}, headers=reviewer.headers
    )
    assert ok.status_code == 200, ok.text
    clock.set(dt.datetime(2026, 3, 21, 16, tzinfo=dt.UTC))
    for made in waiting:
        got = client.get(f"/api/v1/claims/{made['id']}", headers=anesthesia.headers).json()
        assert got["lines"][0]["outcome"] == "payable", got["lines"][0]
        assert got["lines"][0]["outcome_at_intake"] == "suspended"
        assert got["lines"][0]["reason"].endswith("came into force after intake")
        assert got["totals"]["payable_usd"] == 122.0 and got["totals"]["suspended_usd"] == 0
    with rt.sessions() as s:
        stored = s.get(PaRequest, deemed["id"])
        assert stored is not None and stored.status == "pended"  # read as deemed; nothing materialized
    # The figures agree with the claims.
    stats = client.get("/api/v1/claims/stats", headers=oversight.headers).json()["items"][0]
    assert stats["payable"] == 2 and stats["suspended"] == 0 and stats["paid_usd"] == 244.0
    # The fallback review, never documented, is non-affirmed once its documentation is overdue: the lines keep
    # the authorization's answer.
    rid = waiting[0]["lines"][0]["prepayment_review"]["id"]
    clock.set(dt.datetime(2026, 5, 6, 16, tzinfo=dt.UTC))
    late = client.post(
        f"/api/v1/claims/reviews/{rid}/decision",
        json={"decision": "non_affirm", "reasons": [deemed["criteria_results"][0]["criterion_id"]]},
        headers=reviewer.headers,
    )
    assert late.status_code == 200 and late.json()["status"] == "non_affirmed", late.text
    got = client.get(f"/api/v1/claims/{waiting[0]['id']}", headers=anesthesia.headers).json()["lines"][0]
    assert got["outcome"] == "payable" and got["appeal"] is None
    stats = client.get("/api/v1/claims/stats", headers=oversight.headers).json()["items"][0]
    assert stats["denials"] == 0 and stats["averted_usd"] == 0


def test_a_pending_resubmission_keeps_the_superseded_denial_off_the_anesthesia_claim(
    client: TestClient, make_actor: Any, clock: FixedClock
) -> None:
    """After a resubmission the first non-affirmation no longer decides claims; the resubmission does."""
    surgeon, anesthesia, reviewer = make_actor("provider"), make_actor("provider"), make_actor("reviewer")
    first = authorize(client, surgeon.headers, case="unmet")
    _non_affirm(client, first, reviewer)
    clock.set(dt.datetime(2026, 3, 19, 15, tzinfo=dt.UTC))
    again = client.post(
        f"/api/v1/requests/{first['id']}/resubmit", json={"clinical_facts": {}}, headers=surgeon.headers
    )
    assert again.status_code == 201 and again.json()["status"] == "pended", again.text
    assert again.json()["due_at"] == "2026-03-22T15:00:00Z"
    clock.set(AFTER_DOS)
    # Both claims still carry the first UTN.
    anesth = post_claim(client, anesthesia.headers, claim([line("01938", units=30, utn=first["utn"])])).json()
    proc = post_claim(client, surgeon.headers, claim([line("62323", utn=first["utn"])])).json()
    for made in (anesth, proc):
        got = made["lines"][0]
        assert got["outcome"] == "suspended" and "still undecided" in got["reason"], got
        assert got["authorization"]["utn"] == again.json()["utn"]
    clock.set(dt.datetime(2026, 3, 22, 16, tzinfo=dt.UTC))  # the resubmission is deemed affirmed
    for made in (anesth, proc):
        got = client.get(f"/api/v1/claims/{made['id']}", headers=make_actor("oversight").headers).json()
        assert got["lines"][0]["outcome"] == "payable", got["lines"][0]


def test_a_non_affirmation_window_ends_on_the_states_calendar_day(
    client: TestClient, make_actor: Any, clock: FixedClock
) -> None:
    """A denial decided at 9 pm in Texas (the next day in UTC) reaches 120 Texas days, not one more."""
    surgeon, reviewer = make_actor("provider"), make_actor("reviewer")
    pended = authorize(client, surgeon.headers, case="unmet")
    clock.set(dt.datetime(2026, 3, 3, 3, tzinfo=dt.UTC))  # 2026-03-02 21:00 in Texas
    _non_affirm(client, pended, reviewer)
    clock.set(dt.datetime(2026, 7, 3, 15, tzinfo=dt.UTC))
    last = post_claim(client, surgeon.headers, claim([line("01938", dos=dt.date(2026, 6, 30))])).json()
    after = post_claim(client, surgeon.headers, claim([line("01938", dos=dt.date(2026, 7, 1))])).json()
    assert last["lines"][0]["outcome"] == "denied"
    assert after["lines"][0]["outcome"] == "suspended"
    assert "no authorization" in after["lines"][0]["reason"]


def test_concurrent_claims_of_one_episode_share_one_review(
    make_actor: Any, clock: FixedClock, rt: Runtime
) -> None:
    """The facility and the anesthesia claim of one procedure, taken in at the same moment: one review."""
    if rt.engine.dialect.name != "postgresql":
        pytest.skip("SQLite takes one writer at a time; the race needs PostgreSQL's concurrent transactions")
    clock.set(AFTER_DOS)
    hospital, anesthesia = make_actor("provider"), make_actor("provider")
    bodies = [
        (hospital, claim([line("62323", revenue_code="0361")], claim_type="institutional")),
        (anesthesia, claim([line("01938", units=30)])),
    ]
    first_done, release = threading.Event(), threading.Event()

    def submit(k: int) -> int:
        actor, data = bodies[k]
        with rt.sessions() as s:
            made = claims.submit_claim(
                s, rt, principal=actor.principal, data=SubmitClaimIn.model_validate(data), raw=data
            )
            if k == 0:
                first_done.set()
                release.wait(10)  # hold the first transaction open while the second takes its claim in
            s.commit()
            return made.id

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(submit, 0)
        assert first_done.wait(10)
        second = pool.submit(submit, 1)
        time.sleep(0.5)  # the second is now as far as it gets before the first commits
        release.set()
        first.result(15), second.result(15)
    assert count(rt, PrepaymentReview) == 1
    with rt.sessions() as s:
        assert {ln.prepayment_review_id for ln in s.scalars(select(ClaimLine))} != {None}
        assert len({ln.prepayment_review_id for ln in s.scalars(select(ClaimLine))}) == 1


def test_fhir_anesthesia_minutes_with_a_fraction_are_refused_not_truncated(
    client: TestClient, make_actor: Any, clock: FixedClock, rt: Runtime
) -> None:
    """A FHIR Claim item of 30.7 minutes is a 422 naming the item, and nothing is written."""
    clock.set(AFTER_DOS)
    provider = make_actor("provider")
    fhir = fhir_claim(minutes=30.7, diagnosis=False)
    r = client.post("/fhir/Claim", json=fhir, headers=provider.headers)
    assert r.status_code == 422, r.text
    issue = r.json()["issue"][0]
    assert issue["expression"] == ["Claim.item[0]"] and "lines[0].units" in issue["diagnostics"]
    assert count(rt, Claim) == 0
    # A whole number written as a decimal is fine.
    ok = client.post("/fhir/Claim", json=fhir_claim(minutes=30.0, diagnosis=False), headers=provider.headers)
    assert ok.status_code == 201, ok.text
    with rt.sessions() as s:
        assert [ln.units for ln in s.scalars(select(ClaimLine))] == [30]


def test_two_procedures_the_same_day_anesthesia_waits_for_the_undecided_one(
    client: TestClient, make_actor: Any, clock: FixedClock
) -> None:
    """One epidural of the day non-affirmed, the other undecided: the anesthesia is not denied on the first."""
    surgeon, anesthesia, reviewer = make_actor("provider"), make_actor("provider"), make_actor("reviewer")
    clock.set(dt.datetime(2026, 3, 18, 15, tzinfo=dt.UTC))
    denied = authorize(client, surgeon.headers, case="unmet")
    _non_affirm(client, denied, reviewer)
    waiting = authorize(client, surgeon.headers, case="incomplete", lines=[{"code": "64483", "units": 1}])
    assert waiting["status"] == "pended" and waiting["due_at"] == "2026-03-21T15:00:00Z"
    clock.set(dt.datetime(2026, 3, 20, 20, tzinfo=dt.UTC))
    made = post_claim(client, anesthesia.headers, claim([line("01938", units=40)])).json()
    got = made["lines"][0]
    assert got["outcome"] == "suspended" and got["authorization"]["utn"] == waiting["utn"], got
    # The surgeon's lines are told apart by their codes.
    proc = post_claim(client, surgeon.headers, claim([line("62323"), line("64483")])).json()["lines"]
    assert [ln["outcome"] for ln in proc] == ["denied", "suspended"]
    clock.set(dt.datetime(2026, 3, 21, 16, tzinfo=dt.UTC))  # the undecided one is deemed affirmed
    got = client.get(f"/api/v1/claims/{made['id']}", headers=anesthesia.headers).json()["lines"][0]
    assert got["outcome"] == "payable"
