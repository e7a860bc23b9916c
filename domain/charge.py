"""Charges: how a plan prices one metric, and the rules their properties must follow.

Lago sends prices as decimal strings and counts as integers; a number where a string is
expected is refused (reference §1.6). Errors carry Lago's code under ``properties`` and,
beyond Lago, under the exact dotted path of the offending value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from domain import limits
from domain.billable_metric import MetricDefinition
from domain.errors import Problems

CHARGE_MODELS = ("standard", "graduated", "graduated_percentage", "package", "percentage", "volume", "dynamic")
ALL_FILTER_VALUES = "__ALL_FILTER_VALUES__"
_DECIMAL = re.compile(r"^(\d+(\.\d*)?|\.\d+)$")
_IN_ADVANCE_AGGREGATIONS = ("count_agg", "sum_agg", "unique_count_agg")


@dataclass(frozen=True)
class Tier:
    """One range of a graduated, graduated-percentage or volume charge."""

    from_value: int
    to_value: int | None
    flat_amount: Decimal
    per_unit_amount: Decimal | None = None
    rate: Decimal | None = None


@dataclass(frozen=True)
class ChargeProperties:
    """The price of a charge; which fields matter depends on the charge model."""

    amount: Decimal | None = None
    package_size: int | None = None
    free_units: int | None = None
    graduated_ranges: tuple[Tier, ...] = ()
    graduated_percentage_ranges: tuple[Tier, ...] = ()
    volume_ranges: tuple[Tier, ...] = ()
    rate: Decimal | None = None
    fixed_amount: Decimal | None = None
    free_units_per_events: int | None = None
    free_units_per_total_aggregation: Decimal | None = None
    per_transaction_min_amount: Decimal | None = None
    per_transaction_max_amount: Decimal | None = None
    pricing_group_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class FilterValues:
    """A charge filter's condition on one metric filter key."""

    key: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class ChargeFilter:
    """A slice of a charge's events, priced with its own properties."""

    id: UUID
    invoice_display_name: str | None
    properties: ChargeProperties
    values: tuple[FilterValues, ...]
    created_at: datetime


@dataclass(frozen=True)
class Charge:
    id: UUID
    code: str
    billable_metric_id: UUID
    charge_model: str
    created_at: datetime
    pay_in_advance: bool = False
    invoiceable: bool = True
    regroup_paid_fees: str | None = None
    prorated: bool = False
    min_amount_cents: int = 0
    invoice_display_name: str | None = None
    accepts_target_wallet: bool = False
    properties: ChargeProperties = field(default_factory=ChargeProperties)
    filters: tuple[ChargeFilter, ...] = ()
    tax_codes: tuple[str, ...] = ()


class _Reader:
    """Reads raw property values, reporting each problem under ``properties`` and its path."""

    def __init__(self, raw: Mapping[str, Any], problems: Problems, path: str) -> None:
        self.raw = raw
        self.problems = problems
        self.path = path

    def fail(self, name: str, code: str) -> None:
        self.problems.add("properties", code)
        self.problems.add(f"{self.path}.{name}", code)

    def amount(self, name: str, code: str = "invalid_amount", *, required: bool = True) -> Decimal | None:
        value = self.raw.get(name)
        if value is None:
            if required:
                self.fail(name, code)
            return None
        if not isinstance(value, str) or not _DECIMAL.match(value.strip()):
            self.fail(name, code)
            return None
        amount = Decimal(value.strip())
        if not limits.storable_number(amount):
            self.fail(name, "value_is_out_of_range")
            return None
        return amount

    def count(self, name: str, code: str, *, minimum: int, required: bool = True) -> int | None:
        value = self.raw.get(name)
        if value is None:
            if required:
                self.fail(name, code)
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum or not limits.storable_integer(value):
            self.fail(name, code)
            return None
        return value

    def tiers(self, name: str, price: str) -> tuple[Tier, ...]:
        """Contiguous integer ranges from 0, the last open-ended (Lago accepts adjacent or +1 bounds)."""
        ranges = self.raw.get(name)
        if not ranges:
            self.fail(name, f"missing_{name}")
            return ()
        if not isinstance(ranges, list) or not all(isinstance(r, Mapping) for r in ranges):
            self.fail(name, f"invalid_{name}")
            return ()
        tiers: list[Tier] = []
        for index, bounds in enumerate(ranges):
            entry = _Reader(bounds, self.problems, f"{self.path}.{name}.{index}")
            low, high = bounds.get("from_value"), bounds.get("to_value")
            previous = tiers[-1].to_value if tiers else None
            integral = isinstance(low, int) and not isinstance(low, bool) and (
                high is None or (isinstance(high, int) and not isinstance(high, bool))
            )
            ordered = integral and (high is None or high >= low) and (
                low == 0 if index == 0 else previous is not None and low in (previous, previous + 1)
            )
            last = index == len(ranges) - 1
            if not ordered or (high is None) != last:
                self.fail(name, f"invalid_{name}")
                continue
            flat = entry.amount("flat_amount", required=False) or Decimal(0)
            if price == "rate":
                value = entry.amount("rate", "invalid_rate")
                tiers.append(Tier(from_value=low, to_value=high, flat_amount=flat, rate=value))
            else:
                value = entry.amount(price)
                tiers.append(Tier(from_value=low, to_value=high, flat_amount=flat, per_unit_amount=value))
        return tuple(tiers)

    def group_keys(self) -> tuple[str, ...]:
        keys = self.raw.get("pricing_group_keys", self.raw.get("grouped_by"))
        if keys is None:
            return ()
        if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
            self.fail("pricing_group_keys", "invalid_pricing_group_keys")
            return ()
        return tuple(keys)


def parse_properties(model: str, raw: Mapping[str, Any] | None, problems: Problems, path: str) -> ChargeProperties:
    """The properties of a ``model`` charge, read from the API's JSON, each rule checked."""
    values = _Reader(raw or {}, problems, path)
    if model == "standard":
        return ChargeProperties(amount=values.amount("amount"), pricing_group_keys=values.group_keys())
    if model == "package":
        return ChargeProperties(
            amount=values.amount("amount"),
            package_size=values.count("package_size", "invalid_package_size", minimum=1),
            free_units=values.count("free_units", "invalid_free_units", minimum=0, required=False) or 0,
            pricing_group_keys=values.group_keys(),
        )
    if model == "graduated":
        return ChargeProperties(graduated_ranges=values.tiers("graduated_ranges", "per_unit_amount"),
                                pricing_group_keys=values.group_keys())
    if model == "graduated_percentage":
        return ChargeProperties(graduated_percentage_ranges=values.tiers("graduated_percentage_ranges", "rate"),
                                pricing_group_keys=values.group_keys())
    if model == "volume":
        return ChargeProperties(volume_ranges=values.tiers("volume_ranges", "per_unit_amount"),
                                pricing_group_keys=values.group_keys())
    if model == "percentage":
        minimum = values.amount("per_transaction_min_amount", "invalid_per_transaction_min_amount", required=False)
        maximum = values.amount("per_transaction_max_amount", "invalid_per_transaction_max_amount", required=False)
        if minimum is not None and maximum is not None and minimum > maximum:
            values.fail("per_transaction_max_amount", "invalid_per_transaction_max_amount")
        return ChargeProperties(
            rate=values.amount("rate", "invalid_rate"),
            fixed_amount=values.amount("fixed_amount", "invalid_fixed_amount", required=False),
            free_units_per_events=values.count("free_units_per_events", "invalid_free_units_per_events", minimum=0, required=False),
            free_units_per_total_aggregation=values.amount(
                "free_units_per_total_aggregation", "invalid_free_units_per_total_aggregation", required=False
            ),
            per_transaction_min_amount=minimum,
            per_transaction_max_amount=maximum,
            pricing_group_keys=values.group_keys(),
        )
    if model == "dynamic":
        return ChargeProperties(pricing_group_keys=values.group_keys())
    return ChargeProperties()


def present_properties(model: str, properties: ChargeProperties) -> dict[str, Any]:
    """The properties as Lago echoes them: decimal strings, integer counts, only the model's keys."""

    def text(value: Decimal | None) -> str | None:
        return None if value is None else str(value)

    def tiers(ranges: Sequence[Tier], price: str) -> list[dict[str, Any]]:
        return [
            {"from_value": t.from_value, "to_value": t.to_value, "flat_amount": text(t.flat_amount),
             price: text(t.rate if price == "rate" else t.per_unit_amount)}
            for t in ranges
        ]

    shown: dict[str, Any]
    if model == "standard":
        shown = {"amount": text(properties.amount)}
    elif model == "package":
        shown = {"amount": text(properties.amount), "package_size": properties.package_size, "free_units": properties.free_units}
    elif model == "graduated":
        shown = {"graduated_ranges": tiers(properties.graduated_ranges, "per_unit_amount")}
    elif model == "graduated_percentage":
        shown = {"graduated_percentage_ranges": tiers(properties.graduated_percentage_ranges, "rate")}
    elif model == "volume":
        shown = {"volume_ranges": tiers(properties.volume_ranges, "per_unit_amount")}
    elif model == "percentage":
        shown = {
            "rate": text(properties.rate),
            "fixed_amount": text(properties.fixed_amount),
            "free_units_per_events": properties.free_units_per_events,
            "free_units_per_total_aggregation": text(properties.free_units_per_total_aggregation),
            "per_transaction_min_amount": text(properties.per_transaction_min_amount),
            "per_transaction_max_amount": text(properties.per_transaction_max_amount),
        }
    else:
        shown = {}
    if properties.pricing_group_keys:
        shown["pricing_group_keys"] = list(properties.pricing_group_keys)
        shown["grouped_by"] = list(properties.pricing_group_keys)
    return shown


def build_charge(
    raw: Mapping[str, Any],
    *,
    metric: MetricDefinition,
    metric_id: UUID,
    current: Charge | None,
    new_id: Callable[[], UUID],
    now: datetime,
    problems: Problems,
    path: str,
) -> Charge:
    """A charge from its API fields: the sent ones over ``current`` (or defaults), checked."""
    base: dict[str, Any] = {} if current is None else {
        "code": current.code, "charge_model": current.charge_model, "pay_in_advance": current.pay_in_advance,
        "invoiceable": current.invoiceable, "regroup_paid_fees": current.regroup_paid_fees,
        "prorated": current.prorated, "min_amount_cents": current.min_amount_cents,
        "invoice_display_name": current.invoice_display_name, "accepts_target_wallet": current.accepts_target_wallet,
        "tax_codes": current.tax_codes,
    }
    fields = {**base, **{k: v for k, v in raw.items() if v is not None or k in ("invoice_display_name", "regroup_paid_fees")}}
    model = fields.get("charge_model") or ""
    if not model:
        problems.add(f"{path}.charge_model", "value_is_mandatory")
    elif model not in CHARGE_MODELS:
        problems.add(f"{path}.charge_model", "value_is_invalid")
    if "properties" in raw or current is None or model != current.charge_model:
        properties = parse_properties(model, raw.get("properties"), problems, f"{path}.properties")
    else:
        properties = current.properties
    charge = Charge(
        id=current.id if current is not None else new_id(),
        code=str(fields.get("code") or metric.code),
        billable_metric_id=metric_id,
        charge_model=model,
        created_at=current.created_at if current is not None else now,
        pay_in_advance=bool(fields.get("pay_in_advance", False)),
        invoiceable=bool(fields.get("invoiceable", True)),
        regroup_paid_fees=fields.get("regroup_paid_fees"),
        prorated=bool(fields.get("prorated", False)),
        min_amount_cents=int(fields.get("min_amount_cents") or 0),
        invoice_display_name=fields.get("invoice_display_name"),
        accepts_target_wallet=bool(fields.get("accepts_target_wallet", False)),
        properties=properties,
        filters=_filters(raw, current, model, metric, new_id, now, problems, path),
        tax_codes=tuple(fields.get("tax_codes") or ()),
    )
    check_compatibility(charge, metric, problems, path)
    return charge


def _filters(
    raw: Mapping[str, Any],
    current: Charge | None,
    model: str,
    metric: MetricDefinition,
    new_id: Callable[[], UUID],
    now: datetime,
    problems: Problems,
    path: str,
) -> tuple[ChargeFilter, ...]:
    if "filters" not in raw:
        return current.filters if current is not None else ()
    existing = {f.values: f for f in (current.filters if current else ())}
    built = []
    for index, item in enumerate(raw.get("filters") or ()):
        where = f"{path}.filters.{index}"
        values = build_filter_values(item.get("values") or {}, metric, problems, where)
        built.append(build_filter(item, model=model, values=values, current=existing.get(values),
                                  new_id=new_id, now=now, problems=problems, path=where))
    return tuple(built)


def build_filter(
    raw: Mapping[str, Any],
    *,
    model: str,
    values: tuple[FilterValues, ...],
    current: ChargeFilter | None,
    new_id: Callable[[], UUID],
    now: datetime,
    problems: Problems,
    path: str,
) -> ChargeFilter:
    """A charge filter: its conditions and the price of the events that meet them."""
    if "properties" in raw or current is None:
        properties = parse_properties(model, raw.get("properties"), problems, f"{path}.properties")
    else:
        properties = current.properties
    return ChargeFilter(
        id=current.id if current is not None else new_id(),
        invoice_display_name=raw.get("invoice_display_name", current.invoice_display_name if current else None),
        properties=properties,
        values=values,
        created_at=current.created_at if current is not None else now,
    )


def build_filter_values(
    raw: Mapping[str, Any], metric: MetricDefinition, problems: Problems, path: str
) -> tuple[FilterValues, ...]:
    """A filter's conditions, each key one of the metric's filters and each value one it allows."""
    if not raw or not isinstance(raw, Mapping):
        problems.add("filters", "invalid_values")
        problems.add(f"{path}.values", "value_is_mandatory")
        return ()
    values: list[FilterValues] = []
    for key, chosen in sorted(raw.items()):
        allowed = metric.filter_values(key)
        if (
            allowed is None
            or not isinstance(chosen, list)
            or not chosen
            or not all(v == ALL_FILTER_VALUES or v in allowed for v in chosen)
        ):
            problems.add("filters", "invalid_values")
            problems.add(f"{path}.values.{key}", "value_is_invalid")
            continue
        values.append(FilterValues(key=key, values=tuple(chosen)))
    return tuple(values)


def check_compatibility(charge: Charge, metric: MetricDefinition, problems: Problems, path: str) -> None:
    """Which charge models, metrics and options go together (semantics C9)."""
    aggregation = metric.aggregation_type
    if charge.pay_in_advance and (aggregation not in _IN_ADVANCE_AGGREGATIONS or charge.charge_model == "volume"):
        problems.add(f"{path}.pay_in_advance", "invalid_aggregation_type_or_charge_model")
    if not charge.invoiceable and not charge.pay_in_advance:
        problems.add(f"{path}.invoiceable", "only_compatible_with_pay_in_advance")
    if charge.regroup_paid_fees is not None and (
        charge.regroup_paid_fees != "invoice" or not charge.pay_in_advance or charge.invoiceable
    ):
        problems.add(f"{path}.regroup_paid_fees", "only_compatible_with_pay_in_advance_and_non_invoiceable")
    if charge.prorated:
        allowed = ("standard",) if charge.pay_in_advance else ("standard", "volume", "graduated")
        if not metric.recurring or aggregation == "weighted_sum_agg" or charge.charge_model not in allowed:
            problems.add(f"{path}.prorated", "invalid_billable_metric_or_charge_model")
    if charge.charge_model == "dynamic" and aggregation != "sum_agg":
        problems.add(f"{path}.charge_model", "invalid_aggregation_type_or_charge_model")
    if not 0 <= charge.min_amount_cents <= limits.MAX_AMOUNT_CENTS:
        problems.add(f"{path}.min_amount_cents", "value_is_out_of_range")
    if charge.min_amount_cents and charge.pay_in_advance:
        problems.add(f"{path}.min_amount_cents", "not_compatible_with_pay_in_advance")
