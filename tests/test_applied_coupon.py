"""Coupons on an invoice in memory: M3's amounts and the spread of a discount over fees, as properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

from hypothesis import given
from hypothesis import strategies as st

from domain.applied_coupon import Candidate, CouponTerms, coupon_amount, discount
from domain.fee import Fee

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _fee(cents: int, code: str = "calls") -> Fee:
    return Fee(id=uuid4(), fee_type="charge", item_id=uuid4(), item_code=code, item_name=code, amount_cents=cents,
               precise_amount_cents=Decimal(cents), units=Decimal(1), currency="USD")


def _coupon(index: int, *, percentage: int | None = None, amount: int | None = None,
            metrics: tuple[str, ...] = ()) -> Candidate:
    terms = CouponTerms(
        coupon_type="percentage" if percentage is not None else "fixed_amount", amount_cents=amount,
        amount_currency="USD" if amount is not None else None,
        percentage_rate=Decimal(percentage) if percentage is not None else None, frequency="once",
        frequency_duration=None, billable_metric_codes=metrics)
    return Candidate(uuid4(), f"c{index}", f"C{index}", terms, T0 + timedelta(seconds=index), None)


def test_m3_a_percentage_rounds_half_up_and_a_fixed_amount_is_capped() -> None:
    ten = CouponTerms("percentage", None, None, Decimal(10), "once", None)
    fixed = CouponTerms("fixed_amount", 1500, "USD", None, "once", None)

    assert coupon_amount(ten, Decimal(8505)) == 851  # 850.5 → 851
    assert coupon_amount(fixed, Decimal(900)) == 900
    assert coupon_amount(fixed, Decimal(900), remaining=200) == 200


def test_a_fixed_coupon_in_another_currency_is_skipped() -> None:
    euro = Candidate(uuid4(), "eur", "EUR", CouponTerms("fixed_amount", 500, "EUR", None, "once", None), T0, None)

    uses, _ = discount([_fee(1000)], [euro], "USD", {})

    assert uses == ()


coupons = st.lists(st.one_of(
    st.builds(lambda p: ("percentage", p), st.integers(1, 100)),
    st.builds(lambda a: ("fixed", a), st.integers(1, 5000)),
), max_size=5)


@given(st.lists(st.integers(0, 5000), min_size=1, max_size=5), coupons, st.booleans())
def test_a_discount_is_spread_exactly_and_never_exceeds_the_fees(amounts: list[int], specs: list[tuple[str, int]],
                                                                 limited: bool) -> None:
    fees = [_fee(a, "calls" if i % 2 == 0 else "storage") for i, a in enumerate(amounts)]
    candidates = [_coupon(i, percentage=v if kind == "percentage" else None, amount=v if kind == "fixed" else None,
                          metrics=("calls",) if limited and i == 0 else ()) for i, (kind, v) in enumerate(specs)]

    uses, discounted = discount(fees, candidates, "USD", {})

    taken = sum(u.amount_cents for u in uses)
    shares = sum((f.precise_coupons_amount_cents for f in discounted), Decimal(0))
    assert abs(shares - taken) < Decimal("1e-20")
    assert taken <= sum(amounts)
    assert all(Decimal(0) <= f.precise_coupons_amount_cents <= f.amount_cents + Decimal("1e-20") for f in discounted)


@given(st.lists(st.integers(0, 5000), min_size=1, max_size=6), st.integers(1, 100))
def test_a_coupon_limited_to_a_metric_discounts_only_its_fees(amounts: list[int], rate: int) -> None:
    fees = [_fee(a, "calls" if i % 2 == 0 else "storage") for i, a in enumerate(amounts)]

    uses, discounted = discount(fees, [_coupon(0, percentage=rate, metrics=("calls",))], "USD", {})

    calls = sum(a for i, a in enumerate(amounts) if i % 2 == 0)
    assert sum(u.amount_cents for u in uses) == (min((Decimal(calls) * rate / 100).quantize(Decimal(1), "ROUND_HALF_UP"), calls) if calls else 0)
    assert all(f.precise_coupons_amount_cents == 0 for f in discounted if f.item_code == "storage")
