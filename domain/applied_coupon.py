"""Coupons applied to customers, and how an invoice consumes them (semantics I4 step 3, M3; reference §2.10).

An applied coupon is one coupon given to one customer, with the customer's own terms (amount,
rate, frequency may override the coupon's). When an invoice is finalized its coupons apply in
Lago's order — limited to billable metrics first, then limited to plans, then unrestricted,
oldest first within each — each on what is left of the fees it may discount, until nothing is
left. A percentage takes ``round(base × rate / 100)``; a fixed amount takes ``min(amount, base)``
(a fixed coupon used once keeps the rest of its amount for later invoices). The discount is
spread over the discounted fees in proportion to what is left of each, so each fee's tax is
computed after it (M2).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain import identity, money
from domain.errors import NotAllowed, NotFound
from domain.fee import Fee

ACTIVE, TERMINATED = "active", "terminated"
_ZERO = Decimal(0)


class AppliedCouponNotFound(NotFound):
    resource = "applied_coupon"


class CouponAlreadyApplied(NotAllowed):
    code = "coupon_is_not_reusable"


@dataclass(frozen=True)
class CouponTerms:
    """What an applied coupon takes off: its type and value, how often, and which fees it may discount."""

    coupon_type: str
    amount_cents: int | None
    amount_currency: str | None
    percentage_rate: Decimal | None
    frequency: str
    frequency_duration: int | None
    plan_ids: tuple[UUID, ...] = ()
    billable_metric_codes: tuple[str, ...] = ()

    @property
    def rank(self) -> int:
        """Lago's order: limited to metrics first, then to plans, then unrestricted."""
        return 0 if self.billable_metric_codes else 1 if self.plan_ids else 2


@dataclass(frozen=True)
class CouponUse:
    """One coupon's discount on one invoice."""

    applied_coupon_id: UUID
    coupon_code: str
    coupon_name: str
    amount_cents: int


@dataclass(frozen=True)
class Candidate:
    """An applied coupon as an invoice sees it when it is finalized."""

    id: UUID
    code: str
    name: str
    terms: CouponTerms
    created_at: datetime
    amount_cents_remaining: int | None  # fixed amount used once: what is left of it


def eligible(terms: CouponTerms, fee: Fee, plan_of: Mapping[UUID, UUID]) -> bool:
    """May the coupon discount this fee? ``plan_of`` maps the invoice's subscriptions to their plans."""
    if terms.billable_metric_codes:
        return fee.fee_type == "charge" and fee.item_code in terms.billable_metric_codes
    if terms.plan_ids:
        return fee.subscription_id is not None and plan_of.get(fee.subscription_id) in terms.plan_ids
    return True


def discount(fees: Sequence[Fee], candidates: Sequence[Candidate], currency: str,
             plan_of: Mapping[UUID, UUID]) -> tuple[tuple[CouponUse, ...], tuple[Fee, ...]]:
    """The coupons' uses in Lago's order, and the fees with their shares of the discount (I4 step 3, M3)."""
    left = {fee.id: fee.creditable_cents for fee in fees}
    shares = {fee.id: _ZERO for fee in fees}
    uses: list[CouponUse] = []
    for candidate in sorted(candidates, key=lambda c: (c.terms.rank, c.created_at)):  # stable: ties keep their order
        terms = candidate.terms
        if terms.coupon_type == "fixed_amount" and terms.amount_currency != currency:
            continue  # a fixed amount in another currency does not apply (M4)
        chosen = [fee for fee in fees if eligible(terms, fee, plan_of) and left[fee.id] > 0]
        base = sum((left[fee.id] for fee in chosen), _ZERO)
        if base <= 0:
            continue
        amount = coupon_amount(terms, base, candidate.amount_cents_remaining)
        if amount <= 0:
            continue
        for fee_id, share in money.spread(amount, {fee.id: left[fee.id] for fee in chosen}).items():
            shares[fee_id] += share
            left[fee_id] -= share
        uses.append(CouponUse(candidate.id, candidate.code, candidate.name, amount))
    return tuple(uses), tuple(replace(fee, precise_coupons_amount_cents=shares[fee.id]) for fee in fees)


def coupon_amount(terms: CouponTerms, base: Decimal, remaining: int | None = None) -> int:
    """M3: a percentage of the base, rounded half-up, or a fixed amount; never more than the base."""
    available = remaining if remaining is not None else (terms.amount_cents or 0)
    return money.coupon_cents(terms.coupon_type, base, percentage_rate=terms.percentage_rate, available_cents=available)


class AppliedCoupon(Aggregate):
    """One coupon given to one customer, until it is used up or terminated."""

    @staticmethod
    def create_id(organization_id: UUID, customer_id: UUID, coupon_id: UUID, number: int) -> UUID:
        return identity.scoped_id(organization_id, "applied_coupon", f"{customer_id}/{coupon_id}/{number}")

    @event("Applied")
    def __init__(self, organization_id: UUID, customer_id: UUID, coupon_id: UUID, number: int, coupon_code: str,
                 coupon_name: str, terms: CouponTerms, applied_at: datetime) -> None:
        """``number``: the how-many-th application of this coupon to this customer (its id derives from it)."""
        self.organization_id = organization_id
        self.customer_id = customer_id
        self.coupon_id = coupon_id
        self.coupon_code = coupon_code
        self.coupon_name = coupon_name
        self.terms = terms
        self.applied_at = applied_at
        self.status = ACTIVE
        self.terminated_at: datetime | None = None
        self.used_up = False  # terminated by its last use (a void gives it back), not by hand
        fixed_once = terms.coupon_type == "fixed_amount" and terms.frequency == "once"
        self.amount_cents_remaining: int | None = terms.amount_cents if fixed_once else None
        self.frequency_duration_remaining: int | None = (
            terms.frequency_duration if terms.frequency == "recurring" else None)

    def candidate(self) -> Candidate:
        return Candidate(self.id, self.coupon_code, self.coupon_name, self.terms, self.applied_at,
                         self.amount_cents_remaining)

    def use(self, invoice_id: UUID, amount_cents: int, at: datetime) -> None:
        """Consumed by an invoice: a fixed amount used once keeps its rest; a recurring one counts down."""
        if self.status != ACTIVE:
            raise NotAllowed(f"applied coupon {self.id} is {self.status}")
        self._used(invoice_id=invoice_id, amount_cents=amount_cents, at=at)

    @event("Used")
    def _used(self, invoice_id: UUID, amount_cents: int, at: datetime) -> None:
        if self.amount_cents_remaining is not None:
            self.amount_cents_remaining = max(self.amount_cents_remaining - amount_cents, 0)
        if self.frequency_duration_remaining is not None:
            self.frequency_duration_remaining -= 1
        if self._spent:
            self.status = TERMINATED
            self.terminated_at = at
            self.used_up = True

    @property
    def _spent(self) -> bool:
        frequency = self.terms.frequency
        if frequency == "once":
            return self.amount_cents_remaining is None or self.amount_cents_remaining <= 0
        if frequency == "recurring":
            return (self.frequency_duration_remaining or 0) <= 0
        return False

    def restore(self, invoice_id: UUID, amount_cents: int) -> None:
        """The invoice that used it was voided: the use is given back, and a coupon it used up is active again."""
        self._restored(invoice_id=invoice_id, amount_cents=amount_cents)

    @event("Restored")
    def _restored(self, invoice_id: UUID, amount_cents: int) -> None:
        if self.amount_cents_remaining is not None:
            self.amount_cents_remaining += amount_cents
        if self.frequency_duration_remaining is not None:
            self.frequency_duration_remaining += 1
        if self.used_up:
            self.status = ACTIVE
            self.terminated_at = None
            self.used_up = False

    def terminate(self, at: datetime) -> None:
        if self.status == ACTIVE:
            self._terminated(at=at)

    @event("Terminated")
    def _terminated(self, at: datetime) -> None:
        self.status = TERMINATED
        self.terminated_at = at
