"""The penalty ledger: per participant and month (state time), MAC forwarding delay, who sees it."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient

from wiserpa.deadlines.service import price, sweep
from wiserpa.policy.profiles import PenaltyPolicy


def test_price_is_flat_plus_started_days_capped() -> None:
    p = PenaltyPolicy(per_miss_usd=500, per_day_late_usd=100, max_per_miss_usd=1000)
    assert price(p, 0) == (0, 500)
    assert price(p, 1) == (1, 600)
    assert price(p, 86_400) == (1, 600)
    assert price(p, 86_401) == (2, 700)
    assert price(p, 83 * 86_400) == (83, 1000)  # the 83-day wait, capped


def test_ledger_month_is_the_due_month_in_state_time_and_shows_forwarding_delay(
    client: TestClient, rt, clock, submit_pended, make_actor
) -> None:
    # Received 2026-03-29 02:00 UTC (Mar 28 21:00 CDT): due 72 h later, Mar 31 21:00 CDT = Apr 1 02:00 UTC.
    clock.set(dt.datetime(2026, 3, 29, 2, 0, tzinfo=dt.UTC))
    mac = submit_pended(channel="mac_forwarded", mac_received_at="2026-03-28T20:00:00Z")
    assert mac["clock_started_at"] == "2026-03-28T20:00:00Z"  # asa-reform counts from MAC receipt
    portal = submit_pended()
    clock.set(dt.datetime(2026, 4, 5, tzinfo=dt.UTC))
    with rt.sessions() as s:
        assert sweep(s, rt).misses_recorded == 2

    oversight = make_actor("oversight")
    ledger = client.get("/api/v1/penalties", headers=oversight.headers).json()
    assert ledger["enforced"] is True
    (line,) = ledger["items"]
    assert (line["participant"], line["month"], line["state"]) == ("Cohere Health", "2026-03", "TX")
    assert line["misses"] == 2 and line["by_resolution"]["deemed"] == 2
    assert line["amount_usd"] == 2 * 500 and line["status"] == "enforced"
    assert line["mac_forwarded_misses"] == 1
    assert line["forwarding_delay_seconds_max"] == 6 * 3600

    misses = client.get("/api/v1/deadlines/misses", headers=oversight.headers).json()["items"]
    by_id = {m["request_id"]: m for m in misses}
    assert by_id[mac["id"]]["forwarding_delay_seconds"] == 6 * 3600
    assert by_id[portal["id"]]["forwarding_delay_seconds"] is None
    assert client.get("/api/v1/penalties?month=2026-04", headers=oversight.headers).json()["items"] == []


def test_scope_reviewer_own_state_provider_forbidden(
    client: TestClient, rt, clock, submit_pended, make_actor
) -> None:
    submit_pended()
    clock.advance(dt.timedelta(days=4))
    with rt.sessions() as s:
        sweep(s, rt)
    tx = make_actor("reviewer", state="TX")
    wa = make_actor("reviewer", state="WA")
    provider = make_actor("provider")
    assert len(client.get("/api/v1/penalties", headers=tx.headers).json()["items"]) == 1
    assert client.get("/api/v1/penalties", headers=wa.headers).json()["items"] == []
    assert client.get("/api/v1/deadlines/misses", headers=wa.headers).json()["total"] == 0
    assert client.get("/api/v1/penalties", headers=provider.headers).status_code == 403
    bad = client.get("/api/v1/penalties?month=2026-3", headers=tx.headers)
    assert bad.status_code == 422 and bad.json()["error"]["fields"][0]["field"] == "month"


@pytest.mark.parametrize("profile_name", ["wiser-2026"])
def test_wiser_2026_withdrawal_after_due_resolves_the_miss(
    client: TestClient, rt, clock, submit_pended, make_actor, profile_name: str
) -> None:
    view = submit_pended()
    clock.advance(dt.timedelta(hours=72 + 30))
    r = client.post(
        f"/api/v1/requests/{view['id']}/withdraw", json={"reason": "gave up"}, headers=view["_headers"]
    )
    assert r.status_code == 200, r.text
    oversight = make_actor("oversight")
    (miss,) = client.get("/api/v1/deadlines/misses", headers=oversight.headers).json()["items"]
    assert (miss["resolution"], miss["detected_by"], miss["late_seconds"]) == (
        "withdrawn",
        "withdrawal",
        30 * 3600,
    )
    assert miss["penalty_usd"] == 500 + 2 * 100 and miss["penalty_enforced"] is False
