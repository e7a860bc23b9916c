"""Coupons: fixed or percentage discounts, possibly limited to plans or metrics (reference §2.10)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from domain import limits
from domain.catalog import CatalogItem
from domain.currency import is_accepted_currency
from domain.errors import NotFound, Problems

COUPON_TYPES = ("fixed_amount", "percentage")
FREQUENCIES = ("once", "recurring", "forever")
EXPIRATIONS = ("no_expiration", "time_limit")


class CouponNotFound(NotFound):
    resource = "coupon"


@dataclass(frozen=True)
class CouponDefinition:
    name: str = ""
    code: str = ""
    description: str | None = None
    coupon_type: str = ""
    amount_cents: int | None = None
    amount_currency: str | None = None
    percentage_rate: Decimal | None = None
    frequency: str = "once"
    frequency_duration: int | None = None
    expiration: str = "no_expiration"
    expiration_at: datetime | None = None
    reusable: bool = True
    plan_codes: tuple[str, ...] = ()
    billable_metric_codes: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return self.code

    def amended(self, changes: Mapping[str, Any]) -> CouponDefinition:
        own = {k: v for k, v in changes.items() if k != "applies_to"}
        limits = changes.get("applies_to") or {}
        if "applies_to" in changes:
            own["plan_codes"] = tuple(limits.get("plan_codes") or ())
            own["billable_metric_codes"] = tuple(limits.get("billable_metric_codes") or ())
        for flag, default in (("reusable", True), ("frequency", "once"), ("expiration", "no_expiration")):
            if flag in own and own[flag] is None:
                own[flag] = default
        if own.get("percentage_rate") is not None:
            own["percentage_rate"] = Decimal(str(own["percentage_rate"]))
        if isinstance(own.get("expiration_at"), datetime) and own["expiration_at"].tzinfo is None:
            own["expiration_at"] = own["expiration_at"].replace(tzinfo=UTC)  # Lago reads naive times as UTC
        amended = replace(self, **own)
        if amended.coupon_type == "percentage":
            amended = replace(amended, amount_cents=None, amount_currency=None)
        elif amended.coupon_type == "fixed_amount":
            amended = replace(amended, percentage_rate=None)
        if amended.frequency != "recurring":
            amended = replace(amended, frequency_duration=None)
        if amended.expiration == "no_expiration":
            amended = replace(amended, expiration_at=None)
        return amended

    def check(self) -> None:
        problems = Problems()
        problems.check(bool(self.name.strip()), "name", "value_is_mandatory")
        problems.check(bool(self.code.strip()), "code", "value_is_mandatory")
        if not self.coupon_type:
            problems.add("coupon_type", "value_is_mandatory")
        elif self.coupon_type not in COUPON_TYPES:
            problems.add("coupon_type", "value_is_invalid")
        if self.coupon_type == "fixed_amount":
            if self.amount_cents is None:
                problems.add("amount_cents", "value_is_mandatory")
            elif not 0 < self.amount_cents <= limits.MAX_AMOUNT_CENTS:
                problems.add("amount_cents", "value_is_out_of_range")
            if not self.amount_currency:
                problems.add("amount_currency", "value_is_mandatory")
            elif not is_accepted_currency(self.amount_currency):
                problems.add("amount_currency", "value_is_invalid")
        if self.coupon_type == "percentage":
            if self.percentage_rate is None:
                problems.add("percentage_rate", "value_is_mandatory")
            elif not Decimal(0) < self.percentage_rate <= limits.MAX_RATE_PERCENT:
                problems.add("percentage_rate", "value_is_out_of_range")
        problems.check(self.frequency in FREQUENCIES, "frequency", "value_is_invalid")
        if self.frequency == "recurring" and (self.frequency_duration is None or self.frequency_duration < 1):
            problems.add("frequency_duration", "value_is_mandatory")
        problems.check(self.expiration in EXPIRATIONS, "expiration", "value_is_invalid")
        if self.expiration == "time_limit" and self.expiration_at is None:
            problems.add("expiration_at", "value_is_mandatory")
        if self.plan_codes and self.billable_metric_codes:
            problems.add("applies_to", "only_one_limitation_type_per_coupon")
        problems.raise_if_any()


class Coupon(CatalogItem):
    kind = "coupon"
    missing = CouponNotFound

    class Defined(CatalogItem.Defined):
        definition: CouponDefinition

    class Redefined(CatalogItem.Redefined):
        definition: CouponDefinition

    class Deleted(CatalogItem.Deleted):
        pass
