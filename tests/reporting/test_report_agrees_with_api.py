"""Public report figures agree with the domain APIs that compute the same thing (boundary instants)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import T0
from tests.reporting.handbuilt import submit, withdraw
from wiserpa.policy.clock import FixedClock
from wiserpa.reporting import service
from wiserpa.reporting.service import ALL
from wiserpa.runtime import Runtime


def test_a_support_answer_at_the_due_instant_is_a_miss_in_the_public_report_as_in_the_sla_api(
    client: TestClient, clock: FixedClock, make_actor: Callable[..., Any]
) -> None:
    """The SLA window ends at the due instant (docs/support-and-experience.md): an answer then is late."""
    service.clear_cache()
    provider, reviewer, overseer = make_actor("provider"), make_actor("reviewer"), make_actor("oversight")
    start = clock.now()
    tickets = []
    for i in range(11):  # enough for the public figure not to be suppressed
        opened = client.post(
            "/api/v1/support/tickets",
            json={"category": "portal_access", "subject": f"cannot sign in {i}", "description": "locked out"},
            headers=provider.headers,
        )
        assert opened.status_code == 201, opened.text
        tickets.append(opened.json())
    for t in tickets:
        clock.set(dt.datetime.fromisoformat(t["response_due_at"].replace("Z", "+00:00")))
        answered = client.post(
            f"/api/v1/support/tickets/{t['id']}/messages", json={"body": "reset"}, headers=reviewer.headers
        )
        assert answered.status_code == 200, answered.text
    clock.set(start + dt.timedelta(days=10))

    sla = client.get("/api/v1/support/compliance", headers=overseer.headers).json()["participants"]
    tx = next(x for x in sla if x["state"] == "TX")
    assert tx["within_sla"] == 0 and tx["breached"] == 11

    rows = client.get("/api/v1/public/metrics?grain=year").json()["rows"]
    public = next(r for r in rows if r["state"] == "TX")
    assert public["support_cycles"] == 11
    assert public["support.met"] == 0 and public["support.missed"] == 11
    assert public["pct_support_sla_met"] == 0.0


@pytest.mark.parametrize("profile_name", ["asa-reform", "wiser-2026"])
def test_a_request_withdrawn_after_its_due_time_is_a_deadline_miss_in_the_report_as_in_the_ledger(
    client: TestClient, rt: Runtime, clock: FixedClock, make_actor: Callable[..., Any]
) -> None:
    """The oversight report's late count and penalties agree with the official ledger (a withdrawal counted)."""
    service.clear_cache()
    provider, overseer = make_actor("provider"), make_actor("oversight")
    ids = [submit(rt, provider, "incomplete", seed) for seed in range(60, 64)]  # all pend
    before = submit(rt, provider, "incomplete", 64)
    clock.set(T0 + dt.timedelta(hours=1))
    withdraw(rt, provider, before)  # in time: no miss
    clock.set(T0 + dt.timedelta(days=20))  # the other four are past due
    withdraw(rt, provider, ids[0])
    clock.set(T0 + dt.timedelta(days=22))
    ledger = client.get("/api/v1/penalties", headers=overseer.headers).json()["items"]
    assert sum(line["misses"] for line in ledger) == 4
    report = service.oversight_report(rt)
    assert report.values[("timeliness.late", ALL, "2026")] == 4
    assert report.values[("timeliness.withdrawn", ALL, "2026")] == 1
    assert report.values[("outcome.withdrawn", ALL, "2026")] == 2
    assert report.stats[("penalty_usd", ALL, "2026")] == pytest.approx(sum(x["amount_usd"] for x in ledger))
