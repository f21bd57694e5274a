"""Derived-figure leaks in the public report: no published figure may give away a count of 1..10."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import T0
from tests.reporting.handbuilt import decide, submit
from wiserpa.policy.clock import FixedClock
from wiserpa.reporting import service
from wiserpa.runtime import Runtime


@pytest.fixture
def profile_name() -> str:
    """WISeR as run: no deemed approval, so a late request may stay open (late but not yet reviewed)."""
    return "wiser-2026"


def test_pay_table_never_shows_a_small_hidden_review_count(
    client: TestClient, rt: Runtime, clock: FixedClock, make_actor: Callable[..., Any]
) -> None:
    """15 late requests, 3 decided: the affirmed count (3) is hidden, so the pay's review count must be too."""
    service.clear_cache()
    provider, reviewer = make_actor("provider"), make_actor("reviewer")
    ids = [submit(rt, provider, "incomplete", seed) for seed in range(60, 75)]  # all pend
    clock.set(T0 + dt.timedelta(days=30))  # every request is past its due time, none decided
    for request_id in ids[:3]:
        decide(rt, reviewer, request_id, "affirm")  # decided late: still counted late

    metrics = client.get("/api/v1/public/metrics?grain=year").json()
    tx = next(r for r in metrics["rows"] if r["state"] == "TX")
    assert tx["requests"] == 15 and tx["timeliness.late"] == 15 and tx["timeliness.on_time"] == 0
    assert tx["outcome.affirmed"] is None  # 3: suppressed

    pay = client.get("/api/v1/public/compensation").json()
    row = next(x for x in pay["participants"] if x["participant"] == tx["participant"])
    assert row["suppressed"] or not 1 <= row["inputs"]["reviews"] <= 10, row["inputs"]
    page = client.get("/public/compensation").text
    assert "an input is a suppressed small count" in page


def test_pay_table_shows_reviews_a_reader_can_already_work_out(
    client: TestClient, rt: Runtime, clock: FixedClock, make_actor: Callable[..., Any]
) -> None:
    """Every one of 15 late requests decided: the review count is public anyway, so pay is shown."""
    service.clear_cache()
    provider, reviewer = make_actor("provider"), make_actor("reviewer")
    ids = [submit(rt, provider, "incomplete", seed) for seed in range(60, 75)]
    clock.set(T0 + dt.timedelta(days=30))
    for request_id in ids:
        decide(rt, reviewer, request_id, "affirm")
    pay = client.get("/api/v1/public/compensation").json()
    tx = next(x for x in pay["participants"] if x["participant"] == "Cohere Health")
    assert not tx["suppressed"] and tx["inputs"]["reviews"] == 15
    assert tx["reform"]["total_usd"] > 0
