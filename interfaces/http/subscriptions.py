"""Subscriptions over Lago's API (reference §2.4): create or change plan, list, show, update, end."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from uuid import UUID

import falcon
import msgspec

from application.invoicing import Invoicing
from domain.application import Billing
from domain.customer import CustomerNotFound, CustomerProfile
from domain.errors import ValidationFailed
from domain.plan import PlanDefinition
from domain.subscription import (
    STATUSES,
    SubscriptionNotFound,
    SubscriptionTerms,
    billing_period,
)
from interfaces.http.customers import CustomerPresenter, list_param
from interfaces.http.openapi import PAGINATION, Operation, Param
from interfaces.http.plans import PlanObject, PlanPresenter
from interfaces.http.wire import Body, PageRequest, given, respond, timestamp
from projections.documents import Document, DocumentReader
from projections.subscriptions import CustomersReader, SubscriptionsReader

Unset = msgspec.UnsetType
UNSET = msgspec.UNSET


class SubscriptionInput(msgspec.Struct, kw_only=True):
    external_customer_id: str | Unset = UNSET
    plan_code: str | Unset = UNSET
    external_id: str | Unset = UNSET
    name: str | None | Unset = UNSET
    billing_time: Literal["calendar", "anniversary"] | None | Unset = UNSET
    subscription_at: datetime | None | Unset = UNSET
    ending_at: datetime | None | Unset = UNSET
    purchase_order_number: str | None | Unset = UNSET
    plan_overrides: dict[str, Any] | None | Unset = UNSET
    billing_entity_code: str | None | Unset = UNSET
    consolidate_invoice: bool | None | Unset = UNSET
    progressive_billing_disabled: bool | None | Unset = UNSET
    usage_thresholds: list[dict[str, Any]] | None | Unset = UNSET


class SubscriptionUpdate(msgspec.Struct, kw_only=True):
    name: str | None | Unset = UNSET
    external_id: str | Unset = UNSET
    ending_at: datetime | None | Unset = UNSET
    subscription_at: datetime | Unset = UNSET
    purchase_order_number: str | None | Unset = UNSET
    on_termination_credit_note: Literal["credit", "refund", "offset", "skip"] | None | Unset = UNSET
    on_termination_invoice: Literal["generate", "skip"] | None | Unset = UNSET
    plan_overrides: dict[str, Any] | None | Unset = UNSET


class SubscriptionObject(msgspec.Struct):
    lago_id: str
    external_id: str
    external_ids: list[str]
    lago_customer_id: str
    external_customer_id: str
    name: str | None
    plan_code: str
    plan_amount_cents: int
    plan_amount_currency: str
    status: str
    billing_time: str
    subscription_at: str
    started_at: str | None
    trial_ended_at: str | None
    ending_at: str | None
    terminated_at: str | None
    canceled_at: str | None
    created_at: str
    previous_plan_code: str | None
    next_plan_code: str | None
    downgrade_plan_date: str | None
    current_billing_period_started_at: str | None
    current_billing_period_ending_at: str | None
    on_termination_credit_note: str | None
    on_termination_invoice: str
    purchase_order_number: str | None
    plan: PlanObject | None
    progressive_billing_disabled: bool = False
    consolidate_invoice: bool = True
    cancellation_reason: str | None = None
    activated_at: str | None = None
    payment_method: dict[str, Any] | None = None
    activation_rules: list[dict[str, Any]] = []
    entitlements: list[dict[str, Any]] = []
    applicable_usage_thresholds: list[dict[str, Any]] = []
    applied_invoice_custom_sections: list[dict[str, Any]] = []


_create = Body("subscription", SubscriptionInput)
_update = Body("subscription", SubscriptionUpdate)


def milliseconds(moment: datetime | None) -> str | None:
    """Lago's ``started_at``: UTC with millisecond precision."""
    if moment is None:
        return None
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class SubscriptionPresenter:
    def __init__(self, subscriptions: SubscriptionsReader, customers: CustomersReader, plans: DocumentReader[PlanDefinition],
                 customer_presenter: CustomerPresenter, plan_presenter: PlanPresenter, now: Callable[[], datetime]) -> None:
        self._subscriptions = subscriptions
        self._customers = customers
        self._plans = plans
        self._customer_presenter = customer_presenter
        self._plan_presenter = plan_presenter
        self._now = now

    def many(self, organization_id: UUID, documents: Sequence[Document[SubscriptionTerms]], *, with_plan: bool = False) -> list[SubscriptionObject]:
        related = {d.extra[k] for d in documents for k in ("previous_id", "next_id") if d.extra.get(k)}
        neighbours = self._subscriptions.many(organization_id, list(related))
        plan_ids = {d.extra["plan_id"] for d in [*documents, *neighbours.values()]}
        plans = self._plans.many(organization_id, list(plan_ids))
        customers = self._customers.many(organization_id, list({d.extra["customer_id"] for d in documents}))
        presented_plans = {}
        if with_plan:
            listed = list(plans.values())
            presented_plans = dict(zip([p.id for p in listed], self._plan_presenter.plans(organization_id, listed), strict=True))
        return [self._one(organization_id, d, neighbours, plans, customers, presented_plans) for d in documents]

    def _one(self, organization_id: UUID, document: Document[SubscriptionTerms], neighbours: dict[UUID, Document[Any]],
             plans: dict[UUID, Document[PlanDefinition]], customers: dict[UUID, Document[CustomerProfile]],
             presented_plans: dict[UUID, Any]) -> SubscriptionObject:
        terms, extra = document.data, document.extra
        plan = plans[extra["plan_id"]]
        customer = customers[extra["customer_id"]]
        timezone = self._customer_presenter.timezone(organization_id, customer.data)
        previous = neighbours.get(extra.get("previous_id"))
        following = neighbours.get(extra.get("next_id"))
        started_at = extra.get("started_at")
        period = None
        if extra["status"] == "active" and started_at is not None:
            period = billing_period(interval=plan.data.interval, billing_time=terms.billing_time,
                                    subscription_at=terms.subscription_at, started_at=started_at,
                                    timezone=timezone, at=self._now())
        trial_end = None
        if plan.data.trial_period > 0:
            candidate = extra["trial_anchor_at"] + timedelta(days=float(plan.data.trial_period))
            trial_end = candidate if candidate <= self._now() else None
        return SubscriptionObject(
            lago_id=str(document.id), external_id=terms.external_id, external_ids=document.keys,
            lago_customer_id=str(customer.id), external_customer_id=customer.data.external_id, name=terms.name,
            plan_code=plan.data.code, plan_amount_cents=plan.data.amount_cents or 0,
            plan_amount_currency=plan.data.amount_currency, status=extra["status"], billing_time=terms.billing_time,
            subscription_at=timestamp(terms.subscription_at) or "", started_at=milliseconds(started_at),
            trial_ended_at=timestamp(trial_end), ending_at=timestamp(terms.ending_at),
            terminated_at=timestamp(extra.get("terminated_at")), canceled_at=timestamp(extra.get("canceled_at")),
            created_at=timestamp(document.created_at) or "",
            previous_plan_code=plans[previous.extra["plan_id"]].data.code if previous is not None and previous.extra["plan_id"] in plans else None,
            next_plan_code=plans[following.extra["plan_id"]].data.code if following is not None and following.extra["plan_id"] in plans else None,
            downgrade_plan_date=following.extra["starts_at"].astimezone(UTC).date().isoformat() if following is not None else None,
            current_billing_period_started_at=timestamp(period.starts_at) if period else None,
            current_billing_period_ending_at=timestamp(period.lago_ending_at()) if period else None,
            on_termination_credit_note=terms.on_termination_credit_note,
            on_termination_invoice=terms.on_termination_invoice,
            purchase_order_number=terms.purchase_order_number,
            plan=presented_plans.get(plan.id),
            activated_at=timestamp(started_at),
            cancellation_reason=extra.get("termination_reason") if extra["status"] == "canceled" else None,
        )


def _status(req: falcon.Request, default: str = "active") -> str:
    status = req.get_param("status") or default
    if status not in STATUSES:
        raise ValidationFailed({"status": ["value_is_invalid"]})
    return status


class SubscriptionsBase:
    def __init__(self, billing: Billing, subscriptions: SubscriptionsReader, customers: CustomersReader,
                 plans: DocumentReader[PlanDefinition], presenter: SubscriptionPresenter, now: Callable[[], datetime],
                 invoicing: Invoicing | None = None) -> None:
        self._invoicing = invoicing
        self._billing = billing
        self._subscriptions = subscriptions
        self._customers = customers
        self._plans = plans
        self._presenter = presenter
        self._now = now

    def _show(self, resp: falcon.Response, organization_id: UUID, subscription_id: UUID) -> None:
        document = self._subscriptions.by_id(organization_id, subscription_id)
        if document is None:
            raise SubscriptionNotFound(key=subscription_id)
        respond(resp, {"subscription": self._presenter.many(organization_id, [document], with_plan=True)[0]})

    def _list(self, req: falcon.Request, resp: falcon.Response, customer_ids: list[UUID] | None) -> None:
        page = PageRequest.of(req)
        statuses = list_param(req, "status") or ["active"]
        if not set(statuses) <= set(STATUSES):
            raise ValidationFailed({"status": ["value_is_invalid"]})
        plan_ids = None
        if req.get_param("plan_code"):
            plan = self._plans.by_key(req.context.organization_id, req.get_param("plan_code"))
            plan_ids = [plan.id] if plan is not None else []
        documents, total = self._subscriptions.filtered(
            req.context.organization_id, page.offset, page.per_page, statuses=statuses, customer_ids=customer_ids,
            plan_ids=plan_ids, external_id=req.get_param("external_id"),
        )
        respond(resp, {"subscriptions": self._presenter.many(req.context.organization_id, documents),
                       "meta": page.meta(total)})

    def _customer_ids(self, organization_id: UUID, external_customer_id: str | None) -> list[UUID] | None:
        if external_customer_id is None:
            return None
        customer = self._customers.by_key(organization_id, external_customer_id)
        return [customer.id] if customer is not None else []


_LIST_FILTERS = (
    Param("external_customer_id", "The customer's external id."),
    Param("plan_code", "Subscriptions on this plan."),
    Param("status", "pending, active, terminated, canceled (default: active).", array=True),
    Param("external_id", "The subscription's (current or former) external id."),
)


class SubscriptionCollection(SubscriptionsBase):
    path = "/api/v1/subscriptions"
    operations = (
        Operation("POST", path, "Subscribe a customer to a plan, or change the plan of a subscription",
                  "subscriptions", SubscriptionObject, "subscription", request=_create, errors=(401, 404, 422)),
        Operation("GET", path, "List subscriptions", "subscriptions", SubscriptionObject, "subscriptions",
                  listed=True, query=PAGINATION + _LIST_FILTERS),
    )

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        changes = given(_create.decode(req.context.body))
        if changes.get("plan_overrides"):
            raise ValidationFailed({"plan_overrides": ["not_supported"]})
        now = self._now()
        subscription_id = self._billing.create_subscription(req.context.organization_id, changes, now)
        if self._invoicing is not None:
            self._invoicing.after_change(subscription_id, now)  # an in-advance start, an upgrade's final invoice
        self._show(resp, req.context.organization_id, subscription_id)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._list(req, resp, self._customer_ids(req.context.organization_id, req.get_param("external_customer_id")))


class SubscriptionMember(SubscriptionsBase):
    path = "/api/v1/subscriptions/{external_id}"
    _status_param = (Param("status", "Which of the subscriptions with this external id (default: active).",
                           values=STATUSES),)
    operations = (
        Operation("GET", path, "Retrieve a subscription", "subscriptions", SubscriptionObject, "subscription",
                  query=_status_param, errors=(401, 404)),
        Operation("PUT", path, "Update a subscription; a new external_id renames it (Tally)", "subscriptions",
                  SubscriptionObject, "subscription", request=_update, query=_status_param, errors=(404, 405)),
        Operation("DELETE", path, "Terminate an active subscription or cancel a pending one", "subscriptions",
                  SubscriptionObject, "subscription", errors=(401, 404, 405),
                  query=(*_status_param,
                         Param("on_termination_credit_note", "credit, refund, offset or skip.",
                               values=("credit", "refund", "offset", "skip")),
                         Param("on_termination_invoice", "generate or skip.", values=("generate", "skip")))),
    )

    def on_get(self, req: falcon.Request, resp: falcon.Response, external_id: str) -> None:
        document = self._subscriptions.by_external_id(req.context.organization_id, external_id, _status(req))
        if document is None:
            raise SubscriptionNotFound(key=external_id)
        respond(resp, {"subscription": self._presenter.many(req.context.organization_id, [document], with_plan=True)[0]})

    def on_put(self, req: falcon.Request, resp: falcon.Response, external_id: str) -> None:
        changes = given(_update.decode(req.context.body))
        if changes.get("plan_overrides"):
            raise ValidationFailed({"plan_overrides": ["not_supported"]})
        status = req.get_param("status")
        subscription_id = self._billing.update_subscription(req.context.organization_id, external_id, changes,
                                                            _status(req) if status else None)
        self._show(resp, req.context.organization_id, subscription_id)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, external_id: str) -> None:
        policies = {
            name: req.get_param(name)
            for name in ("on_termination_credit_note", "on_termination_invoice")
            if req.get_param(name) is not None
        }
        now = self._now()
        subscription_id = self._billing.terminate_subscription(
            req.context.organization_id, external_id, now, _status(req), policies
        )
        if self._invoicing is not None:
            self._invoicing.after_change(subscription_id, now)  # the final invoice, at once (P5)
        self._show(resp, req.context.organization_id, subscription_id)


class CustomerSubscriptions(SubscriptionsBase):
    path = "/api/v1/customers/{external_id}/subscriptions"
    operations = (
        Operation("GET", path, "List a customer's subscriptions", "customers", SubscriptionObject, "subscriptions",
                  listed=True, query=PAGINATION + _LIST_FILTERS[1:], errors=(401, 404)),
    )

    def on_get(self, req: falcon.Request, resp: falcon.Response, external_id: str) -> None:
        customer = self._customers.by_key(req.context.organization_id, external_id)
        if customer is None:
            raise CustomerNotFound(key=external_id)
        self._list(req, resp, [customer.id])
