"""Wallets: prepaid credits a customer's invoices consume (reference §2.9, semantics I4 step 6).

A wallet holds credits in one currency; one credit is worth ``rate_amount`` currency units.
Credits come in as *granted* (free, settled at once) or *purchased* (a ``credit`` invoice is
issued; the credits settle when it is finalized, or when it is paid if the wallet requires a
successful payment). Finalized invoices consume wallets after credit notes: by priority, then
age, each limited to the fee types and metrics it applies to. Credits may be voided. Every
movement is a wallet transaction, recorded on the wallet (its id derives from the wallet and
its place there).

Balances are kept in minor units; credits are shown as balance ÷ (rate × 10^decimals), floored
to 5 decimals as Lago does. The arithmetic (conversions, what a wallet may take of each fee) is
``domain.money``'s (ADR 0029).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain import identity, money
from domain.errors import NotAllowed, NotFound
from domain.fee import Fee

ACTIVE, TERMINATED = "active", "terminated"
GIVEN_BACK = "invoice_voided"  # the source of credits a voided invoice returns


class WalletNotFound(NotFound):
    resource = "wallet"


class WalletTransactionNotFound(NotFound):
    resource = "wallet_transaction"


class WalletTerminated(NotAllowed):
    code = "wallet_is_terminated"


@dataclass(frozen=True)
class RecurringRule:
    """Lago's recurring top-up: every interval, or when the balance falls to a threshold."""

    id: UUID
    trigger: str  # interval | threshold
    method: str = "fixed"  # fixed | target
    interval: str | None = None
    paid_credits: Decimal = Decimal(0)
    granted_credits: Decimal = Decimal(0)
    threshold_credits: Decimal | None = None
    target_ongoing_balance: Decimal | None = None
    started_at: datetime | None = None


@dataclass(frozen=True)
class WalletTerms:
    name: str | None
    code: str | None
    priority: int = 50
    expiration_at: datetime | None = None
    invoice_requires_successful_payment: bool = False
    fee_types: tuple[str, ...] = ()
    billable_metric_codes: tuple[str, ...] = ()
    recurring_rules: tuple[RecurringRule, ...] = ()
    paid_top_up_min_amount_cents: int | None = None
    paid_top_up_max_amount_cents: int | None = None
    metadata: tuple[tuple[str, str | None], ...] = ()


@dataclass(frozen=True)
class WalletTransaction:
    id: UUID
    transaction_type: str  # inbound | outbound
    transaction_status: str  # purchased | granted | voided | invoiced
    status: str  # pending | settled | failed
    amount_cents: int
    created_at: datetime
    settled_at: datetime | None = None
    invoice_id: UUID | None = None
    source: str = "manual"  # manual | interval | threshold
    name: str | None = None




@dataclass(frozen=True)
class WalletCandidate:
    id: UUID
    priority: int
    created_at: datetime
    balance_cents: int
    fee_types: tuple[str, ...]
    billable_metric_codes: tuple[str, ...]


@dataclass(frozen=True)
class WalletUse:
    wallet_id: UUID
    amount_cents: int


def spend(fees: Sequence[Fee], credit_notes_cents: int, total_cents: int,
          wallets: Sequence[WalletCandidate]) -> tuple[WalletUse, ...]:
    """I4 step 6: wallets by priority then age, each on the fees it applies to. ``total_cents`` is what the invoice
    still owes after its credit notes. What it owed before them is apportioned over the fees (each by its amount
    after coupons, with its part of the invoice's tax), then the credit notes over those parts: a fee can take at
    most its part less its credit-note share, the whole at most the total. The parts are whole minor units adding
    up to the total, so a wallet applying to every fee with balance enough pays it all (ADR 0029)."""
    gross = {fee.id: fee.taxable_cents + fee.taxes_amount_cents for fee in fees}
    owed = money.apportion(total_cents + credit_notes_cents, gross)
    credited = money.apportion(min(credit_notes_cents, sum(owed.values())), {k: Decimal(v) for k, v in owed.items()})
    left = {fee_id: owed[fee_id] - credited[fee_id] for fee_id in owed}
    remaining = total_cents
    uses: list[WalletUse] = []
    for wallet in sorted(wallets, key=lambda w: (w.priority, w.created_at)):
        if remaining <= 0:
            break
        caps = {fee.id: left[fee.id] for fee in fees if _applies(wallet, fee) and left[fee.id] > 0}
        amount, taken = money.consume(wallet.balance_cents, caps, remaining)
        if amount <= 0:
            continue
        for fee_id, cents in taken.items():
            left[fee_id] -= cents
        remaining -= amount
        uses.append(WalletUse(wallet.id, amount))
    return tuple(uses)


def _applies(wallet: WalletCandidate, fee: Fee) -> bool:
    """Lago's ``applies_to``: no limit, or the fee's type is listed, or it is a charge of a listed metric."""
    if not wallet.fee_types and not wallet.billable_metric_codes:
        return True
    return fee.fee_type in wallet.fee_types or (fee.fee_type == "charge" and fee.item_code in wallet.billable_metric_codes)


class Wallet(Aggregate):
    """A customer's prepaid credits in one currency."""

    @staticmethod
    def create_id(organization_id: UUID, customer_id: UUID, number: int) -> UUID:
        return identity.scoped_id(organization_id, "wallet", f"{customer_id}/{number}")

    @event("Opened")
    def __init__(self, organization_id: UUID, customer_id: UUID, number: int, currency: str, rate_amount: Decimal,
                 terms: WalletTerms, opened_at: datetime) -> None:
        """``number``: the customer's how-many-th wallet (its id derives from it)."""
        self.organization_id = organization_id
        self.customer_id = customer_id
        self.currency = currency
        self.rate_amount = rate_amount
        self.terms = terms
        self.opened_at = opened_at
        self.status = ACTIVE
        self.terminated_at: datetime | None = None
        self.balance_cents = 0
        self.consumed_cents = 0
        self.transactions: tuple[WalletTransaction, ...] = ()
        self.last_consumed_at: datetime | None = None

    def candidate(self, now: datetime) -> WalletCandidate | None:
        if self.status != ACTIVE or self.balance_cents <= 0:
            return None
        if self.terms.expiration_at is not None and self.terms.expiration_at <= now:
            return None
        return WalletCandidate(self.id, self.terms.priority, self.opened_at, self.balance_cents, self.terms.fee_types,
                               self.terms.billable_metric_codes)

    def transaction(self, transaction_id: UUID) -> WalletTransaction:
        for found in self.transactions:
            if found.id == transaction_id:
                return found
        raise WalletTransactionNotFound(key=transaction_id)

    def next_transaction_id(self) -> UUID:
        """The id the wallet's next transaction will have (a credit invoice is keyed by it)."""
        return uuid5(self.id, f"transaction/{len(self.transactions) + 1}")

    def _active(self) -> None:
        if self.status != ACTIVE:
            raise WalletTerminated(f"wallet {self.id} is terminated")

    def grant(self, amount_cents: int, at: datetime, *, source: str = "manual", name: str | None = None) -> UUID:
        """Free credits: settled at once."""
        self._active()
        transaction_id = self.next_transaction_id()
        self._moved(transaction=WalletTransaction(transaction_id, "inbound", "granted", "settled", amount_cents, at, at,
                                                  source=source, name=name))
        return transaction_id

    def purchase(self, amount_cents: int, invoice_id: UUID, at: datetime, *, source: str = "manual",
                 name: str | None = None) -> UUID:
        """Paid credits: pending until their credit invoice settles them (``settle``)."""
        self._active()
        transaction_id = self.next_transaction_id()
        self._moved(transaction=WalletTransaction(transaction_id, "inbound", "purchased", "pending", amount_cents, at,
                                                  invoice_id=invoice_id, source=source, name=name))
        return transaction_id

    def settle(self, transaction_id: UUID, at: datetime) -> None:
        """A purchase's invoice is finalized (or paid, when the wallet requires it): its credits are usable."""
        if self.transaction(transaction_id).status == "pending":
            self._settled(transaction_id=transaction_id, at=at)

    @event("Settled")
    def _settled(self, transaction_id: UUID, at: datetime) -> None:
        found = self.transaction(transaction_id)
        self.transactions = tuple(replace(t, status="settled", settled_at=at) if t.id == transaction_id else t
                                  for t in self.transactions)
        self.balance_cents += found.amount_cents

    def void_credits(self, amount_cents: int, at: datetime) -> UUID:
        """Take credits out of the wallet (never more than it holds)."""
        self._active()
        transaction_id = self.next_transaction_id()
        amount = min(amount_cents, self.balance_cents)
        self._moved(transaction=WalletTransaction(transaction_id, "outbound", "voided", "settled", amount, at, at))
        return transaction_id

    def consume(self, invoice_id: UUID, amount_cents: int, at: datetime) -> UUID:
        """A finalized invoice uses ``amount_cents`` of the balance (I4 step 6)."""
        transaction_id = self.next_transaction_id()
        self._moved(transaction=WalletTransaction(transaction_id, "outbound", "invoiced", "settled", amount_cents, at, at,
                                                  invoice_id=invoice_id))
        return transaction_id

    def give_back(self, invoice_id: UUID, amount_cents: int, at: datetime) -> UUID:
        """A voided invoice returns the credits it consumed (as Lago)."""
        transaction_id = self.next_transaction_id()
        self._moved(transaction=WalletTransaction(transaction_id, "inbound", "granted", "settled", amount_cents, at, at,
                                                  invoice_id=invoice_id, source=GIVEN_BACK))
        return transaction_id

    @event("Moved")
    def _moved(self, transaction: WalletTransaction) -> None:
        self.transactions = (*self.transactions, transaction)
        if transaction.status != "settled":
            return
        if transaction.transaction_type == "inbound":
            self.balance_cents += transaction.amount_cents
        else:
            self.balance_cents -= transaction.amount_cents
            if transaction.transaction_status == "invoiced":
                self.consumed_cents += transaction.amount_cents
                self.last_consumed_at = transaction.created_at

    def update(self, terms: WalletTerms) -> None:
        self._active()
        if terms != self.terms:
            self._updated(terms=terms)

    @event("Updated")
    def _updated(self, terms: WalletTerms) -> None:
        self.terms = terms

    def terminate(self, at: datetime) -> None:
        """No more credits in or out; what is left is forfeited (posted as expired)."""
        if self.status == ACTIVE:
            self._terminated(at=at, forfeited_cents=self.balance_cents)

    @event("Terminated")
    def _terminated(self, at: datetime, forfeited_cents: int) -> None:
        self.status = TERMINATED
        self.terminated_at = at
        self.balance_cents = 0


def terms_from(changes: Mapping[str, object], current: WalletTerms | None = None) -> WalletTerms:
    """Wallet terms from Lago's request fields; fields not sent keep their current values."""
    base = current or WalletTerms(name=None, code=None)
    applies = changes.get("applies_to") if isinstance(changes.get("applies_to"), Mapping) else None
    return replace(
        base,
        name=changes.get("name", base.name),  # type: ignore[arg-type]
        code=changes.get("code", base.code),  # type: ignore[arg-type]
        priority=int(changes.get("priority") or base.priority),  # type: ignore[call-overload]
        expiration_at=changes.get("expiration_at", base.expiration_at),  # type: ignore[arg-type]
        invoice_requires_successful_payment=bool(changes.get("invoice_requires_successful_payment",
                                                             base.invoice_requires_successful_payment)),
        fee_types=tuple(applies.get("fee_types") or ()) if applies is not None else base.fee_types,  # type: ignore[union-attr]
        billable_metric_codes=(tuple(applies.get("billable_metric_codes") or ())  # type: ignore[union-attr]
                               if applies is not None else base.billable_metric_codes),
        paid_top_up_min_amount_cents=changes.get("paid_top_up_min_amount_cents", base.paid_top_up_min_amount_cents),  # type: ignore[arg-type]
        paid_top_up_max_amount_cents=changes.get("paid_top_up_max_amount_cents", base.paid_top_up_max_amount_cents),  # type: ignore[arg-type]
        metadata=(tuple(sorted(dict(changes["metadata"]).items()))  # type: ignore[call-overload]
                  if isinstance(changes.get("metadata"), Mapping) else base.metadata),
    )
