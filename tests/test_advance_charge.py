"""Pay-in-advance charges in memory: the high-water mark of C10, its worked example, and its properties."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

from hypothesis import given
from hypothesis import strategies as st

from domain.advance_charge import AdvanceUsage, ChargeMeter, rise_amount
from domain.charge import Charge, ChargeProperties, Tier
from domain.usage import NO_FILTER

APRIL = datetime(2026, 4, 1, tzinfo=UTC)


def _usage(position: int, aggregation: str = "sum_agg", value: str | None = None, unique: str | None = None,
           adds: bool = True) -> AdvanceUsage:
    return AdvanceUsage(
        event_id=uuid4(), transaction_id=f"t{position}", position=position, organization_id=uuid4(),
        subscription_id=uuid4(), charge_id=uuid4(), metric_id=uuid4(), metric_code="m", metric_name="M",
        aggregation=aggregation, period_starts_at=APRIL, period_ends_at=datetime(2026, 5, 1, tzinfo=UTC),
        filter_id=NO_FILTER, group="", value=Decimal(value) if value is not None else None, unique=unique, adds=adds,
        occurred_at=APRIL,
    )


def _meter() -> ChargeMeter:
    return ChargeMeter(organization_id=uuid4(), subscription_id=uuid4(), charge_id=uuid4(), period_starts_at=APRIL)


def _charge(model: str = "standard", **properties: object) -> Charge:
    return Charge(id=uuid4(), code="m", billable_metric_id=uuid4(), charge_model=model, pay_in_advance=True,
                  created_at=APRIL, properties=ChargeProperties(**properties))  # type: ignore[arg-type]


def test_c10_the_worked_example_bills_5_3_0_2() -> None:
    meter, charge = _meter(), _charge(amount=Decimal(1))
    billed = []
    for position, value in enumerate(("5", "3", "-4", "6"), start=1):
        usage = _usage(position, value=value)
        rise = meter.measure(usage)
        assert rise is not None
        billed.append(rise_amount(charge, usage, rise, 2))

    assert billed == [Decimal(5), Decimal(3), Decimal(0), Decimal(2)]


def test_an_event_measured_before_bills_nothing() -> None:
    meter = _meter()
    meter.measure(_usage(7, value="5"))

    assert meter.measure(_usage(7, value="5")) is None
    assert meter.measure(_usage(3, value="5")) is None


def test_graduated_prices_bill_the_difference_of_the_period_price() -> None:
    """First 10 units free, then $1: 8 units bill 0, the next 4 bill 2 (units 11 and 12)."""
    charge = _charge("graduated", graduated_ranges=(
        Tier(from_value=0, to_value=10, per_unit_amount=Decimal(0), flat_amount=Decimal(0)),
        Tier(from_value=11, to_value=None, per_unit_amount=Decimal(1), flat_amount=Decimal(0))))
    meter = _meter()
    first, second = _usage(1, value="8"), _usage(2, value="4")

    amounts = [rise_amount(charge, u, meter.measure(u), 2) for u in (first, second)]  # type: ignore[arg-type]

    assert amounts == [Decimal(0), Decimal(2)]


@given(st.lists(st.integers(-50, 50), max_size=30))
def test_units_billed_add_up_to_the_highest_level_reached(values: list[int]) -> None:
    """Whatever the order of rises and falls, the units billed are the period's high-water mark, never less than 0."""
    meter = _meter()
    billed = Decimal(0)
    level = highest = Decimal(0)
    for position, value in enumerate(values, start=1):
        rise = meter.measure(_usage(position, value=str(value)))
        assert rise is not None and rise.units >= 0
        billed += rise.units
        level += value
        highest = max(highest, level)

    assert billed == highest


@given(st.lists(st.tuples(st.sampled_from("abcde"), st.booleans()), max_size=30))
def test_unique_counts_bill_the_most_values_ever_present_at_once(operations: list[tuple[str, bool]]) -> None:
    meter = _meter()
    present: set[str] = set()
    most = billed = 0
    for position, (value, adds) in enumerate(operations, start=1):
        rise = meter.measure(_usage(position, "unique_count_agg", unique=value, adds=adds))
        assert rise is not None
        billed += int(rise.units)
        present = present | {value} if adds else present - {value}
        most = max(most, len(present))

    assert billed == most
