"""Plans: a subscription price per interval plus the charges that price usage (reference §2.2)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from domain import limits
from domain.billable_metric import MetricDefinition
from domain.catalog import CatalogItem
from domain.charge import (
    Charge,
    ChargeFilter,
    build_charge,
    build_filter,
    build_filter_values,
)
from domain.currency import is_accepted_currency
from domain.errors import NotFound, Problems
from domain.periods import INTERVALS

YEARLY_MULTIPLIER = {"weekly": 52, "monthly": 12, "quarterly": 4, "semiannual": 2, "yearly": 1}
_SIMPLE_FIELDS = (
    "name", "code", "interval", "amount_cents", "amount_currency", "pay_in_advance", "invoice_display_name",
    "description", "bill_charges_monthly", "bill_fixed_charges_monthly",
)


class PlanNotFound(NotFound):
    resource = "plan"


class ChargeNotFound(NotFound):
    resource = "charge"


class ChargeFilterNotFound(NotFound):
    resource = "charge_filter"


@dataclass(frozen=True)
class MinimumCommitment:
    id: UUID
    amount_cents: int
    created_at: datetime
    invoice_display_name: str | None = None
    tax_codes: tuple[str, ...] = ()


@dataclass(frozen=True)
class UsageThreshold:
    id: UUID
    amount_cents: int
    created_at: datetime
    threshold_display_name: str | None = None
    recurring: bool = False


@dataclass(frozen=True)
class PlanDefinition:
    name: str = ""
    code: str = ""
    interval: str = ""
    amount_cents: int | None = None
    amount_currency: str = ""
    pay_in_advance: bool | None = None
    invoice_display_name: str | None = None
    description: str | None = None
    trial_period: Decimal = Decimal(0)
    bill_charges_monthly: bool | None = None
    bill_fixed_charges_monthly: bool | None = None
    tax_codes: tuple[str, ...] = ()
    minimum_commitment: MinimumCommitment | None = None
    usage_thresholds: tuple[UsageThreshold, ...] = ()
    charges: tuple[Charge, ...] = ()
    metadata: dict[str, str | None] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.code

    @property
    def charges_interval(self) -> str:
        """How often usage is billed: monthly for yearly and semiannual plans with ``bill_charges_monthly`` (P2)."""
        if self.bill_charges_monthly and self.interval in ("yearly", "semiannual"):
            return "monthly"
        return self.interval

    @property
    def yearly_amount_cents(self) -> int:
        """The price of a year of this plan: upgrades are moves to a higher one (semantics P6)."""
        return (self.amount_cents or 0) * YEARLY_MULTIPLIER.get(self.interval, 1)

    def charge(self, code: str) -> Charge:
        found = next((c for c in self.charges if c.code == code), None)
        if found is None:
            raise ChargeNotFound(key=code)
        return found

    def metric_ids(self) -> set[UUID]:
        return {c.billable_metric_id for c in self.charges}

    def check(self) -> None:
        """The rules a plan must meet on its own (charges were checked as they were built)."""
        problems = Problems()
        problems.check(bool(self.name.strip()), "name", "value_is_mandatory")
        problems.check(bool(self.code.strip()), "code", "value_is_mandatory")
        if not self.interval:
            problems.add("interval", "value_is_mandatory")
        elif self.interval not in INTERVALS:
            problems.add("interval", "value_is_invalid")
        if self.amount_cents is None:
            problems.add("amount_cents", "value_is_mandatory")
        elif not 0 <= self.amount_cents <= limits.MAX_AMOUNT_CENTS:
            problems.add("amount_cents", "value_is_out_of_range")
        if not self.amount_currency:
            problems.add("amount_currency", "value_is_mandatory")
        elif not is_accepted_currency(self.amount_currency):
            problems.add("amount_currency", "value_is_invalid")
        problems.check(self.pay_in_advance is not None, "pay_in_advance", "value_is_mandatory")
        problems.check(self.trial_period.is_finite() and limits.days_within(self.trial_period), "trial_period",
                       "value_is_out_of_range")
        if self.bill_charges_monthly and self.interval not in ("yearly", "semiannual"):
            problems.add("bill_charges_monthly", "only_compatible_with_yearly_or_semiannual_interval")
        codes = [c.code for c in self.charges]
        problems.check(len(codes) == len(set(codes)), "charges", "code_already_exist")
        if self.minimum_commitment is not None:
            problems.check(0 < self.minimum_commitment.amount_cents <= limits.MAX_AMOUNT_CENTS,
                           "minimum_commitment.amount_cents", "value_is_out_of_range")
        amounts = [(t.amount_cents, t.recurring) for t in self.usage_thresholds]
        problems.check(all(0 < a <= limits.MAX_AMOUNT_CENTS for a, _ in amounts), "usage_thresholds",
                       "value_is_out_of_range")
        problems.check(len(amounts) == len(set(amounts)), "usage_thresholds", "value_already_exist")
        problems.check(sum(1 for _, recurring in amounts if recurring) <= 1, "usage_thresholds", "multiple_recurring_thresholds")
        problems.raise_if_any()


@dataclass(frozen=True)
class Stamp:
    """Where new parts of a plan get their ids and creation times (the caller's clock)."""

    new_id: Callable[[], UUID]
    now: datetime


def amend_plan(
    current: PlanDefinition,
    changes: Mapping[str, Any],
    *,
    metrics: Mapping[UUID, MetricDefinition],
    stamp: Stamp,
) -> PlanDefinition:
    """``current`` with the sent fields; a sent ``charges`` or ``usage_thresholds`` replaces the set."""
    problems = Problems()
    own: dict[str, Any] = {k: changes[k] for k in _SIMPLE_FIELDS if k in changes}
    if "trial_period" in changes:
        try:
            own["trial_period"] = Decimal(str(changes["trial_period"] or 0))
        except InvalidOperation:
            problems.add("trial_period", "value_is_invalid")
    if "tax_codes" in changes:
        own["tax_codes"] = tuple(changes["tax_codes"] or ())
    if "metadata" in changes:
        own["metadata"] = dict(changes["metadata"] or {})
    if "minimum_commitment" in changes:
        own["minimum_commitment"] = _commitment(changes["minimum_commitment"], current.minimum_commitment, stamp)
    if "usage_thresholds" in changes:
        own["usage_thresholds"] = _thresholds(changes["usage_thresholds"] or (), current.usage_thresholds, stamp)
    if "charges" in changes:
        existing = {str(c.id): c for c in current.charges}
        own["charges"] = tuple(
            build_charge(
                raw,
                metric=metrics[UUID(str(raw["billable_metric_id"]))],
                metric_id=UUID(str(raw["billable_metric_id"])),
                current=existing.get(str(raw.get("id"))),
                new_id=stamp.new_id,
                now=stamp.now,
                problems=problems,
                path=f"charges.{index}",
            )
            for index, raw in enumerate(changes["charges"] or ())
        )
    if changes.get("fixed_charges"):
        problems.add("fixed_charges", "not_supported")
    problems.raise_if_any()
    return replace(current, **own)


def _commitment(raw: Mapping[str, Any] | None, current: MinimumCommitment | None, stamp: Stamp) -> MinimumCommitment | None:
    if not raw:
        return None
    return MinimumCommitment(
        id=current.id if current is not None else stamp.new_id(),
        amount_cents=int(raw.get("amount_cents") or 0),
        created_at=current.created_at if current is not None else stamp.now,
        invoice_display_name=raw.get("invoice_display_name"),
        tax_codes=tuple(raw.get("tax_codes") or ()),
    )


def _thresholds(raws: Any, current: tuple[UsageThreshold, ...], stamp: Stamp) -> tuple[UsageThreshold, ...]:
    kept = {(t.amount_cents, t.recurring): t for t in current}
    thresholds = []
    for raw in raws:
        amount, recurring = int(raw.get("amount_cents") or 0), bool(raw.get("recurring"))
        previous = kept.get((amount, recurring))
        thresholds.append(
            UsageThreshold(
                id=previous.id if previous is not None else stamp.new_id(),
                amount_cents=amount,
                created_at=previous.created_at if previous is not None else stamp.now,
                threshold_display_name=raw.get("threshold_display_name"),
                recurring=recurring,
            )
        )
    return tuple(thresholds)


def with_charge(
    plan: PlanDefinition,
    raw: Mapping[str, Any],
    *,
    code: str | None,
    metric: MetricDefinition,
    metric_id: UUID,
    stamp: Stamp,
) -> PlanDefinition:
    """The plan with charge ``code`` updated from ``raw`` (or a new charge when ``code`` is None)."""
    problems = Problems()
    current = None if code is None else plan.charge(code)
    charge = build_charge(raw, metric=metric, metric_id=metric_id, current=current, new_id=stamp.new_id,
                          now=stamp.now, problems=problems, path="charge")
    problems.raise_if_any()
    if current is None:
        return replace(plan, charges=(*plan.charges, charge))
    return replace(plan, charges=tuple(charge if c.id == current.id else c for c in plan.charges))


def without_charge(plan: PlanDefinition, code: str) -> PlanDefinition:
    removed = plan.charge(code)
    return replace(plan, charges=tuple(c for c in plan.charges if c.id != removed.id))


def charge_filter(charge: Charge, filter_id: UUID) -> ChargeFilter:
    found = next((f for f in charge.filters if f.id == filter_id), None)
    if found is None:
        raise ChargeFilterNotFound(key=filter_id)
    return found


def with_filter(
    plan: PlanDefinition,
    charge_code: str,
    raw: Mapping[str, Any],
    *,
    filter_id: UUID | None,
    metric: MetricDefinition,
    stamp: Stamp,
) -> tuple[PlanDefinition, UUID]:
    """The plan with one filter of one charge added or changed; also the filter's id."""
    charge = plan.charge(charge_code)
    current = None if filter_id is None else charge_filter(charge, filter_id)
    problems = Problems()
    values = (
        build_filter_values(raw.get("values") or {}, metric, problems, "filter")
        if "values" in raw or current is None
        else current.values
    )
    built = build_filter(raw, model=charge.charge_model, values=values, current=current, new_id=stamp.new_id,
                         now=stamp.now, problems=problems, path="filter")
    if any(f.values == values and f.id != built.id for f in charge.filters):
        problems.add("values", "value_already_exist")
    problems.raise_if_any()
    filters = (*charge.filters, built) if current is None else tuple(built if f.id == built.id else f for f in charge.filters)
    changed = replace(charge, filters=filters)
    return replace(plan, charges=tuple(changed if c.id == charge.id else c for c in plan.charges)), built.id


def without_filter(plan: PlanDefinition, charge_code: str, filter_id: UUID) -> PlanDefinition:
    charge = plan.charge(charge_code)
    removed = charge_filter(charge, filter_id)
    changed = replace(charge, filters=tuple(f for f in charge.filters if f.id != removed.id))
    return replace(plan, charges=tuple(changed if c.id == charge.id else c for c in plan.charges))


class Plan(CatalogItem):
    """A plan of one organization, addressed by its code through a Handle."""

    kind = "plan"
    missing = PlanNotFound

    class Defined(CatalogItem.Defined):
        definition: PlanDefinition

    class Redefined(CatalogItem.Redefined):
        definition: PlanDefinition

    class Deleted(CatalogItem.Deleted):
        pass
