"""Appeals feeding the participant's figures; bad input refused with nothing written; FHIR Claim."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from fastapi.testclient import TestClient
from fhir.resources.R4B.claimresponse import ClaimResponse

from tests.claims.helpers import AFTER_DOS, authorize, claim, count, fhir_claim, line, post_claim
from wiserpa.audit.models import AuditEntry
from wiserpa.claims import service
from wiserpa.claims.models import Claim, ClaimLine, PrepaymentReview
from wiserpa.policy.clock import FixedClock


def _denied_claim(client: TestClient, make_actor, clock: FixedClock) -> tuple[dict, object]:
    provider, reviewer = make_actor("provider"), make_actor("reviewer")
    pended = authorize(client, provider.headers, case="unmet")
    gap = next(r for r in pended["criteria_results"] if r["result"] == "unmet")
    client.post(
        f"/api/v1/requests/{pended['id']}/decision",
        json={"decision": "non_affirm", "reasons": [gap["criterion_id"]]},
        headers=reviewer.headers,
    )
    clock.set(AFTER_DOS)
    made = post_claim(client, provider.headers, claim([line("62323")])).json()
    assert made["lines"][0]["outcome"] == "denied"
    return made, provider


def test_overturned_appeal_counts_against_the_participant(
    client: TestClient, make_actor, clock: FixedClock
) -> None:
    made, provider = _denied_claim(client, make_actor, clock)
    oversight = make_actor("oversight")
    stats_url = "/api/v1/claims/stats?participant=Cohere Health"
    before = client.get(stats_url, headers=oversight.headers).json()["items"][0]
    assert before["denials"] == 1 and before["averted_usd"] == 240.0 and before["overturned"] == 0
    url = f"/api/v1/claims/{made['id']}/lines/0/appeal"
    assert (
        client.post(url, json={"reason": "criteria met"}, headers=make_actor("provider").headers).status_code
        == 404
    )
    r = client.post(url, json={"reason": "criteria met"}, headers=provider.headers)
    assert r.status_code == 200 and r.json()["lines"][0]["appeal"]["status"] == "pending"
    assert client.post(url, json={}, headers=provider.headers).status_code == 409
    out_url = url + "/outcome"
    assert client.post(out_url, json={"outcome": "overturned", "decided_on": "2026-03-25"},
                       headers=provider.headers).status_code == 403  # fmt: skip
    clock.advance(dt.timedelta(days=10))
    bad = client.post(
        out_url, json={"outcome": "overturned", "decided_on": "2026-03-01"}, headers=oversight.headers
    )
    assert bad.status_code == 422 and bad.json()["error"]["fields"][0]["field"] == "decided_on"
    ok = client.post(
        out_url, json={"outcome": "overturned", "decided_on": "2026-03-25"}, headers=oversight.headers
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["lines"][0]["outcome"] == "payable"
    after = client.get(stats_url, headers=oversight.headers).json()["items"][0]
    assert after["denials"] == 1 and after["appealed"] == 1 and after["overturned"] == 1
    assert after["approved_after_appeal"] == 1 and after["overturn_rate"] == 1.0
    assert after["averted_usd"] == 0 and after["paid_usd"] == 240.0
    # Reviewers see only their own participant; providers see no figures.
    other_state = make_actor("reviewer", state="WA")
    assert client.get("/api/v1/claims/stats", headers=other_state.headers).json()["items"] == []
    assert client.get("/api/v1/claims/stats", headers=provider.headers).status_code == 403


def _nothing_written(rt) -> None:  # type: ignore[no-untyped-def]
    assert count(rt, Claim) == count(rt, ClaimLine) == count(rt, PrepaymentReview) == 0


def test_bad_input_names_the_field_and_writes_nothing(
    client: TestClient, make_actor, clock: FixedClock, rt
) -> None:
    provider = make_actor("provider")
    auth = authorize(client, provider.headers)
    clock.set(AFTER_DOS)
    audit_before = count(rt, AuditEntry)
    cases = {
        "lines[0].code": claim([line("ZZ123")]),
        "lines[0].utn": claim([line("62323", utn=auth["utn"])], seed=5),  # another beneficiary's UTN
        "lines[1].date_of_service": claim([line("62323"), line("62323", dos=dt.date(2026, 1, 10))]),
        "lines[0].rendering_npi": claim([line("62323", npi="1234567890")]),
        "beneficiary.mbi": {**claim([line("62323")]), "beneficiary": {"mbi": "not-an-mbi"}},
        "state": {**claim([line("62323")]), "state": "CA"},
        "claim_type": {**claim([line("62323")]), "claim_type": "dental"},
    }
    for field, data in cases.items():
        r = post_claim(client, provider.headers, data)
        assert r.status_code == 422, (field, r.text)
        assert field in [f["field"] for f in r.json()["error"]["fields"]], (field, r.json())
    future = post_claim(client, provider.headers, claim([line("62323", dos=dt.date(2026, 4, 1))]))
    assert future.status_code == 422
    unknown_utn = post_claim(client, provider.headers, claim([line("62323", utn="CHA99999999999")]))
    assert unknown_utn.status_code == 422
    _nothing_written(rt)
    assert count(rt, AuditEntry) == audit_before


def test_duplicate_submission_replays(client: TestClient, make_actor, clock: FixedClock, rt) -> None:
    clock.set(AFTER_DOS)
    provider = make_actor("provider")
    data = claim([line("62323")])
    headers = {**provider.headers, "Idempotency-Key": "claim-1"}
    first = post_claim(client, headers, data)
    second = post_claim(client, headers, data)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json() and second.headers["Idempotent-Replayed"] == "true"
    assert count(rt, Claim) == 1 and count(rt, PrepaymentReview) == 1
    changed = post_claim(client, headers, claim([line("62321")]))
    assert changed.status_code == 409 and changed.json()["error"]["fields"][0]["field"] == "Idempotency-Key"
    assert count(rt, Claim) == 1


def testfhir_claim(client: TestClient, make_actor, clock: FixedClock, rt) -> None:
    provider = make_actor("provider")
    authorize(client, provider.headers)
    clock.set(AFTER_DOS)
    r = client.post("/fhir/Claim", json=fhir_claim(), headers=provider.headers)
    assert r.status_code == 201, r.text
    resp = ClaimResponse.model_validate(r.json())
    assert resp.outcome == "complete"
    adj = r.json()["item"][0]["adjudication"][0]
    assert adj["reason"]["coding"][0]["code"] == "payable" and adj["amount"]["value"] == 122.0
    bad_use = client.post("/fhir/Claim", json=fhir_claim(use="preauthorization"), headers=provider.headers)
    assert bad_use.status_code == 400
    assert bad_use.json()["resourceType"] == "OperationOutcome"
    assert bad_use.json()["issue"][0]["expression"] == ["Claim.use"]
    wrong = client.post("/fhir/Claim", json=fhir_claim(utn="CHA99999999999"), headers=provider.headers)
    assert wrong.status_code == 422 and wrong.json()["issue"][0]["expression"] == ["Claim.item[0]"]
    assert count(rt, Claim) == 1


def test_fee_schedule_can_be_replaced(tmp_path: Path, monkeypatch, rt) -> None:
    packaged = service.load_fee_schedule()
    assert packaged.allowed_cents("64483", "professional", 1) == 25000
    assert packaged.allowed_cents("64483", "institutional", 1) == 90000
    assert packaged.allowed_cents("01938", "professional", 45) == 12200  # per case, minutes not priced
    assert packaged.allowed_cents("99213", "professional", 1) is None
    assert all(f.basis.startswith("APPROX-UNVERIFIED") for f in packaged.fees.values())
    own = tmp_path / "fees.csv"
    own.write_text("code,professional_usd,institutional_usd,per\n64483,300.50,,unit\n")
    mine = service.load_fee_schedule(own)
    assert mine.allowed_cents("64483", "professional", 2) == 60100
    assert mine.allowed_cents("64483", "institutional", 1) is None
    monkeypatch.setenv("WISERPA_FEE_SCHEDULE", str(own))
    from wiserpa.config import Settings

    assert Settings().fee_schedule == own  # the operator's setting reaches the runtime
    monkeypatch.setattr(rt, "settings", rt.settings.model_copy(update={"fee_schedule": own}))
    assert service.configured_fee_schedule(rt).source == str(own)
