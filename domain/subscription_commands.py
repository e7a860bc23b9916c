"""Subscription commands: create, change plan (upgrade now, downgrade at period end), end.

The scheduler drives time: ``activate_subscription`` and ``end_subscription`` are the
commands it sends when a start, a deferred downgrade or an ``ending_at`` falls due; each is
a no-op when the subscription has already moved on, so a repeated pass changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.billable_metric import BillableMetric, BillableMetricNotFound
from domain.customer import Customer
from domain.customer_commands import CustomerCommands
from domain.errors import Problems, ValidationFailed
from domain.plan import Plan, PlanNotFound, without_charge
from domain.subscription import (
    ACTIVE,
    PENDING,
    Subscription,
    SubscriptionNotFound,
    SubscriptionTerms,
    billing_period,
    utc,
)

KIND = "subscription"


class SubscriptionCommands(CustomerCommands):
    def create_subscription(self, organization_id: UUID, changes: Mapping[str, Any], now: datetime) -> UUID:
        """POST /subscriptions: a new subscription, or a plan change on a live external id.

        Returns the subscription to show: the new one, or for a downgrade the current one
        (which now names its successor).
        """
        problems = Problems()
        for name in ("external_customer_id", "plan_code", "external_id"):
            problems.check(bool(changes.get(name)), name, "value_is_mandatory")
        problems.raise_if_any()
        customer, created = self._customer_for_subscription(organization_id, changes["external_customer_id"], now)
        plan = self._resolve(organization_id, Plan, changes["plan_code"])[1]
        terms = SubscriptionTerms(
            external_id=changes["external_id"],
            name=changes.get("name"),
            billing_time=changes.get("billing_time") or "calendar",
            subscription_at=utc(changes.get("subscription_at") or now),
        ).amended({k: v for k, v in changes.items() if k in ("ending_at", "purchase_order_number")})
        handle = self._handle(organization_id, KIND, terms.external_id)
        current = None
        if handle is not None and handle.target_id is not None:
            candidate = self._load(handle.target_id, Subscription, SubscriptionNotFound)
            current = candidate if candidate.is_live else None
        if current is None:
            subscription = Subscription.open(organization_id=organization_id, customer_id=customer.id,
                                             plan_id=plan.id, terms=terms, now=now)
            customer.record_subscription(subscription.id)
            if handle is None:
                handle = self._claim(organization_id, KIND, terms.external_id, subscription.id, "external_id")
            else:
                handle.bind(subscription.id)  # its holder has ended: the external id is free again
            self._save_claiming("external_id", customer, *created, subscription, handle)
            return subscription.id
        if current.customer_id != customer.id:
            raise ValidationFailed({"external_id": ["value_already_exist"]})
        if current.plan_id == plan.id:
            return current.id
        return self._change_plan(current, customer, plan, terms, now)

    def _change_plan(self, current: Subscription, customer: Customer, plan: Plan, terms: SubscriptionTerms,
                     now: datetime) -> UUID:
        """Upgrade (new yearly price ≥ old) at once; downgrade at the end of the period (P6)."""
        old_plan = self._load(current.plan_id, Plan, PlanNotFound)
        kept = replace(current.terms, name=terms.name or current.terms.name)
        handle = self._handle(current.organization_id, KIND, current.external_id)
        assert handle is not None  # a live subscription always holds its handle
        if current.status == PENDING:
            current.cancel(now, "replaced")
            successor = Subscription.open(organization_id=current.organization_id, customer_id=customer.id,
                                          plan_id=plan.id, terms=kept, now=now, starts_at=current.starts_at)
        elif plan.definition.yearly_amount_cents >= old_plan.definition.yearly_amount_cents:
            current.terminate(now, "upgraded")
            successor = Subscription.open(organization_id=current.organization_id, customer_id=customer.id,
                                          plan_id=plan.id, terms=kept, now=now, starts_at=now,
                                          trial_anchor_at=current.trial_anchor_at, previous_id=current.id)
        else:
            return self._schedule_downgrade(current, customer, plan, kept, old_plan, now)
        customer.record_subscription(successor.id)
        handle.bind(successor.id)
        self._save(current, successor, customer, handle)
        return successor.id

    def _schedule_downgrade(self, current: Subscription, customer: Customer, plan: Plan, terms: SubscriptionTerms,
                            old_plan: Plan, now: datetime) -> UUID:
        period = billing_period(
            interval=old_plan.definition.interval, billing_time=current.terms.billing_time,
            subscription_at=current.terms.subscription_at, started_at=current.started_at or now,
            timezone=self._timezone(customer), at=now,
        )
        changed: list[Aggregate] = [current, customer]
        if current.next_id is not None:
            replaced = self._load(current.next_id, Subscription, SubscriptionNotFound)
            replaced.cancel(now, "replaced")
            changed.append(replaced)
        successor = Subscription.open(organization_id=current.organization_id, customer_id=customer.id,
                                      plan_id=plan.id, terms=terms, now=now, starts_at=period.ends_at,
                                      trial_anchor_at=current.trial_anchor_at, previous_id=current.id)
        current.schedule_next(successor.id)
        customer.record_subscription(successor.id)
        self._save(*changed, successor)
        return current.id

    def update_subscription(self, organization_id: UUID, external_id: str, changes: Mapping[str, Any],
                            status: str | None = None) -> UUID:
        """Name, ending_at, subscription_at (pending only); a new external_id renames (alias kept)."""
        subscription = self.subscription(organization_id, external_id, status)
        terms = subscription.terms.amended(changes)
        renamed = changes.get("external_id")
        if renamed and renamed != subscription.external_id:
            terms = replace(terms, external_id=renamed)
        subscription.change_terms(terms)
        changed: list[Aggregate] = [subscription]
        if renamed and renamed != external_id:
            changed.append(self._claim(organization_id, KIND, renamed, subscription.id, "external_id"))
        self._save_claiming("external_id", *changed)
        return subscription.id

    def terminate_subscription(self, organization_id: UUID, external_id: str, now: datetime,
                               status: str | None = None, policies: Mapping[str, Any] | None = None) -> UUID:
        """DELETE: terminate an active subscription now, or cancel a pending one."""
        subscription = self.subscription(organization_id, external_id, status or ACTIVE)
        if policies:
            subscription.change_terms(subscription.terms.amended(policies))
        changed: list[Aggregate] = [subscription]
        if subscription.next_id is not None:
            scheduled = self._load(subscription.next_id, Subscription, SubscriptionNotFound)
            scheduled.cancel(now, "replaced")
            changed.append(scheduled)
        subscription.terminate(now, "manual")
        self._save(*changed)
        return subscription.id

    def subscription(self, organization_id: UUID, external_id: str, status: str | None = None) -> Subscription:
        """The subscription holding ``external_id`` (or its pending successor when asked for)."""
        handle = self._handle(organization_id, KIND, external_id)
        if handle is None or handle.target_id is None:
            raise SubscriptionNotFound(key=external_id)
        subscription = self._owned(organization_id, handle.target_id, Subscription, SubscriptionNotFound)
        if status == PENDING and subscription.status == ACTIVE and subscription.next_id is not None:
            subscription = self._load(subscription.next_id, Subscription, SubscriptionNotFound)
        if status is not None and subscription.status != status:
            raise SubscriptionNotFound(key=external_id)
        return subscription

    def activate_subscription(self, subscription_id: UUID, now: datetime) -> bool:
        """Start a pending subscription whose start has come; a downgrade ends its predecessor."""
        subscription = self._load(subscription_id, Subscription, SubscriptionNotFound)
        if subscription.status != PENDING or subscription.starts_at > now:
            return False
        changed: list[Aggregate] = [subscription]
        if subscription.previous_id is not None:
            previous = self._load(subscription.previous_id, Subscription, SubscriptionNotFound)
            if previous.status == ACTIVE:
                if previous.next_id != subscription.id:
                    return False
                previous.terminate(subscription.starts_at, "downgraded")
                changed.append(previous)
        subscription.activate()
        handle = self._handle(subscription.organization_id, KIND, subscription.external_id)
        if handle is not None:
            handle.bind(subscription.id)
            changed.append(handle)
        self._save(*changed)
        return True

    def end_subscription(self, subscription_id: UUID, now: datetime) -> bool:
        """Terminate an active subscription whose ``ending_at`` has passed, at that instant."""
        subscription = self._load(subscription_id, Subscription, SubscriptionNotFound)
        ending_at = subscription.terms.ending_at
        if subscription.status != ACTIVE or ending_at is None or ending_at > now:
            return False
        subscription.terminate(ending_at, "ended")
        self._save(subscription)
        return True

    def drop_charges_of_deleted_metrics(self, plan_id: UUID, now: datetime) -> bool:
        """Remove from a plan the charges whose metric was deleted (Lago deletes them with it)."""
        plan = self._load(plan_id, Plan, PlanNotFound)
        if plan.is_deleted:
            return False
        doomed = [c.code for c in plan.definition.charges
                  if self._load(c.billable_metric_id, BillableMetric, BillableMetricNotFound).is_deleted]
        if not doomed:
            return False
        definition = plan.definition
        for code in doomed:
            definition = without_charge(definition, code)
        plan.redefine(definition)
        self._save(plan)
        return True

    def end_orphaned_subscription(self, subscription_id: UUID, now: datetime) -> bool:
        """Terminate a live subscription whose plan was deleted (Lago deletes plans asynchronously)."""
        subscription = self._load(subscription_id, Subscription, SubscriptionNotFound)
        plan = self._load(subscription.plan_id, Plan, PlanNotFound)
        if not subscription.is_live or not plan.is_deleted:
            return False
        subscription.terminate(now, "plan_deleted")
        self._save(subscription)
        return True
