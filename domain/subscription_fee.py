"""The plan's own fee for a stretch of a billing period: day-based proration (semantics P4, P5, P6, P7).

A fee covers a window of whole local days inside one period. Its price is the plan amount
times the days billed over the days of the full period containing them, rounded half-up once.
Where a window starts and ends follows from the subscription's life:

* it starts at the period start, or later at the subscription's start day or its trial's end day;
* it ends at the period end, or earlier after the termination day, or at the start of an upgrade day
  (the new plan bills that day, so no day is billed twice and none is skipped).

Termination credits for plans paid in advance are the same computation over the unused days.
The price (``money.prorated_cents``) is computed by the caller (ADR 0029).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from domain.periods import Period, local_day_start

_INSTANT = timedelta(microseconds=1)


@dataclass(frozen=True)
class FeeWindow:
    """Whole local days ``[starts_at, ends_at)`` of one period, and the full period's day count."""

    starts_at: datetime
    ends_at: datetime
    days: int
    period_days: int

    @property
    def is_full(self) -> bool:
        return self.days == self.period_days


def local_days_between(starts_at: datetime, ends_at: datetime, timezone: str) -> int:
    zone = ZoneInfo(timezone)
    return max((ends_at.astimezone(zone).date() - starts_at.astimezone(zone).date()).days, 0)


def _last_billed_day_end(terminated_at: datetime, timezone: str, upgraded: bool) -> datetime:
    """Where billing stops: after the termination day (a termination exactly at midnight ends the day
    before), or at the start of an upgrade day, which the new plan bills."""
    if upgraded:
        return local_day_start(terminated_at, timezone)
    return local_day_start(terminated_at - _INSTANT, timezone, days_later=1)


def billed_window(
    period: Period,
    *,
    period_days: int,
    timezone: str,
    started_at: datetime,
    trial_ends_at: datetime | None = None,
    terminated_at: datetime | None = None,
    upgraded: bool = False,
) -> FeeWindow | None:
    """The days of ``period`` the plan's fee is owed for; None when there are none.

    ``period`` is the subscription's period (its first one already starts on the start day);
    ``period_days`` the local days of the unclamped period, the daily price's divisor.
    """
    starts_at = max(period.starts_at, local_day_start(started_at, timezone))
    if trial_ends_at is not None and trial_ends_at > starts_at:
        starts_at = max(starts_at, local_day_start(trial_ends_at, timezone))
    ends_at = period.ends_at
    if terminated_at is not None:
        last = _last_billed_day_end(terminated_at, timezone, upgraded)
        ends_at = min(ends_at, last)
    if ends_at <= starts_at:
        return None
    days = local_days_between(starts_at, ends_at, timezone)
    return FeeWindow(starts_at, ends_at, min(days, period_days), period_days) if days else None


def unused_window(
    period: Period, *, period_days: int, timezone: str, terminated_at: datetime, upgraded: bool = False
) -> FeeWindow | None:
    """The days of an in-advance ``period`` left after a termination, which are credited back (P5, P6)."""
    starts_at = _last_billed_day_end(terminated_at, timezone, upgraded)
    starts_at = max(starts_at, period.starts_at)
    if starts_at >= period.ends_at:
        return None
    days = local_days_between(starts_at, period.ends_at, timezone)
    return FeeWindow(starts_at, period.ends_at, min(days, period_days), period_days) if days else None
