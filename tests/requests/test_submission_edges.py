"""Edge values of submission, resubmission and withdrawal through the REST interface, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.factories import body
from wiserpa.requests.models import PaRequest
from wiserpa.runtime import Runtime
from wiserpa.store.idempotency import IdempotencyRecord

Mutation = Callable[[dict[str, Any]], None]


def _count(rt: Runtime, model: type) -> int:
    with rt.sessions() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def _mac(at: str) -> Mutation:
    return lambda b: b.update(channel="mac_forwarded", mac_received_at=at)


# Each of these once answered 500 (or stored a value it should have refused): the field must be named.
REFUSED: list[tuple[str, str, Mutation]] = [
    ("unknown_coverage", "coverage", lambda b: b.update(coverage="bogus")),
    ("nul_in_notes", "notes", lambda b: b.update(notes="see\x00attached")),
    ("nul_in_provider_name", "provider.name", lambda b: b["provider"].update(name="Dr\x00X")),
    ("nul_in_attachment_title", "attachments[0].title", lambda b: b.update(attachments=[{"title": "a\x00"}])),
    ("nul_in_fact_value", "clinical_facts", lambda b: b["clinical_facts"].update(esi_indication="x\x00")),
    (
        "fact_beyond_64_bits",
        "clinical_facts.pain_duration_weeks",
        lambda b: b["clinical_facts"].update(pain_duration_weeks=10**30),
    ),
    ("mac_receipt_without_utc_instant", "mac_received_at", _mac("0001-01-01T00:00:00+14:00")),
    ("mac_receipt_before_the_model", "mac_received_at", _mac("2001-01-01T00:00:00Z")),
    ("invalid_organization_npi", "organization_npi", lambda b: b.update(organization_npi="123")),
    ("non_ascii_modifier", "lines[0].modifiers[0]", lambda b: b["lines"][0].update(modifiers=["²5"])),
    # A repeat is counted in units, and a diagnosis is listed once ("m54.16" is M54.16 once normalized).
    ("repeated_line", "lines[1]", lambda b: b["lines"].append(dict(b["lines"][0]))),
    ("repeated_diagnosis", "diagnosis_codes[1]", lambda b: b["diagnosis_codes"].append("m54.16")),
]


@pytest.mark.parametrize(("field", "mutate"), [(f, m) for _, f, m in REFUSED], ids=[n for n, _, _ in REFUSED])
def test_edge_values_are_a_422_naming_the_field(
    client: TestClient, make_actor: Callable[..., Any], rt: Runtime, field: str, mutate: Mutation
) -> None:
    """An edge value is refused with a 422 naming its field, and nothing is stored."""
    provider = make_actor("provider")
    data = body()
    mutate(data)
    r = client.post("/api/v1/requests", json=data, headers={**provider.headers, "Idempotency-Key": "edge-1"})
    assert r.status_code == 422, r.text
    assert field in [f["field"] for f in r.json()["error"]["fields"]], r.json()
    assert _count(rt, PaRequest) == 0
    assert _count(rt, IdempotencyRecord) == 0


def test_a_plausible_mac_receipt_still_starts_the_clock(
    client: TestClient, make_actor: Callable[..., Any]
) -> None:
    """The new bounds on the MAC receipt time leave an ordinary one (earlier the same day) accepted."""
    provider = make_actor("provider")
    data = body(channel="mac_forwarded", mac_received_at="2026-03-02T09:00:00Z")
    r = client.post("/api/v1/requests", json=data, headers=provider.headers)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "affirmed"


def _non_affirmed(client: TestClient, provider: Any, reviewer: Any) -> dict[str, Any]:
    pended = client.post("/api/v1/requests", json=body(case="unmet"), headers=provider.headers).json()
    gap = next(c for c in pended["criteria_results"] if c["result"] == "unmet")
    r = client.post(
        f"/api/v1/requests/{pended['id']}/decision",
        json={"decision": "non_affirm", "reasons": [gap["criterion_id"]]},
        headers=reviewer.headers,
    )
    assert r.status_code == 200, r.text
    return pended


def test_a_non_affirmed_request_is_resubmitted_once(
    client: TestClient, make_actor: Callable[..., Any], rt: Runtime
) -> None:
    """Resubmitting the same request again (no idempotency key) is a 409 naming its resubmission, not a duplicate."""
    provider, reviewer = make_actor("provider"), make_actor("reviewer")
    original = _non_affirmed(client, provider, reviewer)
    facts = {"clinical_facts": body(case="complete")["clinical_facts"]}
    url = f"/api/v1/requests/{original['id']}/resubmit"
    first = client.post(url, json=facts, headers=provider.headers)
    assert first.status_code == 201, first.text
    stored = _count(rt, PaRequest)
    again = client.post(url, json=facts, headers=provider.headers)
    assert again.status_code == 409, again.text
    assert f"request {first.json()['id']}" in again.json()["error"]["message"]
    assert _count(rt, PaRequest) == stored
    # A retry with the same key still replays the first answer.
    keyed = {**provider.headers, "Idempotency-Key": "resub-1"}
    other = _non_affirmed(client, provider, reviewer)
    url = f"/api/v1/requests/{other['id']}/resubmit"
    replies = [client.post(url, json=facts, headers=keyed) for _ in range(2)]
    assert [r.status_code for r in replies] == [201, 201]
    assert replies[0].json()["id"] == replies[1].json()["id"]


def test_a_withdrawn_resubmission_is_resubmitted_through_the_latest_request(
    client: TestClient, make_actor: Callable[..., Any]
) -> None:
    """After a resubmission is withdrawn, the chain continues from it, not from the original."""
    provider, reviewer = make_actor("provider"), make_actor("reviewer")
    original = _non_affirmed(client, provider, reviewer)
    second = client.post(
        f"/api/v1/requests/{original['id']}/resubmit", json={}, headers=provider.headers
    ).json()
    withdrawn = client.post(f"/api/v1/requests/{second['id']}/withdraw", json={}, headers=provider.headers)
    assert withdrawn.status_code == 200, withdrawn.text
    assert (
        client.post(
            f"/api/v1/requests/{original['id']}/resubmit", json={}, headers=provider.headers
        ).status_code
        == 409
    )
    third = client.post(f"/api/v1/requests/{second['id']}/resubmit", json={}, headers=provider.headers)
    assert third.status_code == 201, third.text
    assert third.json()["predecessor_id"] == second["id"]


def test_resubmission_errors_name_fields_like_submission_errors(
    client: TestClient, make_actor: Callable[..., Any]
) -> None:
    """A bad diagnosis code on a resubmission is named `diagnosis_codes[0]` with a plain message."""
    provider, reviewer = make_actor("provider"), make_actor("reviewer")
    original = _non_affirmed(client, provider, reviewer)
    r = client.post(
        f"/api/v1/requests/{original['id']}/resubmit",
        json={"diagnosis_codes": ["12"]},
        headers=provider.headers,
    )
    assert r.status_code == 422, r.text
    [field] = r.json()["error"]["fields"]
    assert field == {"field": "diagnosis_codes[0]", "message": "'12' is not an ICD-10-CM code"}


def test_withdrawal_reason_with_nul_is_a_422(
    client: TestClient, make_actor: Callable[..., Any], rt: Runtime
) -> None:
    """A withdrawal reason PostgreSQL cannot store is refused naming `reason`; the request stays as it was."""
    provider = make_actor("provider")
    created = client.post("/api/v1/requests", json=body(case="incomplete"), headers=provider.headers).json()
    r = client.post(
        f"/api/v1/requests/{created['id']}/withdraw", json={"reason": "gone\x00"}, headers=provider.headers
    )
    assert r.status_code == 422, r.text
    assert [f["field"] for f in r.json()["error"]["fields"]] == ["reason"]
    after = client.get(f"/api/v1/requests/{created['id']}", headers=provider.headers).json()
    assert (after["status"], after["version"]) == ("pended", created["version"])


def test_lines_that_differ_in_modifiers_are_different_services(
    client: TestClient, make_actor: Callable[..., Any]
) -> None:
    provider = make_actor("provider")
    data = body()
    data["lines"] = [{"code": "62323", "modifiers": ["LT"]}, {"code": "62323", "modifiers": ["RT"]}]
    r = client.post("/api/v1/requests", json=data, headers=provider.headers)
    assert r.status_code == 201, r.text
    assert [ln["code"] for ln in r.json()["lines"] if ln.get("requested", True)][:2] == ["62323", "62323"]
