"""Property tests: in the public report no count of 1..10 is published, and none can be derived.

"Derived" is checked by an intruder written here independently of the product's audit: it knows every
published count, every sum that ties them together (``service.equations``), that counts are ≥ 0 and —
pessimistically — which hidden counts are small (so they lie in 1..10). For each hidden small count it
asks a linear program for the smallest and largest possible value; a range holding one integer is a leak.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from wiserpa.reporting import metrics as m
from wiserpa.reporting import service
from wiserpa.reporting.service import ALL

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
COUNT = st.one_of(st.integers(0, 12), st.integers(0, 60), st.just(0))


@st.composite
def fine_data(draw: st.DrawFn) -> tuple[m.FineData, list[str]]:
    """Random fine rows for 2-3 participants over 1-3 months (consistent partitions by construction)."""
    participants = ["P1", "P2", "P3"][: draw(st.integers(2, 3))]
    months = ["2026-01", "2026-02", "2026-03"][: draw(st.integers(1, 3))]
    data = m.FineData(now=NOW)
    for p in participants:
        for month in months:
            for u in m.URGENCIES:
                outcomes = {o: draw(COUNT) for o in m.OUTCOMES}
                n = sum(outcomes.values())
                if n == 0:
                    continue
                row: dict[str, float] = dict.fromkeys(m.REQUEST_FIELDS, 0.0)
                row["n"] = n
                for o, v in outcomes.items():
                    row[f"outcome.{o}"] = v
                row["channel.portal"] = n - outcomes["pending"]
                row["channel.fhir"] = outcomes["pending"]
                open_ = outcomes["pending"]
                late_open = draw(st.integers(0, open_))
                decided = n - open_ - outcomes["withdrawn"]
                late_decided = draw(st.integers(0, decided - outcomes["deemed"])) + outcomes["deemed"]
                row["timeliness.on_time"] = decided - late_decided
                row["timeliness.late"] = late_decided + late_open
                row["timeliness.not_yet_due"] = open_ - late_open
                row["timeliness.withdrawn"] = outcomes["withdrawn"]  # withdrawn before their due time
                row["dur_n"] = decided
                row["dur_sum_hours"] = 10.0 * decided
                data.requests[(p, "TX", "cat", month, u)] = row
    return data, participants


def _leaks(facts: service.Facts, published: dict[service.Key, int | None]) -> list[service.Key]:
    hidden = sorted(k for k, v in published.items() if v is None)
    index = {k: i for i, k in enumerate(hidden)}
    rows, rhs = [], []
    for plus, minus in service.equations(facts):
        coeffs = np.zeros(len(hidden))
        b = 0.0
        for sign, keys in ((1, plus), (-1, minus)):
            for k in keys:
                if k in index:
                    coeffs[index[k]] += sign
                else:
                    value = published[k]
                    assert value is not None
                    b -= sign * value
        if coeffs.any():
            rows.append(coeffs)
            rhs.append(b)
        else:
            assert abs(b) < 1e-9, "published figures must be consistent"
    small = [k for k in hidden if 1 <= facts.counts[k] <= 10]
    if not small or not rows:
        return small if not rows else []
    a = np.array(rows)
    bounds = [(1, 10) if 1 <= facts.counts[k] <= 10 else (0, None) for k in hidden]
    leaks = []
    for k in small:
        c = np.zeros(len(hidden))
        c[index[k]] = 1
        lo = linprog(c, A_eq=a, b_eq=rhs, bounds=bounds, method="highs")
        hi = linprog(-c, A_eq=a, b_eq=rhs, bounds=bounds, method="highs")
        assert lo.status == 0
        if hi.status == 3:
            continue
        if math.floor(-hi.fun + 1e-6) <= math.ceil(lo.fun - 1e-6):
            leaks.append(k)
    return leaks


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(fine_data())
def test_no_small_count_is_published_or_derivable(sample: tuple[m.FineData, list[str]]) -> None:
    data, participants = sample
    facts = service.build_facts(data, participants)
    published = service.publish(facts)
    assert set(published) == set(facts.counts)
    for key, value in published.items():
        assert value is None or not (1 <= value <= 10), key
        assert value is None or value == facts.counts[key]
    assert _leaks(facts, published) == []


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fine_data())
def test_rates_use_published_counts_only(sample: tuple[m.FineData, list[str]]) -> None:
    data, participants = sample
    facts = service.build_facts(data, participants)
    published = service.publish(facts)
    stats = service._stats(facts, published, {})
    for p in [*participants, ALL]:
        for period in facts.periods:
            pct = stats[("pct_non_affirmed", p, period)]
            n, d = published[("outcome.non_affirmed", p, period)], published[("requests", p, period)]
            if n is None or d is None or d == 0:
                assert pct is None
            else:
                assert pct == round(100 * n / d, 2)
            mean = stats[("mean_hours_standard", p, period)]
            dur_n = facts.sums.get(("dur_n.standard", p, period), 0)
            if published[("urgency.standard", p, period)] is None or 1 <= dur_n <= 10:
                assert mean is None


def test_a_lone_small_cell_is_protected_across_months_and_participants() -> None:
    """One participant has 3 deemed requests in one month and none elsewhere: every route to 3 is closed."""
    data = m.FineData(now=NOW)
    for p in ("P1", "P2"):
        for month in ("2026-01", "2026-02"):
            row = dict.fromkeys(m.REQUEST_FIELDS, 0.0)
            deemed = 3 if (p, month) == ("P1", "2026-01") else 0
            row.update(
                {
                    "n": 100 + deemed,
                    "outcome.affirmed": 100,
                    "outcome.deemed": deemed,
                    "channel.portal": 100 + deemed,
                    "timeliness.on_time": 100,
                    "timeliness.late": deemed,
                    "dur_n": 100 + deemed,
                    "dur_sum_hours": 1000.0,
                }
            )
            data.requests[(p, "TX", "cat", month, "standard")] = row
    facts = service.build_facts(data, ["P1", "P2"])
    published = service.publish(facts)
    for period in (
        "2026-01",
        "2026",
    ):
        for p in ("P1", ALL):
            assert published[("outcome.deemed", p, period)] is None
            assert published[("timeliness.late", p, period)] is None
    assert _leaks(facts, published) == []
    # Large figures stay published where they do not give the small one away.
    assert published[("outcome.affirmed", "P2", "2026-02")] == 100
