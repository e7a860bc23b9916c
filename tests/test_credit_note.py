"""Credit notes in memory: the unused-days credit of P5/P6, the credit/refund/offset split, and consumption."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.credit_note import (
    AVAILABLE,
    CONSUMED,
    CreditNote,
    CreditNoteNotVoidable,
    Split,
    credit_note_number,
    split,
    termination_item,
)
from domain.fee import Fee
from domain.money import prorated_cents

APRIL = (datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC))


def _fee(amount: int = 3000, starts: datetime = APRIL[0], ends: datetime = APRIL[1], period_days: int = 30) -> Fee:
    days = (ends - starts).days
    return Fee(id=uuid4(), fee_type="subscription", item_id=uuid4(), item_code="base", item_name="Base",
               amount_cents=prorated_cents(amount, days, period_days),
               precise_amount_cents=Decimal(amount) * days / period_days, units=Decimal(1), currency="USD",
               from_at=starts, to_at=ends, days=days, period_days=period_days)


def _note(credit: int) -> CreditNote:
    return CreditNote(organization_id=uuid4(), key="k", invoice_id=uuid4(), invoice_number="ACM-001-001",
                      customer_id=uuid4(), currency="USD", number="ACM-001-001-CN001", sequential_id=1,
                      issuing_date=date(2026, 4, 10), reason="order_cancellation", description=None, items=(),
                      taxes_amount_cents=0, split=Split(credit, 0, 0))


def test_p5_twenty_unused_days_of_a_30_dollar_month_are_2000() -> None:
    item = termination_item(_fee(), datetime(2026, 4, 10, 15, tzinfo=UTC), "UTC")

    assert item is not None and item.amount_cents == 2000


def test_p6_an_upgrade_day_belongs_to_the_new_plan() -> None:
    """Upgraded on Apr 11: Apr 11–30 are unused on the old plan, 20 days."""
    item = termination_item(_fee(), datetime(2026, 4, 11, 9, tzinfo=UTC), "UTC", upgraded=True)

    assert item is not None and item.amount_cents == 2000


def test_a_prorated_first_fee_is_credited_at_its_own_daily_price() -> None:
    """March from the 16th (1548 for 16 of 31 days), terminated Mar 20: 11 days at 3000/31 = 1064.5 → 1065."""
    march = _fee(3000, datetime(2026, 3, 16, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC), period_days=31)

    item = termination_item(march, datetime(2026, 3, 20, 8, tzinfo=UTC), "UTC")

    assert march.amount_cents == 1548 and item is not None and item.amount_cents == 1065


def test_nothing_is_credited_on_the_last_day() -> None:
    assert termination_item(_fee(), datetime(2026, 4, 30, 23, tzinfo=UTC), "UTC") is None


def test_credit_note_numbers_extend_the_invoice_number() -> None:
    assert credit_note_number("ACM-1A2B-005-012", 2) == "ACM-1A2B-005-012-CN002"


@given(st.integers(0, 100_000), st.sampled_from(["credit", "refund", "offset"]), st.integers(-10, 100_000),
       st.integers(-10, 100_000))
def test_a_split_gives_back_exactly_the_total(total: int, policy: str, paid: int, due: int) -> None:
    parts = split(total, policy, paid_cents=paid, due_cents=due)

    assert parts.credit_amount_cents + parts.refund_amount_cents + parts.offset_amount_cents == total
    assert min(parts.credit_amount_cents, parts.refund_amount_cents, parts.offset_amount_cents) >= 0
    assert parts.refund_amount_cents <= max(paid, 0) and parts.offset_amount_cents <= max(due, 0)


@given(st.integers(1, 10_000_00), st.integers(0, 29), st.integers(0, 23))
def test_billed_and_credited_days_add_up_to_the_fee(amount: int, day: int, hour: int) -> None:
    """Terminated at any hour of April: the credit never exceeds the fee, and with the days billed (the termination
    day included; a termination at midnight ends the day before) it makes the fee within a cent."""
    fee = _fee(amount)
    terminated = APRIL[0] + timedelta(days=day, hours=hour)

    item = termination_item(fee, terminated, "UTC")

    credited = item.amount_cents if item is not None else 0
    billed = prorated_cents(amount, day + 1 if hour else day, 30)
    assert 0 <= credited <= fee.amount_cents
    assert abs(billed + credited - fee.amount_cents) <= 1


@given(st.integers(1, 50_000), st.lists(st.integers(-100, 20_000), max_size=8))
def test_consumption_never_exceeds_the_credit(credit: int, wanted: list[int]) -> None:
    note = _note(credit)

    used = [note.consume(uuid4(), w) for w in wanted]

    assert sum(used) + note.balance_amount_cents == credit
    assert all(0 <= u <= max(w, 0) for u, w in zip(used, wanted, strict=True))
    assert note.credit_status == (CONSUMED if note.balance_amount_cents == 0 else AVAILABLE)


def test_only_available_credit_can_be_voided() -> None:
    note = _note(500)
    note.consume(uuid4(), 500)

    with pytest.raises(CreditNoteNotVoidable):
        note.void(datetime(2026, 4, 12, tzinfo=UTC))
