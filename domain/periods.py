"""Billing periods: calendar and anniversary schedules, bounded at local midnight in the customer's time zone.

Periods are computed on local calendar dates (Lago P2) and each boundary is the first instant of its local
day, converted to UTC (Lago P1). Consecutive periods share a boundary, so they tile time with no gap and no
overlap whatever the zone's daylight-saving rules. The period containing a moment is found arithmetically
from its distance to the anchor, never by walking every earlier period.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

INTERVALS = ("weekly", "monthly", "quarterly", "semiannual", "yearly")
BILLING_TIMES = ("calendar", "anniversary")

_MONTHS_PER_INTERVAL = {"monthly": 1, "quarterly": 3, "semiannual": 6, "yearly": 12}
_ONE_MICROSECOND = timedelta(microseconds=1)
_ONE_SECOND = timedelta(seconds=1)


@dataclass(frozen=True)
class Period:
    """A billing period as the half-open UTC interval ``[starts_at, ends_at)``, so periods tile without overlap."""

    starts_at: datetime
    ends_at: datetime

    def contains(self, moment: datetime) -> bool:
        """Whether ``moment`` falls inside the period, its end excluded."""
        return self.starts_at <= moment < self.ends_at

    def lago_ending_at(self) -> datetime:
        """The inclusive last instant, which is how Lago reports the end of a period on the wire."""
        return self.ends_at - _ONE_MICROSECOND


def period_containing(
    moment: datetime, *, interval: str, billing_time: str, anchor: datetime, timezone: str
) -> Period:
    """The period of a subscription started at ``anchor`` that contains ``moment``; the scheduler's main question."""
    schedule = _Schedule.of(interval, billing_time, anchor, timezone)
    return schedule.period(schedule.index_of(_aware("moment", moment)))


def first_period(*, interval: str, billing_time: str, anchor: datetime, timezone: str) -> Period:
    """The subscription's first period, which starts at local midnight of the anchor's local date."""
    return _Schedule.of(interval, billing_time, anchor, timezone).period(0)


def next_period(period: Period, *, interval: str, billing_time: str, anchor: datetime, timezone: str) -> Period:
    """The period that starts where ``period`` ends; refuses a period that is not one of this schedule's."""
    following = period_containing(
        period.ends_at, interval=interval, billing_time=billing_time, anchor=anchor, timezone=timezone
    )
    if following.starts_at != period.ends_at:
        raise ValueError(f"{period} is not a period of this subscription")
    return following


def periods(
    *, interval: str, billing_time: str, anchor: datetime, timezone: str, until: datetime
) -> Iterator[Period]:
    """Successive periods from the first one while they start before ``until``, for catch-up billing."""
    schedule = _Schedule.of(interval, billing_time, anchor, timezone)
    until = _aware("until", until)
    index = 0
    while (current := schedule.period(index)).starts_at < until:
        yield current
        index += 1


def local_days(period: Period, timezone: str) -> int:
    """How many local calendar days the period spans, the unit of day-based proration."""
    zone = _zone(timezone)
    return (period.ends_at.astimezone(zone).date() - period.starts_at.astimezone(zone).date()).days


def local_day_start(moment: datetime, timezone: str, *, days_later: int = 0) -> datetime:
    """The first instant (UTC) of ``moment``'s local day, or of the day ``days_later`` after it."""
    zone = _zone(timezone)
    return _first_instant(_aware("moment", moment).astimezone(zone).date() + timedelta(days=days_later), zone)


def full_period_days(moment: datetime, *, interval: str, billing_time: str, anchor: datetime, timezone: str) -> int:
    """Local days of the unclamped period containing ``moment``, the divisor of the daily price (Lago P4)."""
    schedule = _Schedule.of(interval, billing_time, anchor, timezone)
    starts_on, ends_on = schedule.full_dates(schedule.index_of(_aware("moment", moment)))
    return (ends_on - starts_on).days


@dataclass(frozen=True)
class _Schedule:
    """One subscription's period rule, reduced to local start dates indexed from 0 for the first period."""

    interval: str
    is_calendar: bool
    anchor_on: date
    zone: ZoneInfo

    @classmethod
    def of(cls, interval: str, billing_time: str, anchor: datetime, timezone: str) -> _Schedule:
        """Validate the public arguments once and fix the anchor's local date in the customer's zone."""
        if interval not in INTERVALS:
            raise ValueError(f"unknown interval {interval!r}; expected one of {INTERVALS}")
        if billing_time not in BILLING_TIMES:
            raise ValueError(f"unknown billing_time {billing_time!r}; expected one of {BILLING_TIMES}")
        zone = _zone(timezone)
        anchor_on = _aware("anchor", anchor).astimezone(zone).date()
        return cls(interval, billing_time == "calendar", anchor_on, zone)

    def period(self, index: int) -> Period:
        """Period number ``index``, bounded by the first instants of its start date and of the next one's."""
        starts_at = _first_instant(self.starts_on(index), self.zone)
        return Period(starts_at, _first_instant(self.starts_on(index + 1), self.zone))

    def starts_on(self, index: int) -> date:
        """Local start date of period ``index``; calendar periods after the first follow the calendar grid."""
        if self.is_calendar:
            return self.anchor_on if index == 0 else self._shift(_grid_start(self.anchor_on, self.interval), index)
        return self._shift(self.anchor_on, index)

    def full_dates(self, index: int) -> tuple[date, date]:
        """Local start and end dates of period ``index`` before the first calendar period is clamped."""
        if self.is_calendar and index == 0:
            return _grid_start(self.anchor_on, self.interval), self.starts_on(1)
        return self.starts_on(index), self.starts_on(index + 1)

    def index_of(self, moment: datetime) -> int:
        """Index of the period containing ``moment``, guessed from local dates then settled on exact instants."""
        if moment < _first_instant(self.anchor_on, self.zone):
            raise ValueError(f"{moment.isoformat()} is before the subscription's first period")
        index = max(self._estimate(moment.astimezone(self.zone).date()), 0)
        # The date guess can be one off around anniversary days and around boundaries moved by a DST gap.
        while index > 0 and _first_instant(self.starts_on(index), self.zone) > moment:
            index -= 1
        while _first_instant(self.starts_on(index + 1), self.zone) <= moment:
            index += 1
        return index

    def _estimate(self, local_on: date) -> int:
        """Periods elapsed between the anchor's local date and ``local_on``, counted in whole intervals."""
        origin = self.anchor_on
        if self.is_calendar:
            origin, local_on = _grid_start(origin, self.interval), _grid_start(local_on, self.interval)
        if self.interval == "weekly":
            return (local_on - origin).days // 7
        months = (local_on.year - origin.year) * 12 + local_on.month - origin.month
        return months // _MONTHS_PER_INTERVAL[self.interval]

    def _shift(self, origin: date, index: int) -> date:
        """``origin`` moved by ``index`` intervals, on the origin's day of month or that month's last day."""
        if self.interval == "weekly":
            return origin + timedelta(weeks=index)
        year, month0 = divmod(origin.year * 12 + origin.month - 1 + index * _MONTHS_PER_INTERVAL[self.interval], 12)
        return date(year, month0 + 1, min(origin.day, calendar.monthrange(year, month0 + 1)[1]))


def _grid_start(on: date, interval: str) -> date:
    """First day of the calendar week, month, quarter, half or year containing ``on``."""
    if interval == "weekly":
        return on - timedelta(days=on.weekday())
    months = _MONTHS_PER_INTERVAL[interval]
    return date(on.year, (on.month - 1) // months * months + 1, 1)


def _first_instant(day: date, zone: ZoneInfo) -> datetime:
    """The UTC instant at which local ``day`` begins: its midnight, the earlier one if repeated, else the DST jump."""
    midnight = datetime.combine(day, time(), tzinfo=zone)
    instant = midnight.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == midnight.replace(tzinfo=None):
        return instant
    # Midnight is skipped: with fold=1 it maps before the jump and with fold=0 after it, and the jump is whole seconds.
    before, after = midnight.replace(fold=1).astimezone(UTC), instant
    while after - before > _ONE_SECOND:
        middle = before + timedelta(seconds=(after - before) // _ONE_SECOND // 2)
        if middle.astimezone(zone).replace(tzinfo=None) >= midnight.replace(tzinfo=None):
            after = middle
        else:
            before = middle
    return after


def _zone(timezone: str) -> ZoneInfo:
    """The IANA zone named ``timezone``, refused as a ValueError like every other bad argument here."""
    try:
        return ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown timezone {timezone!r}") from exc


def _aware(name: str, moment: datetime) -> datetime:
    """``moment`` in UTC, refusing naive datetimes, which name no instant."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {moment.isoformat()}")
    return moment.astimezone(UTC)
