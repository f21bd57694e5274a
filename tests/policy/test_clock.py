"""Clocks, business calendars and due-time arithmetic across weekends, holidays and DST."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wiserpa.policy.clock import (
    BusinessCalendar,
    Duration,
    FixedClock,
    SystemClock,
    due_time,
    elapsed,
)

UTC = dt.UTC
CT = ZoneInfo("America/Chicago")
ET = ZoneInfo("America/New_York")
AZ = ZoneInfo("America/Phoenix")
TX = BusinessCalendar("America/Chicago")
NJ = BusinessCalendar("America/New_York")
ARIZ = BusinessCalendar("America/Phoenix")


def local(cal: BusinessCalendar, t: dt.datetime) -> dt.datetime:
    return t.astimezone(cal.tz)


# ------------------------------------------------------------------ clocks


def test_system_clock_is_aware_utc() -> None:
    now = SystemClock().now()
    assert now.tzinfo is not None and now.utcoffset() == dt.timedelta(0)


def test_fixed_clock() -> None:
    c = FixedClock(dt.datetime(2026, 3, 1, 12, tzinfo=CT))
    assert c.now() == dt.datetime(2026, 3, 1, 18, tzinfo=UTC)
    assert c.now().tzinfo is UTC
    c.advance(dt.timedelta(hours=2))
    assert c.now() == dt.datetime(2026, 3, 1, 20, tzinfo=UTC)
    c.set(dt.datetime(2026, 1, 1, tzinfo=UTC))
    assert c.now() == dt.datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError):
        FixedClock(dt.datetime(2026, 1, 1))


def test_naive_datetimes_refused() -> None:
    with pytest.raises(ValueError):
        due_time(dt.datetime(2026, 1, 5, 9), Duration(72, "hours"), TX)


def test_duration_validation() -> None:
    with pytest.raises(ValueError):
        Duration(-1, "hours")
    with pytest.raises(ValueError):
        Duration(1.5, "business_days")
    with pytest.raises(ValueError):
        Duration(1, "weeks")  # type: ignore[arg-type]


def test_calendar_validation() -> None:
    with pytest.raises(ValueError):
        BusinessCalendar("Mars/Olympus")
    with pytest.raises(ValueError):
        BusinessCalendar("America/Chicago", day_start=dt.time(17), day_end=dt.time(8))


# ------------------------------------------------------------------ business days and holidays


@pytest.mark.parametrize(
    "d,expected",
    [
        (dt.date(2026, 11, 26), False),  # Thanksgiving
        (dt.date(2026, 7, 3), False),  # Independence Day observed (July 4 is a Saturday)
        (dt.date(2026, 7, 4), False),  # Saturday
        (dt.date(2026, 12, 25), False),
        (dt.date(2026, 1, 19), False),  # MLK Day
        (dt.date(2026, 11, 27), True),  # day after Thanksgiving is not federal
        (dt.date(2026, 7, 2), True),
        (dt.date(2026, 3, 9), True),
    ],
)
def test_is_business_day(d: dt.date, expected: bool) -> None:
    assert TX.is_business_day(d) is expected


def test_next_business_day() -> None:
    assert TX.next_business_day(dt.date(2026, 7, 2)) == dt.date(2026, 7, 6)  # skips observed 7/3 and weekend
    assert TX.next_business_day(dt.date(2026, 11, 25)) == dt.date(2026, 11, 27)
    assert TX.next_business_day(dt.date(2026, 3, 6)) == dt.date(2026, 3, 9)


# ------------------------------------------------------------------ calendar hours across DST


def test_72_hours_across_spring_forward() -> None:
    start = dt.datetime(2026, 3, 6, 12, tzinfo=CT)  # Friday noon CST
    due = due_time(start, Duration(72, "hours"), TX)
    assert due - start == dt.timedelta(hours=72)
    assert local(TX, due) == dt.datetime(2026, 3, 9, 13, tzinfo=CT)  # wall clock moves an hour later
    assert due.tzinfo is UTC


def test_72_hours_across_fall_back() -> None:
    start = dt.datetime(2026, 10, 30, 12, tzinfo=ET)
    due = due_time(start, Duration(72, "hours"), NJ)
    assert due - start == dt.timedelta(hours=72)
    assert local(NJ, due) == dt.datetime(2026, 11, 2, 11, tzinfo=ET)


def test_calendar_days_are_24h_and_arizona_has_no_dst() -> None:
    start = dt.datetime(2026, 3, 6, 12, tzinfo=AZ)
    due = due_time(start, Duration(3, "calendar_days"), ARIZ)
    assert local(ARIZ, due) == dt.datetime(2026, 3, 9, 12, tzinfo=AZ)
    assert due == dt.datetime(2026, 3, 9, 19, tzinfo=UTC)


def test_elapsed_hours_and_days() -> None:
    a = dt.datetime(2026, 3, 6, 12, tzinfo=CT)
    b = dt.datetime(2026, 3, 9, 13, tzinfo=CT)
    assert elapsed(a, b, "hours", TX) == 72
    assert elapsed(a, b, "calendar_days", TX) == 3
    assert elapsed(b, a, "hours", TX) == -72


# ------------------------------------------------------------------ business days


def test_business_days_same_day_receipt() -> None:
    start = dt.datetime(2026, 6, 1, 10, tzinfo=CT)  # Monday
    due = due_time(start, Duration(2, "business_days"), TX)
    assert local(TX, due) == dt.datetime(2026, 6, 3, 17, tzinfo=CT)


def test_business_days_after_hours_rolls_over() -> None:
    start = dt.datetime(2026, 6, 1, 18, tzinfo=CT)  # Monday after close -> day 0 is Tuesday
    assert local(TX, due_time(start, Duration(2, "business_days"), TX)) == dt.datetime(
        2026, 6, 4, 17, tzinfo=CT
    )
    at_close = dt.datetime(2026, 6, 1, 17, tzinfo=CT)
    assert due_time(at_close, Duration(1, "business_days"), TX) == due_time(
        start, Duration(1, "business_days"), TX
    )


def test_business_days_early_receipt_counts_that_day() -> None:
    start = dt.datetime(2026, 6, 1, 6, tzinfo=CT)
    assert local(TX, due_time(start, Duration(1, "business_days"), TX)) == dt.datetime(
        2026, 6, 2, 17, tzinfo=CT
    )


def test_business_days_weekend_receipt() -> None:
    start = dt.datetime(2026, 6, 6, 11, tzinfo=CT)  # Saturday -> day 0 Monday
    assert local(TX, due_time(start, Duration(2, "business_days"), TX)) == dt.datetime(
        2026, 6, 10, 17, tzinfo=CT
    )


def test_business_days_over_thanksgiving() -> None:
    start = dt.datetime(2026, 11, 25, 18, tzinfo=CT)  # Wed after close; Thu holiday -> day 0 Fri
    assert local(TX, due_time(start, Duration(2, "business_days"), TX)) == dt.datetime(
        2026, 12, 1, 17, tzinfo=CT
    )


def test_business_days_over_observed_independence_day() -> None:
    start = dt.datetime(2026, 7, 2, 9, tzinfo=ET)  # Thu; Fri 7/3 observed holiday
    assert local(NJ, due_time(start, Duration(1, "business_days"), NJ)) == dt.datetime(
        2026, 7, 6, 17, tzinfo=ET
    )


def test_business_days_across_dst() -> None:
    spring = due_time(dt.datetime(2026, 3, 6, 10, tzinfo=CT), Duration(1, "business_days"), TX)
    assert local(TX, spring) == dt.datetime(2026, 3, 9, 17, tzinfo=CT)
    assert spring == dt.datetime(2026, 3, 9, 22, tzinfo=UTC)  # CDT, UTC-5
    fall = due_time(dt.datetime(2026, 10, 30, 10, tzinfo=ET), Duration(1, "business_days"), NJ)
    assert fall == dt.datetime(2026, 11, 2, 22, tzinfo=UTC)  # EST, UTC-5
    az = due_time(dt.datetime(2026, 3, 6, 10, tzinfo=AZ), Duration(1, "business_days"), ARIZ)
    assert az == dt.datetime(2026, 3, 10, 0, tzinfo=UTC)  # MST all year, UTC-7


def test_zero_business_days_is_today_close() -> None:
    start = dt.datetime(2026, 6, 1, 10, tzinfo=CT)
    assert local(TX, due_time(start, Duration(0, "business_days"), TX)) == dt.datetime(
        2026, 6, 1, 17, tzinfo=CT
    )


def test_elapsed_business_days() -> None:
    start = dt.datetime(2026, 11, 25, 18, tzinfo=CT)
    due = due_time(start, Duration(2, "business_days"), TX)
    assert elapsed(start, due, "business_days", TX) == 2
    # Midway through the first counted day (Monday 11/30 12:30 of 08:00-17:00).
    mid = dt.datetime(2026, 11, 30, 12, 30, tzinfo=CT)
    assert elapsed(start, mid, "business_days", TX) == pytest.approx(0.5)
    assert elapsed(mid, start, "business_days", TX) == pytest.approx(-0.5)


# ------------------------------------------------------------------ business hours


def test_business_hours_within_a_day() -> None:
    start = dt.datetime(2026, 6, 1, 9, tzinfo=CT)
    assert local(TX, due_time(start, Duration(4, "business_hours"), TX)) == dt.datetime(
        2026, 6, 1, 13, tzinfo=CT
    )


def test_business_hours_carry_over_weekend_and_holiday() -> None:
    start = dt.datetime(2026, 7, 2, 15, tzinfo=ET)  # Thu 15:00; 2 h left today, Fri 7/3 holiday
    due = due_time(start, Duration(5, "business_hours"), NJ)
    assert local(NJ, due) == dt.datetime(2026, 7, 6, 11, tzinfo=ET)
    assert elapsed(start, due, "business_hours", NJ) == pytest.approx(5)


def test_business_hours_from_night_start_next_morning() -> None:
    start = dt.datetime(2026, 3, 6, 22, tzinfo=CT)  # Friday night before spring forward
    due = due_time(start, Duration(9, "business_hours"), TX)
    assert local(TX, due) == dt.datetime(2026, 3, 9, 17, tzinfo=CT)
    assert due_time(start, Duration(0, "business_hours"), TX) == start


def test_business_hours_ending_at_close_stays_that_day() -> None:
    start = dt.datetime(2026, 6, 1, 8, tzinfo=CT)
    assert local(TX, due_time(start, Duration(9, "business_hours"), TX)) == dt.datetime(
        2026, 6, 1, 17, tzinfo=CT
    )


# ------------------------------------------------------------------ properties

CALS = st.sampled_from([TX, NJ, ARIZ, BusinessCalendar("America/Los_Angeles")])
INSTANTS = st.datetimes(
    min_value=dt.datetime(2026, 1, 1), max_value=dt.datetime(2027, 12, 31), timezones=st.just(UTC)
)
DURATIONS = st.one_of(
    st.builds(Duration, st.integers(0, 200).map(float), st.just("hours")),
    st.builds(Duration, st.integers(0, 30).map(float), st.just("calendar_days")),
    st.builds(Duration, st.integers(0, 60).map(float), st.just("business_hours")),
    st.builds(Duration, st.integers(0, 15).map(float), st.just("business_days")),
)


@settings(max_examples=300, deadline=None)
@given(INSTANTS, INSTANTS, DURATIONS, CALS)
def test_due_time_monotonic_and_never_early(
    a: dt.datetime, b: dt.datetime, d: Duration, cal: BusinessCalendar
) -> None:
    lo, hi = min(a, b), max(a, b)
    due_lo, due_hi = due_time(lo, d, cal), due_time(hi, d, cal)
    assert due_lo <= due_hi
    assert due_lo >= lo
    assert due_lo.tzinfo is UTC


@settings(max_examples=300, deadline=None)
@given(INSTANTS, DURATIONS, CALS)
def test_elapsed_inverts_due_time(start: dt.datetime, d: Duration, cal: BusinessCalendar) -> None:
    due = due_time(start, d, cal)
    assert elapsed(start, due, d.unit, cal) == pytest.approx(d.amount, abs=1e-6)


@settings(max_examples=200, deadline=None)
@given(
    INSTANTS, INSTANTS, CALS, st.sampled_from(["hours", "business_hours", "business_days", "calendar_days"])
)
def test_elapsed_antisymmetric(a: dt.datetime, b: dt.datetime, cal: BusinessCalendar, unit: str) -> None:
    assert elapsed(a, b, unit, cal) == pytest.approx(-elapsed(b, a, unit, cal))  # type: ignore[arg-type]
