"""Charge models: every worked example of Lago semantics C1–C8, and the properties that hold between them."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from itertools import accumulate

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.charge import CHARGE_MODELS, ChargeProperties, Tier
from domain.money import to_cents as fee_cents
from domain.money import to_precise_cents as precise_cents
from domain.pricing import (
    PercentageUsage,
    Price,
    Usage,
    allowance_head_length,
    minimum_true_up,
    percentage_usage,
    price,
)

D = Decimal
TRANSACTIONS = (D(100), D(50), D(200), D(10))


def _tier(low: int, high: int | None, per_unit: str, flat: str = "0") -> Tier:
    return Tier(from_value=low, to_value=high, flat_amount=D(flat), per_unit_amount=D(per_unit))


def _rate_tier(low: int, high: int | None, rate: str, flat: str = "0") -> Tier:
    return Tier(from_value=low, to_value=high, flat_amount=D(flat), rate=D(rate))


INCLUSIVE_GRADUATED = ChargeProperties(
    graduated_ranges=(_tier(0, 100, "0.10"), _tier(101, 200, "0.08", "5"), _tier(201, None, "0.05"))
)
ADJACENT_GRADUATED = ChargeProperties(
    graduated_ranges=(_tier(0, 100, "0.10"), _tier(100, 200, "0.08", "5"), _tier(200, None, "0.05"))
)
VOLUME = ChargeProperties(volume_ranges=(_tier(0, 100, "1.00"), _tier(101, None, "0.80", "10")))
PACKAGE = ChargeProperties(amount=D("5"), package_size=100, free_units=100)


def _percentage(values: tuple[Decimal, ...], properties: ChargeProperties) -> Price:
    compact = percentage_usage(values, properties)
    return price("percentage", properties, Usage(units=compact.total, events_count=len(values), percentage=compact))


def _full_head(values: tuple[Decimal, ...]) -> PercentageUsage:
    return PercentageUsage(total=sum(values, D(0)), count=len(values), head=values, rest_clamped=D(0))


# Worked examples (C1–C8)


def test_standard_bills_units_times_amount_rounded_once_to_cents() -> None:
    """C1: 1,234 units at $0.005 cost $6.17, a 617-cent fee."""
    properties = ChargeProperties(amount=D("0.005"))

    priced = price("standard", properties, Usage(units=D(1234)))

    assert priced.amount == D("6.17")
    assert fee_cents(priced.amount, 2) == 617


def test_package_bills_every_started_package_after_the_free_units() -> None:
    """C2: 350 units with 100 free leave 250 paid units, three packages of 100 at $5."""
    usage = Usage(units=D(350))

    priced = price("package", PACKAGE, usage)

    assert priced.amount == D(15)
    assert priced.units == D(350)


def test_package_bills_one_package_for_a_single_paid_unit() -> None:
    """C2: 101 units with 100 free start one package, billed in full at $5."""
    usage = Usage(units=D(101))

    priced = price("package", PACKAGE, usage)

    assert priced.amount == D(5)


def test_package_bills_nothing_within_the_free_units() -> None:
    """C2: 80 units with 100 free cost nothing."""
    usage = Usage(units=D(80))

    priced = price("package", PACKAGE, usage)

    assert priced.amount == D(0)


def test_graduated_prices_each_inclusive_range_separately_with_its_flat_amount() -> None:
    """C3: 250 units over 0–100 @0.10, 101–200 @0.08 + $5, 201–∞ @0.05 cost 10 + 13 + 2.50 = $25.50."""
    usage = Usage(units=D(250))

    priced = price("graduated", INCLUSIVE_GRADUATED, usage)

    assert priced.amount == D("25.50")
    assert [(t.units, t.amount) for t in priced.tiers] == [(D(100), D(10)), (D(100), D(13)), (D(50), D("2.5"))]
    assert priced.unit_amount == D("0.102")


def test_graduated_bills_the_first_flat_amount_on_zero_usage() -> None:
    """C3: since mid-2026 a first range with a $2 flat amount bills $2 for 0 units."""
    properties = ChargeProperties(graduated_ranges=(_tier(0, 10, "1", "2"), _tier(11, None, "0.5", "3")))

    priced = price("graduated", properties, Usage(units=D(0)))

    assert priced.amount == D(2)
    assert [(t.from_value, t.units, t.amount) for t in priced.tiers] == [(0, D(0), D(2))]
    assert priced.unit_amount is None


def test_graduated_percentage_bills_each_range_at_its_rate_plus_its_flat_amount() -> None:
    """C4: 1,500 over 0–1000 @1% and 1001–∞ @0.5% + $0.10 cost 10 + 2.60 = $12.60."""
    properties = ChargeProperties(
        graduated_percentage_ranges=(_rate_tier(0, 1000, "1"), _rate_tier(1001, None, "0.5", "0.10"))
    )

    priced = price("graduated_percentage", properties, Usage(units=D(1500)))

    assert priced.amount == D("12.60")
    assert [(t.units, t.per_unit_amount, t.amount) for t in priced.tiers] == [
        (D(1000), D("0.01"), D(10)),
        (D(500), D("0.005"), D("2.60")),
    ]


def test_volume_bills_all_units_at_the_range_reached() -> None:
    """C5: 150 units reach 101–∞, so all of them cost 0.80 plus its $10 flat amount: $130."""
    usage = Usage(units=D(150))

    priced = price("volume", VOLUME, usage)

    assert priced.amount == D(130)
    assert [(t.from_value, t.units) for t in priced.tiers] == [(101, D(150))]


def test_volume_keeps_the_upper_bound_in_its_range() -> None:
    """C5: 100 units stay in 0–100 at $1: $100."""
    usage = Usage(units=D(100))

    priced = price("volume", VOLUME, usage)

    assert priced.amount == D(100)


def test_volume_places_fractional_units_by_their_ceiling() -> None:
    """C5: 100.5 units round up to 101 to pick 101–∞: 100.5 × 0.80 + 10 = $90.40."""
    usage = Usage(units=D("100.5"))

    priced = price("volume", VOLUME, usage)

    assert priced.amount == D("90.40")


def test_percentage_frees_the_first_events_and_their_fixed_amounts() -> None:
    """C6: with 2 free events, 150 of 360 is free: 210 × 2% + 2 × $0.30 = $4.80."""
    properties = ChargeProperties(rate=D(2), fixed_amount=D("0.30"), free_units_per_events=2)

    priced = _percentage(TRANSACTIONS, properties)

    assert priced.amount == D("4.80")
    assert priced.units == D(360)


def test_percentage_frees_a_total_and_the_events_below_it() -> None:
    """C6: a free total of 120 leaves 240 × 2% = 4.80 and frees one event's fee: 4.80 + 3 × 0.30 = $5.70."""
    properties = ChargeProperties(rate=D(2), fixed_amount=D("0.30"), free_units_per_total_aggregation=D(120))

    priced = _percentage(TRANSACTIONS, properties)

    assert priced.amount == D("5.70")


def test_percentage_clamps_each_transaction_between_its_minimum_and_maximum() -> None:
    """C6: 2.30, 1.30, 4.30 capped at 3 and 0.50 raised to 1 add up to $7.60."""
    properties = ChargeProperties(
        rate=D(2), fixed_amount=D("0.30"), per_transaction_min_amount=D(1), per_transaction_max_amount=D(3)
    )

    priced = _percentage(TRANSACTIONS, properties)

    assert priced.amount == D("7.60")


def test_dynamic_bills_the_events_own_precise_amounts() -> None:
    """C7: events priced 1234.5 and 100 cents sum to $13.345, a 1,335-cent fee."""
    usage = Usage(units=D(3), events_count=2, precise_total_amount_cents=D("1334.5"))

    priced = price("dynamic", ChargeProperties(), usage)

    assert priced.amount == D("13.345")
    assert precise_cents(priced.amount, 2) == D("1334.5")
    assert fee_cents(priced.amount, 2) == 1335


def test_minimum_true_up_bills_the_gap_to_the_charge_minimum() -> None:
    """C8: a 1,000-cent minimum over 340 cents of fees needs a 660-cent true-up."""
    fees, minimum = D(340), D(1000)

    true_up = minimum_true_up(fees, minimum)

    assert true_up == D(660)


def test_minimum_true_up_prorates_the_minimum_of_a_partial_period() -> None:
    """C8: terminated after 15 of 30 days, the minimum drops to 500 cents and the true-up to 160."""
    fees, minimum, ratio = D(340), D(1000), D(15) / D(30)

    true_up = minimum_true_up(fees, minimum, ratio)

    assert true_up == D(160)


# Decisions where the reference is silent


def test_both_range_bound_conventions_bill_the_same() -> None:
    """Adjacent bounds (next from = previous to) price like inclusive ones (next from = previous to + 1)."""
    units = [D(0), D("0.5"), D(100), D("100.5"), D(101), D(200), D(250)]

    adjacent = [price("graduated", ADJACENT_GRADUATED, Usage(units=u)).amount for u in units]

    assert adjacent == [price("graduated", INCLUSIVE_GRADUATED, Usage(units=u)).amount for u in units]


def test_volume_bills_the_first_flat_amount_on_zero_usage() -> None:
    """Like graduated, volume bills the first range's flat amount when nothing was used."""
    properties = ChargeProperties(volume_ranges=(_tier(0, 10, "1", "4"), _tier(11, None, "0.5", "3")))

    priced = price("volume", properties, Usage(units=D(0)))

    assert priced.amount == D(4)


def test_volume_can_bill_less_past_a_range_boundary() -> None:
    """A cheaper next range makes volume prices fall: 100 units cost $100 but 101 cost $90.80."""
    below, above = Usage(units=D(100)), Usage(units=D(101))

    amounts = price("volume", VOLUME, below).amount, price("volume", VOLUME, above).amount

    assert amounts == (D(100), D("90.80"))


@pytest.mark.parametrize("model", CHARGE_MODELS)
def test_a_negative_total_bills_nothing_with_zero_units(model: str) -> None:
    """A sum that went negative bills 0 with 0 units, whatever the model (A2)."""
    properties = ChargeProperties(
        amount=D(1), package_size=10, free_units=0, rate=D(2), fixed_amount=D(1),
        graduated_ranges=INCLUSIVE_GRADUATED.graduated_ranges, volume_ranges=VOLUME.volume_ranges,
        graduated_percentage_ranges=(_rate_tier(0, None, "1", "5"),),
    )
    usage = Usage(units=D(-3), events_count=2, precise_total_amount_cents=D(700),
                  percentage=percentage_usage((D(2), D(-5)), ChargeProperties(rate=D(2))))

    priced = price(model, properties, usage)

    assert (priced.amount, priced.units, priced.tiers) == (D(0), D(0), ())


def test_zero_units_bill_nothing_for_dynamic_and_percentage_charges() -> None:
    """Events whose values cancel out carry no fixed fees, as dynamic bills nothing for zero units."""
    properties = ChargeProperties(rate=D(2), fixed_amount=D("0.30"))
    usage = Usage(units=D(0), events_count=2, precise_total_amount_cents=D(500))

    dynamic = price("dynamic", properties, usage).amount
    percentage = _percentage((D(10), D(-10)), properties).amount

    assert (dynamic, percentage) == (D(0), D(0))


def test_pricing_group_keys_do_not_change_the_price() -> None:
    """Each pricing group is priced on its own by the caller, so the keys themselves change nothing."""
    grouped = replace(INCLUSIVE_GRADUATED, pricing_group_keys=("region",))

    priced = price("graduated", grouped, Usage(units=D(250)))

    assert priced == price("graduated", INCLUSIVE_GRADUATED, Usage(units=D(250)))


def test_dynamic_uses_the_currency_exponent() -> None:
    """A zero-decimal currency's precise amounts are already whole units."""
    usage = Usage(units=D(1), precise_total_amount_cents=D("1500.5"))

    priced = price("dynamic", ChargeProperties(), usage, exponent=0)

    assert priced.amount == D("1500.5")
    assert fee_cents(priced.amount, 0) == 1501


def test_a_percentage_head_too_short_for_the_allowance_is_refused() -> None:
    """Pricing from fewer leading events than the free allowance spans would bill free events, so it fails."""
    properties = ChargeProperties(rate=D(2), free_units_per_total_aggregation=D(120))
    usage = Usage(units=D(360), percentage=PercentageUsage(total=D(360), count=4, head=(D(100),), rest_clamped=D(0)))

    with pytest.raises(ValueError):
        price("percentage", properties, usage)


def test_an_unknown_charge_model_is_refused() -> None:
    """Only Lago's charge models have a price."""
    usage = Usage(units=D(1))

    with pytest.raises(ValueError):
        price("custom", ChargeProperties(), usage)


# Properties

units_st = st.integers(0, 10**6).map(lambda n: D(n).scaleb(-3))
amounts_st = st.integers(0, 10**5).map(lambda n: D(n).scaleb(-4))
values_st = st.lists(st.integers(-500, 2_000).map(lambda n: D(n).scaleb(-1)), max_size=12)
optional_amount_st = st.none() | st.integers(0, 5_000).map(lambda n: D(n).scaleb(-2))


@st.composite
def ranges_st(draw: st.DrawFn, price_name: str = "per_unit_amount") -> tuple[Tier, ...]:
    """Contiguous ranges from 0, each bound adjacent or inclusive at random, the last open-ended."""
    widths = draw(st.lists(st.integers(0, 300), max_size=4))
    tiers: list[Tier] = []
    previous_to = 0
    for index, width in enumerate([*widths, None]):
        inclusive = index > 0 and draw(st.booleans())
        low = previous_to + 1 if inclusive else previous_to
        high = None if width is None else low + (max(width, 1) - 1 if inclusive else width)
        prices = {price_name: draw(amounts_st)}
        tiers.append(Tier(from_value=low, to_value=high, flat_amount=draw(amounts_st), **prices))
        previous_to = high or 0
    return tuple(tiers)


@st.composite
def percentage_properties_st(draw: st.DrawFn) -> ChargeProperties:
    low, high = draw(optional_amount_st), draw(optional_amount_st)
    if low is not None and high is not None and low > high:
        low, high = high, low
    return ChargeProperties(
        rate=draw(st.integers(0, 500).map(lambda n: D(n).scaleb(-2))),
        fixed_amount=draw(optional_amount_st),
        free_units_per_events=draw(st.none() | st.integers(0, 6)),
        free_units_per_total_aggregation=draw(st.none() | st.integers(0, 400).map(D)),
        per_transaction_min_amount=low,
        per_transaction_max_amount=high,
    )


@given(ranges_st(), units_st, units_st)
def test_graduated_amounts_never_decrease_as_units_grow(ranges: tuple[Tier, ...], a: Decimal, b: Decimal) -> None:
    """With non-negative prices, using more never costs less under graduated pricing."""
    properties = ChargeProperties(graduated_ranges=ranges)

    smaller, larger = (price("graduated", properties, Usage(units=u)).amount for u in sorted((a, b)))

    assert smaller <= larger


@given(ranges_st(), units_st, units_st)
def test_volume_amounts_never_decrease_when_later_ranges_cost_no_less(
    ranges: tuple[Tier, ...], a: Decimal, b: Decimal
) -> None:
    """Volume prices only rise with units when per-unit and flat amounts do not fall from range to range."""
    unit_prices = sorted(t.per_unit_amount or D(0) for t in ranges)
    flats = sorted(t.flat_amount for t in ranges)
    rising = tuple(replace(t, per_unit_amount=p, flat_amount=f) for t, p, f in zip(ranges, unit_prices, flats))
    properties = ChargeProperties(volume_ranges=rising)

    smaller, larger = (price("volume", properties, Usage(units=u)).amount for u in sorted((a, b)))

    assert smaller <= larger


@given(ranges_st(), units_st)
def test_graduated_tiers_add_up_to_the_amount_and_the_units(ranges: tuple[Tier, ...], units: Decimal) -> None:
    """The tier breakdown shown on the fee accounts for every unit and every cent of the amount."""
    properties = ChargeProperties(graduated_ranges=ranges)

    priced = price("graduated", properties, Usage(units=units))

    assert sum(t.amount for t in priced.tiers) == priced.amount
    assert sum(t.units for t in priced.tiers) == units
    assert priced.tiers[0].flat_amount == ranges[0].flat_amount


@given(ranges_st("rate"), units_st)
def test_graduated_percentage_tiers_add_up_to_the_amount_and_the_units(
    ranges: tuple[Tier, ...], units: Decimal
) -> None:
    """The graduated percentage breakdown, like the graduated one, accounts for the whole amount."""
    properties = ChargeProperties(graduated_percentage_ranges=ranges)

    priced = price("graduated_percentage", properties, Usage(units=units))

    assert sum(t.amount for t in priced.tiers) == priced.amount
    assert sum(t.units for t in priced.tiers) == units


@given(amounts_st, st.integers(1, 50), st.integers(0, 50), st.integers(0, 40), st.integers(1, 1000))
def test_package_amounts_step_by_the_package_amount_at_each_boundary(
    amount: Decimal, size: int, free: int, packages: int, thousandths: int
) -> None:
    """Every unit past the free ones up to a package boundary costs the same as the boundary itself."""
    properties = ChargeProperties(amount=amount, package_size=size, free_units=free)
    within = D(free) + (D(packages) + D(thousandths).scaleb(-3)) * size

    priced = price("package", properties, Usage(units=within)).amount
    free_units = price("package", properties, Usage(units=D(free) * D(thousandths).scaleb(-3))).amount

    assert priced == (packages + 1) * amount
    assert free_units == 0


@given(amounts_st, st.integers(1, 50), st.integers(0, 50), st.integers(0, 2_000))
def test_package_amounts_jump_only_on_a_boundary(amount: Decimal, size: int, free: int, units: int) -> None:
    """One more unit adds a whole package just after a boundary, and nothing elsewhere."""
    properties = ChargeProperties(amount=amount, package_size=size, free_units=free)

    before, after = (price("package", properties, Usage(units=D(u))).amount for u in (units, units + 1))

    boundary = units >= free and (units - free) % size == 0
    assert after - before == (amount if boundary else 0)


@given(amounts_st, units_st, units_st)
def test_standard_amounts_are_linear_in_units(amount: Decimal, a: Decimal, b: Decimal) -> None:
    """Standard pricing bills the sum of two usages as the sum of their prices."""
    properties = ChargeProperties(amount=amount)

    separate = [price("standard", properties, Usage(units=u)).amount for u in (a, b)]
    together = price("standard", properties, Usage(units=a + b)).amount

    assert together == sum(separate)
    assert price("standard", properties, Usage(units=D(0))).amount == 0


@given(values_st, percentage_properties_st())
def test_compact_percentage_usage_prices_like_every_event(
    values: list[Decimal], properties: ChargeProperties
) -> None:
    """Keeping only the events the free allowance spans, plus totals, gives the price of all the events."""
    events = tuple(values)
    compact = percentage_usage(events, properties)
    units = sum(events, D(0))

    from_compact = price("percentage", properties, Usage(units=units, percentage=compact))
    from_all = price("percentage", properties, Usage(units=units, percentage=_full_head(events)))

    assert from_compact == from_all
    assert (compact.total, compact.count) == (units, len(events))


@given(values_st, percentage_properties_st())
def test_the_percentage_head_is_never_longer_than_needed(values: list[Decimal], properties: ChargeProperties) -> None:
    """The head holds exactly the events the allowance spans: one fewer is refused."""
    events = tuple(values)
    compact = percentage_usage(events, properties)
    needed = allowance_head_length(events, properties)

    shorter = replace(compact, head=compact.head[:-1])

    assert compact.head == events[:needed]
    if needed and compact.total > 0:
        with pytest.raises(ValueError):
            price("percentage", properties, Usage(units=compact.total, percentage=shorter))


def _reference_percentage(values: tuple[Decimal, ...], properties: ChargeProperties) -> Decimal:
    """C6 read literally: free amounts from running totals, free events counted below the free total."""
    total, running = sum(values, D(0)), list(accumulate(values))
    n, x = properties.free_units_per_events or 0, properties.free_units_per_total_aggregation or D(0)
    if total == 0:
        return D(0)
    frees, counts = [], []
    if n:
        frees.append(running[min(n, len(values)) - 1])
        counts.append(n)
    if x:
        frees.append(min(x, total))
        counts.append(sum(1 for r in running if r < x))
    free, free_count = min(frees, default=D(0)), min([*counts, len(values)]) if counts else 0
    rate, fixed = properties.rate or D(0), properties.fixed_amount or D(0)
    return max(total - free, D(0)) * rate / 100 + (len(values) - free_count) * fixed


@given(st.lists(st.integers(0, 2_000).map(lambda n: D(n).scaleb(-1)), max_size=12), percentage_properties_st())
def test_percentage_follows_the_reference_formulas_for_non_negative_events(
    values: list[Decimal], properties: ChargeProperties
) -> None:
    """Without per-transaction bounds, the price is C6's free amount, free event count, rate and fixed amount."""
    unbounded = replace(properties, per_transaction_min_amount=None, per_transaction_max_amount=None)

    priced = _percentage(tuple(values), unbounded)

    assert priced.amount == _reference_percentage(tuple(values), unbounded)


@given(st.lists(st.integers(0, 2_000).map(lambda n: D(n).scaleb(-1)), max_size=12), percentage_properties_st())
def test_per_transaction_bounds_that_never_bind_change_nothing(
    values: list[Decimal], properties: ChargeProperties
) -> None:
    """Pricing each transaction apart, between a zero minimum and a huge maximum, adds up to the whole-period price."""
    unbounded = replace(properties, per_transaction_min_amount=None, per_transaction_max_amount=None)
    loose = replace(properties, per_transaction_min_amount=D(0), per_transaction_max_amount=D(10**9))

    each, whole = _percentage(tuple(values), loose), _percentage(tuple(values), unbounded)

    assert each.amount == whole.amount


@given(st.integers(0, 10**9), st.sampled_from([0, 2, 3, 4]))
def test_fee_cents_rounds_half_a_minor_unit_up(minor: int, exponent: int) -> None:
    """An amount exactly halfway between two minor units rounds to the larger one."""
    halfway = (D(minor) + D("0.5")).scaleb(-exponent)

    rounded = fee_cents(halfway, exponent)

    assert rounded == minor + 1


@given(st.integers(-(10**12), 10**12).map(lambda n: D(n).scaleb(-6)), st.sampled_from([0, 2, 3, 4]))
def test_fee_cents_stays_within_half_a_minor_unit(amount: Decimal, exponent: int) -> None:
    """Rounding once moves a fee by at most half a minor unit from its exact amount."""
    exact = precise_cents(amount, exponent)

    rounded = fee_cents(amount, exponent)

    assert abs(rounded - exact) <= D("0.5")


@given(units_st, units_st, st.integers(0, 100).map(lambda n: D(n) / 100))
def test_minimum_true_up_is_never_negative_and_reaches_the_minimum(
    fees: Decimal, minimum: Decimal, ratio: Decimal
) -> None:
    """The true-up never refunds and always lifts the fees to at least the prorated minimum."""
    true_up = minimum_true_up(fees, minimum, ratio)

    assert true_up >= 0
    assert fees + true_up >= minimum * ratio
