"""Applied coupons read model: what ``/applied_coupons`` lists."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from functools import singledispatchmethod
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.persistence import Tracking

from domain.applied_coupon import AppliedCoupon, CouponTerms
from projections.documents import DocumentReader, DocumentView
from projections.projection import Projection


@dataclass(frozen=True)
class AppliedCouponRecord:
    customer_id: UUID
    coupon_id: UUID
    coupon_code: str
    coupon_name: str
    terms: CouponTerms
    applied_at: datetime
    status: str = "active"
    terminated_at: datetime | None = None
    amount_cents_remaining: int | None = None
    frequency_duration_remaining: int | None = None
    used_up: bool = False


class AppliedCouponsView(DocumentView):
    table = "applied_coupons"
    columns = {"customer_id": "uuid NOT NULL", "coupon_code": "text NOT NULL", "status": "text NOT NULL"}

    def record(self, id: UUID) -> AppliedCouponRecord:
        row = self.cursor.execute("SELECT data FROM applied_coupons WHERE id = %s", (id,)).fetchone()
        return msgspec.convert(row[0], AppliedCouponRecord)


class AppliedCoupons(Projection[AppliedCouponsView]):
    name = "applied_coupons"

    @singledispatchmethod
    def process_event(self, event: Any, tracking: Tracking) -> None:
        """Other events do not change applied coupons."""

    @process_event.register
    def _(self, event: AppliedCoupon.Applied, tracking: Tracking) -> None:
        terms = event.terms
        fixed_once = terms.coupon_type == "fixed_amount" and terms.frequency == "once"
        record = AppliedCouponRecord(
            customer_id=event.customer_id, coupon_id=event.coupon_id, coupon_code=event.coupon_code,
            coupon_name=event.coupon_name, terms=terms, applied_at=event.applied_at,
            amount_cents_remaining=terms.amount_cents if fixed_once else None,
            frequency_duration_remaining=terms.frequency_duration if terms.frequency == "recurring" else None,
        )
        self.view.insert(event.originator_id, event.organization_id, str(event.originator_id), record, event.timestamp,
                         tracking, customer_id=record.customer_id, coupon_code=record.coupon_code, status=record.status)

    @process_event.register(AppliedCoupon.Used)
    @process_event.register(AppliedCoupon.Restored)
    @process_event.register(AppliedCoupon.Terminated)
    def _(self, event: Any, tracking: Tracking) -> None:
        # The aggregate's own rules, replayed on the record: one source of truth for remaining amounts and status.
        record = self.view.record(event.originator_id)
        shadow = _shadow(record)
        event.apply(shadow)
        changed = replace(record, status=shadow.status, terminated_at=shadow.terminated_at,
                          amount_cents_remaining=shadow.amount_cents_remaining,
                          frequency_duration_remaining=shadow.frequency_duration_remaining, used_up=shadow.used_up)
        self.view.update(event.originator_id, event.timestamp, tracking, data=changed, status=changed.status)


def _shadow(record: AppliedCouponRecord) -> AppliedCoupon:
    """An aggregate object holding the record's state, for an event to apply itself to."""
    shadow = object.__new__(AppliedCoupon)
    shadow.__dict__.update(
        terms=record.terms, status=record.status, terminated_at=record.terminated_at,
        amount_cents_remaining=record.amount_cents_remaining,
        frequency_duration_remaining=record.frequency_duration_remaining,
        used_up=record.used_up,
    )
    return shadow


class AppliedCouponsReader(DocumentReader[AppliedCouponRecord]):
    pass
