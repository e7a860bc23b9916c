"""Money after the invoice through the official lago-python-client, unmodified, against ``tally api``: applied
coupons, wallets and their transactions, payments, payment requests, credit notes and analytics come back as the
client's typed models."""

from __future__ import annotations

import pytest
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models import InvoiceFee, InvoiceFeesList, OneOffInvoice
from lago_python_client.models.add_on import AddOn
from lago_python_client.models.applied_coupon import AppliedCoupon
from lago_python_client.models.coupon import Coupon
from lago_python_client.models.credit_note import (
    CreditNote,
    CreditNoteEstimate,
    CreditNoteUpdate,
    Item,
    Items,
)
from lago_python_client.models.customer import Customer
from lago_python_client.models.payment import Payment
from lago_python_client.models.payment_request import PaymentRequest
from lago_python_client.models.wallet import Wallet
from lago_python_client.models.wallet_transaction import WalletTransaction

from domain.api_key import IssuedKey

pytestmark = pytest.mark.slow


@pytest.fixture
def lago(shared_server: str, tenant: IssuedKey) -> Client:
    client = Client(api_key=tenant.secret, api_url=shared_server)
    client.customers.create(Customer(external_id="cus-money", name="Money", currency="USD"))
    client.add_ons.create(AddOn(name="Setup", code="setup", amount_cents=10_000, amount_currency="USD"))
    return client


def _one_off(lago: Client, units: float = 1) -> object:
    return lago.invoices.create(OneOffInvoice(external_customer_id="cus-money", currency="USD", fees=InvoiceFeesList(
        __root__=[InvoiceFee(add_on_code="setup", units=units)])))


def test_wallets_and_transactions_through_the_client(lago: Client) -> None:
    wallet = lago.wallets.create(Wallet(external_customer_id="cus-money", currency="USD", rate_amount="1",
                                        granted_credits="25", name="Promo", code="promo"))
    made = lago.wallet_transactions.create(WalletTransaction(wallet_id=wallet.lago_id, granted_credits="5"))
    listed = lago.wallet_transactions.find_all(wallet.lago_id)
    found = lago.wallets.find(wallet.lago_id)
    invoice = _one_off(lago)
    ended = lago.wallets.destroy(wallet.lago_id)

    assert (wallet.credits_balance, wallet.balance_cents, wallet.status) == ("25", 2_500, "active")
    assert [t.transaction_status for t in made["wallet_transactions"]] == ["granted"]
    assert len(listed["wallet_transactions"]) == 2 and found.credits_balance == "30"
    assert invoice.prepaid_credit_amount_cents == 3_000 and invoice.total_amount_cents == 7_000
    assert ended.status == "terminated"


def test_coupons_payments_and_payment_requests_through_the_client(lago: Client) -> None:
    lago.coupons.create(Coupon(name="Ten", code="ten", coupon_type="percentage", percentage_rate=10, frequency="once"))
    applied = lago.applied_coupons.create(AppliedCoupon(external_customer_id="cus-money", coupon_code="ten"))
    listed = lago.applied_coupons.find_all({"external_customer_id": "cus-money"})
    invoice = _one_off(lago, units=2)
    request = lago.payment_requests.create(PaymentRequest(email="pay@example.com", external_customer_id="cus-money",
                                                          lago_invoice_ids=[invoice.lago_id]))
    payment = lago.payments.create(Payment(invoice_id=invoice.lago_id, amount_cents=5_000, reference="wire-1"))
    found = lago.payments.find(payment.lago_id)
    paid = lago.invoices.find(invoice.lago_id)

    assert (applied.coupon_code, applied.status) == ("ten", "active")
    assert [a.lago_id for a in listed["applied_coupons"]] == [applied.lago_id]
    assert (request.amount_cents, request.payment_status) == (20_000, "pending")
    assert (found.amount_cents, found.invoice_ids, found.type) == (5_000, [invoice.lago_id], "manual")
    assert (paid.total_paid_amount_cents, paid.total_due_amount_cents) == (5_000, 15_000)
    with pytest.raises(LagoApiError):
        lago.payments.create(Payment(invoice_id=invoice.lago_id, amount_cents=5_000, reference="wire-1"))


def test_credit_notes_through_the_client(lago: Client) -> None:
    invoice = _one_off(lago)
    fee_id = lago.invoices.find(invoice.lago_id).fees.__root__[0].lago_id
    items = Items(__root__=[Item(fee_id=fee_id, amount_cents=4_000)])

    estimated = lago.credit_notes.estimate(CreditNoteEstimate(invoice_id=invoice.lago_id, items=items))
    created = lago.credit_notes.create(CreditNote(invoice_id=invoice.lago_id, reason="other", credit_amount_cents=4_000,
                                                  items=items))
    found = lago.credit_notes.find(created.lago_id)
    listed = lago.credit_notes.find_all({"external_customer_id": "cus-money"})
    downloaded = lago.credit_notes.download(created.lago_id)
    voided = lago.credit_notes.void(created.lago_id)

    assert estimated.max_creditable_amount_cents == 4_000
    assert (created.total_amount_cents, created.credit_status, found.number) == (4_000, "available", created.number)
    assert [n.lago_id for n in listed["credit_notes"]] == [created.lago_id]
    assert downloaded is not None and downloaded.file_url.endswith(f"/credit_notes/{created.lago_id}/file.pdf")
    assert (voided.credit_status, voided.balance_amount_cents) == ("voided", 0)


def test_analytics_through_the_client(lago: Client) -> None:
    _one_off(lago)

    gross = lago.gross_revenues.find_all({"currency": "USD"})
    collections = lago.invoice_collections.find_all()

    assert [g.amount_cents for g in gross["gross_revenues"]] == [10_000]
    assert [c.invoices_count for c in collections["invoice_collections"]] == [1]


def test_metadata_and_refund_status_through_the_client(lago: Client) -> None:
    wallet = lago.wallets.create(Wallet(external_customer_id="cus-money", currency="USD", rate_amount="1",
                                        metadata={"team": "core"}))
    invoice = _one_off(lago)
    fee_id = lago.invoices.find(invoice.lago_id).fees.__root__[0].lago_id
    note = lago.credit_notes.create(CreditNote(invoice_id=invoice.lago_id, refund_amount_cents=0, credit_amount_cents=100,
                                               items=Items(__root__=[Item(fee_id=fee_id, amount_cents=100)])))

    replaced = lago.wallets.replace_metadata(wallet.lago_id, {"a": "1", "b": "2"})
    merged = lago.wallets.merge_metadata(wallet.lago_id, {"b": "3", "c": None})
    dropped = lago.wallets.delete_metadata_key(wallet.lago_id, "a")
    shown = lago.wallets.find(wallet.lago_id)
    noted = lago.credit_notes.replace_metadata(note.lago_id, {"x": "y"})
    cleared = lago.credit_notes.delete_all_metadata(note.lago_id)
    updated = lago.credit_notes.update(CreditNoteUpdate(refund_status="succeeded"), note.lago_id)

    assert wallet.metadata == {"team": "core"}
    assert (replaced, merged, dropped) == ({"a": "1", "b": "2"}, {"a": "1", "b": "3", "c": None}, {"b": "3", "c": None})
    assert shown.metadata == {"b": "3", "c": None} and (noted, cleared) == ({"x": "y"}, {})
    assert updated.refund_status == "succeeded"
    with pytest.raises(LagoApiError):
        lago.credit_notes.update(CreditNoteUpdate(refund_status="lost"), note.lago_id)
