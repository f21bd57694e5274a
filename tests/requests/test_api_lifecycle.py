"""The request lifecycle through HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.factories import body
from wiserpa.app import create_app
from wiserpa.audit.models import AuditEntry
from wiserpa.deadlines.models import DeadlineMiss
from wiserpa.policy.utn import is_valid_utn
from wiserpa.requests.models import PaRequest
from wiserpa.store.idempotency import IdempotencyRecord

STATES = ["NJ", "OH", "OK", "TX", "AZ", "WA"]


def count(rt, model) -> int:  # type: ignore[no-untyped-def]
    with rt.sessions() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


@pytest.mark.parametrize("state", STATES)
def test_full_lifecycle_per_state(client: TestClient, make_actor, rt, state: str) -> None:
    provider = make_actor("provider", state=state)
    reviewer = make_actor("reviewer", state=state)

    ok = client.post("/api/v1/requests", json=body(state=state, case="complete"), headers=provider.headers)
    assert ok.status_code == 201, ok.text
    done = ok.json()
    assert done["status"] == "affirmed" and done["decision_kind"] == "criteria"
    assert is_valid_utn(done["utn"])
    assert done["valid_until"] == (dt.date(2026, 3, 2) + dt.timedelta(days=120)).isoformat()
    assert all(r["result"] == "met" for r in done["criteria_results"])
    assert done["profile"]["id"] == "asa-reform"

    pend = client.post(
        "/api/v1/requests", json=body(state=state, case="unmet", seed=2), headers=provider.headers
    )
    assert pend.status_code == 201, pend.text
    pended = pend.json()
    assert pended["status"] == "pended"
    gaps = [r for r in pended["criteria_results"] if r["result"] == "unmet"]
    assert gaps and all(g["citation"]["policy"] for g in gaps)

    work = client.get("/api/v1/reviews/worklist", headers=reviewer.headers).json()
    assert [r["id"] for r in work["items"]] == [pended["id"]]

    decided = client.post(
        f"/api/v1/requests/{pended['id']}/decision",
        json={
            "decision": "non_affirm",
            "reasons": [gaps[0]["criterion_id"]],
            "note": "See the cited criterion.",
        },
        headers=reviewer.headers,
    )
    assert decided.status_code == 200, decided.text
    seen = client.get(f"/api/v1/requests/{pended['id']}", headers=provider.headers).json()
    assert seen["status"] == "non_affirmed"
    final = seen["decisions"][-1]
    assert final["kind"] == "clinician_non_affirm"
    assert final["reasons"][0]["criterion_id"] == gaps[0]["criterion_id"]
    assert final["reasons"][0]["citation"] == gaps[0]["citation"]
    assert final["reviewer"]["npi"] == reviewer.principal.npi

    assert client.get("/api/v1/reviews/worklist", headers=reviewer.headers).json()["total"] == 0


def test_survives_restart(client: TestClient, make_actor, rt) -> None:
    provider = make_actor("provider")
    created = client.post("/api/v1/requests", json=body(case="incomplete"), headers=provider.headers).json()
    with TestClient(create_app(rt)) as fresh:
        again = fresh.get(f"/api/v1/requests/{created['id']}", headers=provider.headers)
    assert again.status_code == 200
    assert again.json()["utn"] == created["utn"] and again.json()["status"] == "pended"


def test_idempotent_retry_returns_the_original(client: TestClient, make_actor, rt) -> None:
    provider = make_actor("provider")
    headers = {**provider.headers, "Idempotency-Key": "abc-123"}
    first = client.post("/api/v1/requests", json=body(), headers=headers)
    second = client.post("/api/v1/requests", json=body(), headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert count(rt, PaRequest) == 1


def test_same_key_different_body_is_409_and_writes_nothing(client: TestClient, make_actor, rt) -> None:
    provider = make_actor("provider")
    headers = {**provider.headers, "Idempotency-Key": "k-1"}
    assert client.post("/api/v1/requests", json=body(), headers=headers).status_code == 201
    audit_before = count(rt, AuditEntry)
    other = client.post("/api/v1/requests", json=body(seed=9), headers=headers)
    assert other.status_code == 409
    assert other.json()["error"]["fields"][0]["field"] == "Idempotency-Key"
    assert count(rt, PaRequest) == 1
    assert count(rt, AuditEntry) == audit_before


def test_another_organizations_request_is_404(client: TestClient, make_actor) -> None:
    mine = make_actor("provider")
    theirs = make_actor("provider")
    created = client.post("/api/v1/requests", json=body(), headers=mine.headers).json()
    assert client.get(f"/api/v1/requests/{created['id']}", headers=theirs.headers).status_code == 404
    assert client.get("/api/v1/requests", headers=theirs.headers).json()["total"] == 0
    other_state = make_actor("reviewer", state="WA")
    assert client.get(f"/api/v1/requests/{created['id']}", headers=other_state.headers).status_code == 404
    assert client.get("/api/v1/requests/999999", headers=mine.headers).status_code == 404


def test_non_affirm_needs_reviewer_role_and_clinician(client: TestClient, make_actor) -> None:
    provider = make_actor("provider")
    pended = client.post("/api/v1/requests", json=body(case="unmet"), headers=provider.headers).json()
    criterion = next(r["criterion_id"] for r in pended["criteria_results"] if r["result"] == "unmet")
    decision = {"decision": "non_affirm", "reasons": [criterion]}
    for actor in (provider, make_actor("oversight"), make_actor("admin")):
        r = client.post(f"/api/v1/requests/{pended['id']}/decision", json=decision, headers=actor.headers)
        assert r.status_code == 403, r.text
    non_clinician = make_actor("reviewer", clinician=False)
    r = client.post(f"/api/v1/requests/{pended['id']}/decision", json=decision, headers=non_clinician.headers)
    assert r.status_code == 403
    reviewer = make_actor("reviewer")
    r = client.post(
        f"/api/v1/requests/{pended['id']}/decision",
        json={"decision": "non_affirm", "reasons": []},
        headers=reviewer.headers,
    )
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "reasons"
    r = client.post(
        f"/api/v1/requests/{pended['id']}/decision",
        json={"decision": "non_affirm", "reasons": ["made.up"]},
        headers=reviewer.headers,
    )
    assert r.status_code == 422
    assert (
        client.get(f"/api/v1/requests/{pended['id']}", headers=provider.headers).json()["status"] == "pended"
    )


BAD_INPUTS = [
    ("provider.npi", lambda b: b["provider"].update(npi="1234567890")),
    ("beneficiary.mbi", lambda b: b["beneficiary"].update(mbi="1SS4-TE5-MK73")),
    ("lines[0].code", lambda b: b["lines"][0].update(code="99213")),
    ("date_of_service", lambda b: b.update(date_of_service="2026-01-14")),
    ("state", lambda b: b.update(state="CA")),
    ("emergency", lambda b: b.update(emergency=True)),
    ("coverage", lambda b: b.update(coverage="medicare_advantage")),
    ("diagnosis_codes[0]", lambda b: b.update(diagnosis_codes=["123"])),
    ("place_of_service", lambda b: b.update(place_of_service="21")),
    ("clinical_facts.pain_duration_weeks", lambda b: b["clinical_facts"].update(pain_duration_weeks="many")),
    ("lines", lambda b: b.update(lines=[])),
    ("unexpected", lambda b: b.update(unexpected=1)),
]


@pytest.mark.parametrize(("field", "mutate"), BAD_INPUTS, ids=[f for f, _ in BAD_INPUTS])
def test_bad_input_names_the_field_and_writes_nothing(
    client: TestClient, make_actor, rt, field, mutate
) -> None:
    provider = make_actor("provider")
    audit_before = count(rt, AuditEntry)
    data = body()
    mutate(data)
    r = client.post("/api/v1/requests", json=data, headers={**provider.headers, "Idempotency-Key": "bad-1"})
    assert 400 <= r.status_code < 500, r.text
    fields = [f["field"] for f in r.json()["error"]["fields"]]
    assert any(f == field or f.startswith(field) for f in fields), fields
    assert count(rt, PaRequest) == 0
    assert count(rt, AuditEntry) == audit_before
    assert count(rt, IdempotencyRecord) == 0


def test_unauthenticated_and_bad_key(client: TestClient) -> None:
    assert client.get("/api/v1/requests").status_code == 401
    assert client.get("/api/v1/requests", headers={"Authorization": "Bearer wpa_x_y"}).status_code == 401
    assert client.get("/healthz").status_code == 200


def test_withdraw_and_resubmit(client: TestClient, make_actor) -> None:
    provider = make_actor("provider")
    reviewer = make_actor("reviewer")
    pended = client.post("/api/v1/requests", json=body(case="unmet"), headers=provider.headers).json()
    gap = next(r for r in pended["criteria_results"] if r["result"] == "unmet")
    client.post(
        f"/api/v1/requests/{pended['id']}/decision",
        json={"decision": "non_affirm", "reasons": [gap["criterion_id"]]},
        headers=reviewer.headers,
    )
    complete = body(case="complete")["clinical_facts"]
    again = client.post(
        f"/api/v1/requests/{pended['id']}/resubmit",
        json={"clinical_facts": complete},
        headers=provider.headers,
    )
    assert again.status_code == 201, again.text
    assert again.json()["predecessor_id"] == pended["id"] and again.json()["status"] == "affirmed"
    other = client.post(
        "/api/v1/requests", json=body(case="incomplete", seed=5), headers=provider.headers
    ).json()
    w = client.post(
        f"/api/v1/requests/{other['id']}/withdraw",
        json={"reason": "procedure cancelled"},
        headers=provider.headers,
    )
    assert w.status_code == 200 and w.json()["status"] == "withdrawn"
    assert (
        client.post(f"/api/v1/requests/{other['id']}/withdraw", json={}, headers=provider.headers).status_code
        == 409
    )


def test_withdrawing_past_due_deems_first_then_withdraws(client: TestClient, make_actor, rt) -> None:
    provider = make_actor("provider")
    created = client.post("/api/v1/requests", json=body(case="incomplete"), headers=provider.headers).json()
    assert created["status"] == "pended"
    rt.clock.set(rt.clock.now() + dt.timedelta(days=30))
    w = client.post(f"/api/v1/requests/{created['id']}/withdraw", json={}, headers=provider.headers)
    assert w.status_code == 200 and w.json()["status"] == "withdrawn"
    assert [d["kind"] for d in w.json()["decisions"]] == ["pend", "deemed", "withdrawn"]
    with rt.sessions() as s:
        stored = s.get(PaRequest, created["id"])
        miss = s.get(DeadlineMiss, created["id"])
        assert stored is not None and (stored.status, stored.decision_kind, stored.version) == (
            "withdrawn",
            "deemed",
            3,
        )
        assert miss is not None and miss.resolution == "deemed"


def test_stale_if_match_is_409(client: TestClient, make_actor) -> None:
    provider = make_actor("provider")
    created = client.post("/api/v1/requests", json=body(case="incomplete"), headers=provider.headers)
    etag = created.headers["ETag"]
    r = client.post(
        f"/api/v1/requests/{created.json()['id']}/withdraw",
        json={},
        headers={**provider.headers, "If-Match": '"999"'},
    )
    assert r.status_code == 409
    # Not our tags (a superscript digit used to be a 500): stale, nothing written.
    for foreign in ('"²"'.encode("latin-1"), b'"99999999999999999999999"'):
        r = client.post(
            f"/api/v1/requests/{created.json()['id']}/withdraw",
            json={},
            headers={**provider.headers, "If-Match": foreign},
        )
        assert r.status_code == 409, r.text
    r = client.post(
        f"/api/v1/requests/{created.json()['id']}/withdraw",
        json={},
        headers={**provider.headers, "If-Match": etag},
    )
    assert r.status_code == 200


def test_body_size_limit(client: TestClient, make_actor) -> None:
    provider = make_actor("provider")
    data = body(notes="x" * 3000)
    data["attachments"] = [{"title": "y" * 199}] * 50
    huge = "[" + ",".join(['{"a":"' + "z" * 1000 + '"}'] * 1100) + "]"
    r = client.post(
        "/api/v1/requests", content=huge, headers={**provider.headers, "Content-Type": "application/json"}
    )
    assert r.status_code == 413


def test_anonymous_malformed_body_is_401_not_422(client: TestClient) -> None:
    r = client.post("/api/v1/requests", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 401
    public = client.get(
        "/api/v1/catalog/lookup", params={"code": "64483"}
    )  # missing fields on a public route
    assert public.status_code == 422


def test_received_date_filters_are_days_in_the_states_zone(client: TestClient, make_actor, clock) -> None:
    """A Texas request sent at 22:00 CST on 2 March is a 2 March request, though it is 3 March in UTC."""
    provider = make_actor("provider")
    clock.set(dt.datetime(2026, 3, 3, 4, 0, tzinfo=dt.UTC))
    made = client.post("/api/v1/requests", json=body(state="TX"), headers=provider.headers)
    assert made.status_code == 201, made.text

    def listed(**params: str) -> list[int]:
        r = client.get("/api/v1/requests", params=params, headers=provider.headers)
        assert r.status_code == 200, r.text
        return [i["id"] for i in r.json()["items"]]

    assert listed(received_from="2026-03-02", received_to="2026-03-02") == [made.json()["id"]]
    assert listed(received_from="2026-03-03") == [] and listed(received_to="2026-03-01") == []


def test_if_match_follows_http(client: TestClient, make_actor) -> None:
    provider = make_actor("provider")
    created = client.post("/api/v1/requests", json=body(case="incomplete"), headers=provider.headers)
    url = f"/api/v1/requests/{created.json()['id']}/withdraw"
    version = created.json()["version"]
    # Not an entity tag (unquoted, unterminated, junk after a tag): a 400 naming the header, nothing written.
    for malformed in (str(version), f'"{version}', f'"{version}" x', f'"{version}",,'):
        r = client.post(url, json={}, headers={**provider.headers, "If-Match": malformed})
        assert r.status_code == 400, (malformed, r.text)
        assert r.json()["error"]["fields"][0]["field"] == "If-Match"
    # If-Match compares strongly: a weak tag never matches, so the change is refused as stale.
    r = client.post(url, json={}, headers={**provider.headers, "If-Match": f'W/"{version}"'})
    assert r.status_code == 409
    assert (
        client.get(f"/api/v1/requests/{created.json()['id']}", headers=provider.headers).json()["version"]
        == version
    )
    # A list matches when any of its tags names the current version.
    r = client.post(url, json={}, headers={**provider.headers, "If-Match": f'"999", "{version}"'})
    assert r.status_code == 200, r.text


def test_if_match_star_matches_any_version(client: TestClient, make_actor) -> None:
    provider = make_actor("provider")
    created = client.post("/api/v1/requests", json=body(case="incomplete"), headers=provider.headers)
    r = client.post(
        f"/api/v1/requests/{created.json()['id']}/withdraw",
        json={},
        headers={**provider.headers, "If-Match": "*"},
    )
    assert r.status_code == 200, r.text
