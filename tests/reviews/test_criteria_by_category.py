"""Every active WISeR category through HTTP: auto-affirm, a named gap, a cited non-affirmation; frequency."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.factories import DOS, body
from wiserpa.policy.examples import CATEGORIES, COMPLETE_FACTS, VIOLATIONS
from wiserpa.runtime import Runtime

STATE = "TX"  # every category's governing policy has criteria in TX (Novitas JH)


def _submit(client: TestClient, headers: dict[str, str], data: dict[str, Any]) -> dict[str, Any]:
    answer = client.post("/api/v1/requests", json=data, headers=headers)
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


def _result(view: dict[str, Any], criterion_id: str) -> dict[str, Any]:
    found = [r for r in view["criteria_results"] if r["criterion_id"] == criterion_id]
    assert found, f"{criterion_id} not evaluated: {[r['criterion_id'] for r in view['criteria_results']]}"
    return found[0]


def test_thirteen_active_categories_have_examples(rt: Runtime) -> None:
    active = {c.key for c in rt.catalog.categories.values() if c.active}
    assert len(active) == 13
    assert active == set(CATEGORIES) == set(VIOLATIONS)


@pytest.mark.parametrize("category", CATEGORIES)
def test_complete_request_is_affirmed_automatically(
    client: TestClient, make_actor: Callable[..., Any], category: str
) -> None:
    provider = make_actor("provider", state=STATE)
    view = _submit(client, provider.headers, body(category, state=STATE, case="complete"))
    assert view["status"] == "affirmed" and view["decision_kind"] == "criteria"
    assert view["criteria_results"], "a policy with criteria was applied"
    assert all(r["result"] == "met" for r in view["criteria_results"])
    assert view["clinical_facts"].keys() == COMPLETE_FACTS[category].keys()


@pytest.mark.parametrize("category", CATEGORIES)
def test_missing_fact_pends_with_the_gap_named(
    client: TestClient, make_actor: Callable[..., Any], category: str
) -> None:
    provider = make_actor("provider", state=STATE)
    reviewer = make_actor("reviewer", state=STATE)
    fact, _bad, criterion_id = VIOLATIONS[category]
    data = body(category, state=STATE, case="complete")
    del data["clinical_facts"][fact]
    view = _submit(client, provider.headers, data)
    assert view["status"] == "pended"
    gap = _result(view, criterion_id)
    assert gap["result"] == "unknown"
    assert fact in gap["missing_facts"]
    assert gap["citation"]["policy"] == view["policy_id"]
    # The clinician sees the same gap on the worklist.
    work = client.get("/api/v1/reviews/worklist", headers=reviewer.headers).json()
    item = next(i for i in work["items"] if i["id"] == view["id"])
    assert _result(item, criterion_id)["result"] == "unknown"


@pytest.mark.parametrize("category", CATEGORIES)
def test_unmet_criterion_pends_and_a_clinician_non_affirms_citing_it(
    client: TestClient, make_actor: Callable[..., Any], rt: Runtime, category: str
) -> None:
    provider = make_actor("provider", state=STATE)
    reviewer = make_actor("reviewer", state=STATE)
    fact, bad, criterion_id = VIOLATIONS[category]
    data = body(category, state=STATE, case="complete")
    data["clinical_facts"][fact] = bad
    view = _submit(client, provider.headers, data)
    assert view["status"] == "pended"
    assert _result(view, criterion_id)["result"] == "unmet"

    decided = client.post(
        f"/api/v1/requests/{view['id']}/decision",
        json={"decision": "non_affirm", "reasons": [criterion_id], "note": "Per the cited criterion."},
        headers=reviewer.headers,
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["status"] == "non_affirmed"

    seen = client.get(f"/api/v1/requests/{view['id']}", headers=provider.headers).json()
    assert seen["status"] == "non_affirmed"
    decision = next(d for d in seen["decisions"] if d["kind"] == "clinician_non_affirm")
    policy = rt.criteria.for_policy(view["policy_id"])
    assert policy is not None
    criterion = next(c for c in (*policy.criteria, *policy.frequency_limits) if c.id == criterion_id)
    [reason] = decision["reasons"]
    assert reason["criterion_id"] == criterion_id
    assert reason["citation"] == {"policy": criterion.citation.policy, "section": criterion.citation.section}
    assert reason["satisfies_hint"]
    assert decision["reviewer"]["npi"] and decision["reviewer"]["specialty"]


@pytest.mark.parametrize("state", ["AZ", "WA"])
def test_skin_substitutes_without_an_lcd_are_affirmed_with_no_criteria(
    client: TestClient, make_actor: Callable[..., Any], state: str
) -> None:
    provider = make_actor("provider", state=state)
    view = _submit(client, provider.headers, body("skin_substitutes", state=state, case="complete"))
    assert view["policy_id"] is None
    assert view["status"] == "affirmed"
    assert view["criteria_results"] == []
    # Asking for facts where no NCD/LCD governs would be a requirement beyond them: refused, field named.
    data = body("skin_substitutes", state=state, case="complete")
    data["clinical_facts"] = {"wound_area_cm2": 3.2}
    refused = client.post("/api/v1/requests", json=data, headers=provider.headers)
    assert refused.status_code == 422
    assert refused.json()["error"]["fields"][0]["field"] == "clinical_facts"


# ---------------------------------------------------------------------------------------------- frequency


@pytest.mark.parametrize(("days_before", "counts"), [(364, True), (365, False)])
def test_esi_frequency_limit_across_the_rolling_twelve_months(
    client: TestClient, make_actor: Callable[..., Any], days_before: int, counts: bool
) -> None:
    """Four lumbar sessions are allowed per 365 days; a prior session 364 days back counts, 365 does not."""
    provider = make_actor("provider", state=STATE)
    mbi_seed = 77
    target = DOS + dt.timedelta(days=days_before)
    # The earliest session, exactly `days_before` days before the target, then two more inside the window.
    priors = [DOS, DOS + dt.timedelta(days=100), DOS + dt.timedelta(days=200)]
    for i, dos in enumerate(priors):
        prior = _submit(client, provider.headers, body(state=STATE, seed=mbi_seed, dos=dos))
        assert prior["status"] == "affirmed", (i, prior["criteria_results"])
    fourth = _submit(
        client, provider.headers, body(state=STATE, seed=mbi_seed, dos=DOS + dt.timedelta(days=300))
    )
    assert fourth["status"] == "affirmed"
    other_region = body(state=STATE, seed=mbi_seed, dos=target)
    other_region["clinical_facts"]["spinal_region"] = "cervical"
    assert _submit(client, provider.headers, other_region)["status"] == "affirmed"

    fifth = _submit(client, provider.headers, body(state=STATE, seed=mbi_seed, dos=target))
    limit = _result(fifth, "esi.freq.sessions_per_region")
    if counts:
        assert fifth["status"] == "pended"
        assert limit["result"] == "unmet"
    else:
        assert fifth["status"] == "affirmed"
        assert limit["result"] == "met"


# ---------------------------------------------------------------------------------------------- requirements


def test_requirements_lists_typed_facts_with_citations(client: TestClient, rt: Runtime) -> None:
    answer = client.get(
        "/api/v1/requirements", params={"code": "62323", "state": "TX", "date_of_service": DOS.isoformat()}
    )
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["category"] == "epidural_steroid_injection" and data["policy_id"] == "L36920"
    facts = {i["name"]: i for i in data["items"] if i["kind"] == "fact"}
    assert set(COMPLETE_FACTS["epidural_steroid_injection"]) <= set(facts)
    assert facts["pain_duration_weeks"]["unit"] and facts["pain_duration_weeks"]["type"] in (
        "number",
        "integer",
    )
    assert facts["spinal_region"]["values"]
    for item in data["items"]:
        assert item["citations"], item
        assert all(c["policy"] == "L36920" for c in item["citations"])
    assert any(i["kind"] == "document" for i in data["items"])


def test_requirements_differ_by_state_with_the_governing_lcd(client: TestClient) -> None:
    params = {"code": "62323", "date_of_service": DOS.isoformat()}
    tx = client.get("/api/v1/requirements", params={**params, "state": "TX"}).json()
    az = client.get("/api/v1/requirements", params={**params, "state": "AZ"}).json()
    assert tx["policy_id"] == "L36920" and az["policy_id"] == "L39240"


def test_requirements_without_an_lcd_asks_for_nothing(client: TestClient, rt: Runtime) -> None:
    code = rt.catalog.categories["skin_substitutes"].codes[0]
    data = client.get(
        "/api/v1/requirements", params={"code": code, "state": "AZ", "date_of_service": DOS.isoformat()}
    ).json()
    assert data["policy_id"] is None and data["items"] == [] and "nothing beyond" in data["note"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"code": "99213", "state": "TX"}, "code"),
        ({"code": "62323", "state": "CA"}, "code"),
    ],
)
def test_requirements_refuses_what_needs_no_prior_auth(
    client: TestClient, params: dict[str, str], field: str
) -> None:
    answer = client.get("/api/v1/requirements", params={**params, "date_of_service": DOS.isoformat()})
    assert answer.status_code == 422
    assert answer.json()["error"]["fields"][0]["field"] == field


def test_requirements_validates_its_query(client: TestClient) -> None:
    answer = client.get("/api/v1/requirements", params={"code": "62323", "state": "TX"})
    assert answer.status_code == 422
    assert answer.json()["error"]["fields"][0]["field"] == "date_of_service"
