"""What a subscription owes at its start, at each boundary and at termination (semantics P3–P7, C8), in memory."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.charge import Charge
from domain.fee import AppliedTax
from domain.invoice import tax_lines, totals
from domain.period_close import (
    PricedBucket,
    SubscriptionFacts,
    TaxTable,
    at_boundary,
    at_now,
    at_start,
    at_termination,
    start_due_at,
)
from domain.periods import periods
from domain.plan import MinimumCommitment, PlanDefinition
from domain.usage import NO_FILTER

INVOICE = uuid4()
METRIC = uuid4()
NO_TAXES = TaxTable({}, (), ())


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _plan(amount_cents: int = 3000, *, in_advance: bool, trial_days: int = 0, **extra: Any) -> PlanDefinition:
    return PlanDefinition(name="Base", code="base", interval="monthly", amount_cents=amount_cents, amount_currency="USD",
                          pay_in_advance=in_advance, trial_period=Decimal(trial_days), **extra)


def _facts(plan: PlanDefinition, started: str, *, created: str | None = None, **extra: Any) -> SubscriptionFacts:
    start = _at(started)
    return SubscriptionFacts(
        id=uuid4(), external_id="sub", customer_id=uuid4(), plan_id=uuid4(), plan=plan, billing_time="calendar",
        subscription_at=start, started_at=start, created_at=_at(created) if created else start, trial_anchor_at=start,
        timezone="UTC", **extra,
    )


def _charge(min_amount_cents: int = 0) -> Charge:
    return Charge(id=uuid4(), code="calls", billable_metric_id=METRIC, charge_model="standard",
                  created_at=_at("2024-01-01T00:00:00"), min_amount_cents=min_amount_cents)


def _usage(charge: Charge, amount_cents: int, units: str = "1") -> PricedBucket:
    return PricedBucket(charge=charge, metric_id=METRIC, metric_code="calls", metric_name="Calls", filter_id=NO_FILTER,
                        filter_display_name=None, group=(), units=Decimal(units), events_count=int(Decimal(units)),
                        amount_cents=amount_cents, precise_amount_cents=Decimal(amount_cents))


def _amounts(due: Any) -> list[tuple[str, int]]:
    return [(fee.fee_type, fee.amount_cents) for fee in due.fees]


def test_p4_an_in_advance_plan_started_mid_march_bills_sixteen_days_at_once_then_full_april() -> None:
    facts = _facts(_plan(in_advance=True), "2024-03-16T10:00:00")

    start = at_start(facts, INVOICE, NO_TAXES)
    april = at_boundary(facts, INVOICE, _at("2024-04-01T00:00:00"), [], NO_TAXES)

    assert start is not None and start.reason == "subscription_starting"
    assert _amounts(start) == [("subscription", 1548)]
    assert _amounts(april) == [("subscription", 3000)]
    assert april.billing_period.subscription_from_at == _at("2024-04-01T00:00:00")
    assert april.billing_period.charges_from_at == _at("2024-03-16T00:00:00")


def test_p4_an_arrears_plan_terminated_on_april_tenth_bills_ten_days() -> None:
    facts = _facts(_plan(in_advance=False), "2024-01-01T00:00:00", terminated_at=_at("2024-04-10T15:00:00"))

    due = at_termination(facts, INVOICE, [], NO_TAXES)

    assert due.reason == "subscription_terminating"
    assert _amounts(due) == [("subscription", 1000)]


def test_p3_a_back_dated_in_advance_subscription_is_not_invoiced_at_start_but_fully_at_the_next_boundary() -> None:
    charge = _charge()
    facts = _facts(_plan(in_advance=True, charges=(charge,)), "2024-03-16T00:00:00", created="2024-03-25T12:00:00")

    assert at_start(facts, INVOICE, NO_TAXES) is None
    due = at_boundary(facts, INVOICE, _at("2024-04-01T00:00:00"), [_usage(charge, 250, "5")], NO_TAXES)

    assert _amounts(due) == [("subscription", 3000), ("charge", 250)]


def test_p4_a_back_dated_arrears_subscription_is_prorated_from_its_start_day() -> None:
    facts = _facts(_plan(in_advance=False), "2024-03-16T00:00:00", created="2024-03-25T12:00:00")

    due = at_boundary(facts, INVOICE, _at("2024-04-01T00:00:00"), [], NO_TAXES)

    assert _amounts(due) == [("subscription", 1548)]


def test_p6_the_upgraded_plan_bills_from_the_upgrade_day() -> None:
    """A $30 → B $60 on Apr 11 (in advance): B is invoiced 20 × 6000 / 30 = 4000 at once."""
    new_plan = _facts(_plan(6000, in_advance=True), "2024-04-11T09:00:00")

    due = at_start(new_plan, INVOICE, NO_TAXES)

    assert due is not None and _amounts(due) == [("subscription", 4000)]


def test_p6_an_arrears_plan_upgraded_mid_month_bills_up_to_the_day_before() -> None:
    old = _facts(_plan(in_advance=False), "2024-01-01T00:00:00", terminated_at=_at("2024-04-11T09:00:00"), upgraded=True)

    assert _amounts(at_termination(old, INVOICE, [], NO_TAXES)) == [("subscription", 1000)]


def test_p7_a_trial_ending_on_march_thirtieth_bills_two_days() -> None:
    facts = _facts(_plan(in_advance=False, trial_days=14), "2024-03-16T00:00:00")

    due = at_boundary(facts, INVOICE, _at("2024-04-01T00:00:00"), [], NO_TAXES)

    assert _amounts(due) == [("subscription", 194)]
    assert due.fees[0].trial


def test_p7_an_in_advance_plan_in_trial_is_invoiced_at_the_trials_end_from_that_day() -> None:
    """In advance from Mar 16 with 14 trial days: nothing at start; on Mar 30, 2 days × 3000 / 31 = 194. A trial
    longer than the first period leaves it unbilled: the next boundary bills from the trial's end."""
    facts = _facts(_plan(in_advance=True, trial_days=14), "2024-03-16T00:00:00")
    long_trial = _facts(_plan(in_advance=True, trial_days=45), "2024-03-16T00:00:00")

    due = at_start(facts, INVOICE, NO_TAXES)
    april = at_boundary(long_trial, INVOICE, _at("2024-04-01T00:00:00"), [], NO_TAXES)

    assert start_due_at(facts) == _at("2024-03-30T00:00:00")
    assert due is not None and _amounts(due) == [("subscription", 194)]
    assert start_due_at(long_trial) is None
    assert _amounts(april) == [("subscription", 100)]  # Apr 30 only: 1 × 3000 / 30


def test_a_downgrade_taking_over_at_the_boundary_stops_the_old_in_advance_fee() -> None:
    facts = _facts(_plan(in_advance=True), "2024-01-01T00:00:00", has_successor_at_boundary=True)

    assert _amounts(at_boundary(facts, INVOICE, _at("2024-04-01T00:00:00"), [], NO_TAXES)) == []


def test_c8_a_charge_minimum_adds_a_true_up() -> None:
    """Minimum 1000, usage 340 → true-up 660; terminated after 15 of 30 days → minimum 500 → true-up 160."""
    charge = _charge(min_amount_cents=1000)
    plan = _plan(0, in_advance=False, charges=(charge,))
    full = _facts(plan, "2024-01-01T00:00:00")
    cut = replace(full, terminated_at=_at("2024-04-15T12:00:00"))

    periodic = at_boundary(full, INVOICE, _at("2024-05-01T00:00:00"), [_usage(charge, 340)], NO_TAXES)
    final = at_termination(cut, INVOICE, [_usage(charge, 340)], NO_TAXES)

    assert [f.amount_cents for f in periodic.fees if f.fee_type == "charge"] == [340, 660]
    assert [f.amount_cents for f in final.fees if f.fee_type == "charge"] == [340, 160]


def test_p8_a_minimum_commitment_trues_up_the_plan_period_prorated_when_cut_short() -> None:
    """$10 a month in arrears, committed to $50: usage 1200 → true-up 5000 − 1000 − 1200 = 2800. Terminated after
    15 of 30 days: commitment 2500, fee 500, usage 300 → 1700."""
    charge = _charge()
    plan = replace(_plan(1000, in_advance=False, charges=(charge,)),
                   minimum_commitment=MinimumCommitment(id=uuid4(), amount_cents=5000, created_at=_at("2024-01-01T00:00:00")))
    full = _facts(plan, "2024-01-01T00:00:00")
    cut = replace(full, terminated_at=_at("2024-04-15T12:00:00"))

    periodic = at_boundary(full, INVOICE, _at("2024-05-01T00:00:00"), [_usage(charge, 1200)], NO_TAXES)
    final = at_termination(cut, INVOICE, [_usage(charge, 300)], NO_TAXES)
    covered = at_boundary(full, INVOICE, _at("2024-05-01T00:00:00"), [_usage(charge, 4000)], NO_TAXES)

    assert _amounts(periodic) == [("subscription", 1000), ("charge", 1200), ("commitment", 2800)]
    assert _amounts(final) == [("subscription", 500), ("charge", 300), ("commitment", 1700)]
    assert [t for t, _ in _amounts(covered)] == ["subscription", "charge"]


def test_p8_an_in_advance_plan_counts_the_fee_it_paid_for_the_period_that_ended() -> None:
    """$30 in advance, committed to $40: April's 3000 was billed on Apr 1; April's usage 200 → May 1 trues up 800."""
    charge = _charge()
    plan = replace(_plan(3000, in_advance=True, charges=(charge,)),
                   minimum_commitment=MinimumCommitment(id=uuid4(), amount_cents=4000, created_at=_at("2024-01-01T00:00:00")))

    due = at_boundary(_facts(plan, "2024-01-01T00:00:00"), INVOICE, _at("2024-05-01T00:00:00"), [_usage(charge, 200)],
                      NO_TAXES)

    assert _amounts(due) == [("subscription", 3000), ("charge", 200), ("commitment", 800)]


def _graduated(units: int) -> int:
    """A graduated price in cents: the first 10 units free, then 5 cents each up to 100, then 2 cents each."""
    return max(min(units, 100) - 10, 0) * 5 + max(units - 100, 0) * 2


def test_invoice_now_bills_usage_so_far_and_the_close_bills_the_rest_net_of_it() -> None:
    """Graduated pricing: 40 units invoiced on Apr 10 (150), 130 in all by the close (510): the close's fee is the
    period's 510 with a progressive-billing credit of 150 (I4 step 2); the subscription fee and the true-up (to
    the 600 minimum) stay with the close."""
    charge = _charge(min_amount_cents=600)
    facts = _facts(_plan(3000, in_advance=False, charges=(charge,)), "2024-01-01T00:00:00")

    early, bill = at_now(facts, uuid4(), _at("2024-04-10T12:00:00"), [_usage(charge, _graduated(40), "40")], NO_TAXES)
    closed = at_boundary(replace(facts, early_bills=(bill,)), INVOICE, _at("2024-05-01T00:00:00"),
                         [_usage(charge, _graduated(130), "130")], NO_TAXES)

    assert _amounts(early) == [("charge", 150)]
    assert early.billing_period.charges_to_at == _at("2024-04-10T12:00:00")
    assert _amounts(closed) == [("subscription", 3000), ("charge", 510), ("charge", 90)]
    assert (closed.fees[1].units, closed.fees[1].progressive_credit_cents) == (Decimal(130), 150)
    assert totals(closed.fees).sub_total_excluding_taxes_amount_cents == 3000 + 360 + 90


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 80), min_size=1, max_size=5), st.integers(0, 80))
def test_early_invoices_and_the_close_add_up_to_the_period_price(steps: list[int], rest: int) -> None:
    """However often usage is invoiced early, the period's charge fees add up to the price of all its usage."""
    charge = _charge()
    facts = _facts(_plan(0, in_advance=False, charges=(charge,)), "2024-01-01T00:00:00")
    billed, total = 0, 0
    for day, step in enumerate(steps, start=2):
        total += step
        due, bill = at_now(facts, uuid4(), _at(f"2024-04-{day:02d}T00:00:00"), [_usage(charge, _graduated(total), str(total))],
                           NO_TAXES)
        facts = replace(facts, early_bills=(*facts.early_bills, bill))
        billed += sum(f.amount_cents for f in due.fees)
    total += rest
    closed = at_boundary(facts, INVOICE, _at("2024-05-01T00:00:00"), [_usage(charge, _graduated(total), str(total))],
                         NO_TAXES)

    assert billed + sum(f.amount_cents - f.progressive_credit_cents for f in closed.fees) == _graduated(total)


def test_fees_with_no_units_amount_or_events_are_dropped_from_invoices() -> None:
    charge = _charge()
    facts = _facts(_plan(0, in_advance=False, charges=(charge,)), "2024-01-01T00:00:00")

    due = at_boundary(facts, INVOICE, _at("2024-05-01T00:00:00"), [_usage(charge, 0, "0")], NO_TAXES)

    assert [f.fee_type for f in due.fees if not f.is_empty] == ["subscription"]


def test_a_boundary_must_be_one_of_the_subscription() -> None:
    facts = _facts(_plan(in_advance=False), "2024-01-01T00:00:00")

    with pytest.raises(ValueError, match="not a billing boundary"):
        at_boundary(facts, INVOICE, _at("2024-04-15T00:00:00"), [], NO_TAXES)


def _tax(code: str, rate: str) -> AppliedTax:
    return AppliedTax(tax_id=UUID(int=len(code) + int(Decimal(rate) * 100)), code=code, name=code, rate=Decimal(rate))


def test_m2_fee_taxes_follow_charge_then_plan_then_customer_then_organization() -> None:
    charge = replace(_charge(), tax_codes=("chg",))
    plain = _charge()
    table = TaxTable({"chg": _tax("chg", "5"), "pln": _tax("pln", "7"), "cus": _tax("cus", "20")},
                     (_tax("org", "10"),), ("cus",))
    plan = _plan(1000, in_advance=False, charges=(charge, plain), tax_codes=("pln",))
    facts = _facts(plan, "2024-01-01T00:00:00")

    due = at_boundary(facts, INVOICE, _at("2024-05-01T00:00:00"), [_usage(charge, 100), _usage(plain, 100)], table)

    assert [(f.fee_type, [t.code for t in f.taxes]) for f in due.fees] == [
        ("subscription", ["pln"]), ("charge", ["chg"]), ("charge", ["pln"])]
    without_plan_taxes = at_boundary(replace(facts, plan=replace(plan, tax_codes=())), INVOICE, _at("2024-05-01T00:00:00"),
                                     [_usage(plain, 100)], table)
    assert [t.code for t in without_plan_taxes.fees[-1].taxes] == ["cus"]


def test_m2_invoice_taxes_are_rounded_once_over_unrounded_fee_taxes() -> None:
    """Three fees of 5 cents at 10 %: each fee's tax rounds to 1 (0.5 half-up), the invoice's 1.5 rounds to 2."""
    charges = [_charge() for _ in range(3)]
    table = TaxTable({}, (_tax("vat", "10"),), ())
    facts = _facts(_plan(0, in_advance=False, charges=tuple(charges)), "2024-01-01T00:00:00")

    due = at_boundary(facts, INVOICE, _at("2024-05-01T00:00:00"), [_usage(c, 5) for c in charges], table)
    kept = [f for f in due.fees if f.fee_type == "charge"]

    assert [f.taxes_amount_cents for f in kept] == [1, 1, 1]
    assert totals(kept).taxes_amount_cents == 2
    assert [line.amount_cents for line in tax_lines(kept)] == [2]


@settings(max_examples=200, deadline=None)
@given(start=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)),
       amount=st.integers(min_value=0, max_value=10**7), in_advance=st.booleans(),
       interval=st.sampled_from(("weekly", "monthly", "quarterly", "yearly")))
def test_a_full_period_between_boundaries_bills_exactly_the_plan_amount(
    start: datetime, amount: int, in_advance: bool, interval: str
) -> None:
    plan = replace(_plan(amount, in_advance=in_advance), interval=interval)
    facts = _facts(plan, start.isoformat().replace("+00:00", ""))
    boundaries = [p.ends_at for p in periods(interval=interval, billing_time="calendar", anchor=facts.started_at,
                                             timezone="UTC", until=start + timedelta(days=800))][:3]

    fees = [at_boundary(facts, INVOICE, b, [], NO_TAXES).fees for b in boundaries[1:]]

    assert [[f.amount_cents for f in due] for due in fees] == [[amount]] * len(fees)
