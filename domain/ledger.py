"""The double-entry ledger: every money-moving domain event as balanced journal postings (issue 6, beyond Lago).

Accounts (``customer_id`` set on the per-customer ones):

* ``receivable`` — what a customer owes (debit balance);
* ``revenue:subscription:<plan>``, ``revenue:charge:<metric>``, ``revenue:add_on:<code>``, ``revenue:commitment`` —
  what was billed (credit balances), and ``revenue:credit_notes`` for what credit notes gave back (debit);
* ``discounts`` — coupons given (debit); ``revenue:billed_early`` — usage a period's invoice credits because early
  invoices (``invoice_now``) billed it already (debit);
* ``tax_payable:<code>`` — taxes owed to the authorities (credit);
* ``customer_credit`` — credit notes' credit a customer may still use (credit balance);
* ``refunds_payable`` — credit notes' refunds owed to a customer (credit);
* ``cash`` — payments received, and invoices marked paid outside Tally (debit);
* ``credit_notes_withdrawn`` — credit taken back by voiding a credit note (credit);
* ``prepaid_credit`` — wallet credits a customer holds (credit balance); ``prepaid_credit_pending`` — credits
  invoiced but not settled yet; ``promotions`` — credits granted for free (debit); ``prepaid_credit_voided`` and
  ``prepaid_credit_expired`` — credits taken out of a wallet or forfeited with it (credit).

Consuming a credit note is posted with the invoice that consumes it; a payment with its invoice's ``Paid``.
``post`` (invoices) and ``post_credit_note`` are pure folds: given an event and what the books know of its invoice (a ``Book``), it returns the book
after the event and the postings it makes. Every posting set balances (Σ debits = Σ credits), and a customer's
``receivable`` equals the due amounts of their finalized invoices. The ledger projection runs this fold over
the Billing log; tests run it over events from the Billing application in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from uuid import UUID

from domain.applied_coupon import CouponUse
from domain.credit_note import CreditNote, coupons_adjustment_cents
from domain.fee import Fee
from domain.invoice import AppliedCredit, Invoice, tax_lines, total_due, totals
from domain.wallet import GIVEN_BACK, Wallet, WalletUse


@dataclass(frozen=True)
class Posting:
    account: str
    debit_cents: int
    credit_cents: int
    currency: str
    customer_id: UUID | None = None


@dataclass(frozen=True)
class Book:
    """What the ledger keeps of one invoice between its events."""

    customer_id: UUID
    currency: str
    fees: tuple[Fee, ...] = ()
    coupons: tuple[CouponUse, ...] = ()
    credits: tuple[AppliedCredit, ...] = ()
    prepaid: tuple[WalletUse, ...] = ()
    status: str = "draft"
    payment_status: str = "pending"
    paid_cents: int = 0
    offset_cents: int = 0
    settled_outside_cents: int = 0  # marked paid with no payment recorded: posted to cash
    finalized: tuple[Posting, ...] = field(default_factory=tuple)

    @property
    def total_cents(self) -> int:
        return totals(self.fees, self.credits, self.coupons, self.prepaid).total_amount_cents

    @property
    def due_cents(self) -> int:
        if self.status != "finalized":
            return 0
        return total_due(self.total_cents, self.status, self.payment_status, self.offset_cents, self.paid_cents)


def balanced(postings: Sequence[Posting]) -> bool:
    return sum(p.debit_cents for p in postings) == sum(p.credit_cents for p in postings)


def revenue_account(fee: Fee) -> str:
    if fee.fee_type == "subscription":
        return f"revenue:subscription:{fee.item_code}"
    if fee.fee_type == "charge":
        return f"revenue:charge:{fee.item_code}"
    if fee.fee_type == "add_on":
        return f"revenue:add_on:{fee.item_code}"
    if fee.fee_type == "credit":
        return "prepaid_credit_pending"  # purchased credits are a liability until used, not revenue
    return f"revenue:{fee.fee_type}"


def post(event: Any, book: Book | None) -> tuple[Book | None, list[Posting]]:
    """The book after ``event`` and the postings it makes (none for events that move no money)."""
    if isinstance(event, Invoice.Issued):
        return Book(event.customer_id, event.currency, fees=event.fees), []
    if book is None:
        return None, []
    if isinstance(event, Invoice.Refreshed):
        return replace(book, fees=event.fees), []
    if isinstance(event, Invoice.Discounted):
        return replace(book, fees=event.fees, coupons=event.coupons), []
    if isinstance(event, Invoice.Credited):
        return replace(book, credits=event.credits), []
    if isinstance(event, Invoice.Prepaid):
        return replace(book, prepaid=event.uses), []
    if isinstance(event, Invoice.Finalized):
        postings = _finalized(book)
        status = "succeeded" if book.total_cents <= 0 else book.payment_status
        return replace(book, status="finalized", payment_status=status, finalized=tuple(postings)), postings
    if isinstance(event, Invoice.Offset):
        return replace(book, offset_cents=book.offset_cents + event.amount_cents), []
    if isinstance(event, Invoice.Paid):
        paid = book.paid_cents + event.amount_cents
        status = "succeeded" if paid + book.offset_cents >= book.total_cents else book.payment_status
        postings = [Posting("cash", event.amount_cents, 0, book.currency),
                    Posting("receivable", 0, event.amount_cents, book.currency, book.customer_id)]
        return replace(book, paid_cents=paid, payment_status=status), postings
    if isinstance(event, Invoice.PaymentStatusChanged):
        return _status_changed(book, event.payment_status)
    if isinstance(event, Invoice.Voided):
        reversed_ = [Posting(p.account, p.credit_cents, p.debit_cents, p.currency, p.customer_id) for p in book.finalized]
        if book.settled_outside_cents:
            reversed_ += _settled(book, -book.settled_outside_cents)
        return replace(book, status="voided", settled_outside_cents=0), reversed_
    if isinstance(event, Invoice.Deleted):
        return replace(book, status="deleted"), []
    return book, []


def _finalized(book: Book) -> list[Posting]:
    """Dr receivable (what is owed), discounts (coupons), customer credit (credit notes used);
    Cr revenue per fee and tax payable per tax."""
    figures = totals(book.fees, book.credits, book.coupons, book.prepaid)
    customer, currency = book.customer_id, book.currency
    postings = [Posting(revenue_account(f), 0, f.amount_cents, currency) for f in book.fees if f.amount_cents]
    postings += _taxes(tax_lines(book.fees), figures.taxes_amount_cents, currency, credit=True)
    if figures.progressive_billing_credit_amount_cents:  # billed before by invoice_now: not revenue twice
        postings.append(Posting("revenue:billed_early", figures.progressive_billing_credit_amount_cents, 0, currency))
    if figures.coupons_amount_cents:
        postings.append(Posting("discounts", figures.coupons_amount_cents, 0, currency))
    if figures.credit_notes_amount_cents:
        postings.append(Posting("customer_credit", figures.credit_notes_amount_cents, 0, currency, customer))
    if figures.prepaid_credit_amount_cents:
        postings.append(Posting("prepaid_credit", figures.prepaid_credit_amount_cents, 0, currency, customer))
    postings.append(Posting("receivable", figures.total_amount_cents, 0, currency, customer))
    return postings


def _taxes(lines: Sequence[Any], total_cents: int, currency: str, *, credit: bool) -> list[Posting]:
    """One posting per tax code, each its line's part of the total (ADR 0029); any cent a caller's total differs by
    goes to the largest."""
    amounts = {line.code: line.amount_cents for line in lines}
    if amounts:
        largest = max(amounts, key=lambda code: amounts[code])
        amounts[largest] += total_cents - sum(amounts.values())
    return [Posting(f"tax_payable:{code}", 0 if credit else cents, cents if credit else 0, currency)
            for code, cents in amounts.items() if cents]


def _status_changed(book: Book, status: str) -> tuple[Book, list[Posting]]:
    """Marked paid with nothing recorded: what was due is settled in cash; marked unpaid again: undone."""
    if book.status != "finalized":
        return replace(book, payment_status=status), []
    if status == "succeeded" and book.payment_status != "succeeded":
        settled = book.due_cents
        return replace(book, payment_status=status, settled_outside_cents=settled), _settled(book, settled)
    if status != "succeeded" and book.payment_status == "succeeded" and book.settled_outside_cents:
        undone = book.settled_outside_cents
        return replace(book, payment_status=status, settled_outside_cents=0), _settled(book, -undone)
    return replace(book, payment_status=status), []


def _settled(book: Book, cents: int) -> list[Posting]:
    if cents == 0:
        return []
    if cents > 0:
        return [Posting("cash", cents, 0, book.currency), Posting("receivable", 0, cents, book.currency, book.customer_id)]
    return [Posting("cash", 0, -cents, book.currency), Posting("receivable", -cents, 0, book.currency, book.customer_id)]


@dataclass(frozen=True)
class NoteBook:
    """What the ledger keeps of one credit note between its events."""

    customer_id: UUID
    currency: str


def post_credit_note(event: Any, book: NoteBook | None) -> tuple[NoteBook | None, list[Posting]]:
    """A credit note gives back revenue and its taxes as credit, refund or offset of the receivable; voiding it
    takes back the credit left; credit it gives back to a voided invoice's customer is the invoice's reversal."""
    if isinstance(event, CreditNote.Created):
        currency, customer = event.currency, event.customer_id
        credited = [replace(i.fee, amount_cents=i.amount_cents, precise_coupons_amount_cents=i.precise_coupons_cents)
                    for i in event.items]
        adjustment = coupons_adjustment_cents(event.items)
        split = event.split
        given = split.credit_amount_cents + split.refund_amount_cents + split.offset_amount_cents
        revenue = given + adjustment - event.taxes_amount_cents  # the items, less a manual split's cent of rounding
        postings = [Posting("revenue:credit_notes", revenue, 0, currency)] if revenue else []
        if adjustment:  # the coupons' share of the items is not given back: that much discount is undone
            postings.append(Posting("discounts", 0, adjustment, currency))
        postings += _taxes(tax_lines(credited), event.taxes_amount_cents, currency, credit=False)
        for account, cents in (("customer_credit", split.credit_amount_cents),
                               ("refunds_payable", split.refund_amount_cents),
                               ("receivable", split.offset_amount_cents)):
            if cents:
                postings.append(Posting(account, 0, cents, currency, customer))
        return NoteBook(customer, currency), postings
    if isinstance(event, CreditNote.Voided) and book is not None and event.withdrawn_cents > 0:
        return book, [Posting("customer_credit", event.withdrawn_cents, 0, book.currency, book.customer_id),
                      Posting("credit_notes_withdrawn", 0, event.withdrawn_cents, book.currency)]
    return book, []


@dataclass(frozen=True)
class WalletBook:
    """What the ledger keeps of one wallet: whose it is, and purchases waiting to settle."""

    customer_id: UUID
    currency: str
    pending: tuple[tuple[UUID, int], ...] = ()


def post_wallet(event: Any, book: WalletBook | None) -> tuple[WalletBook | None, list[Posting]]:
    """Granted credits are a promotion owed to the customer; purchased ones move from pending to held when settled;
    voided and forfeited credits leave the liability. Consumption and give-backs are posted with their invoices."""
    if isinstance(event, Wallet.Opened):
        return WalletBook(event.customer_id, event.currency), []
    if book is None:
        return None, []
    currency, customer = book.currency, book.customer_id
    if isinstance(event, Wallet.Moved):
        t = event.transaction
        if t.transaction_type == "inbound" and t.transaction_status == "purchased" and t.status == "pending":
            return replace(book, pending=(*book.pending, (t.id, t.amount_cents))), []
        if t.transaction_type == "inbound" and t.transaction_status == "granted" and t.source != GIVEN_BACK:
            return book, _pair("promotions", "prepaid_credit", t.amount_cents, currency, customer, credit_customer=True)
        if t.transaction_type == "outbound" and t.transaction_status == "voided":
            return book, _pair("prepaid_credit", "prepaid_credit_voided", t.amount_cents, currency, customer,
                               credit_customer=False)
        return book, []
    if isinstance(event, Wallet.Settled):
        amount = dict(book.pending).get(event.transaction_id, 0)
        remaining = tuple(p for p in book.pending if p[0] != event.transaction_id)
        return replace(book, pending=remaining), _pair("prepaid_credit_pending", "prepaid_credit", amount, currency,
                                                       customer, credit_customer=True)
    if isinstance(event, Wallet.Terminated):
        return book, _pair("prepaid_credit", "prepaid_credit_expired", event.forfeited_cents, currency, customer,
                           credit_customer=False)
    return book, []


def _pair(debit: str, credit: str, cents: int, currency: str, customer: UUID, *, credit_customer: bool) -> list[Posting]:
    """Two postings of ``cents``; the prepaid-credit side names the customer."""
    if cents <= 0:
        return []
    return [Posting(debit, cents, 0, currency, None if credit_customer else customer),
            Posting(credit, 0, cents, currency, customer if credit_customer else None)]
