"""Plans: a subscription price per interval plus the charges that price usage (reference §2.2)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from domain.billable_metric import MetricDefinition
from domain.catalog import CatalogItem
from domain.charge import Charge, build_charge
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


@dataclass(frozen=True)
class MinimumCommitment:
    amount_cents: int
    invoice_display_name: str | None = None
    tax_codes: tuple[str, ...] = ()


@dataclass(frozen=True)
class UsageThreshold:
    id: UUID
    amount_cents: int
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
        elif self.amount_cents < 0:
            problems.add("amount_cents", "value_is_out_of_range")
        if not self.amount_currency:
            problems.add("amount_currency", "value_is_mandatory")
        elif not is_accepted_currency(self.amount_currency):
            problems.add("amount_currency", "value_is_invalid")
        problems.check(self.pay_in_advance is not None, "pay_in_advance", "value_is_mandatory")
        problems.check(self.trial_period >= 0, "trial_period", "value_is_out_of_range")
        if self.bill_charges_monthly and self.interval not in ("yearly", "semiannual"):
            problems.add("bill_charges_monthly", "only_compatible_with_yearly_or_semiannual_interval")
        codes = [c.code for c in self.charges]
        problems.check(len(codes) == len(set(codes)), "charges", "code_already_exist")
        if self.minimum_commitment is not None:
            problems.check(self.minimum_commitment.amount_cents > 0, "minimum_commitment.amount_cents", "value_is_out_of_range")
        amounts = [(t.amount_cents, t.recurring) for t in self.usage_thresholds]
        problems.check(all(a > 0 for a, _ in amounts), "usage_thresholds", "value_is_out_of_range")
        problems.check(len(amounts) == len(set(amounts)), "usage_thresholds", "value_already_exist")
        problems.check(sum(1 for _, recurring in amounts if recurring) <= 1, "usage_thresholds", "multiple_recurring_thresholds")
        problems.raise_if_any()


def amend_plan(
    current: PlanDefinition,
    changes: Mapping[str, Any],
    *,
    metrics: Mapping[UUID, MetricDefinition],
    new_id: Callable[[], UUID],
) -> PlanDefinition:
    """``current`` with the sent fields; a sent ``charges`` or ``usage_thresholds`` replaces the set."""
    problems = Problems()
    own: dict[str, Any] = {k: changes[k] for k in _SIMPLE_FIELDS if k in changes}
    for flag in ("bill_charges_monthly", "bill_fixed_charges_monthly"):
        if flag in own and own[flag] is None:
            own[flag] = None
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
        commitment = changes["minimum_commitment"]
        own["minimum_commitment"] = None if not commitment else MinimumCommitment(
            amount_cents=int(commitment.get("amount_cents") or 0),
            invoice_display_name=commitment.get("invoice_display_name"),
            tax_codes=tuple(commitment.get("tax_codes") or ()),
        )
    if "usage_thresholds" in changes:
        kept = {(t.amount_cents, t.recurring): t.id for t in current.usage_thresholds}
        own["usage_thresholds"] = tuple(
            UsageThreshold(
                id=kept.get((int(t.get("amount_cents") or 0), bool(t.get("recurring")))) or new_id(),
                amount_cents=int(t.get("amount_cents") or 0),
                threshold_display_name=t.get("threshold_display_name"),
                recurring=bool(t.get("recurring")),
            )
            for t in changes["usage_thresholds"] or ()
        )
    if "charges" in changes:
        existing = {str(c.id): c for c in current.charges}
        own["charges"] = tuple(
            build_charge(
                raw,
                metric=metrics[UUID(str(raw["billable_metric_id"]))],
                metric_id=UUID(str(raw["billable_metric_id"])),
                current=existing.get(str(raw.get("id"))),
                new_id=new_id,
                problems=problems,
                path=f"charges.{index}",
            )
            for index, raw in enumerate(changes["charges"] or ())
        )
    if changes.get("fixed_charges"):
        problems.add("fixed_charges", "not_supported")
    problems.raise_if_any()
    return replace(current, **own)


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
