"""The plan's fee for a window of a period: the worked examples of semantics P4–P7, then properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.periods import INTERVALS, full_period_days, local_days, period_containing
from domain.subscription import billing_period
from domain.money import prorated_cents
from domain.subscription_fee import (
    FeeWindow,
    billed_window,
    unused_window,
)

TIMEZONES = ("UTC", "America/New_York", "Europe/Paris", "Asia/Tokyo", "Australia/Lord_Howe", "America/Santiago")


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _monthly(started: str, at: str, timezone: str = "UTC") -> tuple[Any, int]:
    start = _at(started)
    period = billing_period(interval="monthly", billing_time="calendar", subscription_at=start, started_at=start,
                            timezone=timezone, at=_at(at))
    days = full_period_days(_at(at), interval="monthly", billing_time="calendar", anchor=start, timezone=timezone)
    return period, days


def _fee(window: FeeWindow | None, amount_cents: int) -> int:
    return 0 if window is None else prorated_cents(amount_cents, window.days, window.period_days)


def test_p4_a_calendar_start_mid_month_pays_from_its_start_day() -> None:
    """$30/month from Mar 16 (31 days): 16 × 3000 / 31 = 1548.39 → 1548; April is full."""
    march, days = _monthly("2024-03-16T00:00:00", "2024-03-20T00:00:00")
    april, april_days = _monthly("2024-03-16T00:00:00", "2024-04-02T00:00:00")

    assert _fee(billed_window(march, period_days=days, timezone="UTC", started_at=_at("2024-03-16T00:00:00")), 3000) == 1548
    assert _fee(billed_window(april, period_days=april_days, timezone="UTC", started_at=_at("2024-03-16T00:00:00")), 3000) == 3000


def test_p4_an_arrears_plan_terminated_on_the_tenth_pays_ten_days() -> None:
    """Terminated Apr 10 (30-day month): 10 × 3000 / 30 = 1000; the termination day is billed."""
    april, days = _monthly("2024-01-01T00:00:00", "2024-04-10T15:00:00")

    window = billed_window(april, period_days=days, timezone="UTC", started_at=_at("2024-01-01T00:00:00"),
                           terminated_at=_at("2024-04-10T15:00:00"))

    assert window is not None and window.days == 10
    assert _fee(window, 3000) == 1000


def test_p5_an_in_advance_plan_terminated_on_the_tenth_credits_twenty_days() -> None:
    april, days = _monthly("2024-01-01T00:00:00", "2024-04-10T15:00:00")

    unused = unused_window(april, period_days=days, timezone="UTC", terminated_at=_at("2024-04-10T15:00:00"))

    assert unused is not None and unused.days == 20
    assert _fee(unused, 3000) == 2000


def test_p6_an_upgrade_on_the_eleventh_credits_the_old_plan_and_bills_the_new_from_that_day() -> None:
    """A $30 → B $60 on Apr 11: A credits 20 days (2000), B bills 20 days (4000)."""
    april, days = _monthly("2024-01-01T00:00:00", "2024-04-11T09:00:00")
    upgrade = _at("2024-04-11T09:00:00")

    credit = unused_window(april, period_days=days, timezone="UTC", terminated_at=upgrade, upgraded=True)
    new_plan = billed_window(april, period_days=days, timezone="UTC", started_at=upgrade)

    assert (_fee(credit, 3000), _fee(new_plan, 6000)) == (2000, 4000)


def test_p7_a_trial_ending_inside_the_period_is_billed_from_its_end_day() -> None:
    """Arrears $30 from Mar 16 with 14 trial days: trial ends Mar 30, 2 days × 3000 / 31 = 193.5 → 194."""
    march, days = _monthly("2024-03-16T00:00:00", "2024-03-20T00:00:00")
    started = _at("2024-03-16T00:00:00")

    window = billed_window(march, period_days=days, timezone="UTC", started_at=started,
                           trial_ends_at=started + timedelta(days=14))

    assert window is not None and window.days == 2
    assert _fee(window, 3000) == 194


def test_a_period_inside_the_trial_costs_nothing() -> None:
    march, days = _monthly("2024-03-16T00:00:00", "2024-03-20T00:00:00")
    started = _at("2024-03-16T00:00:00")

    assert billed_window(march, period_days=days, timezone="UTC", started_at=started,
                         trial_ends_at=started + timedelta(days=30)) is None


def test_days_are_local_days_of_the_customers_timezone() -> None:
    """A New York subscription terminated at 02:00 UTC on Apr 11 was terminated on Apr 10 locally."""
    april, days = _monthly("2024-01-01T05:00:00", "2024-04-11T02:00:00", "America/New_York")

    window = billed_window(april, period_days=days, timezone="America/New_York", started_at=_at("2024-01-01T05:00:00"),
                           terminated_at=_at("2024-04-11T02:00:00"))

    assert window is not None and window.days == 10


periods_at = st.fixed_dictionaries({
    "interval": st.sampled_from(INTERVALS),
    "billing_time": st.sampled_from(("calendar", "anniversary")),
    "anchor": st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)),
    "timezone": st.sampled_from(TIMEZONES),
})
amounts = st.integers(min_value=0, max_value=10**9)
MILLION = 1_000_000  # cut points as millionths of a period


def _full_period(schedule: dict[str, Any], offset: timedelta) -> tuple[Any, int]:
    """A full (not first) period of the schedule, and its day count."""
    at = schedule["anchor"] + timedelta(days=400) + offset
    period = period_containing(at, **schedule)
    return period, local_days(period, schedule["timezone"])


@settings(max_examples=300, deadline=None)
@given(schedule=periods_at, offset=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3000)),
       cuts=st.lists(st.integers(min_value=0, max_value=MILLION), max_size=6), amount=amounts)
def test_upgrades_split_a_period_into_windows_that_add_up_to_the_plan_amount(
    schedule: dict[str, Any], offset: timedelta, cuts: list[int], amount: int
) -> None:
    """Plans changed on any days: windows tile the period's days, and the fees of one amount sum to it ±1 cent a split."""
    period, days = _full_period(schedule, offset)
    zone = schedule["timezone"]
    length = period.ends_at - period.starts_at
    changes = sorted(period.starts_at + length * cut // MILLION for cut in cuts)
    starts = [period.starts_at, *changes]
    windows = []
    for index, started in enumerate(starts):
        ends = starts[index + 1] if index + 1 < len(starts) else None
        window = billed_window(period, period_days=days, timezone=zone, started_at=started,
                               terminated_at=ends, upgraded=ends is not None)
        if window is not None:
            windows.append(window)

    assert sum(w.days for w in windows) == days
    assert all(a.ends_at == b.starts_at for a, b in zip(windows, windows[1:]))
    total = sum(prorated_cents(amount, w.days, w.period_days) for w in windows)
    assert abs(total - amount) <= max(len(windows) - 1, 0)


@settings(max_examples=300, deadline=None)
@given(schedule=periods_at, offset=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3000)),
       cut=st.integers(min_value=0, max_value=MILLION - 1), upgraded=st.booleans())
def test_billed_and_credited_days_of_a_terminated_period_are_the_whole_period(
    schedule: dict[str, Any], offset: timedelta, cut: int, upgraded: bool
) -> None:
    period, days = _full_period(schedule, offset)
    zone = schedule["timezone"]
    terminated = period.starts_at + (period.ends_at - period.starts_at) * cut // MILLION

    billed = billed_window(period, period_days=days, timezone=zone, started_at=period.starts_at,
                           terminated_at=terminated, upgraded=upgraded)
    unused = unused_window(period, period_days=days, timezone=zone, terminated_at=terminated, upgraded=upgraded)

    assert (billed.days if billed else 0) + (unused.days if unused else 0) == days


@given(amount=amounts, period_days=st.integers(min_value=1, max_value=366), data=st.data())
def test_a_prorated_fee_grows_with_the_days_and_never_exceeds_the_amount(amount: int, period_days: int, data: Any) -> None:
    fewer = data.draw(st.integers(min_value=0, max_value=period_days))
    more = data.draw(st.integers(min_value=fewer, max_value=period_days))

    assert 0 <= prorated_cents(amount, fewer, period_days) <= prorated_cents(amount, more, period_days) <= amount
    assert prorated_cents(amount, period_days, period_days) == amount
