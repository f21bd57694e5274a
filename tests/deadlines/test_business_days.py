"""Due times in business days through a submitted request: weekend, federal holiday and DST, under a custom
profile written to a YAML file; then the exact due instant decides deemed approval."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from wiserpa.policy.profiles import load_profile

UTC = dt.UTC


@pytest.fixture
def profile_name(tmp_path: Path) -> str:
    """A custom profile: the reforms, with timelines counted in business days (as in the OPD program)."""
    path = tmp_path / "business-days.yaml"
    path.write_text(
        "id: business-days\n"
        'version: "test"\n'
        "title: Business-day timelines\n"
        "extends: asa-reform\n"
        "timelines:\n"
        "  standard: {amount: 2, unit: business_days}\n"
        "  expedited: {amount: 1, unit: business_days}\n",
        encoding="utf-8",
    )
    profile = load_profile(path)
    assert profile.timelines.standard.unit == "business_days"
    return str(path)


def _due(view: dict) -> dt.datetime:
    return dt.datetime.fromisoformat(view["due_at"].replace("Z", "+00:00"))


def _status_at(client: TestClient, clock, view: dict, t: dt.datetime) -> str:
    clock.set(t)
    return client.get(f"/api/v1/requests/{view['id']}", headers=view["_headers"]).json()["status"]


@pytest.mark.parametrize(
    ("received", "expected_due", "why"),
    [
        # Saturday 2026-03-14: day 0 is Monday the 16th, due at 17:00 CDT Wednesday the 18th.
        (dt.datetime(2026, 3, 14, 15, 0, tzinfo=UTC), dt.datetime(2026, 3, 18, 22, 0, tzinfo=UTC), "weekend"),
        # Friday 2026-03-06 16:00 CST, DST starts Sunday the 8th: due 17:00 CDT Tuesday the 10th = 22:00 UTC.
        (dt.datetime(2026, 3, 6, 22, 0, tzinfo=UTC), dt.datetime(2026, 3, 10, 22, 0, tzinfo=UTC), "dst"),
        # Thursday 2026-07-02 10:00 CDT; Friday the 3rd is the observed Independence Day: due Tuesday the 7th.
        (dt.datetime(2026, 7, 2, 15, 0, tzinfo=UTC), dt.datetime(2026, 7, 7, 22, 0, tzinfo=UTC), "holiday"),
        # After close on Friday 2026-03-20 (17:30 CDT): day 0 is Monday the 23rd, due Wednesday the 25th.
        (
            dt.datetime(2026, 3, 20, 22, 30, tzinfo=UTC),
            dt.datetime(2026, 3, 25, 22, 0, tzinfo=UTC),
            "after hours",
        ),
    ],
)
def test_business_day_due_times_and_the_exact_instant(
    client: TestClient, clock, submit_pended, received: dt.datetime, expected_due: dt.datetime, why: str
) -> None:
    clock.set(received)
    view = submit_pended(dos=dt.date(2026, 8, 20))
    assert view["profile"]["id"] == "business-days"
    assert _due(view) == expected_due, why
    assert _status_at(client, clock, view, expected_due - dt.timedelta(seconds=1)) == "pended"
    assert _status_at(client, clock, view, expected_due) == "deemed_affirmed"


@pytest.mark.parametrize(
    ("state", "received", "expected_due", "why"),
    [
        # Thu 2027-12-30 10:00 PST; Fri the 31st is New Year's Day 2028 observed: due Tue 2028-01-04 17:00 PST.
        (
            "WA",
            dt.datetime(2027, 12, 30, 18, 0, tzinfo=UTC),
            dt.datetime(2028, 1, 5, 1, 0, tzinfo=UTC),
            "observed New Year's Day in the old year, due in the next year (and the next UTC day)",
        ),
        # Wed 2027-12-22 16:59 MST (day 0); Fri the 24th is Christmas observed: due Mon the 27th 17:00 MST.
        (
            "AZ",
            dt.datetime(2027, 12, 22, 23, 59, tzinfo=UTC),
            dt.datetime(2027, 12, 28, 0, 0, tzinfo=UTC),
            "a minute before close counts that day; Arizona stays UTC-7",
        ),
        # Fri 2027-06-18 is Juneteenth observed (the 19th is a Saturday): day 0 Mon the 21st, due Wed 17:00 EDT.
        (
            "NJ",
            dt.datetime(2027, 6, 18, 16, 0, tzinfo=UTC),
            dt.datetime(2027, 6, 23, 21, 0, tzinfo=UTC),
            "received on an observed holiday",
        ),
        # Fri 2027-11-05 16:00 EDT; clocks fall back on Sunday: due Tue the 9th 17:00 EST.
        (
            "OH",
            dt.datetime(2027, 11, 5, 20, 0, tzinfo=UTC),
            dt.datetime(2027, 11, 9, 22, 0, tzinfo=UTC),
            "fall back between receipt and due time",
        ),
        # Sat 2026-12-26, after Christmas on Friday: day 0 Mon the 28th, due Wed the 30th 17:00 CST.
        (
            "OK",
            dt.datetime(2026, 12, 26, 15, 0, tzinfo=UTC),
            dt.datetime(2026, 12, 30, 23, 0, tzinfo=UTC),
            "weekend after a holiday",
        ),
    ],
)
def test_business_day_due_times_in_each_states_zone(
    client: TestClient,
    clock,
    submit_pended,
    state: str,
    received: dt.datetime,
    expected_due: dt.datetime,
    why: str,
) -> None:
    clock.set(received)
    view = submit_pended(state=state, dos=received.date() + dt.timedelta(days=40))
    assert view["state"] == state
    assert _due(view) == expected_due, why
    assert _status_at(client, clock, view, expected_due - dt.timedelta(seconds=1)) == "pended"
    assert _status_at(client, clock, view, expected_due) == "deemed_affirmed"
