"""Coupon commands of the Billing application: apply a coupon to a customer, terminate it, and take coupons
when an invoice is finalized (semantics I4 step 3, M3)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain import limits
from domain.applied_coupon import (
    ACTIVE,
    AppliedCoupon,
    AppliedCouponNotFound,
    CouponTerms,
    discount,
)
from domain.coupon import FREQUENCIES, Coupon
from domain.currency import is_accepted_currency
from domain.customer import Customer
from domain.errors import Problems, ValidationFailed
from domain.invoice import Invoice
from domain.plan import Plan
from domain.subscription_commands import SubscriptionCommands

DISCOUNTED_INVOICE_TYPES = ("subscription", "progressive_billing")  # one-off invoices take no coupons, as Lago's


class CouponCommands(SubscriptionCommands):
    def apply_coupon(self, organization_id: UUID, changes: Mapping[str, Any], now: datetime) -> UUID:
        """POST /applied_coupons: give a coupon to a customer, with the customer's own terms if sent."""
        problems = Problems()
        external_customer_id = str(changes.get("external_customer_id") or "")
        coupon_code = str(changes.get("coupon_code") or "")
        problems.check(bool(external_customer_id), "external_customer_id", "value_is_mandatory")
        problems.check(bool(coupon_code), "coupon_code", "value_is_mandatory")
        problems.raise_if_any()
        customer = self.customer(organization_id, external_customer_id)
        coupon = self._resolve(organization_id, Coupon, coupon_code)[1]
        definition = coupon.definition
        if definition.expiration == "time_limit" and definition.expiration_at is not None and definition.expiration_at <= now:
            raise ValidationFailed({"coupon": ["coupon_is_expired"]})
        active = [self._load(i, AppliedCoupon, AppliedCouponNotFound) for i in customer.applied_coupon_ids]
        if any(a.coupon_id == coupon.id for a in active):
            raise ValidationFailed({"coupon": ["coupon_already_applied"]})
        applied_before = customer.coupon_counts.get(str(coupon.id), 0)
        if applied_before and not definition.reusable:
            raise ValidationFailed({"coupon": ["coupon_is_not_reusable"]})
        terms = self._coupon_terms(organization_id, definition, changes)
        applied = AppliedCoupon(
            organization_id=organization_id, customer_id=customer.id, coupon_id=coupon.id, number=applied_before + 1,
            coupon_code=definition.code, coupon_name=definition.name, terms=terms, applied_at=now,
        )
        customer.coupon_applied(applied.id, coupon.id)
        self._save(applied, customer)
        return applied.id

    def _coupon_terms(self, organization_id: UUID, definition: Any, changes: Mapping[str, Any]) -> CouponTerms:
        problems = Problems()
        frequency = changes.get("frequency") or definition.frequency
        problems.check(frequency in FREQUENCIES, "frequency", "value_is_invalid")
        duration = changes.get("frequency_duration", definition.frequency_duration)
        if frequency == "recurring" and (not isinstance(duration, int) or duration < 1):
            problems.add("frequency_duration", "value_is_mandatory")
        amount = changes.get("amount_cents", definition.amount_cents)
        currency = changes.get("amount_currency") or definition.amount_currency
        rate = changes.get("percentage_rate", definition.percentage_rate)
        if definition.coupon_type == "fixed_amount":
            if not isinstance(amount, int) or isinstance(amount, bool) or not 0 < amount <= limits.MAX_AMOUNT_CENTS:
                problems.add("amount_cents", "value_is_out_of_range")
            problems.check(currency is not None and is_accepted_currency(currency), "amount_currency", "value_is_invalid")
        else:
            try:
                rate = Decimal(str(rate))
            except (InvalidOperation, ValueError):
                rate = None
            if rate is None or not rate.is_finite() or not Decimal(0) < rate <= limits.MAX_RATE_PERCENT:
                problems.add("percentage_rate", "value_is_out_of_range")
        problems.raise_if_any()
        plan_ids = []
        for code in definition.plan_codes:
            handle = self._handle(organization_id, Plan.kind, code)
            if handle is not None and handle.target_id is not None:
                plan_ids.append(handle.target_id)
        return CouponTerms(
            coupon_type=definition.coupon_type,
            amount_cents=amount if definition.coupon_type == "fixed_amount" else None,
            amount_currency=currency if definition.coupon_type == "fixed_amount" else None,
            percentage_rate=rate if definition.coupon_type == "percentage" else None,
            frequency=frequency, frequency_duration=duration if frequency == "recurring" else None,
            plan_ids=tuple(plan_ids), billable_metric_codes=tuple(definition.billable_metric_codes),
        )

    def applied_coupon(self, organization_id: UUID, applied_coupon_id: UUID) -> AppliedCoupon:
        return self._owned(organization_id, applied_coupon_id, AppliedCoupon, AppliedCouponNotFound)

    def terminate_applied_coupon(self, organization_id: UUID, external_customer_id: str, applied_coupon_id: UUID,
                                 now: datetime) -> None:
        """DELETE /customers/{id}/applied_coupons/{lago_id}: no later invoice takes it."""
        customer = self.customer(organization_id, external_customer_id)
        applied = self.applied_coupon(organization_id, applied_coupon_id)
        if applied.customer_id != customer.id:
            raise AppliedCouponNotFound(key=applied_coupon_id)
        applied.terminate(now)
        customer.coupon_ended(applied.id)
        self._save(applied, customer)

    def _take_coupons(self, invoice: Invoice, customer: Customer, changed: list[Aggregate], now: datetime) -> None:
        """I4 step 3, at finalization: the customer's active coupons discount the invoice's fees."""
        if (invoice.invoice_type not in DISCOUNTED_INVOICE_TYPES or not customer.applied_coupon_ids
                or invoice.totals.fees_amount_cents <= 0):
            return
        applied = {a.id: a for a in (self._load(i, AppliedCoupon, AppliedCouponNotFound)
                                     for i in customer.applied_coupon_ids) if a.status == ACTIVE}
        plan_of = {p.subscription_id: p.plan_id for p in invoice.billing_periods}
        uses, fees = discount(invoice.fees, [a.candidate() for a in applied.values()], invoice.currency, plan_of)
        if not uses:
            return
        invoice.discount(uses, fees)
        for use in uses:
            coupon = applied[use.applied_coupon_id]
            coupon.use(invoice.id, use.amount_cents, now)
            changed.append(coupon)
            if coupon.status != ACTIVE:
                customer.coupon_ended(coupon.id)
                changed.append(customer)

    def _give_back_coupons(self, invoice: Invoice, customer: Customer, changed: list[Aggregate]) -> None:
        """A voided invoice returns what it took of its coupons; a coupon it used up is active again."""
        if not invoice.coupons:
            return
        for use in invoice.coupons:
            coupon = self._load(use.applied_coupon_id, AppliedCoupon, AppliedCouponNotFound)
            coupon.restore(invoice.id, use.amount_cents)
            changed.append(coupon)
            if coupon.status == ACTIVE:
                customer.coupon_revived(coupon.id)
        changed.append(customer)
