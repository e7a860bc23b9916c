"""The invoice aggregate's lifecycle and numbering (semantics I1, I2), in memory."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import uuid4

import pytest

from domain.errors import ValidationFailed
from domain.fee import Fee
from domain.invoice import (
    DELETED,
    DRAFT,
    FINALIZED,
    VOIDED,
    Invoice,
    InvoiceNotDraft,
    InvoiceNotVoidable,
    InvoiceVoided,
    Provenance,
    invoice_number,
    organization_invoice_number,
)
from domain.sequence import Sequence

NOW = datetime(2024, 4, 1, tzinfo=UTC)
ORG = uuid4()


def _fee(amount_cents: int) -> Fee:
    return Fee(id=uuid4(), fee_type="subscription", item_id=uuid4(), item_code="base", item_name="Base",
               amount_cents=amount_cents, precise_amount_cents=Decimal(amount_cents), units=Decimal(1), currency="USD")


def _invoice(*amounts: int, key: str = "subscription/x/2024-04-01") -> Invoice:
    return Invoice.issue(organization_id=ORG, key=key, customer_id=uuid4(), invoice_type="subscription", currency="USD",
                         issuing_date=date(2024, 4, 1), net_payment_term=30, billing_periods=(),
                         fees=[_fee(a) for a in amounts], provenance=Provenance(1, 2, "d"))


def test_the_same_close_names_the_same_invoice() -> None:
    assert _invoice(100).id == _invoice(200).id != _invoice(100, key="subscription/x/2024-05-01").id


def test_an_invoice_is_issued_as_a_draft_then_finalized_with_its_number() -> None:
    invoice = _invoice(3000)

    assert (invoice.status, invoice.number, invoice.payment_due_date) == (DRAFT, None, date(2024, 5, 1))
    invoice.finalize(number="ACM-1A2B-001-001", sequential_id=1, at=NOW)

    assert (invoice.status, invoice.number, invoice.payment_status) == (FINALIZED, "ACM-1A2B-001-001", "pending")
    assert invoice.total_due_amount_cents == 3000
    with pytest.raises(InvoiceNotDraft):
        invoice.finalize(number="again", sequential_id=2, at=NOW)


def test_a_zero_invoice_is_paid_when_finalized() -> None:
    invoice = _invoice(0)
    invoice.finalize(number="N", sequential_id=1, at=NOW)

    assert (invoice.payment_status, invoice.total_due_amount_cents) == ("succeeded", 0)


def test_only_finalized_invoices_are_voided_and_voided_ones_are_not_updated() -> None:
    invoice = _invoice(100)
    with pytest.raises(InvoiceNotVoidable):
        invoice.void(NOW)
    invoice.finalize(number="N", sequential_id=1, at=NOW)
    invoice.void(NOW)

    assert (invoice.status, invoice.total_due_amount_cents) == (VOIDED, 0)
    with pytest.raises(InvoiceVoided):
        invoice.update(payment_status="succeeded", metadata=None)


def test_only_drafts_are_refreshed_or_deleted() -> None:
    invoice = _invoice(100)
    invoice.refresh([_fee(250)], Provenance(3, 4, "e"))
    assert invoice.totals.fees_amount_cents == 250
    invoice.delete(NOW)
    assert invoice.status == DELETED

    finalized = _invoice(100)
    finalized.finalize(number="N", sequential_id=1, at=NOW)
    finalized.refresh([_fee(999)], Provenance(3, 4, "e"))
    assert finalized.totals.fees_amount_cents == 100
    with pytest.raises(InvoiceNotDraft):
        finalized.delete(NOW)


def test_payment_status_is_one_of_lagos() -> None:
    invoice = _invoice(100)
    with pytest.raises(ValidationFailed):
        invoice.update(payment_status="paid", metadata=None)
    invoice.update(payment_status="succeeded", metadata={"po": "42"})
    assert (invoice.payment_status, invoice.metadata) == ("succeeded", {"po": "42"})


def test_i2_numbers_are_prefix_customer_number_and_invoice_number() -> None:
    assert invoice_number("ACM-1A2B", 5, 12) == "ACM-1A2B-005-012"
    assert invoice_number("ACM-1A2B", 5, 1234) == "ACM-1A2B-005-1234"
    assert organization_invoice_number("ACM-1A2B", date(2026, 4, 30), 37) == "ACM-1A2B-202604-037"


def test_a_sequence_hands_out_every_number_once_in_order() -> None:
    sequence = Sequence.start(ORG, "invoices/customer/x")

    assert [sequence.take() for _ in range(3)] == [1, 2, 3]
    assert sequence.id == Sequence.create_id(ORG, "invoices/customer/x")
