"""Support SLA edge cases end to end: holiday and midnight openings, reopening across DST with the stored window,
refused transitions and cross-organization attempts through REST and the web forms, and the audit trail."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from wiserpa.audit.models import AuditEntry
from wiserpa.policy.profiles import DurationSpec, SupportPolicy
from wiserpa.runtime import Runtime
from wiserpa.web.auth import csrf_token

SECOND = dt.timedelta(seconds=1)
BUSINESS_8_24 = (
    DurationSpec(amount=8, unit="business_hours"),
    DurationSpec(amount=24, unit="business_hours"),
)


def z(t: dt.datetime) -> str:
    """The API's UTC timestamp form."""
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def set_support(rt: Runtime, urgent: DurationSpec, standard: DurationSpec) -> None:
    """Run under a profile with these SLA windows (the app shares this runtime object)."""
    support = SupportPolicy(
        urgent=urgent, standard=standard, urgent_triggers=rt.profile.support.urgent_triggers
    )
    rt.profile = rt.profile.model_copy(update={"support": support})


def sign_in(client: TestClient, key: str) -> None:
    """Sign the test client in to the web pages with an API key."""
    r = client.post("/login", data={"api_key": key}, follow_redirects=False)
    assert r.status_code == 303


def ticket(client: TestClient, actor: Any, **extra: Any) -> dict[str, Any]:
    """Open a portal-access ticket as ``actor`` through REST."""
    body = {"category": "portal_access", "subject": "Cannot sign in", "description": "Locked out since 9am."}
    body.update(extra)
    r = client.post("/api/v1/support/tickets", json=body, headers=actor.headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


def get(client: TestClient, actor: Any, tid: int) -> dict[str, Any]:
    """One ticket as ``actor`` sees it."""
    r = client.get(f"/api/v1/support/tickets/{tid}", headers=actor.headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


def act(client: TestClient, actor: Any, tid: int, what: str, body: dict[str, Any]) -> Any:
    """POST one ticket action through the REST API."""
    return client.post(f"/api/v1/support/tickets/{tid}/{what}", json=body, headers=actor.headers)


def compliance_for(client: TestClient, actor: Any, state: str) -> dict[str, Any]:
    """The compliance row of one state as the given actor sees it."""
    r = client.get(f"/api/v1/support/compliance?state={state}", headers=actor.headers)
    assert r.status_code == 200, r.text
    rows = r.json()["participants"]
    assert len(rows) == 1, rows
    return dict(rows[0])


def audit_actions(rt: Runtime, tid: int) -> list[tuple[str, str]]:
    """(action, outcome) of the audit entries about one ticket, in order."""
    with rt.sessions() as s:
        rows = s.execute(
            select(AuditEntry.action, AuditEntry.outcome)
            .where(AuditEntry.object_type == "support_ticket", AuditEntry.object_id == str(tid))
            .order_by(AuditEntry.id)
        ).all()
    return [(a, o) for a, o in rows if a.startswith("support.")]


def test_ticket_opened_at_2359_local_before_a_holiday_starts_after_the_long_weekend(
    client: TestClient, make_actor: Any, rt: Runtime, clock: Any
) -> None:
    """Thursday 23:59 CDT before the observed Independence Day: 8 business hours all fall on Monday."""
    set_support(rt, *BUSINESS_8_24)
    provider = make_actor("provider", state="TX")
    staff = make_actor("reviewer", state="TX")
    # 2026-07-02 23:59 CDT = 2026-07-03 04:59 UTC. Friday 3 July is the federal holiday (4 July is a Saturday),
    # so the clock runs Monday 6 July 08:00-16:00 CDT: due 21:00 UTC.
    clock.set(dt.datetime(2026, 7, 3, 4, 59, tzinfo=dt.UTC))
    in_time = ticket(client, provider, urgent_trigger="pain")
    at_due = ticket(client, provider, urgent_trigger="pain")
    due = dt.datetime(2026, 7, 6, 21, 0, tzinfo=dt.UTC)
    assert in_time["response_due_at"] == at_due["response_due_at"] == z(due)

    clock.set(due - SECOND)
    assert act(client, staff, in_time["id"], "messages", {"body": "On it."}).json()["breached"] is False
    clock.set(due)
    assert act(client, staff, at_due["id"], "messages", {"body": "On it."}).json()["breached"] is True
    row = compliance_for(client, make_actor("oversight"), "TX")
    assert (row["cycles"], row["within_sla"], row["breached"], row["measured"]) == (2, 1, 1, 2)
    assert row["within_sla_pct"] == 50.0
    # The answer at the due instant is audited as late, the one a second before as on time.
    assert audit_actions(rt, in_time["id"])[-1] == ("support.response", "ok")
    assert audit_actions(rt, at_due["id"])[-1] == ("support.response", "late")


def test_reopen_across_dst_uses_the_window_stored_at_opening(
    client: TestClient, make_actor: Any, rt: Runtime, clock: Any
) -> None:
    """A reopened ticket's new deadline uses the ticket's own window and the local business day after DST."""
    set_support(rt, *BUSINESS_8_24)
    provider = make_actor("provider", state="TX")
    staff = make_actor("reviewer", state="TX")
    clock.set(dt.datetime(2026, 10, 26, 15, 0, tzinfo=dt.UTC))  # Monday 10:00 CDT
    t = ticket(client, provider, urgent_trigger="oncology")
    # Seven business hours Monday (to 17:00), one Tuesday from 08:00: due Tuesday 09:00 CDT.
    assert t["response_due_at"] == z(dt.datetime(2026, 10, 27, 14, 0, tzinfo=dt.UTC))
    clock.set(dt.datetime(2026, 10, 26, 16, 0, tzinfo=dt.UTC))
    assert act(client, staff, t["id"], "resolve", {"note": "Reset"}).status_code == 200
    # The profile changes to 24 calendar hours; the open ticket keeps its 8 business hours.
    set_support(rt, DurationSpec(amount=24, unit="hours"), DurationSpec(amount=72, unit="hours"))
    # Reopened Friday 30 October 16:00 CDT (21:00 UTC): one business hour Friday; daylight saving ends Sunday,
    # so the remaining seven run Monday 08:00-15:00 CST = 21:00 UTC.
    clock.set(dt.datetime(2026, 10, 30, 21, 0, tzinfo=dt.UTC))
    r = act(client, provider, t["id"], "reopen", {"reason": "Broken again"})
    assert r.status_code == 200, r.text
    due = dt.datetime(2026, 11, 2, 21, 0, tzinfo=dt.UTC)
    v = r.json()
    assert v["sla"] == {"amount": 8.0, "unit": "business_hours"}
    assert v["response_due_at"] == z(due) and v["cycles"][1]["due_at"] == z(due)
    clock.set(due - SECOND)
    assert get(client, provider, t["id"])["breached"] is False
    clock.set(due)
    v = get(client, provider, t["id"])
    assert v["breached"] is True and v["overdue"] is True
    assert [c["breached"] for c in v["cycles"]] == [False, True]
    row = compliance_for(client, staff, "TX")
    assert (row["cycles"], row["within_sla"], row["open_breaches"]) == (2, 1, 1)


def test_refused_transitions_through_rest_leave_the_ticket_unchanged(
    client: TestClient, make_actor: Any, rt: Runtime, clock: Any
) -> None:
    """Resolve twice, respond after resolve, reopen an open ticket: 409 naming status; nothing written."""
    provider = make_actor("provider", state="OH")
    staff = make_actor("reviewer", state="OH")
    t = ticket(client, provider)
    r = act(client, provider, t["id"], "reopen", {"reason": "x"})
    assert r.status_code == 409 and r.json()["error"]["fields"][0]["field"] == "status"
    assert act(client, staff, t["id"], "resolve", {}).status_code == 200
    before = get(client, provider, t["id"])
    for actor, what, body in (
        (staff, "resolve", {}),
        (provider, "resolve", {"note": "again"}),
        (staff, "messages", {"body": "late reply"}),
    ):
        r = act(client, actor, t["id"], what, body)
        assert r.status_code == 409, (what, r.text)
        assert r.json()["error"]["fields"][0]["field"] == "status"
    assert get(client, provider, t["id"]) == before
    assert [a for a, _ in audit_actions(rt, t["id"])] == ["support.open", "support.resolve"]


def test_other_organizations_and_states_cannot_act_on_a_ticket_through_rest(
    client: TestClient, make_actor: Any, rt: Runtime
) -> None:
    """Another practice (same state) or another state's staff get 404 on every action; oversight gets 403."""
    owner = make_actor("provider", state="TX")
    other_practice = make_actor("provider", state="TX")
    other_staff = make_actor("reviewer", state="OK")
    cms = make_actor("oversight")
    t = ticket(client, owner)
    for actor, code in ((other_practice, 404), (other_staff, 404)):
        assert act(client, actor, t["id"], "resolve", {}).status_code == code
        assert act(client, actor, t["id"], "messages", {"body": "x"}).status_code == code
    assert act(client, other_practice, t["id"], "reopen", {"reason": "x"}).status_code == 404
    assert act(client, cms, t["id"], "resolve", {}).status_code == 403
    v = get(client, owner, t["id"])
    assert v["status"] == "open" and v["messages"] == [] and v["first_response_at"] is None
    assert [a for a, _ in audit_actions(rt, t["id"])] == ["support.open"]


def test_web_forms_refuse_cross_org_and_repeated_actions_without_writing(
    client: TestClient, make_actor: Any, rt: Runtime
) -> None:
    """Through the pages: another practice's forms are a 404, a second resolve a clear refusal, never a 500."""
    owner = make_actor("provider", state="TX")
    other = make_actor("provider", state="TX")
    staff = make_actor("reviewer", state="TX")
    t = ticket(client, owner)
    tid = t["id"]

    sign_in(client, other.key)
    assert client.get(f"/support/{tid}").status_code == 404
    for path, purpose, data in (
        ("message", "support-message", {"body": "hello"}),
        ("resolve", "support-resolve", {"note": "done"}),
        ("reopen", "support-reopen", {"reason": "again"}),
    ):
        r = client.post(
            f"/support/{tid}/{path}",
            data={"csrf_token": csrf_token(other.key, purpose), **data},
            follow_redirects=False,
        )
        assert r.status_code == 404, (path, r.status_code)
    client.cookies.clear()

    sign_in(client, staff.key)
    form = {"csrf_token": csrf_token(staff.key, "support-resolve"), "note": "Fixed"}
    assert client.post(f"/support/{tid}/resolve", data=form, follow_redirects=False).status_code == 303
    again = client.post(f"/support/{tid}/resolve", data=form, follow_redirects=False)
    assert again.status_code == 409 and "already resolved" in again.text
    client.cookies.clear()

    v = get(client, owner, tid)
    assert v["status"] == "resolved"
    assert [m["kind"] for m in v["messages"]] == ["resolution"]
    assert [a for a, _ in audit_actions(rt, tid)] == ["support.open", "support.resolve"]


def test_compliance_period_that_ends_before_it_starts_is_a_422_on_until(
    client: TestClient, make_actor: Any
) -> None:
    """An inverted period is a mistake, not an empty answer: 422 naming `until`; a bad date names its field."""
    cms = make_actor("oversight")
    r = client.get("/api/v1/support/compliance?since=2026-03-10&until=2026-03-01", headers=cms.headers)
    assert r.status_code == 422, r.text
    assert [f["field"] for f in r.json()["error"]["fields"]] == ["until"]
    r = client.get("/api/v1/support/compliance?since=2026-02-30", headers=cms.headers)
    assert r.status_code == 422 and "since" in r.json()["error"]["fields"][0]["field"]
    ok = client.get("/api/v1/support/compliance?since=2026-03-01&until=2026-03-10", headers=cms.headers)
    assert ok.status_code == 200
