"""Subscriptions: a customer on a plan over time (reference §2.4, semantics §5 P2–P7).

One aggregate is one Lago subscription (one ``lago_id``). Its external id is a Handle
(ADR 0011): a plan upgrade terminates this subscription and starts a new one on the same
external id; a downgrade schedules the new one for the end of the current period.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import NotAllowed, NotFound, Problems, ValidationFailed
from domain.periods import BILLING_TIMES, Period, first_period, period_containing

PENDING, ACTIVE, TERMINATED, CANCELED = "pending", "active", "terminated", "canceled"
STATUSES = (PENDING, ACTIVE, TERMINATED, CANCELED)
CREDIT_NOTE_POLICIES = ("credit", "refund", "offset", "skip")
INVOICE_POLICIES = ("generate", "skip")


@dataclass(frozen=True)
class BilledUsage:
    """One charge × filter × group of usage as an early invoice billed it."""

    charge_id: UUID
    filter_id: UUID
    group: tuple[tuple[str, str], ...]
    units: Decimal
    events_count: int
    amount_cents: int
    precise_amount_cents: Decimal


@dataclass(frozen=True)
class EarlyBill:
    """Usage invoiced at ``at`` by ``invoice_id`` for the charge period starting at ``period_starts_at``."""

    invoice_id: UUID
    at: datetime
    period_starts_at: datetime
    lines: tuple[BilledUsage, ...]


class SubscriptionNotFound(NotFound):
    resource = "subscription"


class SubscriptionNotActive(NotAllowed):
    code = "subscription_not_active"


@dataclass(frozen=True)
class SubscriptionTerms:
    """What the subscriber chose: changed only by an explicit update."""

    external_id: str
    name: str | None
    billing_time: str
    subscription_at: datetime
    ending_at: datetime | None = None
    purchase_order_number: str | None = None
    on_termination_credit_note: str | None = None
    on_termination_invoice: str = "generate"

    def amended(self, changes: Mapping[str, Any]) -> SubscriptionTerms:
        own = {k: v for k, v in changes.items() if k in _TERM_FIELDS}
        for name in ("subscription_at", "ending_at"):
            if isinstance(own.get(name), datetime):
                own[name] = utc(own[name])
        if own.get("on_termination_invoice") is None:
            own.pop("on_termination_invoice", None)
        return replace(self, **own)

    def check(self) -> None:
        problems = Problems()
        problems.check(bool(self.external_id.strip()), "external_id", "value_is_mandatory")
        problems.check(self.billing_time in BILLING_TIMES, "billing_time", "value_is_invalid")
        if self.ending_at is not None:
            problems.check(self.ending_at > self.subscription_at, "ending_at", "invalid_date")
        if self.on_termination_credit_note is not None:
            problems.check(self.on_termination_credit_note in CREDIT_NOTE_POLICIES, "on_termination_credit_note", "value_is_invalid")
        problems.check(self.on_termination_invoice in INVOICE_POLICIES, "on_termination_invoice", "value_is_invalid")
        problems.raise_if_any()


_TERM_FIELDS = frozenset(SubscriptionTerms.__dataclass_fields__) - {"external_id"}


def utc(moment: datetime) -> datetime:
    """Lago reads a time without offset as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def billing_period(
    *,
    interval: str,
    billing_time: str,
    subscription_at: datetime,
    started_at: datetime,
    timezone: str,
    at: datetime,
) -> Period:
    """The billing period containing ``at``, never starting before the subscription's start day.

    Anniversary periods follow the day of ``subscription_at`` (kept across plan changes);
    calendar ones the calendar, the first clamped to the start day (semantics P2).
    """
    anchor = started_at if billing_time == "calendar" else min(subscription_at, started_at)
    period = period_containing(max(at, started_at), interval=interval, billing_time=billing_time,
                               anchor=anchor, timezone=timezone)
    floor = first_period(interval=interval, billing_time="calendar", anchor=started_at, timezone=timezone).starts_at
    return Period(max(period.starts_at, floor), period.ends_at)


class Subscription(Aggregate):
    """One customer on one plan, from its start to its termination or cancellation."""

    @event("Created")
    def __init__(
        self,
        organization_id: UUID,
        customer_id: UUID,
        plan_id: UUID,
        terms: SubscriptionTerms,
        status: str,
        starts_at: datetime,
        trial_anchor_at: datetime,
        previous_id: UUID | None,
    ) -> None:
        self.organization_id = organization_id
        self.customer_id = customer_id
        self.plan_id = plan_id
        self.terms = terms
        self.status = status
        self.starts_at = starts_at
        self.started_at = starts_at if status == ACTIVE else None
        self.trial_anchor_at = trial_anchor_at
        self.previous_id = previous_id
        self.next_id: UUID | None = None
        self.terminated_at: datetime | None = None
        self.canceled_at: datetime | None = None
        self.termination_reason: str | None = None
        self.keys = [terms.external_id]
        self.created_at: datetime | None = None
        self.billed_until: datetime | None = None  # the last boundary whose period is invoiced
        self.next_close_at: datetime | None = None  # the next boundary to invoice, once scheduled
        self.start_billed = False  # its start was considered for an in-advance invoice
        self.start_invoice_id: UUID | None = None
        self.final_invoice_id: UUID | None = None
        self.final_billed = False  # its termination was invoiced (or skipped by its policy)
        self.early_bills: tuple[EarlyBill, ...] = ()  # usage invoiced before its period closed (invoice_now)

    @classmethod
    def open(
        cls,
        *,
        organization_id: UUID,
        customer_id: UUID,
        plan_id: UUID,
        terms: SubscriptionTerms,
        now: datetime,
        starts_at: datetime | None = None,
        trial_anchor_at: datetime | None = None,
        previous_id: UUID | None = None,
    ) -> Subscription:
        """Start at ``starts_at`` (default: terms.subscription_at); in the future it is pending."""
        terms.check()
        start = starts_at or terms.subscription_at
        active = start <= now
        subscription = cls(
            organization_id=organization_id,
            customer_id=customer_id,
            plan_id=plan_id,
            terms=terms,
            status=ACTIVE if active else PENDING,
            starts_at=start,
            trial_anchor_at=trial_anchor_at or start,
            previous_id=previous_id,
        )
        subscription._dated(created_at=now)
        return subscription

    @event("Dated")
    def _dated(self, created_at: datetime) -> None:
        """When the service accepted it, by its own clock: what "back-dated" is measured against (P3)."""
        self.created_at = created_at

    @property
    def external_id(self) -> str:
        return self.terms.external_id

    @property
    def is_live(self) -> bool:
        """Active or pending: it still holds its external id."""
        return self.status in (ACTIVE, PENDING)

    def change_terms(self, terms: SubscriptionTerms) -> None:
        if not self.is_live:
            raise SubscriptionNotActive(f"subscription {self.id} is {self.status}")
        if terms.subscription_at != self.terms.subscription_at and self.status != PENDING:
            raise ValidationFailed({"subscription_at": ["value_is_invalid"]})
        terms.check()
        if terms != self.terms:
            self._terms_changed(terms=terms)

    @event("TermsChanged")
    def _terms_changed(self, terms: SubscriptionTerms) -> None:
        self.terms = terms
        if terms.external_id not in self.keys:
            self.keys.append(terms.external_id)

    def activate(self) -> None:
        """Start at the planned instant, however late the scheduler gets to it."""
        if self.status == PENDING:
            self._activated(started_at=self.starts_at)

    @event("Activated")
    def _activated(self, started_at: datetime) -> None:
        self.status = ACTIVE
        self.started_at = started_at

    def terminate(self, at: datetime, reason: str) -> None:
        """End an active subscription at ``at``; a pending one is canceled instead."""
        if self.status == PENDING:
            self.cancel(at, reason)
        elif self.status == ACTIVE:
            self._terminated(terminated_at=max(at, self.started_at or at), reason=reason)

    @event("Terminated")
    def _terminated(self, terminated_at: datetime, reason: str) -> None:
        self.status = TERMINATED
        self.terminated_at = terminated_at
        self.termination_reason = reason
        self.next_id = None

    def cancel(self, at: datetime, reason: str) -> None:
        if self.status == PENDING:
            self._canceled(canceled_at=at, reason=reason)

    @event("Canceled")
    def _canceled(self, canceled_at: datetime, reason: str) -> None:
        self.status = CANCELED
        self.canceled_at = canceled_at
        self.termination_reason = reason

    def schedule_next(self, next_id: UUID) -> None:
        """A downgrade: ``next_id`` takes over at the end of the current period."""
        if self.status != ACTIVE:
            raise SubscriptionNotActive(f"subscription {self.id} is {self.status}")
        if self.next_id != next_id:
            self._next_scheduled(next_id=next_id)

    @event("NextScheduled")
    def _next_scheduled(self, next_id: UUID) -> None:
        self.next_id = next_id

    @property
    def upgraded(self) -> bool:
        return self.termination_reason == "upgraded"

    def schedule_billing(self, next_close_at: datetime) -> None:
        """Note the first boundary to invoice, for the scheduler to find."""
        if self.next_close_at != next_close_at:
            self._billing_scheduled(next_close_at=next_close_at)

    @event("BillingScheduled")
    def _billing_scheduled(self, next_close_at: datetime) -> None:
        self.next_close_at = next_close_at

    def close_period(self, boundary: datetime, invoice_id: UUID, next_close_at: datetime) -> bool:
        """Record that the period ending at ``boundary`` is invoiced; False if it already was."""
        if self.billed_until is not None and boundary <= self.billed_until:
            return False
        self._period_closed(boundary=boundary, invoice_id=invoice_id, next_close_at=next_close_at)
        return True

    @event("PeriodClosed")
    def _period_closed(self, boundary: datetime, invoice_id: UUID, next_close_at: datetime) -> None:
        self.billed_until = boundary
        self.next_close_at = next_close_at

    def record_start_invoice(self, invoice_id: UUID | None) -> bool:
        """Record the start's invoice, or that the start owes none (arrears plan, trial, back-dated)."""
        if self.start_billed:
            return False
        self._start_invoiced(invoice_id=invoice_id)
        return True

    @event("StartInvoiced")
    def _start_invoiced(self, invoice_id: UUID | None) -> None:
        self.start_billed = True
        self.start_invoice_id = invoice_id

    def record_final_invoice(self, invoice_id: UUID | None) -> bool:
        """Record the termination's invoice, or None when its policy skips it."""
        if self.final_billed or self.terminated_at is None:
            return False
        self._final_invoiced(invoice_id=invoice_id)
        return True

    @event("FinalInvoiced")
    def _final_invoiced(self, invoice_id: UUID | None) -> None:
        self.final_invoice_id = invoice_id
        self.final_billed = True
        self.billed_until = self.terminated_at

    def record_early_bill(self, bill: EarlyBill) -> None:
        """Usage invoiced now, before its period ends; the period's close bills the rest, net of it."""
        self._billed_early(bill=bill)

    @event("BilledEarly")
    def _billed_early(self, bill: EarlyBill) -> None:
        self.early_bills = (*self.early_bills, bill)
