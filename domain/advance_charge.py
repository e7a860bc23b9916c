"""Pay-in-advance charges: each event is billed as it arrives, above a high-water mark (semantics C10).

A ``ChargeMeter`` follows one pay-in-advance charge of one subscription through one charge
period. Per filter × pricing group it keeps the running level of usage and its highest level
so far. An event moves the level; only a rise above the highest level is billed, at the
price of the period's usage with the event less the price without it:

* count: every event adds one unit;
* sum: the event's value moves the level; a decrease is never refunded and later increases
  bill only above the earlier maximum (+5 → 5; +3 → 3; −4 → 0; +6 → 2 at $1 a unit);
* unique count: a value newly added moves the level up one, a removal down one.

A percentage charge bills each event's own transaction amount (its per-transaction
minimum and maximum apply). The meter records which log position it has measured, so an
event handed to it again (a retry, a crash before the queue row was removed) bills nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain import identity
from domain.charge import Charge
from domain.pricing import Usage, price, transaction_amount
from domain.usage import bucket_properties

_ZERO = Decimal(0)


@dataclass(frozen=True)
class AdvanceUsage:
    """One usage event as it counts for one pay-in-advance charge of one subscription."""

    event_id: UUID
    transaction_id: str
    position: int
    organization_id: UUID
    subscription_id: UUID
    charge_id: UUID
    metric_id: UUID
    metric_code: str
    metric_name: str
    aggregation: str
    period_starts_at: datetime
    period_ends_at: datetime
    filter_id: UUID
    group: str
    value: Decimal | None
    unique: str | None
    adds: bool
    occurred_at: datetime


@dataclass(frozen=True)
class Level:
    """One filter × group of a meter: where usage stands and the highest it has stood."""

    level: Decimal = _ZERO
    high_water: Decimal = _ZERO
    uniques: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Rise:
    """What one event adds above the high-water mark: the units billed and the units before them."""

    before: Decimal
    after: Decimal
    value: Decimal

    @property
    def units(self) -> Decimal:
        return self.after - self.before


def move(level: Level, aggregation: str, usage: AdvanceUsage) -> Level:
    """The level after one event."""
    if aggregation == "unique_count_agg":
        if usage.unique is None:
            return level
        uniques = level.uniques | {usage.unique} if usage.adds else level.uniques - {usage.unique}
        now = Decimal(len(uniques))
        return Level(now, max(level.high_water, now), uniques)
    step = Decimal(1) if aggregation == "count_agg" else (usage.value or _ZERO)
    now = level.level + step
    return Level(now, max(level.high_water, now), level.uniques)


def rise_amount(charge: Charge, usage: AdvanceUsage, rise: Rise, exponent: int) -> Decimal:
    """The price of a rise, in major units: the period's price with it less without it (C10)."""
    properties = bucket_properties(charge, usage.filter_id)
    if charge.charge_model == "percentage":
        return transaction_amount(rise.value, properties) if rise.value > 0 else _ZERO
    with_it = price(charge.charge_model, properties, Usage(units=rise.after, events_count=1), exponent=exponent)
    without = price(charge.charge_model, properties, Usage(units=rise.before), exponent=exponent)
    return max(with_it.amount - without.amount, _ZERO)


class ChargeMeter(Aggregate):
    """The high-water marks of one pay-in-advance charge of a subscription in one charge period."""

    @staticmethod
    def create_id(organization_id: UUID, subscription_id: UUID, charge_id: UUID, period_starts_at: datetime) -> UUID:
        return identity.scoped_id(organization_id, "charge_meter",
                                  f"{subscription_id}/{charge_id}/{period_starts_at.isoformat()}")

    @event("Opened")
    def __init__(self, organization_id: UUID, subscription_id: UUID, charge_id: UUID, period_starts_at: datetime) -> None:
        self.organization_id = organization_id
        self.subscription_id = subscription_id
        self.charge_id = charge_id
        self.period_starts_at = period_starts_at
        self.position = 0
        self.levels: dict[str, Level] = {}

    def measure(self, usage: AdvanceUsage) -> Rise | None:
        """Record the event; the rise it bills, or None when it was measured before."""
        if usage.position <= self.position:
            return None
        key = f"{usage.filter_id}|{usage.group}"
        before = self.levels.get(key, Level())
        after = move(before, usage.aggregation, usage)
        self._measured(position=usage.position, key=key, level=after.level, high_water=after.high_water,
                       unique=usage.unique, adds=usage.adds)
        value = usage.value if usage.value is not None else Decimal(1)
        return Rise(before.high_water, after.high_water, value)

    @event("Measured")
    def _measured(self, position: int, key: str, level: Decimal, high_water: Decimal, unique: str | None,
                  adds: bool) -> None:
        self.position = position
        current = self.levels.get(key, Level())
        uniques = current.uniques
        if unique is not None:
            uniques = uniques | {unique} if adds else uniques - {unique}
        self.levels[key] = Level(level, high_water, uniques)


@dataclass(frozen=True)
class QueuedCharge:
    """One event of a pay-in-advance charge waiting to be billed; ``position`` orders the queue."""

    event_id: UUID
    charge_id: UUID
    subscription_id: UUID
    usage: AdvanceUsage
    position: int

    @property
    def cursor(self) -> tuple[int, UUID, UUID]:
        return (self.position, self.charge_id, self.subscription_id)
