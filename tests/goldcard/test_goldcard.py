"""Gold cards (R4): grant, renewal, rescission after a failed sample, minimum volume, window edge, appeal."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import pytest
from fastapi.testclient import TestClient

from tests.factories import body
from wiserpa.auth.models import OrgKind
from wiserpa.auth.service import create_organization
from wiserpa.goldcard.models import GoldCard
from wiserpa.goldcard.service import EvaluationReport, active_gold_card, evaluate
from wiserpa.policy.validation import make_valid_npi
from wiserpa.requests.models import PaRequest
from wiserpa.runtime import Runtime

NPI = make_valid_npi(4242)
CAT = "epidural_steroid_injection"


def history(rt: Runtime, statuses: Iterable[str], *, at: dt.datetime, npi: str = NPI) -> None:
    """Past requests of one provider with the given stored statuses, received at `at`."""
    with rt.sessions() as s:
        org = create_organization(s, name="history", kind=OrgKind.PRACTICE, now=at, state="TX")
        for i, status in enumerate(statuses):
            s.add(
                PaRequest(
                    state="TX",
                    participant="Cohere Health",
                    jurisdiction="JH",
                    organization_id=org.id,
                    provider_npi=npi,
                    beneficiary_mbi=f"1EG4TE5MK{i % 10}{i // 10 % 10}",
                    category=CAT,
                    primary_code="62323",
                    place_of_service="11",
                    date_of_service=dt.date(2026, 3, 20),
                    urgency="standard",
                    channel="portal",
                    received_at=at,
                    clock_started_at=at,
                    due_at=at + dt.timedelta(hours=72),
                    deems_on_due=True,
                    status=status,
                    decided_at=None if status == "pended" else at,
                    profile_id="asa-reform",
                    profile_version="2026.1",
                    diagnosis_codes=["M54.16"],
                    clinical_facts={},
                    criteria_results=[],
                    attachments=[],
                    raw_submission={},
                    updated_at=at,
                )
            )
        s.commit()


def run(rt: Runtime, now: dt.datetime) -> EvaluationReport:
    """Run one evaluation at `now` and commit it."""
    with rt.sessions() as s:
        report = evaluate(s, rt, now=now)
        s.commit()
    return report


def test_grant_then_requests_are_gold_card_affirmed(client: TestClient, rt, clock, make_actor) -> None:
    now = clock.now()
    history(rt, ["affirmed"] * 9 + ["non_affirmed"], at=now - dt.timedelta(days=30))  # 90%: exactly enough
    report = run(rt, now)
    (ev,) = report.evaluations
    assert (ev.action, ev.volume, ev.rate) == ("granted", 10, 0.9)

    provider = make_actor("provider")
    r = client.post(
        "/api/v1/requests", json=body(case="incomplete", provider={"npi": NPI}), headers=provider.headers
    )
    assert r.status_code == 201 and r.json()["status"] == "gold_card_affirmed"
    assert r.json()["decision_kind"] == "gold_card"

    cards = client.get("/api/v1/gold-cards", headers=provider.headers).json()["items"]
    assert len(cards) == 1
    why = cards[0]["why"]
    assert why["affirmation_rate"] == 0.9 and why["volume"] == 10 and why["profile"]["id"] == "asa-reform"
    assert why["rule"]["min_requests"] == 5 and cards[0]["in_force"] is True
    other = make_actor("provider")  # another practice: no requests with this NPI
    assert client.get("/api/v1/gold-cards", headers=other.headers).json()["items"] == []

    assert run(rt, now).evaluations[0].action == "kept"  # idempotent: no second card
    with rt.sessions() as s:
        assert s.query(GoldCard).count() == 1


@pytest.mark.parametrize(
    ("statuses", "action"),
    [
        (["affirmed"] * 4, "below_volume"),
        (["affirmed"] * 5, "granted"),
        (["affirmed"] * 8 + ["non_affirmed"], "below_threshold"),  # 88.9%
        # Exempt, deemed, withdrawn and open requests are left out (profile default), so 4 is too few.
        (["affirmed"] * 4 + ["exempt_affirmed", "deemed_affirmed", "withdrawn", "pended"], "below_volume"),
    ],
)
def test_minimum_volume_and_threshold(rt, clock, statuses: list[str], action: str) -> None:
    history(rt, statuses, at=clock.now() - dt.timedelta(days=10))
    assert run(rt, clock.now()).evaluations[0].action == action


def test_window_edge(rt, clock) -> None:
    now = clock.now()
    start = now - dt.timedelta(days=rt.profile.gold_card.lookback_days)
    history(rt, ["affirmed"] * 4, at=start + dt.timedelta(days=1))
    history(rt, ["affirmed"], at=start - dt.timedelta(seconds=1))  # just outside the window
    assert run(rt, now).evaluations[0].action == "below_volume"
    history(rt, ["affirmed"], at=start)  # exactly at the window start: inside
    ev = run(rt, now).evaluations[0]
    assert (ev.action, ev.volume) == ("granted", 5)


def test_renewal_of_an_expiring_card_and_lapse_without_it(rt, clock) -> None:
    now = clock.now()
    history(rt, ["affirmed"] * 5, at=now - dt.timedelta(days=1))
    first = run(rt, now).evaluations[0]
    with rt.sessions() as s:
        card = s.get(GoldCard, first.card_id)
        assert card is not None
        end = card.valid_until
    assert end == now + dt.timedelta(days=365)

    later = end - dt.timedelta(days=100)  # not expiring yet: kept, even with no new history in the window
    assert run(rt, later).evaluations == [] or run(rt, later).evaluations[0].action == "kept"

    soon = end - dt.timedelta(days=10)
    history(rt, ["affirmed"] * 6, at=soon - dt.timedelta(days=20))
    ev = run(rt, soon).evaluations[0]
    assert ev.action == "renewed"
    with rt.sessions() as s:
        new = s.get(GoldCard, ev.card_id)
        assert new is not None and new.valid_from == end and new.details["renews"] == first.card_id
        later_card = active_gold_card(s, npi=NPI, category=CAT, at=end + dt.timedelta(days=1))
        assert later_card is not None and later_card.id == new.id
    assert run(rt, soon).evaluations[0].action == "kept"  # renewing twice gives one successor


def test_no_renewal_below_threshold_and_expiry(rt, clock) -> None:
    now = clock.now()
    history(rt, ["affirmed"] * 5, at=now - dt.timedelta(days=1))
    run(rt, now)
    end = now + dt.timedelta(days=365)
    history(rt, ["non_affirmed"] * 5, at=end - dt.timedelta(days=40))  # 10 in the window at 50%... mixed
    assert run(rt, end - dt.timedelta(days=5)).evaluations[0].action == "not_renewed"
    report = run(rt, end)
    assert report.expired == 1
    with rt.sessions() as s:
        assert active_gold_card(s, npi=NPI, category=CAT, at=end) is None


def _carded_requests(client: TestClient, rt, clock, make_actor, n: int):  # type: ignore[no-untyped-def,unused-ignore]
    history(rt, ["affirmed"] * 5, at=clock.now() - dt.timedelta(days=3))
    card_id = run(rt, clock.now()).evaluations[0].card_id
    provider = make_actor("provider")
    ids = []
    for i in range(n):
        r = client.post(
            "/api/v1/requests",
            json=body(case="incomplete", seed=i + 1, provider={"npi": NPI}),
            headers=provider.headers,
        )
        assert r.json()["status"] == "gold_card_affirmed"
        ids.append(r.json()["id"])
    return card_id, ids, provider


def test_rescission_only_after_a_failed_sample_review_then_appeal(
    client: TestClient, rt, clock, make_actor
) -> None:
    card_id, ids, provider = _carded_requests(client, rt, clock, make_actor, 6)
    reviewer = make_actor("reviewer")
    url = f"/api/v1/gold-cards/{card_id}/sample-review"

    too_few = client.post(
        url,
        json={"reviewed": [{"request_id": i, "appropriate": True} for i in ids[:4]]},
        headers=reviewer.headers,
    )
    assert too_few.status_code == 422 and too_few.json()["error"]["fields"][0]["field"] == "reviewed"

    passed = client.post(
        url,
        json={"reviewed": [{"request_id": i, "appropriate": True} for i in ids[:5]]},
        headers=reviewer.headers,
    )
    assert passed.status_code == 200 and passed.json()["status"] == "active"

    failed = client.post(
        url,
        json={"reviewed": [{"request_id": i, "appropriate": i != ids[0]} for i in ids[:5]]},  # 4/5 = 80%
        headers=reviewer.headers,
    )
    assert failed.status_code == 200, failed.text
    card = failed.json()
    assert card["status"] == "rescinded" and card["in_force"] is False
    assert "80%" in card["rescission_reason"] and card["notice"]["to_npi"] == NPI
    assert [r["outcome"] for r in card["sample_reviews"]] == ["kept", "rescinded"]

    r = client.post(
        "/api/v1/requests",
        json=body(case="unmet", seed=50, provider={"npi": NPI}),
        headers=provider.headers,
    )
    assert r.json()["status"] == "pended"  # no longer carded

    stranger = make_actor("provider")
    assert (
        client.post(
            f"/api/v1/gold-cards/{card_id}/appeal", json={"reason": "x"}, headers=stranger.headers
        ).status_code
        == 404
    )
    appealed = client.post(
        f"/api/v1/gold-cards/{card_id}/appeal",
        json={"reason": "The sampled case met the LCD; see the notes."},
        headers=provider.headers,
    )
    assert appealed.status_code == 201, appealed.text
    assert appealed.json()["appeals"][0]["status"] == "filed"
    assert (
        client.post(
            f"/api/v1/gold-cards/{card_id}/appeal", json={"reason": "again"}, headers=provider.headers
        ).status_code
        == 409
    )


def test_sample_review_needs_a_clinician_and_the_cards_own_cases(
    client: TestClient, rt, clock, make_actor
) -> None:
    card_id, ids, _ = _carded_requests(client, rt, clock, make_actor, 5)
    url = f"/api/v1/gold-cards/{card_id}/sample-review"
    cases = {"reviewed": [{"request_id": i, "appropriate": False} for i in ids]}
    assert (
        client.post(url, json=cases, headers=make_actor("reviewer", clinician=False).headers).status_code
        == 403
    )
    assert client.post(url, json=cases, headers=make_actor("provider").headers).status_code == 403
    wrong = {"reviewed": [{"request_id": i, "appropriate": False} for i in [*ids[:4], 999_999]]}
    assert client.post(url, json=wrong, headers=make_actor("reviewer").headers).status_code == 422


@pytest.mark.parametrize("profile_name", ["wiser-2026"])
def test_wiser_2026_has_no_gold_card(client: TestClient, rt, clock, make_actor, profile_name: str) -> None:
    history(rt, ["affirmed"] * 20, at=clock.now() - dt.timedelta(days=3))
    report = run(rt, clock.now())
    assert report.enabled is False and report.evaluations == []
    oversight = make_actor("oversight")
    listing = client.get("/api/v1/gold-cards", headers=oversight.headers).json()
    assert listing["items"] == [] and listing["profile"]["enabled"] is False
