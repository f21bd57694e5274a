"""Gold-card edges through the REST API: rescission vs the next evaluation, validity instants, appeals."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Actor
from tests.factories import body
from tests.goldcard.test_goldcard import NPI, history, run
from wiserpa.policy.clock import FixedClock
from wiserpa.runtime import Runtime

MakeActor = Callable[..., Actor]


def _carded(
    client: TestClient, rt: Runtime, clock: FixedClock, make_actor: MakeActor, n: int
) -> tuple[int, list[int], Actor]:
    """A granted card and `n` gold-carded requests submitted through the API by one practice."""
    history(rt, ["affirmed"] * 5, at=clock.now() - dt.timedelta(days=3))
    card_id = run(rt, clock.now()).evaluations[0].card_id
    assert card_id is not None
    provider: Actor = make_actor("provider")
    ids = []
    for i in range(n):
        r = client.post(
            "/api/v1/requests",
            json=body(case="incomplete", seed=i + 1, provider={"npi": NPI}),
            headers=provider.headers,
        )
        assert r.json()["status"] == "gold_card_affirmed", r.text
        ids.append(r.json()["id"])
    return card_id, ids, provider


def _fail_sample(client: TestClient, make_actor: MakeActor, card_id: int, ids: list[int]) -> dict[str, Any]:
    """A clinician's sample review that finds every case inappropriate."""
    reviewer: Actor = make_actor("reviewer")
    r = client.post(
        f"/api/v1/gold-cards/{card_id}/sample-review",
        json={"reviewed": [{"request_id": i, "appropriate": False} for i in ids]},
        headers=reviewer.headers,
    )
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def _status(client: TestClient, provider: Actor, seed: int) -> str:
    """The status a new request of the carded NPI gets on submission."""
    r = client.post(
        "/api/v1/requests",
        json=body(case="unmet", seed=seed, provider={"npi": NPI}),
        headers=provider.headers,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["status"])


def _renewed(
    client: TestClient, rt: Runtime, clock: FixedClock, make_actor: MakeActor
) -> tuple[int, list[int], Actor, int, dt.datetime]:
    """A carded practice whose card was renewed ten days before its end: (card, its requests, practice, renewal,
    the card's end)."""
    card_id, ids, provider = _carded(client, rt, clock, make_actor, 5)
    end = clock.now() + dt.timedelta(days=rt.profile.gold_card.validity_days)
    clock.set(end - dt.timedelta(days=10))
    ev = run(rt, clock.now()).evaluations[0]
    assert ev.action == "renewed" and ev.card_id is not None
    return card_id, ids, provider, ev.card_id, end


def _cards(client: TestClient, provider: Actor) -> dict[int, dict[str, Any]]:
    """The practice's gold cards by id, as the listing shows them."""
    return {c["id"]: c for c in client.get("/api/v1/gold-cards", headers=provider.headers).json()["items"]}


def test_a_rescinded_card_is_not_granted_back_by_the_next_evaluation(
    client: TestClient, rt: Runtime, clock: FixedClock, make_actor: MakeActor
) -> None:
    """The rescinded card's history no longer counts; only requests received after the rescission do."""
    card_id, ids, provider = _carded(client, rt, clock, make_actor, 5)
    assert _fail_sample(client, make_actor, card_id, ids)["status"] == "rescinded"
    rescinded_at = clock.now()

    clock.advance(dt.timedelta(days=1))
    ev = run(rt, clock.now()).evaluations[0]
    assert (ev.action, ev.volume) == ("below_volume", 0)
    assert _status(client, provider, 60) == "pended"

    # Five requests affirmed on their merits after the rescission earn a new card, whose window says so.
    history(rt, ["affirmed"] * 5, at=clock.now())
    clock.advance(dt.timedelta(days=1))
    ev = run(rt, clock.now()).evaluations[0]
    assert (ev.action, ev.volume) == ("granted", 5)
    cards = client.get("/api/v1/gold-cards", headers=provider.headers).json()["items"]
    new = next(c for c in cards if c["id"] == ev.card_id)
    assert new["why"]["window_start"] == rescinded_at.isoformat().replace("+00:00", "Z")
    assert new["why"]["excluded"] == 11  # the original five, the five gold-carded ones, the pended one


def test_rescinding_a_renewed_card_also_ends_its_renewal(
    client: TestClient, rt: Runtime, clock: FixedClock, make_actor: MakeActor
) -> None:
    """A renewal granted before the rescission does not take force when the renewed card ends."""
    card_id, ids, provider, renewal_id, end = _renewed(client, rt, clock, make_actor)
    card = _fail_sample(client, make_actor, card_id, ids)
    assert card["status"] == "rescinded" and card["notice"]["also_rescinded"] == [renewal_id]
    assert _cards(client, provider)[renewal_id]["status"] == "rescinded"

    clock.set(end + dt.timedelta(days=1))  # inside the renewal's validity
    assert _status(client, provider, 61) == "pended"


def test_a_submission_at_the_cards_first_and_last_instants(
    client: TestClient, rt: Runtime, clock: FixedClock, make_actor: MakeActor
) -> None:
    """Carded from valid_from inclusive up to valid_until exclusive, and the listing agrees."""
    _, _, provider = _carded(client, rt, clock, make_actor, 1)  # granted now: valid_from is this instant
    (card,) = client.get("/api/v1/gold-cards", headers=provider.headers).json()["items"]
    until = dt.datetime.fromisoformat(card["valid_until"])
    clock.set(until - dt.timedelta(microseconds=1))
    assert _status(client, provider, 70) == "gold_card_affirmed"
    clock.set(until)
    assert _status(client, provider, 71) == "pended"
    (card,) = client.get("/api/v1/gold-cards", headers=provider.headers).json()["items"]
    assert card["in_force"] is False


def test_appeal_needs_a_rescission_and_the_cards_own_practice(
    client: TestClient, rt: Runtime, clock: FixedClock, make_actor: MakeActor
) -> None:
    """Appealing an active card is a 409; oversight cannot file it; a blank reason names the field."""
    card_id, ids, provider = _carded(client, rt, clock, make_actor, 5)
    url = f"/api/v1/gold-cards/{card_id}/appeal"
    active = client.post(url, json={"reason": "why not"}, headers=provider.headers)
    assert active.status_code == 409
    _fail_sample(client, make_actor, card_id, ids)
    oversight: Actor = make_actor("oversight")
    assert client.post(url, json={"reason": "x"}, headers=oversight.headers).status_code == 404
    blank = client.post(url, json={"reason": "   "}, headers=provider.headers)
    assert blank.status_code == 422 and blank.json()["error"]["fields"][0]["field"] == "reason"
    assert client.post(url, json={}, headers=provider.headers).status_code == 422
    assert (
        client.post(
            "/api/v1/gold-cards/999999/appeal", json={"reason": "x"}, headers=provider.headers
        ).status_code
        == 404
    )
    key = {"Idempotency-Key": "appeal-1", **provider.headers}
    first = client.post(url, json={"reason": "the LCD was met"}, headers=key)
    again = client.post(url, json={"reason": "the LCD was met"}, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true" and len(again.json()["appeals"]) == 1


@pytest.mark.parametrize("state", ["NJ"])
def test_a_reviewer_of_another_state_cannot_review_or_see_the_card(
    client: TestClient, rt: Runtime, clock: FixedClock, make_actor: MakeActor, state: str
) -> None:
    """A TX provider's card is outside an NJ reviewer's scope: not listed, and its cases are refused."""
    card_id, ids, _ = _carded(client, rt, clock, make_actor, 5)
    other: Actor = make_actor("reviewer", state=state)
    assert client.get("/api/v1/gold-cards", headers=other.headers).json()["items"] == []
    r = client.post(
        f"/api/v1/gold-cards/{card_id}/sample-review",
        json={"reviewed": [{"request_id": i, "appropriate": False} for i in ids]},
        headers=other.headers,
    )
    assert r.status_code == 404
    oversight: Actor = make_actor("oversight")
    (card,) = client.get("/api/v1/gold-cards", headers=oversight.headers).json()["items"]
    assert card["status"] == "active" and card["sample_reviews"] == []


def test_a_sample_review_takes_only_cases_carded_under_that_card(
    client: TestClient, rt: Runtime, clock: FixedClock, make_actor: MakeActor
) -> None:
    """Requests carded under an earlier, lapsed card cannot rescind the provider's new card."""
    _, old_ids, provider = _carded(client, rt, clock, make_actor, 5)
    end = clock.now() + dt.timedelta(days=rt.profile.gold_card.validity_days)
    history(rt, ["affirmed"] * 5, at=end - dt.timedelta(days=5))
    clock.set(end + dt.timedelta(days=1))  # the first card lapsed without a renewal; a new one is granted
    report = run(rt, clock.now())
    assert report.expired == 1 and report.evaluations[0].action == "granted"
    new_id = report.evaluations[0].card_id
    new_ids = [
        client.post(
            "/api/v1/requests",
            json=body(case="incomplete", seed=80 + i, provider={"npi": NPI}),
            headers=provider.headers,
        ).json()["id"]
        for i in range(5)
    ]
    reviewer = make_actor("reviewer")
    url = f"/api/v1/gold-cards/{new_id}/sample-review"
    stale = client.post(
        url,
        json={"reviewed": [{"request_id": i, "appropriate": False} for i in old_ids]},
        headers=reviewer.headers,
    )
    assert stale.status_code == 422 and stale.json()["error"]["fields"][0]["field"] == "reviewed"
    own = client.post(
        url,
        json={"reviewed": [{"request_id": i, "appropriate": True} for i in new_ids]},
        headers=reviewer.headers,
    )
    assert own.status_code == 200 and own.json()["status"] == "active"


def test_oversight_decides_an_appeal_and_an_overturned_rescission_puts_the_card_back(
    client: TestClient, rt: Runtime, clock: FixedClock, make_actor: MakeActor
) -> None:
    """Only oversight decides; upheld keeps the rescission; overturned restores the card, and submissions are
    gold-carded again; every decision is kept with the appeal."""
    card_id, ids, provider = _carded(client, rt, clock, make_actor, 5)
    _fail_sample(client, make_actor, card_id, ids)
    oversight: Actor = make_actor("oversight")
    decide = f"/api/v1/gold-cards/{card_id}/appeal/decision"
    ruling = {"outcome": "overturned", "note": "The sampled cases met LCD L39240."}
    assert client.post(decide, json=ruling, headers=oversight.headers).status_code == 409  # nothing filed yet
    appeal = f"/api/v1/gold-cards/{card_id}/appeal"
    assert (
        client.post(appeal, json={"reason": "the LCD was met"}, headers=provider.headers).status_code == 201
    )
    for actor in (provider, make_actor("reviewer")):  # the practice and the participant that rescinded
        assert client.post(decide, json=ruling, headers=actor.headers).status_code == 403
    for bad, field in (({**ruling, "outcome": "maybe"}, "outcome"), ({**ruling, "note": "  "}, "note")):
        r = client.post(decide, json=bad, headers=oversight.headers)
        assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == field, r.text
    assert _status(client, provider, 80) == "pended"  # still rescinded

    upheld = client.post(
        decide, json={"outcome": "upheld", "note": "Cases lacked imaging."}, headers=oversight.headers
    )
    assert upheld.status_code == 200 and upheld.json()["status"] == "rescinded"
    assert upheld.json()["appeals"][0]["status"] == "upheld"
    assert client.post(appeal, json={"reason": "new evidence"}, headers=provider.headers).status_code == 201
    overturned = client.post(decide, json=ruling, headers=oversight.headers)
    card = overturned.json()
    assert overturned.status_code == 200 and card["status"] == "active" and card["in_force"] is True
    assert [a["status"] for a in card["appeals"]] == ["upheld", "overturned"]
    assert card["appeals"][1]["reinstated"] == [card_id] and card["rescinded_at"] is None
    assert card["rescission_overturned"]["reason"].startswith("retrospective review")
    assert _status(client, provider, 81) == "gold_card_affirmed"
    assert client.post(decide, json=ruling, headers=oversight.headers).status_code == 409  # decided already


def test_overturning_a_rescission_restores_its_renewal(
    client: TestClient, rt: Runtime, clock: FixedClock, make_actor: MakeActor
) -> None:
    """The renewal rescinded with the card comes back with it."""
    card_id, ids, provider, renewal_id, end = _renewed(client, rt, clock, make_actor)
    _fail_sample(client, make_actor, card_id, ids)
    oversight: Actor = make_actor("oversight")
    client.post(f"/api/v1/gold-cards/{card_id}/appeal", json={"reason": "met"}, headers=provider.headers)
    r = client.post(
        f"/api/v1/gold-cards/{card_id}/appeal/decision",
        json={"outcome": "overturned", "note": "Sample misread."},
        headers=oversight.headers,
    )
    assert r.status_code == 200 and r.json()["appeals"][0]["reinstated"] == [card_id, renewal_id]
    assert _cards(client, provider)[renewal_id]["status"] == "active"
    clock.set(end + dt.timedelta(days=1))  # inside the renewal's validity
    assert _status(client, provider, 90) == "gold_card_affirmed"


def test_an_overturned_card_that_a_newer_card_replaced_stays_rescinded(
    client: TestClient, rt: Runtime, clock: FixedClock, make_actor: MakeActor
) -> None:
    """Two cards are never in force at once: the appeal is decided, and says why the card stays rescinded."""
    card_id, ids, provider = _carded(client, rt, clock, make_actor, 5)
    _fail_sample(client, make_actor, card_id, ids)
    clock.advance(dt.timedelta(days=1))
    history(rt, ["affirmed"] * 5, at=clock.now())  # earned again on history after the rescission
    clock.advance(dt.timedelta(days=1))
    assert run(rt, clock.now()).evaluations[0].action == "granted"
    client.post(f"/api/v1/gold-cards/{card_id}/appeal", json={"reason": "met"}, headers=provider.headers)
    r = client.post(
        f"/api/v1/gold-cards/{card_id}/appeal/decision",
        json={"outcome": "overturned", "note": "Sample misread."},
        headers=make_actor("oversight").headers,
    )
    appeal = r.json()["appeals"][0]
    assert r.status_code == 200 and r.json()["status"] == "rescinded"
    assert (appeal["status"], appeal["reinstated"], appeal["not_reinstated"]) == ("overturned", [], [card_id])
    active = [
        c for c in client.get("/api/v1/gold-cards", headers=provider.headers).json()["items"] if c["in_force"]
    ]
    assert len(active) == 1 and active[0]["id"] != card_id
