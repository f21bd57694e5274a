"""Provider and reviewer pages through TestClient: checklist with citations, form submission, decisions."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from tests.factories import DOS, body
from wiserpa.policy.examples import COMPLETE_FACTS, VIOLATIONS
from wiserpa.web.auth import csrf_token


def _login(client: TestClient, actor: Any) -> None:
    client.cookies.clear()
    assert client.post("/login", data={"api_key": actor.key}, follow_redirects=False).status_code == 303


def _form_values(category: str, case: str = "complete") -> dict[str, str]:
    """The provider form filled as a person would, from the factory body."""
    data = body(category, state="TX", case=case)
    form = {
        "state": "TX",
        "code": data["lines"][0]["code"],
        "date_of_service": DOS.isoformat(),
        "place_of_service": data["place_of_service"],
        "provider_npi": data["provider"]["npi"],
        "beneficiary_mbi": data["beneficiary"]["mbi"],
        "diagnosis_codes": ", ".join(data["diagnosis_codes"]),
        "additional_codes": ", ".join(ln["code"] for ln in data["lines"][1:]),
        "urgency": "standard",
        "action": "submit",
    }
    for name, value in data["clinical_facts"].items():
        form[f"clinical_facts.{name}"] = (
            ("true" if value else "false") if isinstance(value, bool) else str(value)
        )
    return form


def test_form_shows_the_checklist_with_citations_and_confidence(
    client: TestClient, make_actor: Callable[..., Any]
) -> None:
    provider = make_actor("provider")
    _login(client, provider)
    page = client.get(
        "/requests/new", params={"state": "TX", "code": "62323", "date_of_service": DOS.isoformat()}
    )
    assert page.status_code == 200
    assert "L36920" in page.text
    # Typed fields: number with unit, enum select, yes/no/not documented.
    assert re.search(r'name="clinical_facts.pain_duration_weeks" type="number"', page.text)
    assert '<select id="f-spinal_region" name="clinical_facts.spinal_region"' in page.text
    assert 'name="clinical_facts.contrast_used" value="true"' in page.text
    assert '<cite class="citation">L36920' in page.text
    assert 'class="badge badge-' in page.text
    assert '<optgroup label="' in page.text


def test_show_checklist_step_works_without_javascript(
    client: TestClient, make_actor: Callable[..., Any]
) -> None:
    provider = make_actor("provider")
    _login(client, provider)
    page = client.post(
        "/requests/new",
        data={
            "state": "TX",
            "code": "63655",
            "date_of_service": DOS.isoformat(),
            "place_of_service": "22",
            "action": "checklist",
            "csrf_token": csrf_token(provider.key, "request-new"),
        },
    )
    assert page.status_code == 200
    assert "NCD 160.7" in page.text and "clinical_facts.trial_relief_percent" in page.text


def test_submit_through_the_form_then_see_the_request(
    client: TestClient, make_actor: Callable[..., Any]
) -> None:
    provider = make_actor("provider")
    _login(client, provider)
    form = _form_values("epidural_steroid_injection")
    form["csrf_token"] = csrf_token(provider.key, "request-new")
    form["idempotency_key"] = "form-1"
    sent = client.post("/requests/new", data=form, follow_redirects=False)
    assert sent.status_code == 303, sent.text
    location = sent.headers["location"]
    assert re.fullmatch(r"/requests/\d+", location)
    # A double click re-sends the same form: the same request, not a second one.
    again = client.post("/requests/new", data=form, follow_redirects=False)
    assert again.headers["location"] == location
    page = client.get(location)
    assert "affirmed" in page.text and "Request submitted." in page.text
    listing = client.get("/requests")
    assert listing.text.count('href="/requests/') >= 1 and location in listing.text


def test_form_errors_are_shown_next_to_the_field(client: TestClient, make_actor: Callable[..., Any]) -> None:
    provider = make_actor("provider")
    _login(client, provider)
    form = _form_values("epidural_steroid_injection")
    form["csrf_token"] = csrf_token(provider.key, "request-new")
    form["clinical_facts.pain_duration_weeks"] = "ten"
    form["beneficiary_mbi"] = "123"
    page = client.post("/requests/new", data=form)
    assert page.status_code == 422
    assert 'id="err-clinical_facts-pain_duration_weeks"' in page.text and "enter a number" in page.text
    form["clinical_facts.pain_duration_weeks"] = "10"
    page = client.post("/requests/new", data=form)
    assert page.status_code == 422
    assert 'id="err-beneficiary_mbi"' in page.text and "MBI" in page.text


def test_form_post_without_csrf_is_refused_and_nothing_is_stored(
    client: TestClient, make_actor: Callable[..., Any]
) -> None:
    provider = make_actor("provider")
    _login(client, provider)
    form = _form_values("epidural_steroid_injection")
    refused = client.post("/requests/new", data=form)
    assert refused.status_code == 403
    assert client.get("/api/v1/requests", headers=provider.headers).json()["total"] == 0


def test_reviewer_non_affirms_from_the_form_and_provider_sees_the_citation(
    client: TestClient, make_actor: Callable[..., Any]
) -> None:
    provider = make_actor("provider")
    reviewer = make_actor("reviewer")
    category = "hypoglossal_nerve_stimulation"
    _fact, _bad, criterion_id = VIOLATIONS[category]
    created = client.post(
        "/api/v1/requests", json=body(category, case="unmet"), headers=provider.headers
    ).json()
    assert created["status"] == "pended"

    _login(client, reviewer)
    work = client.get("/review")
    assert f'href="/review/{created["id"]}"' in work.text and criterion_id in work.text
    assert 'class="countdown' in work.text
    page = client.get(f"/review/{created['id']}")
    # Only unmet/unknown criteria can be ticked.
    ticks = re.findall(r'name="reasons" value="([^"]+)"', page.text)
    assert criterion_id in ticks and all(t in {criterion_id} | _unknowns(created) for t in ticks)
    token = csrf_token(reviewer.key, "review-decision")
    bad = client.post(
        f"/review/{created['id']}/decision",
        data={"decision": "non_affirm", "reasons": "hgns.made_up", "csrf_token": token},
    )
    assert bad.status_code == 422 and 'id="err-reasons"' in bad.text
    empty = client.post(
        f"/review/{created['id']}/decision",
        data={"decision": "non_affirm", "note": "free text only", "csrf_token": token},
    )
    assert empty.status_code == 422 and "at least one" in empty.text
    done = client.post(
        f"/review/{created['id']}/decision",
        data={
            "decision": "non_affirm",
            "reasons": criterion_id,
            "note": "BMI above the limit.",
            "version": str(created["version"]),
            "csrf_token": token,
        },
        follow_redirects=False,
    )
    assert done.status_code == 303

    _login(client, provider)
    seen = client.get(f"/requests/{created['id']}")
    assert "Why it was not affirmed" in seen.text and criterion_id in seen.text
    assert "L38385" in seen.text and "What would satisfy it" in seen.text
    assert "Resubmit with added facts" in seen.text


def _unknowns(view: dict[str, Any]) -> set[str]:
    return {r["criterion_id"] for r in view["criteria_results"] if r["result"] != "met"}


def test_information_request_and_peer_to_peer_from_the_pages(
    client: TestClient, make_actor: Callable[..., Any]
) -> None:
    provider = make_actor("provider")
    reviewer = make_actor("reviewer")
    data = body("knee_arthroscopy")
    fact, _bad, criterion_id = VIOLATIONS["knee_arthroscopy"]
    del data["clinical_facts"][fact]
    created = client.post("/api/v1/requests", json=data, headers=provider.headers).json()
    _login(client, reviewer)
    asked = client.post(
        f"/review/{created['id']}/information",
        data={
            "criterion_ids": criterion_id,
            "message": "Outerbridge grade please",
            "csrf_token": csrf_token(reviewer.key, "review-information"),
        },
    )
    assert asked.status_code == 200 and "due time is unchanged" in asked.text
    _login(client, provider)
    page = client.get(f"/requests/{created['id']}")
    assert "Outerbridge grade please" in page.text and "clock keeps running" in page.text
    assert set(COMPLETE_FACTS["knee_arthroscopy"]) >= {fact}
    p2p = client.post(
        f"/requests/{created['id']}/peer-to-peer",
        data={"note": "Tuesdays", "csrf_token": csrf_token(provider.key, "request-p2p")},
    )
    assert "Peer-to-peer requested." in p2p.text
    _login(client, reviewer)
    page = client.get(f"/review/{created['id']}")
    assert "Record outcome" in page.text and "Tuesdays" in page.text
