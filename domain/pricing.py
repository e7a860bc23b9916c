"""Charge models: the exact amount a charge bills for one period's usage (Lago semantics C1–C8, M1).

Amounts are Decimals in currency major units, computed under a local 38-digit context and never rounded here;
a fee is rounded once, half-up, to the currency's minor unit by ``domain.money.to_cents`` (ADR 0029).
A negative period total bills nothing with 0 units, whatever the model (A2). Pricing group keys play no part:
the caller prices each group.

Where the reference is silent we decided:
* Tier ranges cover ``(previous to_value, to_value]`` (the first from 0), which gives both bound conventions'
  unit counts, and a range's flat amount is billed once any of the total lies beyond the previous bound.
* Zero usage bills the first range's flat amount in the volume model too, as graduated does since mid-2026.
* For graduated percentage, ``TierAmount.per_unit_amount`` is the range's rate / 100, the amount of one unit.
* Percentage: a free criterion of 0 counts as unset; the allowance spans the leading events until the N free
  events are done or the running total reaches the free total, and no later event is ever free. The free amount
  is that span's running total, capped at the free total. Free events bill nothing, even under a per-transaction
  minimum; the event that reaches the free total pays its part above it plus the fixed amount, clamped. A period
  whose units are 0 bills 0, fixed amounts included, as the dynamic model does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import (
    ROUND_CEILING,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)
from typing import TypeVar

from domain.charge import CHARGE_MODELS, ChargeProperties, Tier

_CONTEXT = Context(prec=38, traps=[InvalidOperation, DivisionByZero, Overflow])
_ZERO = Decimal(0)
_HUNDRED = Decimal(100)
_T = TypeVar("_T")


@dataclass(frozen=True)
class PercentageUsage:
    """What a percentage charge needs about a period's events, without all of them."""

    total: Decimal
    count: int
    head: tuple[Decimal, ...]
    rest_clamped: Decimal


@dataclass(frozen=True)
class Usage:
    """A period's aggregated usage of one charge (or one of its filters or pricing groups)."""

    units: Decimal
    events_count: int = 0
    precise_total_amount_cents: Decimal = _ZERO
    percentage: PercentageUsage | None = None


@dataclass(frozen=True)
class TierAmount:
    """What one range of a tiered charge billed, for the fee's amount details."""

    from_value: int
    to_value: int | None
    units: Decimal
    per_unit_amount: Decimal
    flat_amount: Decimal
    amount: Decimal


@dataclass(frozen=True)
class Price:
    """The exact amount a charge bills, before the fee rounds it to minor units."""

    amount: Decimal
    units: Decimal
    tiers: tuple[TierAmount, ...] = ()
    unit_amount: Decimal | None = None


@dataclass(frozen=True)
class _Allowance:
    """The leading events a percentage charge's free allowance spans, and what it leaves free."""

    events: int
    free_events: int
    free_amount: Decimal
    running_total: Decimal


def price(model: str, properties: ChargeProperties, usage: Usage, *, exponent: int = 2) -> Price:
    """The exact price of ``usage`` under a ``model`` charge; ``exponent`` (minor-unit decimals) serves dynamic only."""
    if model not in CHARGE_MODELS:
        raise ValueError(f"unknown charge model: {model}")
    if usage.units < 0:
        return Price(amount=_ZERO, units=_ZERO)
    with localcontext(_CONTEXT):
        if model == "standard":
            return _priced(usage.units * _need(properties.amount, "amount", model), usage.units)
        if model == "package":
            return _package(properties, usage.units)
        if model == "graduated":
            return _graduated(_ranges(properties.graduated_ranges, model), usage.units, _per_unit_amount)
        if model == "graduated_percentage":
            return _graduated(_ranges(properties.graduated_percentage_ranges, model), usage.units, _rate_amount)
        if model == "volume":
            return _volume(_ranges(properties.volume_ranges, model), usage.units)
        if model == "percentage":
            return _percentage(properties, usage)
        return _dynamic(usage, exponent)


def minimum_true_up(fees_amount: Decimal, min_amount: Decimal, ratio: Decimal = Decimal(1)) -> Decimal:
    """The true-up fee that lifts a charge's fees to its minimum, prorated by ``ratio`` (C8); never negative."""
    with localcontext(_CONTEXT):
        return max(_ZERO, min_amount * ratio - fees_amount)


def percentage_usage(values_in_time_order: Sequence[Decimal], properties: ChargeProperties) -> PercentageUsage:
    """The compact form of a period's event values: only the events the free allowance spans are kept."""
    values = tuple(values_in_time_order)
    with localcontext(_CONTEXT):
        kept = _allowance(values, len(values), properties).events
        bounded = properties.per_transaction_min_amount is not None or properties.per_transaction_max_amount is not None
        rest = sum((transaction_amount(v, properties) for v in values[kept:]), _ZERO) if bounded else _ZERO
        return PercentageUsage(total=sum(values, _ZERO), count=len(values), head=values[:kept], rest_clamped=rest)


def allowance_head_length(values_in_time_order: Sequence[Decimal], properties: ChargeProperties) -> int:
    """How many leading events a ``PercentageUsage.head`` must hold to price these values exactly."""
    values = tuple(values_in_time_order)
    with localcontext(_CONTEXT):
        return _allowance(values, len(values), properties).events


def _package(properties: ChargeProperties, units: Decimal) -> Price:
    amount = _need(properties.amount, "amount", "package")
    size = _need(properties.package_size, "package_size", "package")
    paid = units - (properties.free_units or 0)
    if paid <= 0:
        return _priced(_ZERO, units)
    # divmod stays exact where a ceiling of the quotient could be fooled by its last digit.
    whole, part = divmod(paid, size)
    return _priced((whole + (1 if part else 0)) * amount, units)


def _graduated(ranges: tuple[Tier, ...], units: Decimal, unit_price: Callable[[Tier], Decimal]) -> Price:
    rows: list[TierAmount] = []
    lower = _ZERO
    for tier in ranges:
        upper = units if tier.to_value is None else min(units, Decimal(tier.to_value))
        inside = max(upper - lower, _ZERO)
        per_unit = unit_price(tier)
        rows.append(TierAmount(from_value=tier.from_value, to_value=tier.to_value, units=inside,
                               per_unit_amount=per_unit, flat_amount=tier.flat_amount,
                               amount=inside * per_unit + tier.flat_amount))
        if tier.to_value is None or units <= tier.to_value:
            break
        lower = Decimal(tier.to_value)
    return _priced(sum((row.amount for row in rows), _ZERO), units, tuple(rows))


def _volume(ranges: tuple[Tier, ...], units: Decimal) -> Price:
    ceiling = units.to_integral_value(rounding=ROUND_CEILING)
    reached = [t for t in ranges if t.from_value <= ceiling and (t.to_value is None or units <= t.to_value)]
    if not reached:
        raise ValueError(f"volume ranges do not cover {units} units")
    tier = reached[0]
    per_unit = _per_unit_amount(tier)
    amount = units * per_unit + tier.flat_amount
    row = TierAmount(from_value=tier.from_value, to_value=tier.to_value, units=units,
                     per_unit_amount=per_unit, flat_amount=tier.flat_amount, amount=amount)
    return _priced(amount, units, (row,))


def _percentage(properties: ChargeProperties, usage: Usage) -> Price:
    facts = usage.percentage
    if facts is None:
        raise ValueError("a percentage charge is priced from a PercentageUsage")
    rate = _need(properties.rate, "rate", "percentage") / _HUNDRED
    if usage.units == 0:
        return Price(amount=_ZERO, units=_ZERO)
    span = _allowance(facts.head, facts.count, properties)
    if properties.per_transaction_min_amount is None and properties.per_transaction_max_amount is None:
        paid_events = facts.count - span.free_events
        amount = max(facts.total - span.free_amount, _ZERO) * rate + paid_events * (properties.fixed_amount or _ZERO)
        return _priced(amount, usage.units)
    # The event that uses the allowance up pays only for its part above it; later ones pay for all.
    amount = facts.rest_clamped + sum((transaction_amount(v, properties) for v in facts.head[span.events:]), _ZERO)
    if span.free_events < span.events:
        amount += transaction_amount(span.running_total - span.free_amount, properties)
    return _priced(amount, usage.units)


def _dynamic(usage: Usage, exponent: int) -> Price:
    if usage.units == 0:
        return Price(amount=_ZERO, units=_ZERO)
    return _priced(usage.precise_total_amount_cents.scaleb(-exponent), usage.units)


def _allowance(head: Sequence[Decimal], count: int, properties: ChargeProperties) -> _Allowance:
    free_events = properties.free_units_per_events or 0
    free_total = properties.free_units_per_total_aggregation or _ZERO
    if free_events <= 0 and free_total <= 0:
        return _Allowance(events=0, free_events=0, free_amount=_ZERO, running_total=_ZERO)
    eligible = min(free_events, count) if free_events > 0 else count
    running = _ZERO
    for index, value in enumerate(head[:eligible], start=1):
        running += value
        if free_total > 0 and running >= free_total:
            return _Allowance(events=index, free_events=index - 1, free_amount=free_total, running_total=running)
    if len(head) < eligible:
        raise ValueError(f"the head holds {len(head)} events but the free allowance spans more")
    return _Allowance(events=eligible, free_events=eligible, free_amount=max(running, _ZERO), running_total=running)


def transaction_amount(value: Decimal, properties: ChargeProperties) -> Decimal:
    """One event's percentage price, value × rate + fixed, within the per-transaction bounds."""
    amount = value * _need(properties.rate, "rate", "percentage") / _HUNDRED + (properties.fixed_amount or _ZERO)
    if properties.per_transaction_min_amount is not None:
        amount = max(amount, properties.per_transaction_min_amount)
    if properties.per_transaction_max_amount is not None:
        amount = min(amount, properties.per_transaction_max_amount)
    return amount


def _priced(amount: Decimal, units: Decimal, tiers: tuple[TierAmount, ...] = ()) -> Price:
    return Price(amount=amount, units=units, tiers=tiers, unit_amount=amount / units if units else None)


def _per_unit_amount(tier: Tier) -> Decimal:
    return _need(tier.per_unit_amount, "per_unit_amount", "tiered")


def _rate_amount(tier: Tier) -> Decimal:
    return _need(tier.rate, "rate", "graduated_percentage") / _HUNDRED


def _ranges(ranges: tuple[Tier, ...], model: str) -> tuple[Tier, ...]:
    if not ranges:
        raise ValueError(f"a {model} charge has no ranges")
    return ranges


def _need(value: _T | None, name: str, model: str) -> _T:
    if value is None:
        raise ValueError(f"a {model} charge has no {name}")
    return value
