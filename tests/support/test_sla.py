"""Support SLA clocks at their boundaries, through the API, with the shared request-deadline clock code."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient

from tests.conftest import T0
from wiserpa.policy.clock import Duration, due_time
from wiserpa.policy.profiles import DurationSpec, SupportPolicy, calendar_for
from wiserpa.runtime import Runtime

SECOND = dt.timedelta(seconds=1)


def ticket(client: TestClient, actor, **extra):  # type: ignore[no-untyped-def]
    body = {"category": "portal_access", "subject": "Cannot sign in", "description": "Locked out since 9am."}
    body.update(extra)
    r = client.post("/api/v1/support/tickets", json=body, headers=actor.headers)
    assert r.status_code == 201, r.text
    return r.json()


def get(client: TestClient, actor, tid: int):  # type: ignore[no-untyped-def]
    r = client.get(f"/api/v1/support/tickets/{tid}", headers=actor.headers)
    assert r.status_code == 200, r.text
    return r.json()


def z(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def set_support(rt: Runtime, urgent: DurationSpec, standard: DurationSpec) -> None:
    """Run under a profile with these SLA windows (the app shares this runtime object)."""
    support = SupportPolicy(
        urgent=urgent, standard=standard, urgent_triggers=rt.profile.support.urgent_triggers
    )
    rt.profile = rt.profile.model_copy(update={"support": support})


def test_urgent_calendar_hours_boundary(client: TestClient, make_actor, rt: Runtime, clock) -> None:
    provider = make_actor("provider", state="TX")
    t = ticket(client, provider, urgent_trigger="pain")
    assert t["urgency"] == "urgent" and t["urgency_reason"] == "trigger:pain"
    due = T0 + dt.timedelta(hours=24)
    assert t["response_due_at"] == z(due)
    assert t["sla"] == {"amount": 24.0, "unit": "hours"}

    clock.set(due - SECOND)
    v = get(client, provider, t["id"])
    assert v["breached"] is False and v["overdue"] is False
    clock.set(due)  # the due instant itself is already late, as for request deadlines (now >= due_at)
    v = get(client, provider, t["id"])
    assert v["breached"] is True and v["overdue"] is True
    clock.set(due + SECOND)
    assert get(client, provider, t["id"])["breached"] is True


def test_standard_is_72_hours_and_response_one_second_before_is_in_time(
    client: TestClient, make_actor, clock
) -> None:
    provider = make_actor("provider", state="TX")
    staff = make_actor("reviewer", state="TX")
    in_time = ticket(client, provider)
    late = ticket(client, provider)
    assert in_time["urgency"] == "standard" and in_time["urgency_reason"] == "none"
    due = T0 + dt.timedelta(hours=72)
    assert in_time["response_due_at"] == z(due)

    clock.set(due - SECOND)
    r = client.post(
        f"/api/v1/support/tickets/{in_time['id']}/messages", json={"body": "Reset."}, headers=staff.headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["first_response_at"] == z(due - SECOND) and r.json()["breached"] is False
    clock.set(due)
    r = client.post(
        f"/api/v1/support/tickets/{late['id']}/messages", json={"body": "Reset."}, headers=staff.headers
    )
    assert r.json()["breached"] is True and r.json()["status"] == "answered"
    # Later reads do not change a settled cycle.
    clock.set(due + dt.timedelta(days=30))
    assert get(client, provider, in_time["id"])["breached"] is False
    assert get(client, provider, late["id"])["breached"] is True


def test_business_hours_skip_the_weekend_and_dst(client: TestClient, make_actor, rt: Runtime, clock) -> None:
    set_support(
        rt, DurationSpec(amount=8, unit="business_hours"), DurationSpec(amount=24, unit="business_hours")
    )
    provider = make_actor("provider", state="TX")
    # Friday 2026-03-06 16:00 CST: one business hour left that day; 7 more from Monday 08:00, which is CDT
    # (daylight saving starts Sunday 2026-03-08), so due Monday 15:00 CDT = 20:00 UTC.
    opened = dt.datetime(2026, 3, 6, 22, 0, tzinfo=dt.UTC)
    clock.set(opened)
    t = ticket(client, provider, urgent_trigger="oncology")
    expected = dt.datetime(2026, 3, 9, 20, 0, tzinfo=dt.UTC)
    assert t["response_due_at"] == z(expected)
    # The same clock code requests use gives the same answer.
    cal = calendar_for(rt.profile, rt.catalog.states["TX"].timezone)
    assert due_time(opened, Duration(8, "business_hours"), cal) == expected

    clock.set(dt.datetime(2026, 3, 8, 23, 0, tzinfo=dt.UTC))  # Sunday evening: > 24 calendar hours later
    assert get(client, provider, t["id"])["breached"] is False
    clock.set(expected - SECOND)
    assert get(client, provider, t["id"])["breached"] is False
    clock.set(expected)
    assert get(client, provider, t["id"])["breached"] is True


def test_calendar_hours_do_not_skip_the_weekend(client: TestClient, make_actor, clock) -> None:
    provider = make_actor("provider", state="TX")
    opened = dt.datetime(2026, 3, 6, 22, 0, tzinfo=dt.UTC)  # Friday afternoon
    clock.set(opened)
    t = ticket(client, provider, urgent_trigger="post_operative")
    assert t["response_due_at"] == z(dt.datetime(2026, 3, 7, 22, 0, tzinfo=dt.UTC))  # Saturday


def test_business_days_unit_rolls_after_close(client: TestClient, make_actor, rt: Runtime, clock) -> None:
    set_support(
        rt, DurationSpec(amount=1, unit="business_days"), DurationSpec(amount=3, unit="business_days")
    )
    provider = make_actor("provider", state="WA")
    clock.set(dt.datetime(2026, 3, 6, 1, 30, tzinfo=dt.UTC))  # Thursday 17:30 PST: after close
    t = ticket(client, provider)
    # Day 0 is Friday; three business days later is Wednesday 2026-03-11, 17:00 PDT = 00:00 UTC Thursday.
    assert t["response_due_at"] == z(dt.datetime(2026, 3, 12, 0, 0, tzinfo=dt.UTC))


def test_linked_expedited_or_exempt_request_is_urgent(client: TestClient, make_actor) -> None:
    from tests.factories import body

    provider = make_actor("provider", state="TX")
    exp = client.post(
        "/api/v1/requests", json=body(case="unmet", urgency="expedited"), headers=provider.headers
    )
    assert exp.status_code == 201, exp.text
    t = ticket(client, provider, request_id=exp.json()["id"], category="status_unclear")
    assert t["urgency"] == "urgent" and t["urgency_reason"] == "linked_request_expedited"
    assert t["state"] == "TX" and t["request_id"] == exp.json()["id"]

    ex = client.post("/api/v1/requests", json=body(case="exempt", seed=3), headers=provider.headers)
    assert ex.status_code == 201, ex.text
    if ex.json()["exemption"]:
        t2 = ticket(client, provider, request_id=ex.json()["id"])
        assert t2["urgency_reason"] == "linked_request_exempt"

    std = client.post("/api/v1/requests", json=body(case="unmet", seed=4), headers=provider.headers)
    assert ticket(client, provider, request_id=std.json()["id"])["urgency"] == "standard"


def test_bad_trigger_category_and_foreign_request_name_the_fields(client: TestClient, make_actor) -> None:
    from tests.factories import body

    provider = make_actor("provider", state="TX")
    other = make_actor("provider", state="TX")
    req = client.post("/api/v1/requests", json=body(case="unmet"), headers=other.headers).json()
    r = client.post(
        "/api/v1/support/tickets",
        json={
            "category": "portal_access",
            "subject": "x",
            "description": "y",
            "urgent_trigger": "sunburn",
            "request_id": req["id"],
        },
        headers=provider.headers,
    )
    assert r.status_code == 422
    fields = {f["field"] for f in r.json()["error"]["fields"]}
    assert fields == {"urgent_trigger", "request_id"}
    r = client.post(
        "/api/v1/support/tickets",
        json={"category": "coffee", "subject": "x", "description": "y"},
        headers=provider.headers,
    )
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "category"
    assert client.get("/api/v1/support/tickets", headers=provider.headers).json()["total"] == 0
