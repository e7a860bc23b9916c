"""The ledger's rules over the Billing application in memory: any sequence of invoices, coupons, credit notes,
wallet top-ups and consumption, and payments keeps the books balanced, each customer's receivable equal to what
their invoices still owe, and their prepaid credit equal to their wallets' balances."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.application import Billing
from domain.credit_note import CreditNote
from domain.errors import BillingError
from domain.fee import AppliedTax
from domain.invoice import Invoice
from domain.ledger import (
    Book,
    NoteBook,
    Posting,
    balanced,
    post,
    post_credit_note,
    post_wallet,
)
from domain.period_close import TaxTable
from domain.wallet import Wallet

START = datetime(2026, 4, 1, 9, tzinfo=UTC)
VAT = AppliedTax(tax_id=UUID(int=7), code="vat", name="VAT", rate=Decimal("19.6"))
TAXES = TaxTable({"vat": VAT}, (VAT,), ())


class World:
    """A Billing application in memory, one organization with two customers, and the books kept from its log."""

    def __init__(self) -> None:
        self.billing = Billing(env={"MAPPER_TOPIC": "interfaces.event_codec:MsgspecMapper"}, new_id=uuid4)
        self.org = self.billing.create_organization("Ledger Test").organization_id
        self.now = START
        for customer in ("ann", "bob"):
            self.billing.upsert_customer(self.org, {"external_id": customer, "name": customer, "currency": "USD"}, self.now)
        self.billing.create_plan(self.org, {"name": "Ahead", "code": "ahead", "interval": "monthly", "amount_cents": 3_000,
                                            "amount_currency": "USD", "pay_in_advance": True}, self.now)
        self.billing.create_add_on(self.org, {"name": "Setup", "code": "setup", "amount_cents": 1_234, "amount_currency": "USD"})
        for code, terms in (("fixed", {"coupon_type": "fixed_amount", "amount_cents": 2_500, "amount_currency": "USD"}),
                            ("pct", {"coupon_type": "percentage", "percentage_rate": "15"})):
            self.billing.create_coupon(self.org, {"name": code, "code": code, "frequency": "recurring",
                                                  "frequency_duration": 2, **terms}, self.now)
        self.invoices: list[UUID] = []
        self.notes: list[UUID] = []
        self.subscriptions: list[tuple[str, UUID]] = []
        self.wallets: list[UUID] = []
        self.books: dict[UUID, Any] = {}
        self.postings: list[Posting] = []
        self.position = 0
        self.steps = 0

    def run(self, operation: tuple[str, int, int]) -> None:
        kind, a, b = operation
        self.steps += 1
        self.now += timedelta(hours=5)
        customer = ("ann", "bob")[a % 2]
        try:
            getattr(self, kind)(customer, a, b)
        except BillingError:
            pass  # refused (nothing due, not voidable, already applied…): stores nothing, moves no money

    def subscribe(self, customer: str, a: int, b: int) -> None:
        external = f"sub-{self.steps}"
        subscription = self.billing.create_subscription(
            self.org, {"external_customer_id": customer, "plan_code": "ahead", "external_id": external}, self.now)
        self.subscriptions.append((external, subscription))
        issued = self.billing.invoice_start(subscription, TAXES, (0, 0), self.now)
        if issued:
            self.invoices.append(issued)

    def terminate(self, customer: str, a: int, b: int) -> None:
        if not self.subscriptions:
            return
        external, subscription = self.subscriptions.pop(a % len(self.subscriptions))
        policy = ("credit", "refund", "offset", "skip")[b % 4]
        self.billing.terminate_subscription(self.org, external, self.now, policies={"on_termination_credit_note": policy})
        final = self.billing.invoice_termination(subscription, [], TAXES, (0, 0), self.now)
        if final:
            self.invoices.append(final)

    def one_off(self, customer: str, a: int, b: int) -> None:
        self.invoices.append(self.billing.issue_one_off(
            self.org, customer, "USD", [{"add_on_code": "setup", "units": str(1 + b % 3)}], TAXES, self.now))

    def coupon(self, customer: str, a: int, b: int) -> None:
        self.billing.apply_coupon(self.org, {"external_customer_id": customer, "coupon_code": ("fixed", "pct")[b % 2]},
                                  self.now)

    def pay(self, customer: str, a: int, b: int) -> None:
        due = [i for i in self.invoices if self.billing.invoice(self.org, i).total_due_amount_cents > 0]
        if due:
            invoice = self.billing.invoice(self.org, due[a % len(due)])
            amount = max(1, invoice.total_due_amount_cents * (1 + b % 4) // 4)
            self.billing.record_payment(self.org, {"invoice_id": str(invoice.id), "amount_cents": amount,
                                                   "reference": f"r{self.steps}"}, self.now)

    def mark(self, customer: str, a: int, b: int) -> None:
        if self.invoices:
            self.billing.update_invoice(self.org, self.invoices[a % len(self.invoices)],
                                        payment_status=("succeeded", "pending", "failed")[b % 3], metadata=None,
                                        now=self.now)

    def void(self, customer: str, a: int, b: int) -> None:
        if self.invoices:
            self.billing.void_invoice(self.org, self.invoices[a % len(self.invoices)], self.now)

    def wallet(self, customer: str, a: int, b: int) -> None:
        self.wallets.append(self.billing.create_wallet(self.org, {
            "external_customer_id": customer, "currency": "USD", "rate_amount": ("1", "0.5", "2.25")[b % 3],
            "paid_credits": str(a % 20), "granted_credits": str(b % 7), "priority": a % 3,
            "invoice_requires_successful_payment": b % 2 == 0}, self.now))

    def top_up(self, customer: str, a: int, b: int) -> None:
        if self.wallets:
            kind = ("paid_credits", "granted_credits", "voided_credits")[b % 3]
            self.billing.top_up_wallet(self.org, {"wallet_id": str(self.wallets[a % len(self.wallets)]),
                                                  kind: str(1 + a % 30)}, self.now)

    def end_wallet(self, customer: str, a: int, b: int) -> None:
        if self.wallets:
            self.billing.terminate_wallet(self.org, self.wallets[a % len(self.wallets)], self.now)

    def manual_note(self, customer: str, a: int, b: int) -> None:
        finalized = [i for i in self.invoices if self.billing.invoice(self.org, i).status == "finalized"]
        if not finalized:
            return
        invoice = self.billing.invoice(self.org, finalized[a % len(finalized)])
        fees = [f for f in invoice.fees if f.amount_cents - invoice.credited.get(f.id, 0) > 0]
        if not fees:
            return
        fee = fees[b % len(fees)]
        amount = max(1, (fee.amount_cents - invoice.credited.get(fee.id, 0)) * (1 + a % 4) // 4)
        body = {"invoice_id": str(invoice.id), "items": [{"fee_id": str(fee.id), "amount_cents": amount}]}
        _, found = self.billing.estimate_credit_note(self.org, body)
        offset = min(found.max_offsettable_cents, found.total_cents) if b % 3 == 0 else 0
        refund = min(found.max_refundable_cents, found.total_cents - offset) if b % 3 == 1 else 0
        self.billing.create_credit_note(self.org, {**body, "offset_amount_cents": offset, "refund_amount_cents": refund,
                                                   "credit_amount_cents": found.total_cents - offset - refund}, self.now)

    def void_note(self, customer: str, a: int, b: int) -> None:
        notes = [e.originator_id for e in self._events() if isinstance(e, CreditNote.Created)]
        if notes:
            self.billing.void_credit_note(self.org, notes[a % len(notes)], self.now)

    def _events(self) -> list[Any]:
        return [self.billing.mapper.to_domain_event(n)
                for n in self.billing.recorder.select_notifications(start=1, limit=1_000_000)]

    def keep_books(self) -> list[list[Posting]]:
        """Post every event not posted yet; returns each event's postings."""
        posted = []
        notifications = self.billing.recorder.select_notifications(start=self.position + 1, limit=1_000_000)
        for notification in notifications:
            self.position = notification.id
            event = self.billing.mapper.to_domain_event(notification)
            if isinstance(event, Invoice.Event):
                self.books[event.originator_id], postings = post(event, self.books.get(event.originator_id))
                if isinstance(event, Invoice.Issued):
                    self.invoices.append(event.originator_id) if event.originator_id not in self.invoices else None
            elif isinstance(event, CreditNote.Event):
                self.books[event.originator_id], postings = post_credit_note(event, self.books.get(event.originator_id))
            elif isinstance(event, Wallet.Event):
                self.books[event.originator_id], postings = post_wallet(event, self.books.get(event.originator_id))
            else:
                continue
            self.postings.extend(postings)
            posted.append(postings)
        return posted


OPERATIONS = st.tuples(
    st.sampled_from(["subscribe", "subscribe", "terminate", "one_off", "coupon", "pay", "pay", "mark", "void",
                     "void_note", "wallet", "top_up", "top_up", "end_wallet", "manual_note", "manual_note"]),
    st.integers(0, 50), st.integers(0, 50))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPERATIONS, min_size=1, max_size=18))
def test_any_sequence_keeps_the_books_balanced_and_receivables_equal_to_what_is_due(
        operations: list[tuple[str, int, int]]) -> None:
    world = World()
    world.keep_books()
    for operation in operations:
        world.run(operation)

        for postings in world.keep_books():
            assert balanced(postings), postings
        receivable: dict[UUID | None, int] = defaultdict(int)
        for p in world.postings:
            if p.account == "receivable":
                receivable[p.customer_id] += p.debit_cents - p.credit_cents
        due: dict[UUID | None, int] = defaultdict(int)
        for invoice_id in world.invoices:
            invoice = world.billing.invoice(world.org, invoice_id) if _exists(world, invoice_id) else None
            if invoice is not None and invoice.status == "finalized":
                due[invoice.customer_id] += invoice.total_due_amount_cents
        assert {k: v for k, v in receivable.items() if v} == {k: v for k, v in due.items() if v}
        held: dict[UUID | None, int] = defaultdict(int)
        for p in world.postings:
            if p.account == "prepaid_credit":
                held[p.customer_id] += p.credit_cents - p.debit_cents
        balances: dict[UUID | None, int] = defaultdict(int)
        for wallet_id in world.wallets:
            wallet = world.billing.wallet(world.org, wallet_id)
            balances[wallet.customer_id] += wallet.balance_cents
        assert {k: v for k, v in held.items() if v} == {k: v for k, v in balances.items() if v}
        assert sum(p.debit_cents for p in world.postings) == sum(p.credit_cents for p in world.postings)
    world.billing.close()


def _exists(world: World, invoice_id: UUID) -> bool:
    try:
        world.billing.invoice(world.org, invoice_id)
    except BillingError:
        return False
    return True


def test_an_invoice_posts_revenue_taxes_discounts_and_credit_against_the_receivable() -> None:
    """One-off 2 × 1,234 = 2,468 with 19.6 % VAT (483.73 → 484): receivable 2,952, revenue 2,468, VAT 484."""
    world = World()
    world.one_off("ann", 0, 1)
    world.keep_books()

    accounts: dict[str, int] = defaultdict(int)
    for p in world.postings:
        accounts[p.account] += p.debit_cents - p.credit_cents

    assert dict(accounts) == {"revenue:add_on:setup": -2_468, "tax_payable:vat": -484, "receivable": 2_952}
    assert isinstance(world.books[world.invoices[0]], Book)
    assert not any(isinstance(b, NoteBook) for b in world.books.values())
