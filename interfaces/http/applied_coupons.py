"""Applied coupons over Lago's API (reference §2.10): apply, list, a customer's list, terminate."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import falcon
import msgspec

from domain.application import Billing
from domain.applied_coupon import ACTIVE, TERMINATED, AppliedCouponNotFound
from domain.customer import CustomerNotFound
from domain.errors import ValidationFailed
from interfaces.http.customers import filtered_customer, list_param
from interfaces.http.openapi import PAGINATION, Operation, Param
from interfaces.http.wire import Body, PageRequest, given, parse_id, respond, timestamp
from projections.applied_coupons import AppliedCouponRecord, AppliedCouponsReader
from projections.documents import Document
from projections.subscriptions import CustomersReader

Unset = msgspec.UnsetType
UNSET = msgspec.UNSET


class AppliedCouponInput(msgspec.Struct, kw_only=True):
    external_customer_id: str | Unset = UNSET
    coupon_code: str | Unset = UNSET
    frequency: str | None | Unset = UNSET
    frequency_duration: int | None | Unset = UNSET
    amount_cents: int | None | Unset = UNSET
    amount_currency: str | None | Unset = UNSET
    percentage_rate: str | float | None | Unset = UNSET


_apply = Body("applied_coupon", AppliedCouponInput)


class AppliedCouponObject(msgspec.Struct):
    lago_id: str
    lago_coupon_id: str
    coupon_code: str
    coupon_name: str
    coupon_description: str | None
    coupon_status: str
    coupon_deleted_at: str | None
    lago_customer_id: str
    external_customer_id: str | None
    status: str
    amount_cents: int | None
    amount_cents_remaining: int | None
    amount_currency: str | None
    percentage_rate: str | None
    frequency: str
    frequency_duration: int | None
    frequency_duration_remaining: int | None
    expiration_at: str | None
    created_at: str
    terminated_at: str | None


class AppliedCouponsBase:
    def __init__(self, billing: Billing, applied: AppliedCouponsReader, customers: CustomersReader,
                 now: Callable[[], datetime]) -> None:
        self._billing = billing
        self._applied = applied
        self._customers = customers
        self._now = now

    def _present(self, organization_id: UUID, documents: Sequence[Document[AppliedCouponRecord]]) -> list[AppliedCouponObject]:
        customers = self._customers.many(organization_id, list({d.data.customer_id for d in documents}))
        return [_object(d, customers.get(d.data.customer_id)) for d in documents]

    def _show(self, resp: falcon.Response, organization_id: UUID, applied_coupon_id: UUID) -> None:
        document = self._applied.by_id(organization_id, applied_coupon_id)
        if document is None:
            raise AppliedCouponNotFound(key=applied_coupon_id)
        respond(resp, {"applied_coupon": self._present(organization_id, [document])[0]})

    def _list(self, req: falcon.Request, resp: falcon.Response, customer_id: UUID | None) -> None:
        page = PageRequest.of(req)
        status = req.get_param("status")
        if status is not None and status not in (ACTIVE, TERMINATED):
            raise ValidationFailed({"status": ["value_is_invalid"]})
        documents, total = self._applied.matching(req.context.organization_id, page.offset, page.per_page,
                                                  customer_id=customer_id, status=status,
                                                  coupon_code=list_param(req, "coupon_code") or None)
        respond(resp, {"applied_coupons": self._present(req.context.organization_id, documents), "meta": page.meta(total)})


def _object(document: Document[AppliedCouponRecord], customer: Any) -> AppliedCouponObject:
    record = document.data
    terms = record.terms
    return AppliedCouponObject(
        lago_id=str(document.id), lago_coupon_id=str(record.coupon_id), coupon_code=record.coupon_code,
        coupon_name=record.coupon_name, coupon_description=None, coupon_status="active", coupon_deleted_at=None,
        lago_customer_id=str(record.customer_id), external_customer_id=customer.key if customer is not None else None,
        status=record.status, amount_cents=terms.amount_cents, amount_cents_remaining=record.amount_cents_remaining,
        amount_currency=terms.amount_currency,
        percentage_rate=str(terms.percentage_rate) if terms.percentage_rate is not None else None,
        frequency=terms.frequency, frequency_duration=terms.frequency_duration,
        frequency_duration_remaining=record.frequency_duration_remaining, expiration_at=None,
        created_at=timestamp(record.applied_at) or "", terminated_at=timestamp(record.terminated_at),
    )


_FILTERS = (Param("status", "active or terminated."), Param("coupon_code", "Only these coupons.", array=True))


class AppliedCouponCollection(AppliedCouponsBase):
    path = "/api/v1/applied_coupons"
    operations = (
        Operation("POST", path, "Apply a coupon to a customer", "coupons", AppliedCouponObject, "applied_coupon",
                  request=_apply, errors=(401, 404, 422)),
        Operation("GET", path, "List applied coupons", "coupons", AppliedCouponObject, "applied_coupons", listed=True,
                  query=PAGINATION + (Param("external_customer_id", "The customer's external id."), *_FILTERS)),
    )

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        changes = given(_apply.decode(req.context.body))
        applied_id = self._billing.apply_coupon(req.context.organization_id, changes, self._now())
        self._show(resp, req.context.organization_id, applied_id)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._list(req, resp, filtered_customer(req, self._customers))


class CustomerAppliedCoupons(AppliedCouponsBase):
    path = "/api/v1/customers/{external_id}/applied_coupons"
    operations = (
        Operation("GET", path, "List a customer's applied coupons", "customers", AppliedCouponObject, "applied_coupons",
                  listed=True, query=PAGINATION + _FILTERS, errors=(401, 404)),
    )

    def on_get(self, req: falcon.Request, resp: falcon.Response, external_id: str) -> None:
        customer = self._customers.by_key(req.context.organization_id, external_id)
        if customer is None:
            raise CustomerNotFound(key=external_id)
        self._list(req, resp, customer.id)


class CustomerAppliedCoupon(AppliedCouponsBase):
    path = "/api/v1/customers/{external_id}/applied_coupons/{lago_id}"
    operations = (
        Operation("DELETE", path, "Terminate a customer's applied coupon", "customers", AppliedCouponObject,
                  "applied_coupon", errors=(401, 404)),
    )

    def on_delete(self, req: falcon.Request, resp: falcon.Response, external_id: str, lago_id: str) -> None:
        applied_id = parse_id(lago_id, AppliedCouponNotFound)
        self._billing.terminate_applied_coupon(req.context.organization_id, external_id, applied_id, self._now())
        self._show(resp, req.context.organization_id, applied_id)


def resources(billing: Billing, applied: AppliedCouponsReader, customers: CustomersReader,
              now: Callable[[], datetime]) -> list[Any]:
    parts = (billing, applied, customers, now)
    return [AppliedCouponCollection(*parts), CustomerAppliedCoupons(*parts), CustomerAppliedCoupon(*parts)]
