"""The CMS-0057-F public prior-authorization metrics, computed from plain counts and durations.

The rule (e.g. 42 CFR 422.122(c) for MA; same list for Medicaid, CHIP and QHP issuers; WISER.md §4, S39,
S41) requires, aggregated over all items and services:

1. % of standard requests approved;            2. % of standard requests denied;
3. % of standard requests approved after appeal;
4. % of requests whose review timeframe was extended *and* that were approved;
5. % of expedited requests approved;           6. % of expedited requests denied;
7. average and median time from submission to decision, standard;   8. the same, expedited.

Read literally, every percentage has "requests" of that kind as its denominator, so items 3 and 4 are
shares of *all* standard requests, not of appeals or of extended reviews (only standard requests can be
extended here). Times are in hours. The list of items requiring PA (item 0 of the rule) is the catalog.

Suppression: counts published next to a percentage go through ``suppress_counts`` with the request total
as the published total (approved + denied + other decisions), so a denied count of 5 cannot be recovered
as total − approved; a percentage is hidden when its numerator is hidden or its denominator is 0 or 1..10,
and a mean/median over 1..10 durations is hidden.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from wiserpa.reporting.suppression import (
    suppress_counts,
    suppress_counts_total,
    suppress_rate,
    suppress_statistic,
)

__all__ = ["Metric", "PaCounts", "cms0057_metrics"]

PERCENT = "percent"
HOURS = "hours"


@dataclass(frozen=True)
class PaCounts:
    """Counts and decision durations for one reporting unit (participant, state, year ...)."""

    standard_total: int
    standard_approved: int
    standard_denied: int
    standard_approved_after_appeal: int
    standard_extended_total: int
    standard_extended_approved: int
    expedited_total: int
    expedited_approved: int
    expedited_denied: int
    standard_hours: Sequence[float] = field(default_factory=list)
    expedited_hours: Sequence[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Reject counts that cannot come from one consistent data set."""
        for name in (
            "standard_total",
            "standard_approved",
            "standard_denied",
            "standard_approved_after_appeal",
            "standard_extended_total",
            "standard_extended_approved",
            "expedited_total",
            "expedited_approved",
            "expedited_denied",
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be a non-negative int, got {v!r}")
        if self.standard_approved + self.standard_denied > self.standard_total:
            raise ValueError("standard approved + denied exceed standard_total")
        if self.expedited_approved + self.expedited_denied > self.expedited_total:
            raise ValueError("expedited approved + denied exceed expedited_total")
        if self.standard_approved_after_appeal > self.standard_total:
            raise ValueError("standard_approved_after_appeal exceeds standard_total")
        if not (self.standard_extended_approved <= self.standard_extended_total <= self.standard_total):
            raise ValueError("need standard_extended_approved <= standard_extended_total <= standard_total")
        for name in ("standard_hours", "expedited_hours"):
            if any(not math.isfinite(h) or h < 0 for h in getattr(self, name)):
                raise ValueError(f"{name} must hold finite non-negative durations")


@dataclass(frozen=True)
class Metric:
    """One published figure; ``None`` means suppressed (or undefined for a zero denominator)."""

    key: str
    label: str
    value: float | None
    unit: str
    numerator: int | None
    denominator: int | None


def _percent(n: int, d: int) -> float | None:
    return 100.0 * n / d if d else None


def _outcome_metrics(kind: str, total: int, approved: int, denied: int) -> list[Metric]:
    """% approved and % denied with the three-way outcome split suppressed as one series."""
    series = {"approved": approved, "denied": denied, "other": total - approved - denied}
    shown = suppress_counts(series)
    shown_total = suppress_counts_total(series)
    out = []
    for outcome in ("approved", "denied"):
        n = shown[outcome]
        out.append(
            Metric(
                key=f"{kind}_{outcome}_pct",
                label=f"% of {kind} requests {outcome}",
                value=suppress_rate(n is None, shown_total, _percent(series[outcome], total)),
                unit=PERCENT,
                numerator=n,
                denominator=shown_total,
            )
        )
    return out


def _single_count_metric(key: str, label: str, n: int, total: int) -> Metric:
    """A percentage whose numerator has no published complement: primary suppression only."""
    shown = suppress_counts({"n": n, "rest": total - n})
    shown_total = suppress_counts_total({"n": n, "rest": total - n})
    return Metric(
        key,
        label,
        suppress_rate(shown["n"] is None, shown_total, _percent(n, total)),
        PERCENT,
        shown["n"],
        shown_total,
    )


def _time_metrics(kind: str, hours: Sequence[float]) -> list[Metric]:
    n = len(hours)
    shown_n = None if 1 <= n <= 10 else n
    mean = statistics.fmean(hours) if hours else None
    median = float(statistics.median(hours)) if hours else None
    return [
        Metric(
            f"{kind}_mean_hours",
            f"Average time to decision, {kind} (hours)",
            suppress_statistic(n, mean),
            HOURS,
            None,
            shown_n,
        ),
        Metric(
            f"{kind}_median_hours",
            f"Median time to decision, {kind} (hours)",
            suppress_statistic(n, median),
            HOURS,
            None,
            shown_n,
        ),
    ]


def cms0057_metrics(c: PaCounts) -> list[Metric]:
    """The CMS-0057-F public metric set, in the rule's order, with small-count suppression applied."""
    standard = _outcome_metrics("standard", c.standard_total, c.standard_approved, c.standard_denied)
    expedited = _outcome_metrics("expedited", c.expedited_total, c.expedited_approved, c.expedited_denied)
    return [
        *standard,
        _single_count_metric(
            "standard_approved_after_appeal_pct",
            "% of standard requests approved after appeal",
            c.standard_approved_after_appeal,
            c.standard_total,
        ),
        _single_count_metric(
            "extended_approved_pct",
            "% of requests whose review was extended and then approved",
            c.standard_extended_approved,
            c.standard_total,
        ),
        *expedited,
        *_time_metrics("standard", c.standard_hours),
        *_time_metrics("expedited", c.expedited_hours),
    ]
