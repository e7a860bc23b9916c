"""What a subscription owes at a billing boundary, at its start, and at its termination (semantics P3–P7, C8, I3).

Pure: the caller supplies the subscription's facts, its plan, its priced usage for the
charge period and the taxes in force, and gets fees back in Lago's order (subscription
fee, then charge fees, then true-ups). Prices of usage come from the pricing engine via
the usage read model; this module decides which fees are due and over which days.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid5

from domain.charge import Charge
from domain import money
from domain.fee import AppliedTax, Fee, choose_taxes
from domain.invoice import BillingPeriod
from domain.periods import Period, full_period_days, local_day_start
from domain.plan import PlanDefinition
from domain.subscription import BilledUsage, EarlyBill, billing_period
from domain.money import prorated_cents
from domain.subscription_fee import FeeWindow, billed_window
from domain.usage import NO_FILTER

_DAY_SECONDS = Decimal(86_400)


@dataclass(frozen=True)
class SubscriptionFacts:
    """A subscription as billing needs it, whatever read model it came from."""

    id: UUID
    external_id: str
    customer_id: UUID
    plan_id: UUID
    plan: PlanDefinition
    billing_time: str
    subscription_at: datetime
    started_at: datetime
    created_at: datetime
    trial_anchor_at: datetime
    timezone: str
    terminated_at: datetime | None = None
    upgraded: bool = False  # ended by an upgrade: its last day belongs to the new plan
    has_successor_at_boundary: bool = False  # a downgrade takes over at the boundary being closed
    organization_id: UUID | None = None
    early_bills: tuple[EarlyBill, ...] = ()  # usage invoiced before its period closed (invoice_now)

    def billed_early(self, period: Period) -> dict[tuple[UUID, UUID, tuple[tuple[str, str], ...]], BilledUsage]:
        """What early invoices billed of ``period``, summed per charge × filter × group."""
        found: dict[tuple[UUID, UUID, tuple[tuple[str, str], ...]], BilledUsage] = {}
        for bill in self.early_bills:
            if bill.period_starts_at != period.starts_at:
                continue
            for line in bill.lines:
                key = (line.charge_id, line.filter_id, line.group)
                seen = found.get(key)
                found[key] = line if seen is None else replace(
                    seen, units=seen.units + line.units, events_count=seen.events_count + line.events_count,
                    amount_cents=seen.amount_cents + line.amount_cents,
                    precise_amount_cents=seen.precise_amount_cents + line.precise_amount_cents)
        return found

    @property
    def back_dated(self) -> bool:
        """Started on an earlier local day than it was created: its start is not invoiced (P3)."""
        return local_day_start(self.started_at, self.timezone) < local_day_start(self.created_at, self.timezone)

    @property
    def trial_ends_at(self) -> datetime | None:
        days = self.plan.trial_period
        if days <= 0:
            return None
        return self.trial_anchor_at + timedelta(seconds=int(days * _DAY_SECONDS))

    @property
    def fee_anchor(self) -> datetime:
        return self.started_at if self.billing_time == "calendar" else min(self.subscription_at, self.started_at)

    @property
    def charges_interval(self) -> str:
        return self.plan.charges_interval


@dataclass(frozen=True)
class PricedBucket:
    """One charge × filter × group of usage, already priced (units, events, amount)."""

    charge: Charge
    metric_id: UUID
    metric_code: str
    metric_name: str
    filter_id: UUID
    filter_display_name: str | None
    group: tuple[tuple[str, str], ...]
    units: Decimal
    events_count: int
    amount_cents: int
    precise_amount_cents: Decimal
    details: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class TaxTable:
    """The taxes in force: by code, the organization's defaults, and the customer's own codes."""

    by_code: Mapping[str, AppliedTax]
    organization_defaults: tuple[AppliedTax, ...]
    customer_codes: tuple[str, ...]

    def for_codes(self, codes: Sequence[str]) -> tuple[AppliedTax, ...]:
        return tuple(self.by_code[c] for c in codes if c in self.by_code)

    def choose(self, own: Sequence[str], plan: Sequence[str]) -> tuple[AppliedTax, ...]:
        """Own (charge/add-on) → plan → customer → organization defaults (M2)."""
        return choose_taxes(self.for_codes(own), self.for_codes(plan), self.for_codes(self.customer_codes),
                            self.organization_defaults)


def fee_period(facts: SubscriptionFacts, at: datetime) -> tuple[Period, int]:
    """The plan-interval period containing ``at`` (first one clamped to the start day) and its full day count."""
    days = full_period_days(max(at, facts.started_at), interval=facts.plan.interval, billing_time=facts.billing_time,
                            anchor=facts.fee_anchor, timezone=facts.timezone)
    return _period(facts, facts.plan.interval, at), days


def charges_period(facts: SubscriptionFacts, at: datetime) -> Period:
    """The charge period containing ``at`` (monthly for yearly/semiannual plans billing charges monthly)."""
    return _period(facts, facts.charges_interval, at)


def _period(facts: SubscriptionFacts, interval: str, at: datetime) -> Period:
    return billing_period(interval=interval, billing_time=facts.billing_time, subscription_at=facts.subscription_at,
                          started_at=facts.started_at, timezone=facts.timezone, at=at)


def subscription_fee(facts: SubscriptionFacts, invoice_id: UUID, period: Period, days: int, taxes: TaxTable,
                     *, terminated_at: datetime | None = None) -> Fee | None:
    """The plan's fee over the days of ``period`` it is owed for (P4, P5, P7); None when no day is."""
    trial_ends_at = facts.trial_ends_at
    window = billed_window(period, period_days=days, timezone=facts.timezone, started_at=facts.started_at,
                           trial_ends_at=trial_ends_at, terminated_at=terminated_at, upgraded=facts.upgraded)
    if window is None:
        return None
    return _subscription_fee(facts, invoice_id, window, taxes,
                             trial=trial_ends_at is not None and trial_ends_at > period.starts_at)


def _subscription_fee(facts: SubscriptionFacts, invoice_id: UUID, window: FeeWindow, taxes: TaxTable, *, trial: bool) -> Fee:
    plan = facts.plan
    amount = prorated_cents(plan.amount_cents or 0, window.days, window.period_days)
    return Fee(
        id=uuid5(invoice_id, f"subscription/{facts.id}/{window.starts_at.isoformat()}"),
        fee_type="subscription", item_id=facts.plan_id, item_code=plan.code, item_name=plan.name,
        invoice_display_name=plan.invoice_display_name, amount_cents=amount,
        precise_amount_cents=money.prorated_precise(plan.amount_cents or 0, window.days, window.period_days),
        units=Decimal(1), unit_amount_cents=amount, precise_unit_amount=Decimal(amount),
        currency=plan.amount_currency, from_at=window.starts_at, to_at=window.ends_at, subscription_id=facts.id,
        pay_in_advance=bool(plan.pay_in_advance), taxes=taxes.choose((), plan.tax_codes),
        days=window.days, period_days=window.period_days, trial=trial,
    )


def charge_fees(facts: SubscriptionFacts, invoice_id: UUID, period: Period, buckets: Sequence[PricedBucket],
                taxes: TaxTable, *, ends_at: datetime | None = None, true_ups: bool = True, net: bool = False) -> list[Fee]:
    """Usage fees of the charge period, one per charge × filter × group, then per-charge true-ups (I3, C8).

    What early invoices already billed of the period is either taken off each fee (``net``: the next early
    invoice bills only what is new) or, at the period's close, shown as the fee's progressive-billing credit
    (I4 step 2): the fee is the whole period's, the credit what was billed before. The true-up compares the
    whole period's usage with the minimum.
    Pay-in-advance charges are billed as their events arrive, not here (C10)."""
    plan = facts.plan
    early = facts.billed_early(period)
    fees: list[Fee] = []
    minimums: list[Fee] = []
    by_charge: dict[UUID, list[PricedBucket]] = {}
    for bucket in buckets:
        if bucket.charge.pay_in_advance or not bucket.charge.invoiceable:
            continue
        by_charge.setdefault(bucket.charge.id, []).append(bucket)
    upto = min(ends_at or period.ends_at, period.ends_at)
    for charge in plan.charges:
        charged = by_charge.get(charge.id, [])
        for bucket in charged:
            group = "&".join(f"{k}={v}" for k, v in bucket.group)
            unit = money.unit_price(bucket.precise_amount_cents, bucket.units)
            billed = early.get((charge.id, bucket.filter_id, bucket.group))
            credit = 0
            if billed is not None and net:
                bucket = _net_of(bucket, billed)
            elif billed is not None:
                credit = min(billed.amount_cents, bucket.amount_cents)
            fees.append(Fee(
                id=uuid5(invoice_id, f"charge/{charge.id}/{bucket.filter_id}/{group}"),
                fee_type="charge", item_id=bucket.metric_id, item_code=bucket.metric_code, item_name=bucket.metric_name,
                invoice_display_name=charge.invoice_display_name, filter_display_name=bucket.filter_display_name,
                amount_cents=bucket.amount_cents, precise_amount_cents=bucket.precise_amount_cents, units=bucket.units,
                events_count=bucket.events_count, precise_unit_amount=unit,
                unit_amount_cents=money.unit_cents(bucket.precise_amount_cents, bucket.units),
                currency=plan.amount_currency, from_at=period.starts_at, to_at=upto, subscription_id=facts.id,
                charge_id=charge.id, charge_filter_id=None if bucket.filter_id == NO_FILTER else bucket.filter_id,
                grouped_by=bucket.group, taxes=taxes.choose(charge.tax_codes, plan.tax_codes),
                amount_details=bucket.details, progressive_credit_cents=credit,
                usage=(("units", str(bucket.units)), ("events_count", str(bucket.events_count))),
            ))
        true_up = _true_up(facts, invoice_id, charge, period, upto, sum(b.amount_cents for b in charged), taxes)
        if true_up is not None and true_ups:
            minimums.append(true_up)
    return fees + minimums


def _net_of(bucket: PricedBucket, billed: BilledUsage) -> PricedBucket:
    """The bucket less what an early invoice billed of it; never below zero (usage that shrank is not refunded)."""
    return replace(
        bucket, units=max(bucket.units - billed.units, Decimal(0)),
        events_count=max(bucket.events_count - billed.events_count, 0),
        amount_cents=max(bucket.amount_cents - billed.amount_cents, 0),
        precise_amount_cents=max(bucket.precise_amount_cents - billed.precise_amount_cents, Decimal(0)),
    )


def _true_up(facts: SubscriptionFacts, invoice_id: UUID, charge: Charge, period: Period, upto: datetime,
             charged_cents: int, taxes: TaxTable) -> Fee | None:
    """C8: the difference up to the charge's minimum, prorated by days when the period is cut short."""
    if charge.min_amount_cents <= 0:
        return None
    minimum = charge.min_amount_cents
    if upto < period.ends_at:
        full = (local_day_start(period.ends_at, facts.timezone) - local_day_start(period.starts_at, facts.timezone)).days
        used = (local_day_start(upto, facts.timezone, days_later=1) - local_day_start(period.starts_at, facts.timezone)).days
        minimum = prorated_cents(minimum, min(used, full), max(full, 1))
    if charged_cents >= minimum:
        return None
    difference = minimum - charged_cents
    return Fee(
        id=uuid5(invoice_id, f"true_up/{charge.id}"),
        fee_type="charge", item_id=charge.billable_metric_id, item_code=charge.code, item_name=charge.code,
        invoice_display_name=charge.invoice_display_name, amount_cents=difference,
        precise_amount_cents=Decimal(difference), units=Decimal(1), unit_amount_cents=difference,
        precise_unit_amount=Decimal(difference), currency=facts.plan.amount_currency, from_at=period.starts_at,
        to_at=upto, subscription_id=facts.id, charge_id=charge.id,
        taxes=taxes.choose(charge.tax_codes, facts.plan.tax_codes), description="true_up",
    )


_INSTANT = timedelta(microseconds=1)


@dataclass(frozen=True)
class Due:
    """The fees of one invoice for one subscription, and the periods they cover."""

    reason: str
    fees: tuple[Fee, ...]
    billing_period: BillingPeriod


def at_boundary(facts: SubscriptionFacts, invoice_id: UUID, boundary: datetime, buckets: Sequence[PricedBucket],
                taxes: TaxTable) -> Due:
    """Closing the charge period that ends at ``boundary``: the arrears fee of a fee period ending there, the
    in-advance fee of one starting there (unless the subscription ends or is replaced there), and the usage."""
    ended = charges_period(facts, boundary - _INSTANT)
    if ended.ends_at != boundary:
        raise ValueError(f"{boundary.isoformat()} is not a billing boundary of subscription {facts.id}")
    fees: list[Fee] = []
    fee_window: Period | None = None
    if facts.plan.pay_in_advance:
        continues = (facts.terminated_at is None or facts.terminated_at > boundary) and not facts.has_successor_at_boundary
        following, days = fee_period(facts, boundary)
        if continues and following.starts_at == boundary:
            fee = subscription_fee(facts, invoice_id, following, days, taxes)
            fee_window = following
            if fee is not None:
                fees.append(fee)
    else:
        closing, days = fee_period(facts, boundary - _INSTANT)
        if closing.ends_at == boundary:
            fee = subscription_fee(facts, invoice_id, closing, days, taxes)
            fee_window = closing
            if fee is not None:
                fees.append(fee)
    fees.extend(charge_fees(facts, invoice_id, ended, buckets, taxes))
    ended_fee_period, days = fee_period(facts, boundary - _INSTANT)
    if ended_fee_period.ends_at == boundary:
        true_up = commitment_true_up(facts, invoice_id, ended_fee_period, days, fees, taxes)
        if true_up is not None:
            fees.append(true_up)
    return Due("subscription_periodic", tuple(fees), _billing_period(facts, "subscription_periodic", fee_window, ended))


def commitment_true_up(facts: SubscriptionFacts, invoice_id: UUID, period: Period, days: int, fees: Sequence[Fee],
                       taxes: TaxTable, *, terminated_at: datetime | None = None) -> Fee | None:
    """P8: what the plan period's subscription fee and usage fees fall short of its minimum commitment, prorated by
    the days the subscription had in it outside its trial. The subscription fee counted is the period's, wherever it was invoiced
    (in advance: on an earlier invoice). Plans billing charges more often than their interval are not trued up here:
    their period's earlier usage fees are on other invoices."""
    commitment = facts.plan.minimum_commitment
    if commitment is None or facts.charges_interval != facts.plan.interval:
        return None
    window = billed_window(period, period_days=days, timezone=facts.timezone, started_at=facts.started_at,
                           trial_ends_at=facts.trial_ends_at, terminated_at=terminated_at, upgraded=facts.upgraded)
    if window is None:
        return None  # the whole period in trial (or none of it lived): nothing committed
    minimum = prorated_cents(commitment.amount_cents, window.days, window.period_days)
    plan_fee = subscription_fee(facts, invoice_id, period, days, taxes, terminated_at=terminated_at)
    billed = (plan_fee.amount_cents if plan_fee is not None else 0) + sum(
        f.amount_cents for f in fees if f.fee_type == "charge")
    if billed >= minimum:
        return None
    difference = minimum - billed
    return Fee(
        id=uuid5(invoice_id, f"commitment/{period.starts_at.isoformat()}"), fee_type="commitment",
        item_id=commitment.id, item_code=facts.plan.code,
        item_name=commitment.invoice_display_name or "Minimum commitment true-up",
        invoice_display_name=commitment.invoice_display_name, amount_cents=difference,
        precise_amount_cents=Decimal(difference), units=Decimal(1), unit_amount_cents=difference,
        precise_unit_amount=Decimal(difference), currency=facts.plan.amount_currency, from_at=window.starts_at,
        to_at=window.ends_at, subscription_id=facts.id, taxes=taxes.choose(commitment.tax_codes, facts.plan.tax_codes),
        description="minimum_commitment_true_up",
    )


def start_due_at(facts: SubscriptionFacts) -> datetime | None:
    """When an in-advance plan's first period is invoiced: at its start, or at the end of a trial that ends inside
    that period (the fee from the trial's end, P7); None when a trial covers the whole first period (the next
    boundary bills the next period, from the trial's end)."""
    trial_ends_at = facts.trial_ends_at
    if trial_ends_at is None or trial_ends_at <= facts.started_at:
        return facts.started_at
    first, _ = fee_period(facts, facts.started_at)
    return trial_ends_at if trial_ends_at < first.ends_at else None


def at_start(facts: SubscriptionFacts, invoice_id: UUID, taxes: TaxTable) -> Due | None:
    """An in-advance plan started today (not back-dated) bills its first period at once, from its trial's end if
    it has one (P3, P4, P7); the caller calls at ``start_due_at``."""
    if not facts.plan.pay_in_advance or facts.back_dated:
        return None
    first, days = fee_period(facts, facts.started_at)
    fee = subscription_fee(facts, invoice_id, first, days, taxes)
    if fee is None:
        return None
    return Due("subscription_starting", (fee,), _billing_period(facts, "subscription_starting", first, None))


def at_termination(facts: SubscriptionFacts, invoice_id: UUID, buckets: Sequence[PricedBucket], taxes: TaxTable) -> Due:
    """The final invoice (P5): the arrears fee up to the termination day and the usage of the cut period.
    In-advance plans already paid for the period owe no fee; their unused days are credited (credit notes)."""
    ended_at = facts.terminated_at
    if ended_at is None:
        raise ValueError(f"subscription {facts.id} is not terminated")
    cut = charges_period(facts, max(ended_at - _INSTANT, facts.started_at))
    fees: list[Fee] = []
    fee_window: Period | None = None
    if not facts.plan.pay_in_advance:
        period, days = fee_period(facts, max(ended_at - _INSTANT, facts.started_at))
        fee = subscription_fee(facts, invoice_id, period, days, taxes, terminated_at=ended_at)
        fee_window = Period(period.starts_at, min(period.ends_at, ended_at))
        if fee is not None:
            fees.append(fee)
    fees.extend(charge_fees(facts, invoice_id, cut, buckets, taxes, ends_at=ended_at))
    period, days = fee_period(facts, max(ended_at - _INSTANT, facts.started_at))
    true_up = commitment_true_up(facts, invoice_id, period, days, fees, taxes, terminated_at=ended_at)
    if true_up is not None:
        fees.append(true_up)
    return Due("subscription_terminating", tuple(fees),
               _billing_period(facts, "subscription_terminating", fee_window, Period(cut.starts_at, min(cut.ends_at, ended_at))))


def at_now(facts: SubscriptionFacts, invoice_id: UUID, now: datetime, buckets: Sequence[PricedBucket],
           taxes: TaxTable) -> tuple[Due, EarlyBill]:
    """Usage of the open charge period up to ``now``, net of earlier early invoices (Tally's ``invoice_now``).
    No subscription fee and no true-up: those stay with the period's close."""
    period = charges_period(facts, now)
    fees = charge_fees(facts, invoice_id, period, buckets, taxes, ends_at=now, true_ups=False, net=True)
    lines = tuple(BilledUsage(
        charge_id=f.charge_id, filter_id=f.charge_filter_id or NO_FILTER, group=f.grouped_by, units=f.units,
        events_count=f.events_count, amount_cents=f.amount_cents, precise_amount_cents=f.precise_amount_cents,
    ) for f in fees if f.charge_id is not None)
    window = Period(period.starts_at, now)
    due = Due("progressive_billing", tuple(fees), _billing_period(facts, "progressive_billing", None, window))
    return due, EarlyBill(invoice_id=invoice_id, at=now, period_starts_at=period.starts_at, lines=lines)


def _billing_period(facts: SubscriptionFacts, reason: str, fees: Period | None, charges: Period | None) -> BillingPeriod:
    return BillingPeriod(
        subscription_id=facts.id, external_subscription_id=facts.external_id, plan_id=facts.plan_id,
        subscription_from_at=fees.starts_at if fees else None, subscription_to_at=fees.ends_at if fees else None,
        charges_from_at=charges.starts_at if charges else None, charges_to_at=charges.ends_at if charges else None,
        invoicing_reason=reason,
    )
