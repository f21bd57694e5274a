"""Time for the policy core: injectable clocks, durations and business calendars.

Rules (the project's; CMS publishes no counting rule for WISeR, so the profile chooses the unit):

- ``hours`` and ``calendar_days`` are absolute elapsed time (N x 1 h, N x 24 h), so a 72-hour window is
  72 real hours even across a daylight-saving change (the local wall-clock end moves by an hour).
- ``business_hours`` count only the time between ``day_start`` and ``day_end`` local on business days.
- ``business_days``: a receipt after ``day_end`` (or exactly at it) or on a weekend/holiday rolls over to
  the next business day, which becomes day 0; a receipt before ``day_start`` on a business day makes that
  day day 0. The request is due at ``day_end`` local on the Nth business day after day 0.
- Business days exclude Saturdays, Sundays and US federal holidays as given by the ``holidays`` package,
  including the observed dates (e.g. Friday 2026-07-03 for Independence Day on a Saturday).
- All arithmetic runs in the state's IANA zone through ``zoneinfo``; every returned datetime is aware UTC.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal, Protocol, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

__all__ = [
    "BusinessCalendar",
    "Clock",
    "Duration",
    "DurationUnit",
    "FixedClock",
    "SystemClock",
    "due_time",
    "elapsed",
    "ensure_utc",
]

UTC = dt.UTC
DurationUnit = Literal["hours", "business_hours", "business_days", "calendar_days"]
_UNITS: frozenset[str] = frozenset(get_args(DurationUnit))


def ensure_utc(t: dt.datetime) -> dt.datetime:
    """Return ``t`` converted to UTC; a naive datetime is refused because its zone is unknowable."""
    if t.tzinfo is None or t.tzinfo.utcoffset(t) is None:
        raise ValueError(f"naive datetime {t.isoformat()} given; pass a timezone-aware datetime")
    return t.astimezone(UTC)


def received_instant(given: dt.datetime | None, now: dt.datetime) -> dt.datetime:
    """When a batch item was received: its own instant (aware, never after `now`), or `now` if it gave none."""
    if given is None:
        return now
    if given.tzinfo is None or given > now:
        raise ValueError("received_at must be an aware instant no later than the clock")  # the caller's bug
    return given


class Clock(Protocol):
    """Source of the current instant."""

    def now(self) -> dt.datetime:
        """Current instant as an aware UTC datetime."""
        ...


class SystemClock:
    """The wall clock: the one place in the code base that reads it."""

    def now(self) -> dt.datetime:
        """Current instant as an aware UTC datetime."""
        return dt.datetime.now(UTC)


class FixedClock:
    """A clock that moves only when told to: for tests and the simulator."""

    def __init__(self, start: dt.datetime) -> None:
        self._now = ensure_utc(start)

    def now(self) -> dt.datetime:
        """Current simulated instant (aware UTC)."""
        return self._now

    def set(self, t: dt.datetime) -> None:
        """Jump to ``t`` (backwards allowed: tests need it)."""
        self._now = ensure_utc(t)

    def advance(self, delta: dt.timedelta) -> dt.datetime:
        """Move forward by ``delta`` and return the new instant."""
        self._now = self._now + delta
        return self._now


@dataclass(frozen=True)
class Duration:
    """An amount of time in one of the counting units a policy can choose."""

    amount: float
    unit: DurationUnit

    def __post_init__(self) -> None:
        if self.unit not in _UNITS:
            raise ValueError(f"unknown duration unit {self.unit!r}; expected one of {sorted(_UNITS)}")
        if not math.isfinite(self.amount) or self.amount < 0:
            raise ValueError(f"duration amount must be a finite number >= 0, got {self.amount!r}")
        if self.unit == "business_days" and self.amount != int(self.amount):
            raise ValueError("business_days must be a whole number")


@lru_cache(maxsize=64)
def _us_federal_holidays(year: int) -> frozenset[dt.date]:
    """US federal holidays (observed dates included) for one year, cached because lookups are hot."""
    return frozenset(holidays.country_holidays("US", years=year, observed=True).keys())


@dataclass(frozen=True)
class BusinessCalendar:
    """Business days and hours in one IANA time zone (the state's)."""

    timezone: str
    day_start: dt.time = dt.time(8, 0)
    day_end: dt.time = dt.time(17, 0)
    tz: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {self.timezone!r}") from exc
        if not self.day_start < self.day_end:
            raise ValueError("day_start must be earlier than day_end")
        object.__setattr__(self, "tz", zone)

    def is_business_day(self, d: dt.date) -> bool:
        """True for Monday–Friday dates that are not US federal holidays (observed dates included)."""
        return d.weekday() < 5 and d not in _us_federal_holidays(d.year)

    def next_business_day(self, d: dt.date) -> dt.date:
        """The first business day strictly after ``d``."""
        d += dt.timedelta(days=1)
        while not self.is_business_day(d):
            d += dt.timedelta(days=1)
        return d

    def previous_business_day(self, d: dt.date) -> dt.date:
        """The last business day strictly before ``d``."""
        d -= dt.timedelta(days=1)
        while not self.is_business_day(d):
            d -= dt.timedelta(days=1)
        return d

    def local(self, t: dt.datetime) -> dt.datetime:
        """``t`` expressed in this calendar's zone."""
        return ensure_utc(t).astimezone(self.tz)

    def at(self, d: dt.date, t: dt.time) -> dt.datetime:
        """The UTC instant of local wall time ``t`` on date ``d`` (fold=0 if ambiguous)."""
        return dt.datetime.combine(d, t, tzinfo=self.tz).astimezone(UTC)

    def opens(self, d: dt.date) -> dt.datetime:
        """UTC instant the business day ``d`` starts."""
        return self.at(d, self.day_start)

    def closes(self, d: dt.date) -> dt.datetime:
        """UTC instant the business day ``d`` ends."""
        return self.at(d, self.day_end)

    def day_zero(self, received: dt.datetime) -> dt.date:
        """The business day a receipt counts from: same day unless at/after close or on a non-business day."""
        loc = self.local(received)
        d = loc.date()
        if not self.is_business_day(d) or loc.time() >= self.day_end:
            return self.next_business_day(d)
        return d


def _add_business_hours(start: dt.datetime, hours: float, cal: BusinessCalendar) -> dt.datetime:
    """Walk forward ``hours`` of open business time from ``start``."""
    remaining = dt.timedelta(hours=hours)
    cursor = ensure_utc(start)
    d = cal.local(cursor).date()
    if remaining <= dt.timedelta(0):
        return cursor
    while True:
        if cal.is_business_day(d):
            seg_start = max(cursor, cal.opens(d))
            seg_end = cal.closes(d)
            if seg_start < seg_end:
                available = seg_end - seg_start
                if remaining <= available:
                    return seg_start + remaining
                remaining -= available
        d = cal.next_business_day(d)


def due_time(start: dt.datetime, duration: Duration, calendar: BusinessCalendar) -> dt.datetime:
    """When a window of ``duration`` opened at ``start`` closes, as aware UTC (rules: module docstring)."""
    begin = ensure_utc(start)
    unit, amount = duration.unit, duration.amount
    if unit == "hours":
        return begin + dt.timedelta(hours=amount)
    if unit == "calendar_days":
        return begin + dt.timedelta(hours=24 * amount)
    if unit == "business_hours":
        return _add_business_hours(begin, amount, calendar)
    # business_days
    d = calendar.day_zero(begin)
    for _ in range(int(amount)):
        d = calendar.next_business_day(d)
    due = calendar.closes(d)
    # Zero business days received mid-day is due at today's close, which is never before the receipt.
    return max(due, begin)


def _business_hours_between(a: dt.datetime, b: dt.datetime, cal: BusinessCalendar) -> float:
    """Open business hours in [a, b] for a <= b."""
    total = dt.timedelta(0)
    d = cal.local(a).date()
    last = cal.local(b).date()
    while d <= last:
        if cal.is_business_day(d):
            lo = max(a, cal.opens(d))
            hi = min(b, cal.closes(d))
            if hi > lo:
                total += hi - lo
        d += dt.timedelta(days=1)
    return total.total_seconds() / 3600


def _business_days_between(a: dt.datetime, b: dt.datetime, cal: BusinessCalendar) -> float:
    """Business days in [a, b] for a <= b: whole days closed since day 0 plus the open fraction of today.

    Chosen so that ``elapsed(s, due_time(s, N business days)) == N`` and the value grows continuously.
    """
    day0 = cal.day_zero(a)
    count = 0.0
    d = cal.next_business_day(day0)
    while True:
        opens, closes = cal.opens(d), cal.closes(d)
        if b >= closes:
            count += 1
        else:
            if b > opens:
                count += (b - opens) / (closes - opens)
            break
        d = cal.next_business_day(d)
    return count


def elapsed(start: dt.datetime, end: dt.datetime, unit: DurationUnit, calendar: BusinessCalendar) -> float:
    """Amount of ``unit`` between two instants (negative when ``end`` is before ``start``)."""
    a, b = ensure_utc(start), ensure_utc(end)
    if unit not in _UNITS:
        raise ValueError(f"unknown duration unit {unit!r}")
    if b < a:
        return -elapsed(b, a, unit, calendar)
    if unit == "hours":
        return (b - a).total_seconds() / 3600
    if unit == "calendar_days":
        return (b - a).total_seconds() / 86400
    if unit == "business_hours":
        return _business_hours_between(a, b, calendar)
    return _business_days_between(a, b, calendar)
