"""Billing periods: calendar and anniversary schedules bounded at local midnight, as Lago computes them."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.periods import (
    BILLING_TIMES,
    INTERVALS,
    Period,
    first_period,
    full_period_days,
    local_days,
    next_period,
    period_containing,
    periods,
)

TIMEZONES = (
    "UTC",
    "America/New_York",
    "America/Los_Angeles",
    "Europe/Paris",
    "Asia/Tokyo",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Asia/Kathmandu",
)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _schedule(interval: str, billing_time: str, anchor: str, timezone: str = "UTC") -> dict[str, Any]:
    return {"interval": interval, "billing_time": billing_time, "anchor": _at(anchor), "timezone": timezone}


def _bounds(period: Period) -> tuple[str, str]:
    return period.starts_at.isoformat(), period.ends_at.isoformat()


def test_a_new_york_calendar_month_runs_from_local_midnight_to_local_midnight() -> None:
    """March 2024 in New York starts at 05:00Z and ends an hour earlier in UTC because of the Mar 10 DST change."""
    schedule = _schedule("monthly", "calendar", "2024-01-10T15:00:00+00:00", "America/New_York")

    period = period_containing(_at("2024-03-20T12:00:00+00:00"), **schedule)

    assert _bounds(period) == ("2024-03-01T05:00:00+00:00", "2024-04-01T04:00:00+00:00")
    assert period.lago_ending_at().isoformat() == "2024-04-01T03:59:59.999999+00:00"
    assert period == period_containing(_at("2024-03-01T05:00:00+00:00"), **schedule)
    assert period_containing(_at("2024-04-01T04:00:00+00:00"), **schedule).starts_at == period.ends_at


def test_an_anniversary_on_the_31st_falls_back_to_the_last_day_of_shorter_months() -> None:
    """A missing 31st starts the period on the month's last day, and the next period returns to the 31st."""
    schedule = _schedule("monthly", "anniversary", "2023-01-31T09:30:00+00:00")

    found = list(periods(**schedule, until=_at("2023-06-01T00:00:00+00:00")))

    assert [(p.starts_at.date().isoformat(), p.ends_at.date().isoformat()) for p in found] == [
        ("2023-01-31", "2023-02-28"),
        ("2023-02-28", "2023-03-31"),
        ("2023-03-31", "2023-04-30"),
        ("2023-04-30", "2023-05-31"),
        ("2023-05-31", "2023-06-30"),
    ]


def test_a_yearly_anniversary_on_february_29_starts_on_february_28_in_common_years() -> None:
    """Leap-day anniversaries fall back to Feb 28 and return to Feb 29 in the next leap year."""
    schedule = _schedule("yearly", "anniversary", "2024-02-29T00:00:00+00:00")

    found = list(periods(**schedule, until=_at("2029-01-01T00:00:00+00:00")))

    assert [p.starts_at.date().isoformat() for p in found] == [
        "2024-02-29",
        "2025-02-28",
        "2026-02-28",
        "2027-02-28",
        "2028-02-29",
    ]


def test_calendar_weeks_start_on_monday_after_a_partial_first_week() -> None:
    """A subscription started on a Wednesday is billed to Sunday, then Monday to Sunday."""
    schedule = _schedule("weekly", "calendar", "2024-05-15T18:00:00+00:00")

    first = first_period(**schedule)
    second = next_period(first, **schedule)

    assert _bounds(first) == ("2024-05-15T00:00:00+00:00", "2024-05-20T00:00:00+00:00")
    assert _bounds(second) == ("2024-05-20T00:00:00+00:00", "2024-05-27T00:00:00+00:00")
    assert second.starts_at.weekday() == 0


def test_anniversary_weeks_start_on_the_anchor_weekday() -> None:
    """An anniversary weekly subscription started on a Wednesday renews every Wednesday."""
    schedule = _schedule("weekly", "anniversary", "2024-05-15T18:00:00+00:00")

    period = period_containing(_at("2024-06-03T10:00:00+00:00"), **schedule)

    assert _bounds(period) == ("2024-05-29T00:00:00+00:00", "2024-06-05T00:00:00+00:00")


@pytest.mark.parametrize(
    ("interval", "starts_at", "ends_at"),
    [
        ("monthly", "2024-05-01", "2024-06-01"),
        ("quarterly", "2024-04-01", "2024-07-01"),
        ("semiannual", "2024-01-01", "2024-07-01"),
        ("yearly", "2024-01-01", "2025-01-01"),
    ],
)
def test_calendar_periods_follow_months_quarters_halves_and_years(interval: str, starts_at: str, ends_at: str) -> None:
    """Calendar periods after the first are whole calendar months, quarters, half-years or years."""
    schedule = _schedule(interval, "calendar", "2022-08-17T00:00:00+00:00")

    period = period_containing(_at("2024-05-10T00:00:00+00:00"), **schedule)

    assert _bounds(period) == (f"{starts_at}T00:00:00+00:00", f"{ends_at}T00:00:00+00:00")


@pytest.mark.parametrize(
    ("interval", "ends_at"),
    [("quarterly", "2024-10-01"), ("semiannual", "2025-01-01"), ("yearly", "2025-01-01")],
)
def test_the_first_calendar_period_is_clamped_to_the_anchor_day(interval: str, ends_at: str) -> None:
    """The first calendar period starts at the subscription's day and ends with the calendar period."""
    schedule = _schedule(interval, "calendar", "2024-08-17T13:45:00+00:00")

    period = first_period(**schedule)

    assert _bounds(period) == ("2024-08-17T00:00:00+00:00", f"{ends_at}T00:00:00+00:00")


def test_a_calendar_month_started_mid_month_is_partial_but_prorated_over_the_full_month() -> None:
    """Starting on Mar 16 gives a first period of 16 days out of a full period of 31 days."""
    schedule = _schedule("monthly", "calendar", "2024-03-16T10:30:00+00:00")

    first = first_period(**schedule)

    assert _bounds(first) == ("2024-03-16T00:00:00+00:00", "2024-04-01T00:00:00+00:00")
    assert local_days(first, "UTC") == 16
    assert full_period_days(_at("2024-03-20T00:00:00+00:00"), **schedule) == 31
    assert full_period_days(_at("2024-04-20T00:00:00+00:00"), **schedule) == 30


def test_an_anniversary_period_is_its_own_full_period() -> None:
    """Anniversary periods are never clamped, so their full length is their own length in local days."""
    schedule = _schedule("monthly", "anniversary", "2023-01-31T09:30:00+00:00")

    days = full_period_days(_at("2023-02-10T00:00:00+00:00"), **schedule)

    assert days == 28 == local_days(period_containing(_at("2023-02-10T00:00:00+00:00"), **schedule), "UTC")
    assert full_period_days(_at("2023-01-31T00:00:00+00:00"), **schedule) == 28
    assert full_period_days(_at("2023-03-01T00:00:00+00:00"), **schedule) == 31


def test_a_back_dated_los_angeles_subscription_reports_boundaries_at_local_midnight() -> None:
    """Boundaries sit at 07:00Z during daylight time and at 08:00Z after it, and the anchor's local date counts."""
    schedule = _schedule("monthly", "calendar", "2026-10-15T03:00:00+00:00", "America/Los_Angeles")

    first = first_period(**schedule)
    november = period_containing(_at("2026-11-10T00:00:00+00:00"), **schedule)

    assert _bounds(first) == ("2026-10-14T07:00:00+00:00", "2026-11-01T07:00:00+00:00")
    assert _bounds(november) == ("2026-11-01T07:00:00+00:00", "2026-12-01T08:00:00+00:00")
    assert local_days(november, "America/Los_Angeles") == 30


def test_a_tokyo_subscription_starts_its_periods_on_the_previous_utc_day() -> None:
    """Midnight in Tokyo is 15:00Z the day before, so the November period starts on Oct 31 in UTC."""
    schedule = _schedule("monthly", "calendar", "2026-10-15T16:00:00+00:00", "Asia/Tokyo")

    first = first_period(**schedule)
    november = next_period(first, **schedule)

    assert _bounds(first) == ("2026-10-15T15:00:00+00:00", "2026-10-31T15:00:00+00:00")
    assert _bounds(november) == ("2026-10-31T15:00:00+00:00", "2026-11-30T15:00:00+00:00")


def test_a_day_without_midnight_starts_at_its_first_valid_instant() -> None:
    """In Santiago clocks jump from 00:00 to 01:00 on 2024-09-08, so that day's period starts at 01:00 local."""
    schedule = _schedule("weekly", "anniversary", "2024-09-01T15:00:00+00:00", "America/Santiago")

    period = period_containing(_at("2024-09-10T00:00:00+00:00"), **schedule)

    assert _bounds(period) == ("2024-09-08T04:00:00+00:00", "2024-09-15T03:00:00+00:00")
    assert period.starts_at.astimezone(ZoneInfo("America/Santiago")).isoformat() == "2024-09-08T01:00:00-03:00"


def test_a_repeated_midnight_starts_the_day_at_its_earlier_occurrence() -> None:
    """In Santiago 2024-04-06 23:00–24:00 happens twice; Apr 7 starts once, right after the second pass."""
    schedule = _schedule("weekly", "anniversary", "2024-03-31T15:00:00+00:00", "America/Santiago")

    period = period_containing(_at("2024-04-08T00:00:00+00:00"), **schedule)

    assert _bounds(period) == ("2024-04-07T04:00:00+00:00", "2024-04-14T04:00:00+00:00")


def test_a_moment_before_the_first_period_has_no_period() -> None:
    """Nothing is billed before the local day the subscription started."""
    schedule = _schedule("monthly", "calendar", "2024-03-16T10:30:00+00:00", "Europe/Paris")

    with pytest.raises(ValueError):
        period_containing(_at("2024-03-15T22:59:59+00:00"), **schedule)

    assert first_period(**schedule).starts_at == _at("2024-03-15T23:00:00+00:00")


@pytest.mark.parametrize(
    "schedule",
    [
        {"interval": "daily", "billing_time": "calendar", "timezone": "UTC"},
        {"interval": "monthly", "billing_time": "whenever", "timezone": "UTC"},
        {"interval": "monthly", "billing_time": "calendar", "timezone": "Mars/Olympus_Mons"},
        {"interval": "monthly", "billing_time": "calendar", "timezone": "../etc/passwd"},
    ],
)
def test_unknown_intervals_billing_times_and_timezones_are_refused(schedule: dict[str, str]) -> None:
    """Bad schedule arguments raise ValueError rather than producing a wrong period."""
    anchor = _at("2024-03-16T00:00:00+00:00")

    with pytest.raises(ValueError):
        first_period(anchor=anchor, **schedule)


def test_naive_datetimes_are_refused() -> None:
    """A naive datetime names no instant, so it cannot be placed in a period."""
    schedule = _schedule("monthly", "calendar", "2024-03-16T00:00:00+00:00")

    with pytest.raises(ValueError):
        period_containing(datetime(2024, 4, 2), **schedule)


def test_next_period_refuses_a_period_of_another_schedule() -> None:
    """A period whose end is not one of this subscription's boundaries has no next period here."""
    schedule = _schedule("monthly", "calendar", "2024-03-16T00:00:00+00:00")
    foreign = Period(_at("2024-04-01T00:00:00+00:00"), _at("2024-04-15T00:00:00+00:00"))

    with pytest.raises(ValueError):
        next_period(foreign, **schedule)


def test_a_moment_a_century_after_the_anchor_is_placed_directly() -> None:
    """The period of a far moment is computed from its distance to the anchor, not by walking every period."""
    schedule = _schedule("weekly", "anniversary", "2000-01-05T12:00:00+00:00", "Asia/Kathmandu")

    period = period_containing(_at("2099-06-10T00:00:00+00:00"), **schedule)

    assert period.contains(_at("2099-06-10T00:00:00+00:00"))
    assert period.starts_at.astimezone(ZoneInfo("Asia/Kathmandu")).weekday() == 2
    assert local_days(period, "Asia/Kathmandu") == 7


@pytest.mark.parametrize("timezone", [*TIMEZONES, "Asia/Beirut"])
def test_every_local_day_for_decades_can_start_a_period_that_tiles(timezone: str) -> None:
    """Weekly anniversaries anchored on seven consecutive days put a boundary on every local day, DST days included."""
    zone = ZoneInfo(timezone)
    until = _at("2041-01-01T00:00:00+00:00")

    for weekday in range(7):
        schedule = _schedule("weekly", "anniversary", f"2000-01-0{weekday + 3}T12:00:00+00:00", timezone)
        found = list(periods(**schedule, until=until))

        assert all(earlier.ends_at == later.starts_at for earlier, later in zip(found, found[1:]))
        for period in found:
            just_before = (period.starts_at - timedelta(microseconds=1)).astimezone(zone)
            assert just_before.date() < period.starts_at.astimezone(zone).date()
            assert local_days(period, timezone) == 7


anchors = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 12, 31), timezones=st.just(UTC))
schedules = st.fixed_dictionaries(
    {
        "interval": st.sampled_from(INTERVALS),
        "billing_time": st.sampled_from(BILLING_TIMES),
        "anchor": anchors,
        "timezone": st.sampled_from(TIMEZONES),
    }
)
offsets = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=4 * 366))


@settings(max_examples=300, deadline=None)
@given(schedule=schedules, span=offsets)
def test_successive_periods_tile_time_without_gap_or_overlap(schedule: dict[str, Any], span: timedelta) -> None:
    """Each period ends where the next one starts, and none is empty."""
    until = schedule["anchor"] + span + timedelta(microseconds=1)

    found = list(periods(**schedule, until=until))

    assert found[0] == first_period(**schedule)
    assert all(p.starts_at < p.ends_at for p in found)
    assert all(earlier.ends_at == later.starts_at for earlier, later in zip(found, found[1:]))
    assert all(next_period(earlier, **schedule) == later for earlier, later in zip(found, found[1:]))
    assert found[-1].starts_at < until <= found[-1].ends_at


@settings(max_examples=300, deadline=None)
@given(schedule=schedules, offset=offsets)
def test_the_period_containing_a_moment_is_the_one_reached_by_iterating(schedule: dict[str, Any], offset: timedelta) -> None:
    """Direct lookup agrees with walking the periods from the first one."""
    moment = first_period(**schedule).starts_at + offset

    period = period_containing(moment, **schedule)

    assert period.contains(moment)
    assert list(periods(**schedule, until=moment + timedelta(microseconds=1)))[-1] == period


@settings(max_examples=300, deadline=None)
@given(schedule=schedules, offset=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=100 * 366)))
def test_every_boundary_is_the_first_instant_of_a_local_day(schedule: dict[str, Any], offset: timedelta) -> None:
    """Both ends of any period are where a local calendar day begins in the customer's timezone."""
    zone = ZoneInfo(schedule["timezone"])

    period = period_containing(schedule["anchor"] + offset, **schedule)

    for boundary in (period.starts_at, period.ends_at):
        assert boundary.tzinfo is UTC
        local, just_before = boundary.astimezone(zone), (boundary - timedelta(microseconds=1)).astimezone(zone)
        assert just_before.date() < local.date()
        assert local_days(period, schedule["timezone"]) >= 1


@settings(max_examples=200, deadline=None)
@given(anchor=anchors, timezone=st.sampled_from(TIMEZONES), span=offsets)
def test_monthly_anniversaries_start_on_the_anchor_day_or_the_last_day_of_the_month(
    anchor: datetime, timezone: str, span: timedelta
) -> None:
    """Each monthly anniversary period starts on the anchor's day of month, or the month's last day if shorter."""
    zone = ZoneInfo(timezone)
    anchor_day = anchor.astimezone(zone).day

    found = list(periods(interval="monthly", billing_time="anniversary", anchor=anchor, timezone=timezone, until=anchor + span))

    for period in found:
        starts_on = period.starts_at.astimezone(zone).date()
        assert starts_on.day == min(anchor_day, calendar.monthrange(starts_on.year, starts_on.month)[1])
