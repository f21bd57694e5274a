"""Requests for more information and peer-to-peer through the API, on both databases."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.factories import body
from wiserpa.audit.models import AuditEntry
from wiserpa.policy.clock import FixedClock
from wiserpa.policy.examples import VIOLATIONS
from wiserpa.runtime import Runtime


def _pended(
    client: TestClient, provider: Any, category: str = "vertebral_augmentation"
) -> tuple[dict[str, Any], str]:
    fact, bad, criterion_id = VIOLATIONS[category]
    data = body(category)
    data["clinical_facts"][fact] = bad
    view = client.post("/api/v1/requests", json=data, headers=provider.headers).json()
    assert view["status"] == "pended"
    return view, criterion_id


def test_information_request_names_criteria_and_keeps_the_clock(
    client: TestClient, make_actor: Callable[..., Any], rt: Runtime
) -> None:
    provider, reviewer = make_actor("provider"), make_actor("reviewer")
    view, criterion_id = _pended(client, provider)
    asked = client.post(
        f"/api/v1/requests/{view['id']}/information-requests",
        json={"criterion_ids": [criterion_id], "message": "Imaging report, please."},
        headers=reviewer.headers,
    )
    assert asked.status_code == 201, asked.text
    info = asked.json()
    assert info["criteria"][0]["citation"]["policy"] == view["policy_id"] and info["clock_paused"] is False
    after = client.get(f"/api/v1/requests/{view['id']}", headers=provider.headers).json()
    assert after["due_at"] == view["due_at"] and after["status"] == "pended"
    wf = client.get(f"/api/v1/requests/{view['id']}/workflow", headers=provider.headers).json()
    assert wf["information_requests"][0]["message"] == "Imaging report, please."
    answered = client.post(
        f"/api/v1/requests/{view['id']}/information-requests/{info['id']}/response",
        json={"note": "Uploaded the MRI report.", "clinical_facts": {"fracture_age_weeks": 3}},
        headers=provider.headers,
    )
    assert answered.status_code == 200, answered.text
    assert answered.json()["response_facts"] == {"fracture_age_weeks": 3}
    with rt.sessions() as s:
        actions = set(s.scalars(select(AuditEntry.action)))
    assert {"request.information_requested", "request.information_answered"} <= actions


def test_information_request_refuses_criteria_beyond_the_gaps(
    client: TestClient, make_actor: Callable[..., Any]
) -> None:
    provider, reviewer = make_actor("provider"), make_actor("reviewer")
    view, _ = _pended(client, provider)
    met = next(r["criterion_id"] for r in view["criteria_results"] if r["result"] == "met")
    refused = client.post(
        f"/api/v1/requests/{view['id']}/information-requests",
        json={"criterion_ids": [met]},
        headers=reviewer.headers,
    )
    assert refused.status_code == 422 and refused.json()["error"]["fields"][0]["field"] == "criterion_ids"
    by_provider = client.post(
        f"/api/v1/requests/{view['id']}/information-requests",
        json={"criterion_ids": [met]},
        headers=provider.headers,
    )
    assert by_provider.status_code == 403


def test_information_request_is_scoped_to_the_reviewers_state(
    client: TestClient, make_actor: Callable[..., Any]
) -> None:
    provider, elsewhere = make_actor("provider"), make_actor("reviewer", state="OH")
    view, criterion_id = _pended(client, provider)
    answer = client.post(
        f"/api/v1/requests/{view['id']}/information-requests",
        json={"criterion_ids": [criterion_id]},
        headers=elsewhere.headers,
    )
    assert answer.status_code == 404


def test_peer_to_peer_requested_scheduled_and_affirmed_on_discussion(
    client: TestClient, make_actor: Callable[..., Any], clock: FixedClock
) -> None:
    provider, reviewer = make_actor("provider"), make_actor("reviewer")
    view, _ = _pended(client, provider)
    asked = client.post(
        f"/api/v1/requests/{view['id']}/peer-to-peer",
        json={"note": "Any afternoon"},
        headers=provider.headers,
    )
    assert asked.status_code == 201 and asked.json()["status"] == "requested"
    p2p = asked.json()
    dup = client.post(f"/api/v1/requests/{view['id']}/peer-to-peer", json={}, headers=reviewer.headers)
    assert dup.status_code == 409
    past = client.post(
        f"/api/v1/requests/{view['id']}/peer-to-peer/{p2p['id']}/schedule",
        json={"scheduled_for": "2026-03-01T15:00:00Z"},
        headers=reviewer.headers,
    )
    assert past.status_code == 422 and past.json()["error"]["fields"][0]["field"] == "scheduled_for"
    sched = client.post(
        f"/api/v1/requests/{view['id']}/peer-to-peer/{p2p['id']}/schedule",
        json={"scheduled_for": "2026-03-03T20:00:00Z"},
        headers=reviewer.headers,
    )
    assert sched.status_code == 200 and sched.json()["scheduled_for"] == "2026-03-03T20:00:00Z"
    by_provider = client.post(
        f"/api/v1/requests/{view['id']}/peer-to-peer/{p2p['id']}/outcome",
        json={"outcome": "upheld"},
        headers=provider.headers,
    )
    assert by_provider.status_code == 403
    done = client.post(
        f"/api/v1/requests/{view['id']}/peer-to-peer/{p2p['id']}/outcome",
        json={"outcome": "affirmed_on_discussion", "note": "Acuity confirmed by MRI"},
        headers=reviewer.headers,
    )
    assert done.status_code == 200, done.text
    after = client.get(f"/api/v1/requests/{view['id']}", headers=provider.headers).json()
    assert after["status"] == "affirmed" and after["decision_kind"] == "clinician"
    assert "peer-to-peer" in after["decisions"][-1]["note"]


def test_peer_to_peer_after_non_affirmation_can_be_upheld_but_not_flip_it(
    client: TestClient, make_actor: Callable[..., Any]
) -> None:
    provider, reviewer = make_actor("provider"), make_actor("reviewer")
    view, criterion_id = _pended(client, provider)
    client.post(
        f"/api/v1/requests/{view['id']}/decision",
        json={"decision": "non_affirm", "reasons": [criterion_id]},
        headers=reviewer.headers,
    )
    p2p = client.post(f"/api/v1/requests/{view['id']}/peer-to-peer", json={}, headers=provider.headers).json()
    flip = client.post(
        f"/api/v1/requests/{view['id']}/peer-to-peer/{p2p['id']}/outcome",
        json={"outcome": "affirmed_on_discussion"},
        headers=reviewer.headers,
    )
    assert flip.status_code == 409
    kept = client.post(
        f"/api/v1/requests/{view['id']}/peer-to-peer/{p2p['id']}/outcome",
        json={"outcome": "no_show"},
        headers=reviewer.headers,
    )
    assert kept.status_code == 200 and kept.json()["outcome"] == "no_show"
