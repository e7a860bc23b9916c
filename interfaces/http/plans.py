"""Plans, their charges and charge filters over Lago's API (reference §2.2)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

import falcon
import msgspec

from domain.application import Billing
from domain.billable_metric import MetricDefinition
from domain.charge import Charge, ChargeFilter, present_properties
from domain.plan import (
    ChargeFilterNotFound,
    PlanDefinition,
    PlanNotFound,
    charge_filter,
)
from domain.tax import TaxDefinition
from interfaces.http.catalog import Catalog
from interfaces.http.openapi import PAGINATION, Operation
from interfaces.http.taxes import TaxObject, number, taxes_for
from interfaces.http.wire import Body, PageRequest, given, respond, timestamp
from projections.documents import Document, DocumentReader

Unset = msgspec.UnsetType
UNSET = msgspec.UNSET


class ChargeFilterInput(msgspec.Struct, kw_only=True):
    invoice_display_name: str | None | Unset = UNSET
    properties: dict[str, Any] | None | Unset = UNSET
    values: dict[str, list[str]] | None | Unset = UNSET


class ChargeInput(msgspec.Struct, kw_only=True):
    id: str | None | Unset = UNSET
    billable_metric_id: str | Unset = UNSET
    code: str | None | Unset = UNSET
    charge_model: str | Unset = UNSET
    pay_in_advance: bool | None | Unset = UNSET
    invoiceable: bool | None | Unset = UNSET
    regroup_paid_fees: Literal["invoice"] | None | Unset = UNSET
    prorated: bool | None | Unset = UNSET
    min_amount_cents: int | None | Unset = UNSET
    invoice_display_name: str | None | Unset = UNSET
    accepts_target_wallet: bool | None | Unset = UNSET
    properties: dict[str, Any] | None | Unset = UNSET
    filters: list[ChargeFilterInput] | None | Unset = UNSET
    tax_codes: list[str] | None | Unset = UNSET


class MinimumCommitmentInput(msgspec.Struct, kw_only=True):
    amount_cents: int
    invoice_display_name: str | None = None
    tax_codes: list[str] | None = None


class UsageThresholdInput(msgspec.Struct, kw_only=True):
    amount_cents: int
    threshold_display_name: str | None = None
    recurring: bool = False


class PlanInput(msgspec.Struct, kw_only=True):
    """Create and update share one body; on update a sent array replaces the whole set."""

    name: str | Unset = UNSET
    code: str | Unset = UNSET
    interval: Literal["weekly", "monthly", "quarterly", "semiannual", "yearly"] | Unset = UNSET
    amount_cents: int | Unset = UNSET
    amount_currency: str | Unset = UNSET
    pay_in_advance: bool | Unset = UNSET
    invoice_display_name: str | None | Unset = UNSET
    description: str | None | Unset = UNSET
    trial_period: Decimal | None | Unset = UNSET
    bill_charges_monthly: bool | None | Unset = UNSET
    bill_fixed_charges_monthly: bool | None | Unset = UNSET
    tax_codes: list[str] | None | Unset = UNSET
    minimum_commitment: MinimumCommitmentInput | None | Unset = UNSET
    usage_thresholds: list[UsageThresholdInput] | None | Unset = UNSET
    charges: list[ChargeInput] | None | Unset = UNSET
    fixed_charges: list[dict[str, Any]] | None | Unset = UNSET
    metadata: dict[str, str | None] | None | Unset = UNSET
    cascade_updates: bool | None | Unset = UNSET


class ChargeFilterObject(msgspec.Struct):
    lago_id: str
    invoice_display_name: str | None
    properties: dict[str, Any]
    values: dict[str, list[str]]
    created_at: str


class ChargeObject(msgspec.Struct):
    lago_id: str
    lago_billable_metric_id: str
    billable_metric_code: str
    code: str
    invoice_display_name: str | None
    created_at: str
    charge_model: str
    invoiceable: bool
    regroup_paid_fees: str | None
    pay_in_advance: bool
    prorated: bool
    min_amount_cents: int
    accepts_target_wallet: bool
    properties: dict[str, Any]
    filters: list[ChargeFilterObject]
    taxes: list[TaxObject]
    applied_pricing_unit: dict[str, Any] | None = None
    lago_parent_id: str | None = None


class UsageThresholdObject(msgspec.Struct):
    lago_id: str
    threshold_display_name: str | None
    amount_cents: int
    recurring: bool
    created_at: str
    updated_at: str


class MinimumCommitmentObject(msgspec.Struct):
    lago_id: str
    plan_code: str
    invoice_display_name: str | None
    amount_cents: int
    interval: str
    created_at: str
    updated_at: str
    taxes: list[TaxObject]


class PlanObject(msgspec.Struct):
    lago_id: str
    name: str
    invoice_display_name: str | None
    created_at: str
    code: str
    interval: str
    description: str | None
    amount_cents: int
    amount_currency: str
    trial_period: float
    pay_in_advance: bool
    bill_charges_monthly: bool | None
    bill_fixed_charges_monthly: bool | None
    charges: list[ChargeObject]
    usage_thresholds: list[UsageThresholdObject]
    applicable_usage_thresholds: list[UsageThresholdObject]
    taxes: list[TaxObject]
    minimum_commitment: MinimumCommitmentObject | None
    metadata: dict[str, str | None] | None
    pending_deletion: bool
    fixed_charges: list[dict[str, Any]] = []
    entitlements: list[dict[str, Any]] = []
    parent_id: str | None = None
    customers_count: int = 0
    active_subscriptions_count: int = 0
    draft_invoices_count: int = 0


_plan_body = Body("plan", PlanInput)
_charge_body = Body("charge", ChargeInput)
_filter_body = Body("filter", ChargeFilterInput)


class PlanPresenter:
    """Turns plan documents into Lago's plan objects, looking up metric codes and taxes once."""

    def __init__(self, metrics: DocumentReader[MetricDefinition], taxes: DocumentReader[TaxDefinition]) -> None:
        self._metrics = metrics
        self._taxes = taxes

    def plans(self, organization_id: UUID, documents: Sequence[Document[PlanDefinition]]) -> list[PlanObject]:
        metric_ids = {c.billable_metric_id for d in documents for c in d.data.charges}
        metrics = self._metrics.many(organization_id, list(metric_ids))
        return [self._plan(organization_id, d, metrics) for d in documents]

    def charge(self, organization_id: UUID, charge: Charge) -> ChargeObject:
        metrics = self._metrics.many(organization_id, [charge.billable_metric_id])
        return self._charge(organization_id, charge, metrics)

    def _plan(self, organization_id: UUID, document: Document[PlanDefinition], metrics: dict[UUID, Document[Any]]) -> PlanObject:
        plan = document.data
        thresholds = [
            UsageThresholdObject(
                lago_id=str(t.id), threshold_display_name=t.threshold_display_name, amount_cents=t.amount_cents,
                recurring=t.recurring, created_at=timestamp(t.created_at) or "", updated_at=timestamp(document.updated_at) or "",
            )
            for t in plan.usage_thresholds
        ]
        commitment = plan.minimum_commitment
        return PlanObject(
            lago_id=str(document.id),
            name=plan.name,
            invoice_display_name=plan.invoice_display_name,
            created_at=timestamp(document.created_at) or "",
            code=plan.code,
            interval=plan.interval,
            description=plan.description,
            amount_cents=plan.amount_cents or 0,
            amount_currency=plan.amount_currency,
            trial_period=number(plan.trial_period),
            pay_in_advance=bool(plan.pay_in_advance),
            bill_charges_monthly=plan.bill_charges_monthly,
            bill_fixed_charges_monthly=plan.bill_fixed_charges_monthly,
            charges=[self._charge(organization_id, c, metrics) for c in plan.charges],
            usage_thresholds=thresholds,
            applicable_usage_thresholds=thresholds,
            taxes=taxes_for(self._taxes, organization_id, plan.tax_codes),
            minimum_commitment=None if commitment is None else MinimumCommitmentObject(
                lago_id=str(commitment.id), plan_code=plan.code, invoice_display_name=commitment.invoice_display_name,
                amount_cents=commitment.amount_cents, interval=plan.interval,
                created_at=timestamp(commitment.created_at) or "", updated_at=timestamp(document.updated_at) or "",
                taxes=taxes_for(self._taxes, organization_id, commitment.tax_codes),
            ),
            metadata=plan.metadata or None,
            pending_deletion=document.deleted_at is not None,
        )

    def _charge(self, organization_id: UUID, charge: Charge, metrics: dict[UUID, Document[Any]]) -> ChargeObject:
        metric = metrics.get(charge.billable_metric_id)
        return ChargeObject(
            lago_id=str(charge.id),
            lago_billable_metric_id=str(charge.billable_metric_id),
            billable_metric_code=metric.key if metric is not None else "",
            code=charge.code,
            invoice_display_name=charge.invoice_display_name,
            created_at=timestamp(charge.created_at) or "",
            charge_model=charge.charge_model,
            invoiceable=charge.invoiceable,
            regroup_paid_fees=charge.regroup_paid_fees,
            pay_in_advance=charge.pay_in_advance,
            prorated=charge.prorated,
            min_amount_cents=charge.min_amount_cents,
            accepts_target_wallet=charge.accepts_target_wallet,
            properties=present_properties(charge.charge_model, charge.properties),
            filters=[present_filter(charge, f) for f in charge.filters],
            taxes=taxes_for(self._taxes, organization_id, charge.tax_codes),
        )


def present_filter(charge: Charge, charge_filter: ChargeFilter) -> ChargeFilterObject:
    return ChargeFilterObject(
        lago_id=str(charge_filter.id),
        invoice_display_name=charge_filter.invoice_display_name,
        properties=present_properties(charge.charge_model, charge_filter.properties),
        values={v.key: list(v.values) for v in charge_filter.values},
        created_at=timestamp(charge_filter.created_at) or "",
    )


def catalog(billing: Billing, reader: DocumentReader[PlanDefinition], presenter: PlanPresenter, now: Callable[[], datetime]) -> Catalog:
    return Catalog(
        path="/api/v1/plans",
        root="plan",
        plural="plans",
        tag="plans",
        body=_plan_body,
        response=PlanObject,
        present=presenter.plans,
        reader=reader,
        missing=PlanNotFound,
        create=lambda org, changes: billing.create_plan(org, changes, now()),
        update=lambda org, code, changes: billing.update_plan(org, code, changes, now()),
        delete=billing.delete_plan,
    )


class _PlanPart:
    """Shared by the charge and filter resources: read the plan fresh from its view."""

    def __init__(self, billing: Billing, plans: DocumentReader[PlanDefinition], presenter: PlanPresenter,
                 now: Callable[[], datetime]) -> None:
        self._billing = billing
        self._plans = plans
        self._presenter = presenter
        self._now = now

    def _plan(self, organization_id: UUID, code: str) -> Document[PlanDefinition]:
        document = self._plans.by_key(organization_id, code)
        if document is None:
            raise PlanNotFound(key=code)
        return document

    def _charge_by_id(self, organization_id: UUID, plan_id: UUID, charge_id: UUID) -> Charge:
        document = self._plans.by_id(organization_id, plan_id)
        if document is None:
            raise PlanNotFound(key=plan_id)
        return next(c for c in document.data.charges if c.id == charge_id)


class PlanCharges(_PlanPart):
    path = "/api/v1/plans/{code}/charges"
    operations = (
        Operation("GET", path, "List a plan's charges", "plans", ChargeObject, "charges", listed=True,
                  query=PAGINATION, errors=(401, 404)),
        Operation("POST", path, "Add a charge to a plan", "plans", ChargeObject, "charge", request=_charge_body,
                  errors=(401, 404, 422)),
    )

    def on_get(self, req: falcon.Request, resp: falcon.Response, code: str) -> None:
        page = PageRequest.of(req)
        charges = self._plan(req.context.organization_id, code).data.charges
        shown = charges[page.offset: page.offset + page.per_page]
        respond(resp, {"charges": [self._presenter.charge(req.context.organization_id, c) for c in shown],
                       "meta": page.meta(len(charges))})

    def on_post(self, req: falcon.Request, resp: falcon.Response, code: str) -> None:
        raw = given(_charge_body.decode(req.context.body))
        plan_id, charge_id = self._billing.add_charge(req.context.organization_id, code, raw, self._now())
        charge = self._charge_by_id(req.context.organization_id, plan_id, charge_id)
        respond(resp, {"charge": self._presenter.charge(req.context.organization_id, charge)})


class PlanCharge(_PlanPart):
    path = "/api/v1/plans/{code}/charges/{charge_code}"
    operations = (
        Operation("GET", path, "Retrieve one charge of a plan", "plans", ChargeObject, "charge", errors=(401, 404)),
        Operation("PUT", path, "Update one charge of a plan", "plans", ChargeObject, "charge", request=_charge_body,
                  errors=(401, 404, 422)),
        Operation("DELETE", path, "Remove one charge from a plan", "plans", ChargeObject, "charge", errors=(401, 404)),
    )

    def on_get(self, req: falcon.Request, resp: falcon.Response, code: str, charge_code: str) -> None:
        charge = self._plan(req.context.organization_id, code).data.charge(charge_code)
        respond(resp, {"charge": self._presenter.charge(req.context.organization_id, charge)})

    def on_put(self, req: falcon.Request, resp: falcon.Response, code: str, charge_code: str) -> None:
        raw = given(_charge_body.decode(req.context.body))
        plan_id, charge_id = self._billing.update_charge(req.context.organization_id, code, charge_code, raw, self._now())
        charge = self._charge_by_id(req.context.organization_id, plan_id, charge_id)
        respond(resp, {"charge": self._presenter.charge(req.context.organization_id, charge)})

    def on_delete(self, req: falcon.Request, resp: falcon.Response, code: str, charge_code: str) -> None:
        removed = self._billing.remove_charge(req.context.organization_id, code, charge_code)
        respond(resp, {"charge": self._presenter.charge(req.context.organization_id, removed)})


def _filter_id(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise ChargeFilterNotFound(key=raw) from None


class ChargeFilters(_PlanPart):
    path = "/api/v1/plans/{code}/charges/{charge_code}/filters"
    operations = (
        Operation("GET", path, "List a charge's filters", "plans", ChargeFilterObject, "filters", listed=True,
                  query=PAGINATION, errors=(401, 404)),
        Operation("POST", path, "Add a filter to a charge", "plans", ChargeFilterObject, "filter", request=_filter_body,
                  errors=(401, 404, 422)),
    )

    def on_get(self, req: falcon.Request, resp: falcon.Response, code: str, charge_code: str) -> None:
        page = PageRequest.of(req)
        charge = self._plan(req.context.organization_id, code).data.charge(charge_code)
        shown = charge.filters[page.offset: page.offset + page.per_page]
        respond(resp, {"filters": [present_filter(charge, f) for f in shown], "meta": page.meta(len(charge.filters))})

    def on_post(self, req: falcon.Request, resp: falcon.Response, code: str, charge_code: str) -> None:
        raw = given(_filter_body.decode(req.context.body))
        plan_id, charge_id, filter_id = self._billing.add_charge_filter(
            req.context.organization_id, code, charge_code, raw, self._now()
        )
        charge = self._charge_by_id(req.context.organization_id, plan_id, charge_id)
        respond(resp, {"filter": present_filter(charge, charge_filter(charge, filter_id))})


class ChargeFilterMember(_PlanPart):
    path = "/api/v1/plans/{code}/charges/{charge_code}/filters/{filter_id}"
    operations = (
        Operation("GET", path, "Retrieve a charge filter", "plans", ChargeFilterObject, "filter", errors=(401, 404)),
        Operation("PUT", path, "Update a charge filter", "plans", ChargeFilterObject, "filter", request=_filter_body,
                  errors=(401, 404, 422)),
        Operation("DELETE", path, "Remove a charge filter", "plans", ChargeFilterObject, "filter", errors=(401, 404)),
    )

    def on_get(self, req: falcon.Request, resp: falcon.Response, code: str, charge_code: str, filter_id: str) -> None:
        charge = self._plan(req.context.organization_id, code).data.charge(charge_code)
        respond(resp, {"filter": present_filter(charge, charge_filter(charge, _filter_id(filter_id)))})

    def on_put(self, req: falcon.Request, resp: falcon.Response, code: str, charge_code: str, filter_id: str) -> None:
        raw = given(_filter_body.decode(req.context.body))
        plan_id, charge_id, changed = self._billing.add_charge_filter(
            req.context.organization_id, code, charge_code, raw, self._now(), filter_id=_filter_id(filter_id)
        )
        charge = self._charge_by_id(req.context.organization_id, plan_id, charge_id)
        respond(resp, {"filter": present_filter(charge, charge_filter(charge, changed))})

    def on_delete(self, req: falcon.Request, resp: falcon.Response, code: str, charge_code: str, filter_id: str) -> None:
        charge = self._plan(req.context.organization_id, code).data.charge(charge_code)
        removed = self._billing.remove_charge_filter(req.context.organization_id, code, charge_code, _filter_id(filter_id))
        respond(resp, {"filter": present_filter(charge, removed)})


def resources(billing: Billing, plans: DocumentReader[PlanDefinition], presenter: PlanPresenter,
              now: Callable[[], datetime]) -> list[Any]:
    parts = (billing, plans, presenter, now)
    return [
        *catalog(billing, plans, presenter, now).resources(),
        PlanCharges(*parts),
        PlanCharge(*parts),
        ChargeFilters(*parts),
        ChargeFilterMember(*parts),
    ]
