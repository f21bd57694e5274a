"""The stored report blocks (reporting/rollup.py) give exactly the report of the pure live path.

The hand-built set of test_metrics.py (r1..r8, Texas, March 2026, built through the services) with blocks
of two request ids, so every block boundary is crossed: a resubmission and its predecessor in different
blocks, open requests deemed only by the report's own clock, then more activity after blocks were stored.
Each report is compared, figure by figure, with the report that reads every row live, on both databases.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import T0
from tests.factories import body
from tests.reporting import handbuilt
from wiserpa.policy.clock import FixedClock
from wiserpa.policy.profiles import PenaltyPolicy
from wiserpa.reporting import metrics as m
from wiserpa.reporting import rollup, service
from wiserpa.reporting.models import ReportChunk
from wiserpa.requests import service as requests
from wiserpa.requests.schemas import SubmitRequestIn
from wiserpa.runtime import Runtime

H = dt.timedelta(hours=1)


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two request ids per block: a handful of requests spread over many blocks."""
    monkeypatch.setattr(rollup, "CHUNK", 2)


@pytest.fixture
def actors(make_actor: Callable[..., Any]) -> tuple[Any, Any]:
    """A Texas practice and a Cohere Health reviewer."""
    return make_actor("provider"), make_actor("reviewer")


@pytest.fixture
def dataset(rt: Runtime, clock: FixedClock, actors: tuple[Any, Any]) -> dict[str, int]:
    """r1..r8 of test_metrics.py (and a peer-to-peer asked on r4), built through the services."""
    provider, reviewer = actors
    return handbuilt.build(rt, clock, provider, reviewer, peer_to_peer=True)


def _figures(report: service.PublicReport) -> dict[str, Any]:
    return {
        "as_of": report.as_of,
        "months": report.months,
        "years": report.years,
        "values": report.values,
        "stats": report.stats,
        "cms0057": report.cms0057,
        "compensation": report.compensation,
        "sources": report.sources,
    }


def _same_as_live(rt: Runtime) -> dict[str, float]:
    """Build the rolled-up and the live report, public and oversight; assert equal; the rollup's timings."""
    for suppress in (True, False):
        live = service._build(rt, suppress=suppress, rollup=False)
        rolled = service._build(rt, suppress=suppress, rollup=True)
        assert _figures(rolled) == _figures(live)
    return rolled.timings


def _stored(rt: Runtime) -> dict[int, tuple[int, int]]:
    with rt.sessions() as session:
        rows = session.query(ReportChunk.chunk, ReportChunk.requests, ReportChunk.decisions).all()
    return {r.chunk: (r.requests, r.decisions) for r in rows}


def test_rollup_gives_the_live_report_and_reuses_unchanged_blocks(
    rt: Runtime, clock: FixedClock, dataset: dict[str, int], actors: tuple[Any, Any]
) -> None:
    provider, reviewer = actors
    first = _same_as_live(rt)
    # The first report summed the blocks (public), the second (oversight) found them stored.
    assert first["blocks_summed"] == 0 and first["blocks_reused"] >= 4
    assert set(_stored(rt)) == {i // 2 for i in dataset.values()}
    # The hand-computed figures of test_metrics.py, through the rollup.
    report = service.oversight_report(rt)
    row = report.row("Cohere Health", "2026-03")
    assert row["requests"] == 8 and row["outcome.deemed"] == 1 and row["outcome.pending"] == 1
    assert row["standard.approved_after_appeal"] is None  # yearly measure
    assert report.values[("standard.approved_after_appeal", "Cohere Health", "2026")] == 1
    assert row["median_hours_standard"] == pytest.approx(10.0)
    assert row["p90_hours_standard"] == pytest.approx(51.2)
    assert row["penalty_usd"] == pytest.approx(500.0)
    assert report.values[("peer_to_peer", "Cohere Health", "2026")] == 1  # r4

    # More activity: an affirmed request withdrawn (an old block changes), r8 affirmed, two new
    # submissions (r9 left pending, r10 non-affirmed); then time passes, so r9 is deemed on read.
    before = _stored(rt)
    clock.set(T0 + 120 * H)
    handbuilt.withdraw(rt, provider, dataset["r1"])
    handbuilt.decide(rt, reviewer, dataset["r8"], "affirm")
    new = handbuilt.submit(rt, provider, "incomplete", 9)
    unmet = handbuilt.submit(rt, provider, "unmet", 10)
    handbuilt.decide(rt, reviewer, unmet, "non_affirm")
    clock.set(T0 + 200 * H)
    after = _same_as_live(rt)
    changed = {dataset["r1"] // 2, dataset["r8"] // 2, new // 2, unmet // 2}
    # Only the blocks whose requests changed were summed again (by the first of the two builds).
    assert after["blocks_summed"] == 0
    stored = _stored(rt)
    assert {c for c in stored if stored[c] != before.get(c)} == changed
    report = service.oversight_report(rt)
    assert report.values[("outcome.withdrawn", "Cohere Health", "2026-03")] == 2
    assert report.values[("outcome.deemed", "Cohere Health", "2026-03")] == 2  # r4, and r9 on read
    assert report.values[("outcome.non_affirmed", "Cohere Health", "2026-03")] == 2  # r3, r10


def test_blocks_summed_under_other_penalties_are_not_reused(rt: Runtime, dataset: dict[str, int]) -> None:
    _same_as_live(rt)  # blocks stored under the profile's penalties
    other = PenaltyPolicy(enforced=True, per_miss_usd=1000, per_day_late_usd=0, max_per_miss_usd=1000)
    with service._read(rt) as conn:
        got = rollup.collect(conn, now=rt.clock.now(), penalties=other)
        live = m.collect(conn, now=rt.clock.now(), penalties=other)
    assert got.reused == 0 and len(got.fresh) == len(_stored(rt))
    assert got.data.requests.keys() == live.requests.keys()
    for key, row in live.requests.items():
        assert got.data.requests[key] == pytest.approx(row)
    assert got.data.durations == live.durations
    penalty = sum(r["penalty_usd"] for r in got.data.requests.values())
    assert penalty == pytest.approx(1000.0)  # r4 alone is late: $1,000 flat under these penalties


def test_report_inside_a_writing_transaction_does_not_wait_for_itself(
    rt: Runtime, dataset: dict[str, int], actors: tuple[Any, Any]
) -> None:
    """A view's session may hold SQLite's write lock while the report stores its blocks."""
    provider, _ = actors
    raw = body(case="complete", seed=10)
    with rt.sessions() as session:
        requests.submit(
            session, rt, principal=provider.principal, data=SubmitRequestIn.model_validate(raw), raw=raw
        )
        session.flush()  # this thread now holds the write lock (SQLite) until the commit
        report = service.public_report(rt, use_cache=False)
        session.commit()
    assert report.as_of == rt.clock.now()
    assert _figures(report) == _figures(service._build(rt, suppress=True, rollup=False))
