"""Report metrics on a hand-built data set: every figure below is worked out by hand from the timestamps.

Profile asa-reform (deemed approval on, 72 calendar hours standard, penalties $500 + $100/started day).
Texas (Cohere Health), everything received in March 2026:

    r1  complete, standard        T0        auto-affirmed at T0             0 h, on time
    r2  incomplete, standard      T0        reviewer affirms at T0+10h     10 h, on time
    r3  unmet, standard           T0        reviewer non-affirms T0+20h    20 h, on time
    r4  incomplete, standard      T0        never decided: deemed at T0+72h 72 h, late (0 s late: $500)
    r5  complete, expedited       T0        auto-affirmed at T0             0 h, on time
    r6  incomplete, standard      T0        withdrawn at T0+1h              (no decision)
    r7  resubmission of r3        T0+30h    auto-affirmed at T0+30h         0 h, on time
    r8  incomplete, standard      T0+99h    open, due T0+171h              not yet due at T0+100h

Report time: T0+100h. No sweep runs: r4 is deemed only by the report's own reading of time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.reporting import handbuilt
from wiserpa.policy.clock import FixedClock
from wiserpa.reporting import metrics as m
from wiserpa.reporting import service
from wiserpa.requests import service as requests
from wiserpa.runtime import Runtime

TX = "Cohere Health"


@pytest.fixture
def dataset(rt: Runtime, clock: FixedClock, make_actor: Callable[..., Any]) -> dict[str, int]:
    """Build r1..r8 through the services, moving the clock."""
    return handbuilt.build(rt, clock, make_actor("provider"), make_actor("reviewer"))


def _facts(rt: Runtime) -> service.Facts:
    with rt.engine.connect() as conn:
        data = m.collect(conn, now=rt.clock.now(), penalties=rt.profile.penalties)
    return service.build_facts(data, [TX])


def test_statuses_are_what_the_data_set_says(rt: Runtime, dataset: dict[str, int]) -> None:
    with rt.sessions() as session:
        status = {k: session.get(requests.PaRequest, v).status for k, v in dataset.items()}  # type: ignore[union-attr]
    assert status == {
        "r1": "affirmed",
        "r2": "affirmed",
        "r3": "non_affirmed",
        "r4": "pended",
        "r5": "affirmed",
        "r6": "withdrawn",
        "r7": "affirmed",
        "r8": "pended",
    }


def test_counts_by_hand(rt: Runtime, dataset: dict[str, int]) -> None:
    facts = _facts(rt)
    assert facts.months == ["2026-03"]
    # Monthly measures per month; rare ones (channels, CMS split, resubmissions) are yearly only.
    month = {k[0]: v for k, v in facts.counts.items() if k[1] == TX and k[2] == "2026-03"}
    assert "channel.portal" not in month
    c = {k[0]: v for k, v in facts.counts.items() if k[1] == TX and k[2] == "2026"}
    assert month["requests"] == c["requests"] == 8
    assert c["channel.portal"] == 8 and c["channel.mac_forwarded"] == 0 and c["channel.fhir"] == 0
    # r1 r2 r5 r7 affirmed; r3 non-affirmed; r4 deemed (no sweep ran); r6 withdrawn; r8 pending.
    assert (
        c["outcome.affirmed"],
        c["outcome.non_affirmed"],
        c["outcome.deemed"],
        c["outcome.withdrawn"],
        c["outcome.pending"],
        c["outcome.exempt"],
        c["outcome.gold_card"],
    ) == (4, 1, 1, 1, 1, 0, 0)
    assert (c["urgency.standard"], c["urgency.expedited"]) == (7, 1)
    # On time: r1 r2 r3 r5 r7; late: r4 (deemed); not yet due: r8; withdrawn: r6.
    assert (c["timeliness.on_time"], c["timeliness.late"], c["timeliness.not_yet_due"]) == (5, 1, 1)
    # Standard: approved r1 r2 r4 r7, denied r3, other r6 r8. Expedited: approved r5.
    assert (c["standard.approved"], c["standard.denied"], c["standard.other"]) == (4, 1, 2)
    assert (c["expedited.approved"], c["expedited.denied"], c["expedited.other"]) == (1, 0, 0)
    # r3 was non-affirmed and then approved through its affirmed resubmission r7.
    assert c["standard.approved_after_appeal"] == 1
    assert (c["resubmissions"], c["resubmission.affirmed"], c["resubmission.non_affirmed"]) == (1, 1, 0)
    # All participants equal Texas here.
    assert facts.counts[("requests", service.ALL, "2026")] == 8


def test_durations_and_penalties_by_hand(rt: Runtime, dataset: dict[str, int]) -> None:
    facts = _facts(rt)
    s = facts.sums
    # Standard decided: r1 0 h, r2 10 h, r3 20 h, r4 72 h (deemed at its due time), r7 0 h.
    assert s[("dur_n.standard", TX, "2026-03")] == 5
    assert s[("dur_sum.standard", TX, "2026-03")] == pytest.approx(102.0)
    assert s[("dur_n.expedited", TX, "2026-03")] == 1
    # r4: deemed at its due instant, 0 s late: $500 flat, no day charge.
    assert s[("penalty_usd", TX, "2026-03")] == pytest.approx(500.0)
    with rt.engine.connect() as conn:
        q = m.duration_quantiles(
            conn, now=rt.clock.now(), grains=[("participant", "month", "urgency"), ("year", "urgency")]
        )
    # Sorted [0, 0, 10, 20, 72]: median 10; p90 at rank 0.9 × 4 = 3.6 → 20 + 0.6 × 52 = 51.2.
    med, p90 = q[("participant", "month", "urgency")][(TX, "2026-03", "standard")]
    assert med == pytest.approx(10.0) and p90 == pytest.approx(51.2)
    assert q[("year", "urgency")][("2026", "expedited")] == (0.0, 0.0)


def test_oversight_report_has_the_statistics_unsuppressed(rt: Runtime, dataset: dict[str, int]) -> None:
    report = service.oversight_report(rt)
    row = report.row(TX, "2026-03")
    assert row["requests"] == 8
    assert row["pct_decided_within_timeline"] == pytest.approx(round(100 * 5 / 6, 2))
    assert row["mean_hours_standard"] == pytest.approx(20.4)
    assert row["median_hours_standard"] == pytest.approx(10.0)
    assert row["p90_hours_standard"] == pytest.approx(51.2)
    assert row["penalty_usd"] == pytest.approx(500.0)
    cms = {x["key"]: x for x in report.cms0057[(TX, "2026")]}
    assert list(cms)[:2] == ["standard_approved_pct", "standard_denied_pct"]
    assert cms["standard_approved_pct"]["value"] == pytest.approx(round(100 * 4 / 7, 2))
    assert cms["standard_approved_after_appeal_pct"]["value"] == pytest.approx(round(100 / 7, 2))
    assert cms["extended_approved_pct"]["value"] == 0.0
    assert cms["standard_median_hours"]["value"] == pytest.approx(10.0)


def test_public_report_hides_every_small_count(rt: Runtime, dataset: dict[str, int]) -> None:
    report = service.public_report(rt, use_cache=False)
    # Eight requests: every non-zero count is 1..10, so nothing non-zero may be published.
    assert all(v is None or v == 0 or v > 10 for v in report.values.values())
    assert report.values[("requests", TX, "2026-03")] is None
    assert report.stats[("median_hours_standard", TX, "2026-03")] is None
    assert report.compensation[(TX, "2026")]["suppressed"] is True


def test_week_cuts_for_oversight(rt: Runtime, dataset: dict[str, int]) -> None:
    rows = service.oversight_cuts(rt, period="week")
    # T0 is Monday 2 March 2026; r8 arrived Friday 6 March: the same ISO week.
    assert [(r["state"], r["period"], r["requests"]) for r in rows] == [("TX", "2026-03-02", 8)]
