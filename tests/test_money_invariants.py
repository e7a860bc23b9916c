"""The money rules (ADR 0029): ``domain.money`` against the reference's worked examples, its functions' properties,
and, over the Billing application in memory, invoices whose figures add up whatever their fees, coupons, taxes,
credit notes and wallets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from domain import money
from domain.application import Billing
from domain.fee import AppliedTax
from domain.invoice import Invoice, tax_lines
from domain.period_close import PricedBucket, TaxTable
from domain.plan import Plan
from domain.usage import NO_FILTER

D = Decimal
START = datetime(2026, 4, 1, tzinfo=UTC)
BOUNDARY = datetime(2026, 5, 1, tzinfo=UTC)

cents = st.integers(min_value=0, max_value=10**9)
rates = st.decimals(min_value=0, max_value=40, places=3)
weights = st.dictionaries(st.integers(0, 20), st.decimals(min_value=0, max_value=10**6, places=4), min_size=1,
                          max_size=8)


# --- the reference's worked examples --------------------------------------------------------------------------

def test_m1_a_fee_is_rounded_half_up_once_to_the_currencys_minor_unit() -> None:
    """C7: 13.345 → 1335 cents; C1: 1,234 × 0.005 = 6.17 → 617; JPY has no decimals: 1500.5 → 1501."""
    assert money.to_cents(D("13.345"), 2) == 1_335
    assert money.to_cents(D(1_234) * D("0.005"), 2) == 617
    assert money.to_cents(D("1500.5"), money.minor_unit_exponent("JPY")) == 1_501
    assert money.round_half_up_cents(D("-2.5")) == -3  # half away from zero


def test_m2_taxes_are_computed_on_the_amount_after_coupons_and_rounded_once_over_the_invoice() -> None:
    """I4's example: 20 % on 4,950 → 990; two fees of half a cent of tax each → 1 cent on the invoice, not 2."""
    assert money.invoice_taxes_cents([money.taxes_precise(D(4_950), [D(20)])]) == 990
    assert money.invoice_taxes_cents([money.taxes_precise(D(5), [D(10)])] * 2) == 1


def test_m3_a_percentage_coupon_rounds_half_up_and_a_fixed_one_is_capped_at_the_base() -> None:
    """I4's example: 10 % of 5,500 → 550; 10 % of 8,505 → 850.5 → 851; a fixed 1,500 on 900 left → 900."""
    assert money.coupon_cents("percentage", D(5_500), percentage_rate=D(10)) == 550
    assert money.coupon_cents("percentage", D(8_505), percentage_rate=D(10)) == 851
    assert money.coupon_cents("fixed_amount", D(900), available_cents=1_500) == 900
    assert money.coupon_cents("fixed_amount", D("899.6"), available_cents=1_500) == 899


def test_p4_a_subscription_fee_is_prorated_by_days_and_rounded_once() -> None:
    """$30 from March 16 (31 days): 16 × 3000 / 31 = 1548.39 → 1548; ten April days → 1000."""
    assert money.prorated_cents(3_000, 16, 31) == 1_548
    assert money.prorated_cents(3_000, 10, 30) == 1_000
    assert money.prorated_cents(3_000, 31, 31) == 3_000


def test_wallet_credits_convert_half_up_and_show_floored_to_five_decimals() -> None:
    """0.125 credits at 1 USD are 12.5 cents → 13 (half-up, where the old conversion rounded half-even to 12)."""
    assert money.credits_to_cents(D("0.125"), D(1), 2) == 13
    assert money.credits_to_cents(D("0.135"), D(1), 2) == 14
    assert money.cents_to_credits(1_000, D(3), 2) == D("3.33333")


# --- properties of the functions ------------------------------------------------------------------------------

@given(st.integers(-10**15, 10**15), st.integers(-10**15, 10**15).filter(lambda d: d != 0))
def test_rounding_stays_within_half_a_minor_unit_and_never_raises_on_bounded_values(numerator: int,
                                                                                    denominator: int) -> None:
    """Any quotient of bounded amounts rounds to within half a unit, ties away from zero."""
    exact = D(numerator) / D(denominator)
    rounded = money.round_half_up_cents(exact)

    assert abs(D(rounded) - exact) <= D("0.5")
    assert money.floor_cents(exact) <= exact


@given(st.integers(-10**12, 10**12), weights)
def test_apportion_adds_up_exactly_and_keeps_each_part_within_one_unit_of_its_share(total: int,
                                                                                   shares: dict[int, Decimal]) -> None:
    """Largest remainder: the parts add up to the total, each is its exact share floored or ceiled."""
    parts = money.apportion(total, shares)

    assert sum(parts.values()) == total
    whole = sum(shares.values())
    if whole:
        for key, weight in shares.items():
            assert abs(D(parts[key]) - D(total) * weight / whole) < 1


@given(cents, st.dictionaries(st.integers(0, 9), cents, min_size=1, max_size=6), cents)
def test_a_credit_takes_at_most_its_balance_the_caps_and_what_is_owed(balance: int, caps: dict[int, int],
                                                                      owed: int) -> None:
    """What a wallet takes is bounded three ways, and no fee gives more than its cap."""
    amount, taken = money.consume(balance, caps, owed)

    assert amount == min(balance, sum(caps.values()), owed)
    assert sum(taken.values()) == amount
    assert all(0 <= taken[key] <= cap for key, cap in caps.items())


@given(cents, st.integers(0, 400), st.integers(1, 400))
def test_proration_is_monotonic_and_whole_at_a_whole_period(amount: int, days: int, period_days: int) -> None:
    prorated = money.prorated_cents(amount, min(days, period_days), period_days)

    assert 0 <= prorated <= amount
    assert abs(D(prorated) - D(amount) * min(days, period_days) / period_days) <= D("0.5")


@given(st.decimals(min_value=0, max_value=10**12, places=5), st.sampled_from(["percentage", "fixed_amount"]),
       rates, cents)
def test_a_coupon_never_takes_more_than_its_base(base: Decimal, kind: str, rate: Decimal, available: int) -> None:
    taken = money.coupon_cents(kind, base, percentage_rate=rate, available_cents=available)

    assert 0 <= taken <= base


# --- invoices over the Billing application --------------------------------------------------------------------

taxes_strategy = st.lists(rates, min_size=0, max_size=3)
coupons_strategy = st.lists(st.one_of(
    st.tuples(st.just("fixed_amount"), st.integers(1, 20_000)),
    st.tuples(st.just("percentage"), st.decimals(min_value=D("0.01"), max_value=100, places=2))), max_size=2)
usage_strategy = st.lists(st.tuples(st.integers(0, 50_000), st.integers(0, 999)), min_size=0, max_size=4)
add_ons_strategy = st.lists(st.tuples(st.integers(1, 5_000), st.decimals(min_value=D("0.1"), max_value=50, places=3)),
                            min_size=1, max_size=3)


class Books:
    """A Billing application in memory with one customer, a monthly arrears plan with one charge, and an add-on."""

    def __init__(self, tax_rates: list[Decimal], plan_cents: int) -> None:
        self.billing = Billing(env={"MAPPER_TOPIC": "interfaces.event_codec:MsgspecMapper"}, new_id=uuid4)
        self.org = self.billing.create_organization("Money").organization_id
        self.billing.upsert_customer(self.org, {"external_id": "cus", "name": "Ada", "currency": "USD"}, START)
        applied = tuple(AppliedTax(tax_id=UUID(int=n + 1), code=f"t{n}", name=f"T{n}", rate=rate)
                        for n, rate in enumerate(tax_rates))
        self.taxes = TaxTable({t.code: t for t in applied}, applied, ())
        metric = self.billing.create_billable_metric(self.org, {"name": "Calls", "code": "calls",
                                                                "aggregation_type": "count_agg"})
        plan_id = self.billing.create_plan(self.org, {
            "name": "Base", "code": "base", "interval": "monthly", "amount_cents": plan_cents, "amount_currency": "USD",
            "pay_in_advance": False, "charges": [{"billable_metric_id": str(metric), "charge_model": "standard",
                                                  "properties": {"amount": "1"}}]}, START)
        plan = self.billing.repository.get(plan_id)
        assert isinstance(plan, Plan)
        self.charge = plan.definition.charges[0]
        self.billing.create_add_on(self.org, {"name": "Setup", "code": "setup", "amount_cents": 100,
                                              "amount_currency": "USD"})

    def invoice(self, invoice_id: UUID) -> Invoice:
        return self.billing.invoice(self.org, invoice_id)

    def bucket(self, n: int, amount_cents: int, thousandths: int) -> PricedBucket:
        """A group of usage priced at ``amount_cents`` and a fraction of a cent."""
        precise = D(amount_cents) + D(thousandths) / 1000
        return PricedBucket(charge=self.charge, metric_id=self.charge.billable_metric_id, metric_code="calls",
                            metric_name="Calls", filter_id=NO_FILTER, filter_display_name=None,
                            group=(("n", str(n)),), units=D(1), events_count=1,
                            amount_cents=money.round_half_up_cents(precise), precise_amount_cents=precise)


def _assert_adds_up(invoice: Invoice) -> None:
    """Fee-level taxes add up to the invoice's, per fee and per tax line too; nothing is owed below zero."""
    figures = invoice.totals
    assert sum(f.taxes_amount_cents for f in invoice.fees) == figures.taxes_amount_cents
    assert all(sum(c for _, c in f.tax_amounts()) == f.taxes_amount_cents for f in invoice.fees)
    assert sum(line.amount_cents for line in tax_lines(invoice.fees)) == figures.taxes_amount_cents
    assert invoice.total_due_amount_cents >= 0
    assert figures.total_amount_cents >= 0


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(taxes_strategy, st.integers(0, 100_000), usage_strategy, add_ons_strategy, coupons_strategy,
       st.integers(0, 5_000), st.integers(0, 300_000))
def test_invoices_add_up_and_a_wallet_holding_the_total_leaves_nothing_due(
    tax_rates: list[Decimal], plan_cents: int, usage: list[tuple[int, int]], add_ons: list[tuple[int, Decimal]],
    coupons: list[tuple[str, object]], credit_cents: int, wallet_cents: int,
) -> None:
    """A one-off invoice of add-ons, a credit note giving part of it back as credit, coupons, a wallet, and the
    subscription's period invoice: each invoice's fee taxes add up to its tax, its total due is never negative,
    and a wallet holding at least what is owed after credit notes leaves nothing due."""
    books = Books(tax_rates, plan_cents)
    billing, org = books.billing, books.org
    one_off = books.invoice(billing.issue_one_off(org, "cus", "USD", [
        {"add_on_code": "setup", "unit_amount_cents": unit, "units": str(units)} for unit, units in add_ons],
        books.taxes, START))
    _assert_adds_up(one_off)
    fee = one_off.fees[0]
    if credit_cents and fee.amount_cents:
        body = {"invoice_id": str(one_off.id), "items": [{"fee_id": str(fee.id),
                                                          "amount_cents": min(credit_cents, fee.amount_cents)}]}
        billing.create_credit_note(org, body, START + timedelta(hours=1))
    for n, (kind, value) in enumerate(coupons):
        terms = ({"amount_cents": value, "amount_currency": "USD"} if kind == "fixed_amount"
                 else {"percentage_rate": str(value)})
        billing.create_coupon(org, {"name": f"c{n}", "code": f"c{n}", "frequency": "once", "coupon_type": kind,
                                    **terms}, START)
        billing.apply_coupon(org, {"external_customer_id": "cus", "coupon_code": f"c{n}"}, START + timedelta(minutes=n))
    if wallet_cents:
        billing.create_wallet(org, {"external_customer_id": "cus", "currency": "USD", "rate_amount": "1",
                                    "granted_credits": str(D(wallet_cents) / 100)}, START + timedelta(hours=2))
    subscription = billing.create_subscription(org, {"external_customer_id": "cus", "plan_code": "base",
                                                     "external_id": "sub"}, START)

    issued = billing.close_period(subscription, BOUNDARY, [books.bucket(n, a, t) for n, (a, t) in enumerate(usage)],
                                  books.taxes, (0, 0), BOUNDARY)

    assert issued is not None
    invoice = books.invoice(issued)
    _assert_adds_up(invoice)
    figures = invoice.totals
    owed = figures.sub_total_including_taxes_amount_cents - figures.credit_notes_amount_cents
    event(f"coupons taken: {bool(figures.coupons_amount_cents)}; credit notes used: "
          f"{bool(figures.credit_notes_amount_cents)}; wallet covers it: {0 < owed <= wallet_cents}")
    if wallet_cents >= owed:
        assert figures.prepaid_credit_amount_cents == owed
        assert invoice.total_due_amount_cents == 0
