"""Catalog commands of the Billing application: metrics, taxes, add-ons and coupons."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from domain.add_on import AddOn, AddOnDefinition
from domain.billable_metric import BillableMetric, MetricDefinition
from domain.coupon import Coupon, CouponDefinition
from domain.errors import ValidationFailed
from domain.keyed_store import KeyedStore
from domain.plan import Plan
from domain.tax import Tax, TaxDefinition


class CatalogCommands(KeyedStore):
    # --- billable metrics ----------------------------------------------------------------

    def create_billable_metric(self, organization_id: UUID, changes: Mapping[str, Any]) -> UUID:
        return self._define(BillableMetric, organization_id, MetricDefinition().amended(changes))

    def update_billable_metric(self, organization_id: UUID, code: str, changes: Mapping[str, Any]) -> UUID:
        return self._redefine(BillableMetric, organization_id, code, changes)

    def delete_billable_metric(self, organization_id: UUID, code: str) -> UUID:
        return self._delete(BillableMetric, organization_id, code)

    def billable_metric(self, organization_id: UUID, code: str) -> BillableMetric:
        return self._resolve(organization_id, BillableMetric, code)[1]

    # --- taxes, add-ons, coupons --------------------------------------------------------

    def create_tax(self, organization_id: UUID, changes: Mapping[str, Any]) -> UUID:
        return self._define(Tax, organization_id, TaxDefinition().amended(changes))

    def update_tax(self, organization_id: UUID, code: str, changes: Mapping[str, Any]) -> UUID:
        return self._redefine(Tax, organization_id, code, changes)

    def delete_tax(self, organization_id: UUID, code: str) -> UUID:
        return self._delete(Tax, organization_id, code)

    def create_add_on(self, organization_id: UUID, changes: Mapping[str, Any]) -> UUID:
        definition = AddOnDefinition().amended(changes)
        return self._define(AddOn, organization_id, definition, lambda d: self._require_taxes(organization_id, d.tax_codes))

    def update_add_on(self, organization_id: UUID, code: str, changes: Mapping[str, Any]) -> UUID:
        return self._redefine(AddOn, organization_id, code, changes, lambda d: self._require_taxes(organization_id, d.tax_codes))

    def delete_add_on(self, organization_id: UUID, code: str) -> UUID:
        return self._delete(AddOn, organization_id, code)

    def create_coupon(self, organization_id: UUID, changes: Mapping[str, Any], now: datetime) -> UUID:
        definition = CouponDefinition().amended(changes)
        return self._define(Coupon, organization_id, definition, lambda d: self._check_coupon(organization_id, d, now))

    def update_coupon(self, organization_id: UUID, code: str, changes: Mapping[str, Any], now: datetime) -> UUID:
        return self._redefine(Coupon, organization_id, code, changes, lambda d: self._check_coupon(organization_id, d, now))

    def delete_coupon(self, organization_id: UUID, code: str) -> UUID:
        return self._delete(Coupon, organization_id, code)

    def _check_coupon(self, organization_id: UUID, coupon: CouponDefinition, now: datetime) -> None:
        if coupon.expiration_at is not None and coupon.expiration_at <= now:
            raise ValidationFailed({"expiration_at": ["invalid_date"]})
        for code in coupon.billable_metric_codes:
            self._resolve(organization_id, BillableMetric, code)
        for code in coupon.plan_codes:
            self._resolve(organization_id, Plan, code)

    def _require_taxes(self, organization_id: UUID, codes: Iterable[str]) -> None:
        for code in codes:
            self._resolve(organization_id, Tax, code)
