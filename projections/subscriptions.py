"""Customers and subscriptions read models: who is subscribed to what, and what is due when."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import singledispatchmethod
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Tracking
from psycopg import sql

from domain.customer import Customer
from domain.subscription import Subscription, SubscriptionTerms
from projections.catalog import catalog_projection
from projections.documents import Condition, Document, DocumentReader, DocumentView
from projections.projection import Projection


class CustomersView(DocumentView):
    table = "customers"
    aliases = True


Customers = catalog_projection(Customer, CustomersView)


class SubscriptionsView(DocumentView):
    table = "subscriptions"
    aliases = True
    columns = {
        "customer_id": "uuid NOT NULL",
        "plan_id": "uuid NOT NULL",
        "status": "text NOT NULL",
        "starts_at": "timestamptz NOT NULL",
        "started_at": "timestamptz",
        "ending_at": "timestamptz",
        "terminated_at": "timestamptz",
        "canceled_at": "timestamptz",
        "trial_anchor_at": "timestamptz NOT NULL",
        "previous_id": "uuid",
        "next_id": "uuid",
        "termination_reason": "text",
        "billed_until": "timestamptz",
        "next_close_at": "timestamptz",
        "start_billed": "boolean NOT NULL DEFAULT false",
        "final_billed": "boolean NOT NULL DEFAULT false",
    }


class Subscriptions(Projection[SubscriptionsView]):
    name = "subscriptions"

    @singledispatchmethod
    def process_event(self, event: Any, tracking: Tracking) -> None:
        """Other events do not change subscriptions."""

    @process_event.register
    def _(self, event: Subscription.Created, tracking: Tracking) -> None:
        self.view.insert(
            event.originator_id, event.organization_id, event.terms.external_id, event.terms, event.timestamp, tracking,
            customer_id=event.customer_id, plan_id=event.plan_id, status=event.status, starts_at=event.starts_at,
            started_at=event.starts_at if event.status == "active" else None, ending_at=event.terms.ending_at,
            trial_anchor_at=event.trial_anchor_at, previous_id=event.previous_id,
        )

    @process_event.register
    def _(self, event: Subscription.TermsChanged, tracking: Tracking) -> None:
        self.view.update(event.originator_id, event.timestamp, tracking, key=event.terms.external_id,
                         data=event.terms, ending_at=event.terms.ending_at)

    @process_event.register
    def _(self, event: Subscription.Activated, tracking: Tracking) -> None:
        self.view.update(event.originator_id, event.timestamp, tracking, status="active", started_at=event.started_at)

    @process_event.register
    def _(self, event: Subscription.Terminated, tracking: Tracking) -> None:
        self.view.update(event.originator_id, event.timestamp, tracking, status="terminated",
                         terminated_at=event.terminated_at, termination_reason=event.reason, next_id=None)

    @process_event.register
    def _(self, event: Subscription.Canceled, tracking: Tracking) -> None:
        self.view.update(event.originator_id, event.timestamp, tracking, status="canceled",
                         canceled_at=event.canceled_at, termination_reason=event.reason)

    @process_event.register
    def _(self, event: Subscription.NextScheduled, tracking: Tracking) -> None:
        self.view.update(event.originator_id, event.timestamp, tracking, next_id=event.next_id)

    @process_event.register
    def _(self, event: Subscription.BillingScheduled, tracking: Tracking) -> None:
        self.view.update(event.originator_id, event.timestamp, tracking, next_close_at=event.next_close_at)

    @process_event.register
    def _(self, event: Subscription.PeriodClosed, tracking: Tracking) -> None:
        self.view.update(event.originator_id, event.timestamp, tracking, billed_until=event.boundary,
                         next_close_at=event.next_close_at)

    @process_event.register
    def _(self, event: Subscription.StartInvoiced, tracking: Tracking) -> None:
        self.view.update(event.originator_id, event.timestamp, tracking, start_billed=True)

    @process_event.register
    def _(self, event: Subscription.FinalInvoiced, tracking: Tracking) -> None:
        self.view.update(event.originator_id, event.timestamp, tracking, final_billed=True)


@dataclass(frozen=True)
class Due:
    """Subscriptions the scheduler must move on, by what is due."""

    to_activate: list[UUID]
    to_end: list[UUID]
    on_deleted_plans: list[UUID]
    plans_with_deleted_metrics: list[UUID]


@dataclass(frozen=True)
class BillingDue:
    """Subscriptions with invoicing to do: schedule, close periods, bill a start, bill a termination."""

    to_schedule: list[UUID]
    to_close: list[tuple[UUID, datetime, UUID]]  # subscription, boundary, organization
    to_start: list[UUID]
    to_finish: list[UUID]

    def __len__(self) -> int:
        return len(self.to_schedule) + len(self.to_close) + len(self.to_start) + len(self.to_finish)


class SubscriptionsReader(DocumentReader[SubscriptionTerms]):
    def billing_due(self, now: datetime, limit: int = 10_000) -> BillingDue:
        """Across all organizations, what invoicing is due at ``now`` (periods before a termination first)."""
        self._freshness.wait(["subscriptions", "plans"])
        live = "started_at IS NOT NULL AND NOT final_billed AND status IN ('active', 'terminated')"
        with self._pool.connection() as conn:
            schedule = conn.execute(
                f"SELECT id FROM subscriptions WHERE {live} AND next_close_at IS NULL LIMIT %s", (limit,)).fetchall()
            close = conn.execute(
                f"SELECT id, next_close_at, organization_id FROM subscriptions WHERE {live} AND next_close_at <= %s "
                "AND (terminated_at IS NULL OR next_close_at < terminated_at) ORDER BY next_close_at LIMIT %s",
                (now, limit)).fetchall()
            start = conn.execute(  # only plans paid in advance bill a start
                "SELECT s.id FROM subscriptions s JOIN plans p ON p.id = s.plan_id WHERE s.status = 'active' "
                "AND s.started_at IS NOT NULL AND NOT s.start_billed AND (p.data->>'pay_in_advance')::boolean "
                "AND s.trial_anchor_at + coalesce((p.data->>'trial_period')::numeric, 0) * interval '1 day' <= %s "
                "LIMIT %s", (now, limit)).fetchall()
            finish = conn.execute(
                "SELECT id FROM subscriptions WHERE status = 'terminated' AND started_at IS NOT NULL AND NOT final_billed "
                "AND (next_close_at IS NULL OR next_close_at >= terminated_at) LIMIT %s", (limit,)).fetchall()
        return BillingDue([r[0] for r in schedule], [(r[0], r[1], r[2]) for r in close], [r[0] for r in start],
                          [r[0] for r in finish])

    def by_external_id(self, organization_id: UUID, external_id: str, status: str) -> Document[SubscriptionTerms] | None:
        """The newest subscription with this (current or former) external id and status."""
        self.fresh()
        return self._one(
            sql.SQL("organization_id = %s AND %s = ANY(keys) AND status = %s ORDER BY created_at DESC LIMIT 1"),
            [organization_id, external_id, status],
        )

    def of_customer(self, organization_id: UUID, customer_id: UUID) -> list[Document[SubscriptionTerms]]:
        documents, _ = self.page(organization_id, 0, 10_000, [(sql.SQL("customer_id = %s"), [customer_id])])
        return documents

    def filtered(
        self,
        organization_id: UUID,
        offset: int,
        limit: int,
        *,
        statuses: Sequence[str],
        customer_ids: Sequence[UUID] | None = None,
        plan_ids: Sequence[UUID] | None = None,
        external_id: str | None = None,
    ) -> tuple[list[Document[SubscriptionTerms]], int]:
        conditions: list[Condition] = [(sql.SQL("status = ANY(%s)"), [list(statuses)])]
        if customer_ids is not None:
            conditions.append((sql.SQL("customer_id = ANY(%s)"), [list(customer_ids)]))
        if plan_ids is not None:
            conditions.append((sql.SQL("plan_id = ANY(%s)"), [list(plan_ids)]))
        if external_id is not None:
            conditions.append((sql.SQL("%s = ANY(keys)"), [external_id]))
        return self.page(organization_id, offset, limit, conditions)

    def due(self, now: datetime, limit: int = 10_000) -> Due:
        """Across all organizations: starts, ends and orphans whose time has come."""
        self._freshness.wait(["subscriptions", "plans", "billable_metrics"])
        with self._pool.connection() as conn:
            to_activate = conn.execute(
                "SELECT id FROM subscriptions WHERE status = 'pending' AND starts_at <= %s ORDER BY starts_at LIMIT %s",
                (now, limit),
            ).fetchall()
            to_end = conn.execute(
                "SELECT id FROM subscriptions WHERE status = 'active' AND ending_at <= %s ORDER BY ending_at LIMIT %s",
                (now, limit),
            ).fetchall()
            orphans = conn.execute(
                "SELECT s.id FROM subscriptions s JOIN plans p ON p.id = s.plan_id "
                "WHERE s.status IN ('pending', 'active') AND p.deleted_at IS NOT NULL LIMIT %s",
                (limit,),
            ).fetchall()
            stale_plans = conn.execute(
                "SELECT DISTINCT p.id FROM plans p CROSS JOIN LATERAL jsonb_array_elements(p.data->'charges') c "
                "JOIN billable_metrics m ON m.id = (c->>'billable_metric_id')::uuid "
                "WHERE p.deleted_at IS NULL AND m.deleted_at IS NOT NULL LIMIT %s",
                (limit,),
            ).fetchall()
        return Due([r[0] for r in to_activate], [r[0] for r in to_end], [r[0] for r in orphans],
                   [r[0] for r in stale_plans])


@dataclass(frozen=True)
class CustomerFilters:
    """Lago's customer list filters (reference §2.3)."""

    search_term: str | None = None
    external_id: str | None = None
    currencies: Sequence[str] = ()
    countries: Sequence[str] = ()
    states: Sequence[str] = ()
    zipcodes: Sequence[str] = ()
    account_types: Sequence[str] = ()
    customer_type: str | None = None
    has_customer_type: bool | None = None
    has_tax_identification_number: bool | None = None
    metadata: Sequence[tuple[str, str]] = ()


class CustomersReader(DocumentReader[Any]):
    def filtered(self, organization_id: UUID, offset: int, limit: int, filters: CustomerFilters) -> tuple[list[Document[Any]], int]:
        conditions: list[Condition] = []
        if filters.search_term:
            like = f"%{filters.search_term}%"
            conditions.append((
                sql.SQL("(key ILIKE %s OR data->>'name' ILIKE %s OR data->>'firstname' ILIKE %s "
                        "OR data->>'lastname' ILIKE %s OR data->>'email' ILIKE %s OR data->>'legal_name' ILIKE %s)"),
                [like] * 6,
            ))
        if filters.external_id:
            conditions.append((sql.SQL("%s = ANY(keys)"), [filters.external_id]))
        for values, path in ((filters.currencies, "data->>'currency'"), (filters.countries, "data->'address'->>'country'"),
                             (filters.states, "data->'address'->>'state'"), (filters.zipcodes, "data->'address'->>'zipcode'"),
                             (filters.account_types, "data->>'account_type'")):
            if values:
                conditions.append((sql.SQL(path + " = ANY(%s)"), [list(values)]))
        if filters.customer_type:
            conditions.append((sql.SQL("data->>'customer_type' = %s"), [filters.customer_type]))
        if filters.has_customer_type is not None:
            conditions.append((sql.SQL("(data->>'customer_type' IS NOT NULL) = %s"), [filters.has_customer_type]))
        if filters.has_tax_identification_number is not None:
            conditions.append((sql.SQL("(data->>'tax_identification_number' IS NOT NULL) = %s"),
                               [filters.has_tax_identification_number]))
        for key, value in filters.metadata:
            conditions.append((
                sql.SQL("EXISTS (SELECT 1 FROM jsonb_array_elements(data->'metadata') m "
                        "WHERE m->>'key' = %s AND m->>'value' = %s)"),
                [key, value],
            ))
        return self.page(organization_id, offset, limit, conditions)
