"""The participant's reviewers: a pooled capacity working business hours through the real worklist.

The pool has `clinicians × productive_hours_per_day` review hours per business day. It serves the engine's own
worklist (`reviews.worklist`: open requests soonest due first, and under a deemed-approval profile only those
not yet past due), one item at a time. An item's wall-clock duration is its service time divided by the pool's
width, so capacity, not the number of people, sets throughput; each review still books its full service time
as clinician hours.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass, field

from wiserpa.policy.clock import BusinessCalendar
from wiserpa.sim.workload import Assumptions

__all__ = ["ReviewerPool", "pool_from_assumptions"]


@dataclass
class ReviewerPool:
    """Pooled reviewer capacity of one participant."""

    calendar: BusinessCalendar
    clinicians: float
    productive_hours_per_day: float
    median_minutes: float
    sigma: float
    free_at: dt.datetime = field(default=dt.datetime.min.replace(tzinfo=dt.UTC))
    booked_minutes: float = 0.0

    @property
    def business_hours_per_day(self) -> float:
        """Length of the business day in hours."""
        start = dt.datetime.combine(dt.date.min, self.calendar.day_start)
        end = dt.datetime.combine(dt.date.min, self.calendar.day_end)
        return (end - start).total_seconds() / 3600

    @property
    def speed(self) -> float:
        """Review-minutes the pool does per business minute."""
        return self.clinicians * self.productive_hours_per_day / self.business_hours_per_day

    def service_minutes(self, rng: random.Random) -> float:
        """One review's clinician time (lognormal)."""
        return rng.lognormvariate(math.log(self.median_minutes), self.sigma)

    def in_business_hours(self, t: dt.datetime) -> bool:
        """True when `t` falls inside a business day's open hours (state time)."""
        local = self.calendar.local(t)
        return self.calendar.is_business_day(local.date()) and self.calendar.day_start <= local.time() < (
            self.calendar.day_end
        )

    def advance(self, t: dt.datetime, business_minutes: float) -> dt.datetime:
        """`t` plus a span of business time (skips nights, weekends and holidays)."""
        remaining = dt.timedelta(minutes=business_minutes)
        cur = t
        day = self.calendar.local(t).date()
        while True:
            if self.calendar.is_business_day(day):
                opens, closes = self.calendar.opens(day), self.calendar.closes(day)
                cur = max(cur, opens)
                if cur < closes:
                    if remaining <= closes - cur:
                        return (cur + remaining).astimezone(dt.UTC)
                    remaining -= closes - cur
            day += dt.timedelta(days=1)

    def take(self, now: dt.datetime, rng: random.Random) -> tuple[dt.datetime, float]:
        """Start the next review no earlier than `now`; return (completion time, clinician minutes)."""
        minutes = self.service_minutes(rng)
        start = max(self.free_at, now)
        done = self.advance(start, minutes / max(self.speed, 1e-9))
        self.free_at = done
        self.booked_minutes += minutes
        return done, minutes


def pool_from_assumptions(
    a: Assumptions, calendar: BusinessCalendar, *, state: str, clinicians: float | None, scale: float
) -> ReviewerPool:
    """A pool sized from the assumptions (clinicians scale with the workload so queues behave the same)."""
    table = a["reviewers.clinicians"]
    n = table.get(state, table["default"]) if clinicians is None else clinicians
    sm = a["reviewers.service_minutes"]
    return ReviewerPool(
        calendar=calendar,
        clinicians=float(n) * scale,
        productive_hours_per_day=float(a["reviewers.productive_hours_per_day"]),
        median_minutes=float(sm["median"]),
        sigma=float(sm["sigma"]),
    )
