"""How events become units: matching to charges, filters and groups, and aggregation (semantics §2).

The usage projection keeps, per subscription × charge × period × filter × group, a few
running figures (``Stats``) that each new event updates in O(1), whatever order events
arrive in. Units are computed from them when read, so reading usage costs the same for
ten events or ten million.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, localcontext
from typing import Any
from uuid import UUID

from domain.billable_metric import MetricDefinition
from domain.charge import ALL_FILTER_VALUES, Charge, ChargeFilter, ChargeProperties
from domain.periods import Period
from domain.usage_event import numeric

NO_FILTER = UUID(int=0)
_ROUNDING = {"round": ROUND_HALF_UP, "ceil": ROUND_CEILING, "floor": ROUND_FLOOR}
_NUMERIC = ("sum_agg", "max_agg", "latest_agg", "weighted_sum_agg")


@dataclass(frozen=True)
class Stats:
    """Running figures of one usage bucket; every field merges by addition, max or recency."""

    events_count: int = 0
    value_sum: Decimal = Decimal(0)
    value_max: Decimal | None = None
    latest_value: Decimal | None = None
    weighted_moment: Decimal = Decimal(0)
    prorated_sum: Decimal = Decimal(0)
    amount_sum: Decimal = Decimal(0)


def matching_filter(filters: Sequence[ChargeFilter], properties: Mapping[str, Any]) -> ChargeFilter | None:
    """The most specific filter every key of which the event meets (A10), if any."""
    best: ChargeFilter | None = None
    for candidate in filters:
        if all(_meets(properties, condition.key, condition.values) for condition in candidate.values):
            if best is None or len(candidate.values) > len(best.values):
                best = candidate
    return best


def _meets(properties: Mapping[str, Any], key: str, values: Sequence[str]) -> bool:
    if key not in properties or properties[key] is None:
        return False
    return ALL_FILTER_VALUES in values or _text(properties[key]) in values


def _text(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def group_key(keys: Sequence[str], properties: Mapping[str, Any]) -> str:
    """The pricing group an event falls in (A11): its values for the group keys, '' when none."""
    if not keys:
        return ""
    return json.dumps([None if properties.get(k) is None else _text(properties[k]) for k in keys])


def group_values(keys: Sequence[str], key: str) -> dict[str, str | None]:
    return dict(zip(keys, json.loads(key), strict=True)) if key else {}


@dataclass(frozen=True)
class Contribution:
    """What one event adds to one bucket."""

    filter_id: UUID
    group: str
    value: Decimal | None  # the metric's numeric value (None: not a number, ignored by numeric aggregations)
    unique: str | None  # unique_count: the distinct value
    adds: bool  # unique_count: add (True) or remove


def contribution(
    metric: MetricDefinition, charge: Charge, properties: Mapping[str, Any]
) -> Contribution | None:
    """How an event counts for a charge, or None when the metric's aggregation ignores it (A2–A5)."""
    chosen = matching_filter(charge.filters, properties)
    priced_by = chosen.properties if chosen is not None else charge.properties
    raw = properties.get(metric.field_name) if metric.field_name else None
    value = numeric(raw)
    if metric.aggregation_type in _NUMERIC and value is None:
        return None
    unique = None
    adds = True
    if metric.aggregation_type == "unique_count_agg":
        if raw is None:
            return None
        unique = _text(raw)
        adds = properties.get("operation_type", "add") != "remove"
    return Contribution(
        filter_id=chosen.id if chosen is not None else NO_FILTER,
        group=group_key(priced_by.pricing_group_keys, properties),
        value=value,
        unique=unique,
        adds=adds,
    )


def bucket_properties(charge: Charge, filter_id: UUID) -> ChargeProperties:
    """The prices of a bucket: its filter's, or the charge's own for the default bucket."""
    chosen = next((f for f in charge.filters if f.id == filter_id), None)
    return chosen.properties if chosen is not None else charge.properties


def epoch(moment: datetime) -> Decimal:
    """Seconds since 1970 as an exact decimal (weighted sums integrate over seconds)."""
    return Decimal(int(moment.timestamp())) + Decimal(moment.microsecond) / Decimal(1_000_000)


def units(
    metric: MetricDefinition,
    current: Stats,
    carried: Stats,
    period: Period,
    *,
    unique_count: int = 0,
    prorated: bool = False,
    period_days: int = 1,
) -> Decimal:
    """A bucket's units for ``period`` (A1–A7, C11); ``carried`` sums earlier periods (recurring)."""
    aggregation = metric.aggregation_type
    recurring = metric.recurring
    if aggregation == "count_agg":
        result = Decimal(current.events_count)
    elif aggregation == "sum_agg":
        before = carried.value_sum if recurring else Decimal(0)
        if prorated and recurring:
            with localcontext() as context:
                context.prec = 38
                share = (current.prorated_sum / Decimal(period_days)).quantize(Decimal("0.00001"), rounding=ROUND_CEILING)
            result = before + share
        else:
            result = before + current.value_sum
    elif aggregation == "max_agg":
        result = current.value_max if current.value_max is not None else Decimal(0)
    elif aggregation == "latest_agg":
        result = max(current.latest_value or Decimal(0), Decimal(0))
    elif aggregation == "unique_count_agg":
        result = Decimal(unique_count)
    elif aggregation == "weighted_sum_agg":
        result = weighted_average(current, carried.value_sum if recurring else Decimal(0), period)
    else:
        result = Decimal(0)
    return rounded(result, metric.rounding_function, metric.rounding_precision)


def weighted_average(current: Stats, initial: Decimal, period: Period) -> Decimal:
    """The time-weighted level over the period, rounded up at 20 decimals (A6).

    With level(t) = initial + Σ increments up to t, its integral over [start, end) is
    initial·T + Σ inc·(end − t) = initial·T + end·Σinc − Σ(inc·t): order never matters.
    """
    seconds = epoch(period.ends_at) - epoch(period.starts_at)
    if seconds <= 0:
        return Decimal(0)
    with localcontext() as context:
        context.prec = 60
        integral = initial * seconds + epoch(period.ends_at) * current.value_sum - current.weighted_moment
        return (integral / seconds).quantize(Decimal(10) ** -20, rounding=ROUND_CEILING)


def rounded(value: Decimal, function: str | None, precision: int | None) -> Decimal:
    """The metric's rounding of aggregated units (A9)."""
    if function is None:
        return value
    step = Decimal(10) ** -(precision or 0)
    return value.quantize(step, rounding=_ROUNDING[function])


def merge(earlier: Stats, later: Stats) -> Stats:
    """Two buckets' figures as one (for carrying recurring usage across periods)."""
    maxima = [m for m in (earlier.value_max, later.value_max) if m is not None]
    return Stats(
        events_count=earlier.events_count + later.events_count,
        value_sum=earlier.value_sum + later.value_sum,
        value_max=max(maxima) if maxima else None,
        latest_value=later.latest_value if later.latest_value is not None else earlier.latest_value,
        weighted_moment=earlier.weighted_moment + later.weighted_moment,
        prorated_sum=earlier.prorated_sum + later.prorated_sum,
        amount_sum=earlier.amount_sum + later.amount_sum,
    )
