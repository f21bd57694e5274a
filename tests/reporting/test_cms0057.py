"""CMS-0057-F metric set, checked against hand-computed values."""

from __future__ import annotations

import pytest

from wiserpa.reporting.cms0057 import Metric, PaCounts, cms0057_metrics

KEYS = [
    "standard_approved_pct",
    "standard_denied_pct",
    "standard_approved_after_appeal_pct",
    "extended_approved_pct",
    "expedited_approved_pct",
    "expedited_denied_pct",
    "standard_mean_hours",
    "standard_median_hours",
    "expedited_mean_hours",
    "expedited_median_hours",
]


def by_key(metrics: list[Metric]) -> dict[str, Metric]:
    return {m.key: m for m in metrics}


def big() -> PaCounts:
    return PaCounts(
        standard_total=200,
        standard_approved=150,
        standard_denied=40,  # 10 others: withdrawn / dismissed
        standard_approved_after_appeal=12,
        standard_extended_total=30,
        standard_extended_approved=20,
        expedited_total=50,
        expedited_approved=35,
        expedited_denied=15,
        standard_hours=[10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0, 200.0, 300.0],
        expedited_hours=[float(h) for h in range(1, 22)],  # 1..21
    )


def test_metric_set_and_order_follow_the_rule() -> None:
    assert [m.key for m in cms0057_metrics(big())] == KEYS


def test_hand_computed_values() -> None:
    m = by_key(cms0057_metrics(big()))
    # 10 "other" standard outcomes sit exactly at the threshold: they are hidden, so their smallest
    # non-zero neighbour (denied 40) is hidden too, and with it "% denied".
    assert m["standard_approved_pct"].value == pytest.approx(75.0)
    assert m["standard_approved_pct"].numerator == 150
    assert m["standard_approved_pct"].denominator == 200
    assert m["standard_denied_pct"].value is None and m["standard_denied_pct"].numerator is None
    assert m["standard_approved_after_appeal_pct"].value == pytest.approx(6.0)  # 12 / 200
    assert m["extended_approved_pct"].value == pytest.approx(10.0)  # 20 / 200, the rule's denominator
    assert m["expedited_approved_pct"].value == pytest.approx(70.0)
    assert m["expedited_denied_pct"].value == pytest.approx(30.0)
    # (10+…+100 = 550) + 200 + 300 = 1050 over 12 = 87.5; median of the 6th and 7th = (60+70)/2.
    assert m["standard_mean_hours"].value == pytest.approx(87.5)
    assert m["standard_median_hours"].value == pytest.approx(65.0)
    assert m["standard_mean_hours"].denominator == 12
    assert m["expedited_mean_hours"].value == pytest.approx(11.0)
    assert m["expedited_median_hours"].value == pytest.approx(11.0)
    assert {x.unit for x in m.values()} == {"percent", "hours"}


def test_all_outcomes_large_publishes_everything() -> None:
    c = PaCounts(
        standard_total=100,
        standard_approved=60,
        standard_denied=40,
        standard_approved_after_appeal=20,
        standard_extended_total=40,
        standard_extended_approved=30,
        expedited_total=40,
        expedited_approved=20,
        expedited_denied=20,
        standard_hours=[5.0] * 11,
        expedited_hours=[2.0] * 11,
    )
    m = by_key(cms0057_metrics(c))
    assert m["standard_denied_pct"].value == pytest.approx(40.0)
    assert m["extended_approved_pct"].value == pytest.approx(30.0)
    assert m["expedited_approved_pct"].value == pytest.approx(50.0)
    assert m["standard_median_hours"].value == 5.0


def test_small_denominators_are_suppressed() -> None:
    c = PaCounts(
        standard_total=8,
        standard_approved=6,
        standard_denied=2,
        standard_approved_after_appeal=1,
        standard_extended_total=2,
        standard_extended_approved=1,
        expedited_total=0,
        expedited_approved=0,
        expedited_denied=0,
        standard_hours=[1.0, 2.0, 3.0],
        expedited_hours=[],
    )
    m = by_key(cms0057_metrics(c))
    for key in KEYS[:4]:
        assert m[key].value is None
        assert m[key].numerator is None and m[key].denominator is None
    # Zero expedited requests: nothing to hide, but a rate over zero is undefined.
    assert m["expedited_approved_pct"].value is None
    assert m["expedited_approved_pct"].denominator == 0
    assert m["standard_mean_hours"].value is None and m["standard_mean_hours"].denominator is None
    assert m["expedited_mean_hours"].value is None and m["expedited_mean_hours"].denominator == 0


def test_complement_cannot_reveal_small_denied_count() -> None:
    # 95 approved of 100 with nothing else would give away "5 denied" as 100 − 95.
    c = PaCounts(
        standard_total=100,
        standard_approved=95,
        standard_denied=5,
        standard_approved_after_appeal=0,
        standard_extended_total=0,
        standard_extended_approved=0,
        expedited_total=0,
        expedited_approved=0,
        expedited_denied=0,
    )
    m = by_key(cms0057_metrics(c))
    assert m["standard_denied_pct"].value is None
    assert m["standard_approved_pct"].value is None
    assert m["standard_approved_pct"].denominator == 100
    assert m["standard_approved_after_appeal_pct"].value == 0.0


@pytest.mark.parametrize(
    "kw",
    [
        {"standard_approved": 300},
        {"standard_extended_approved": 31},
        {"standard_extended_total": 201},
        {"expedited_denied": 16},
        {"standard_hours": [-1.0]},
        {"standard_total": -1},
    ],
)
def test_validation(kw: dict[str, object]) -> None:
    base = big().__dict__ | kw
    with pytest.raises(ValueError):
        PaCounts(**base)
