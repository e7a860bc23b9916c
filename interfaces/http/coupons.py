"""Coupons over Lago's API (reference §2.10, the catalog side)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Literal

import msgspec

from domain.application import Billing
from domain.coupon import CouponDefinition, CouponNotFound
from interfaces.http.catalog import Catalog, each
from interfaces.http.taxes import number
from interfaces.http.wire import Body, timestamp
from projections.documents import Document, DocumentReader

Unset = msgspec.UnsetType
UNSET = msgspec.UNSET


class CouponLimits(msgspec.Struct, kw_only=True):
    plan_codes: list[str] | None = None
    billable_metric_codes: list[str] | None = None


class CouponInput(msgspec.Struct, kw_only=True):
    name: str | Unset = UNSET
    code: str | Unset = UNSET
    description: str | None | Unset = UNSET
    coupon_type: Literal["fixed_amount", "percentage"] | Unset = UNSET
    amount_cents: int | None | Unset = UNSET
    amount_currency: str | None | Unset = UNSET
    percentage_rate: Decimal | None | Unset = UNSET
    frequency: Literal["once", "recurring", "forever"] | None | Unset = UNSET
    frequency_duration: int | None | Unset = UNSET
    expiration: Literal["no_expiration", "time_limit"] | None | Unset = UNSET
    expiration_at: datetime | None | Unset = UNSET
    reusable: bool | None | Unset = UNSET
    applies_to: CouponLimits | None | Unset = UNSET


class CouponObject(msgspec.Struct):
    lago_id: str
    name: str
    code: str
    description: str | None
    coupon_type: str
    amount_cents: int | None
    amount_currency: str | None
    percentage_rate: float | None
    frequency: str
    frequency_duration: int | None
    expiration: str
    expiration_at: str | None
    reusable: bool
    limited_plans: bool
    plan_codes: list[str]
    limited_billable_metrics: bool
    billable_metric_codes: list[str]
    created_at: str
    terminated_at: str | None


def present(document: Document[CouponDefinition]) -> CouponObject:
    coupon = document.data
    return CouponObject(
        lago_id=str(document.id),
        name=coupon.name,
        code=coupon.code,
        description=coupon.description,
        coupon_type=coupon.coupon_type,
        amount_cents=coupon.amount_cents,
        amount_currency=coupon.amount_currency,
        percentage_rate=None if coupon.percentage_rate is None else number(coupon.percentage_rate),
        frequency=coupon.frequency,
        frequency_duration=coupon.frequency_duration,
        expiration=coupon.expiration,
        expiration_at=timestamp(coupon.expiration_at),
        reusable=coupon.reusable,
        limited_plans=bool(coupon.plan_codes),
        plan_codes=list(coupon.plan_codes),
        limited_billable_metrics=bool(coupon.billable_metric_codes),
        billable_metric_codes=list(coupon.billable_metric_codes),
        created_at=timestamp(document.created_at) or "",
        terminated_at=timestamp(document.deleted_at),
    )


def catalog(billing: Billing, reader: DocumentReader[CouponDefinition], now: Callable[[], datetime]) -> Catalog:
    return Catalog(
        path="/api/v1/coupons",
        root="coupon",
        plural="coupons",
        tag="coupons",
        body=Body("coupon", CouponInput),
        response=CouponObject,
        present=each(present),
        reader=reader,
        missing=CouponNotFound,
        create=lambda org, changes: billing.create_coupon(org, changes, now()),
        update=lambda org, code, changes: billing.update_coupon(org, code, changes, now()),
        delete=billing.delete_coupon,
    )
