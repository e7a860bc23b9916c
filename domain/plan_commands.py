"""Plan and charge commands of the Billing application (charge sub-resources included)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from domain.billable_metric import (
    BillableMetric,
    BillableMetricNotFound,
    MetricDefinition,
)
from domain.catalog_commands import CatalogCommands
from domain.charge import Charge, ChargeFilter
from domain.errors import ValidationFailed
from domain.plan import (
    Plan,
    PlanDefinition,
    PlanNotFound,
    Stamp,
    amend_plan,
    charge_filter,
    with_charge,
    with_filter,
    without_charge,
    without_filter,
)


class PlanCommands(CatalogCommands):
    def create_plan(self, organization_id: UUID, changes: Mapping[str, Any], now: datetime) -> UUID:
        metrics = self._charge_metrics(organization_id, changes.get("charges") or ())
        definition = amend_plan(PlanDefinition(), changes, metrics=metrics, stamp=Stamp(self.new_id, now))
        return self._define(Plan, organization_id, definition, lambda d: self._check_plan(organization_id, d))

    def update_plan(self, organization_id: UUID, code: str, changes: Mapping[str, Any], now: datetime) -> UUID:
        metrics = self._charge_metrics(organization_id, changes.get("charges") or ())
        return self._redefine(
            Plan, organization_id, code,
            lambda d: amend_plan(d, changes, metrics=metrics, stamp=Stamp(self.new_id, now)),
            lambda d: self._check_plan(organization_id, d),
        )

    def delete_plan(self, organization_id: UUID, code: str) -> UUID:
        return self._delete(Plan, organization_id, code)

    def plan(self, organization_id: UUID, code: str) -> Plan:
        return self._resolve(organization_id, Plan, code)[1]

    def add_charge(self, organization_id: UUID, plan_code: str, raw: Mapping[str, Any], now: datetime) -> tuple[UUID, UUID]:
        """Add one charge to a plan; returns the plan's and the new charge's ids."""
        metric_id, metric = self._charge_metric(organization_id, raw, "charge")
        before = {c.id for c in self.plan(organization_id, plan_code).definition.charges}
        plan_id = self._redefine(
            Plan, organization_id, plan_code,
            lambda d: with_charge(d, raw, code=None, metric=metric, metric_id=metric_id, stamp=Stamp(self.new_id, now)),
            lambda d: self._check_plan(organization_id, d),
        )
        added = next(c.id for c in self._load(plan_id, Plan, PlanNotFound).definition.charges if c.id not in before)
        return plan_id, added

    def update_charge(
        self, organization_id: UUID, plan_code: str, charge_code: str, raw: Mapping[str, Any], now: datetime
    ) -> tuple[UUID, UUID]:
        charge = self.plan(organization_id, plan_code).definition.charge(charge_code)
        metric_id, metric = self._charge_metric(organization_id, {"billable_metric_id": charge.billable_metric_id, **raw}, "charge")
        plan_id = self._redefine(
            Plan, organization_id, plan_code,
            lambda d: with_charge(d, raw, code=charge_code, metric=metric, metric_id=metric_id, stamp=Stamp(self.new_id, now)),
            lambda d: self._check_plan(organization_id, d),
        )
        return plan_id, charge.id

    def remove_charge(self, organization_id: UUID, plan_code: str, charge_code: str) -> Charge:
        removed = self.plan(organization_id, plan_code).definition.charge(charge_code)
        self._redefine(Plan, organization_id, plan_code, lambda d: without_charge(d, charge_code))
        return removed

    def add_charge_filter(
        self, organization_id: UUID, plan_code: str, charge_code: str, raw: Mapping[str, Any], now: datetime,
        filter_id: UUID | None = None,
    ) -> tuple[UUID, UUID, UUID]:
        """Add (or, with ``filter_id``, change) a filter; returns plan, charge and filter ids."""
        charge = self.plan(organization_id, plan_code).definition.charge(charge_code)
        metric = self._owned(organization_id, charge.billable_metric_id, BillableMetric, BillableMetricNotFound).definition
        made: list[UUID] = []

        def change(definition: PlanDefinition) -> PlanDefinition:
            amended, made_id = with_filter(definition, charge_code, raw, filter_id=filter_id, metric=metric, stamp=Stamp(self.new_id, now))
            made.append(made_id)
            return amended

        plan_id = self._redefine(Plan, organization_id, plan_code, change)
        return plan_id, charge.id, made[0]

    def remove_charge_filter(self, organization_id: UUID, plan_code: str, charge_code: str, filter_id: UUID) -> ChargeFilter:
        charge = self.plan(organization_id, plan_code).definition.charge(charge_code)
        removed = charge_filter(charge, filter_id)
        self._redefine(Plan, organization_id, plan_code, lambda d: without_filter(d, charge_code, filter_id))
        return removed

    def _charge_metrics(self, organization_id: UUID, charges: Iterable[Mapping[str, Any]]) -> dict[UUID, MetricDefinition]:
        metrics: dict[UUID, MetricDefinition] = {}
        for index, raw in enumerate(charges):
            metric_id, metric = self._charge_metric(organization_id, raw, f"charges.{index}")
            metrics[metric_id] = metric
        return metrics

    def _charge_metric(self, organization_id: UUID, raw: Mapping[str, Any], path: str) -> tuple[UUID, MetricDefinition]:
        """The live metric a charge names, in the caller's organization (404 otherwise, as Lago)."""
        reference = raw.get("billable_metric_id")
        if not reference:
            raise ValidationFailed({f"{path}.billable_metric_id": ["value_is_mandatory"]})
        try:
            metric_id = reference if isinstance(reference, UUID) else UUID(str(reference))
        except ValueError:
            raise BillableMetricNotFound(key=reference) from None
        metric = self._owned(organization_id, metric_id, BillableMetric, BillableMetricNotFound)
        metric.require_live()
        return metric_id, metric.definition

    def _check_plan(self, organization_id: UUID, plan: PlanDefinition) -> None:
        codes = list(plan.tax_codes)
        if plan.minimum_commitment is not None:
            codes.extend(plan.minimum_commitment.tax_codes)
        for charge in plan.charges:
            codes.extend(charge.tax_codes)
        self._require_taxes(organization_id, dict.fromkeys(codes))
