"""Credit notes: money given back on a finalized invoice, as credit, refund or offset (semantics P5, P6, I4, I5).

A credit note names the fees of one invoice it gives back (pre-tax), adds their taxes, and
splits the total three ways: *credit* becomes the customer's credit balance, which later
invoices consume when they are finalized (oldest note first, I4 step 5); *refund* is paid
back, only up to what was paid; *offset* lowers what is still due on the invoice itself.
Its number is the invoice's number with ``-CN`` and the note's place on that invoice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain import identity, money
from domain.errors import NotAllowed, NotFound, Problems, ValidationFailed
from domain.fee import Fee
from domain.periods import Period
from domain.subscription_fee import unused_window

AVAILABLE, CONSUMED, VOIDED = "available", "consumed", "voided"
REASONS = ("duplicated_charge", "product_unsatisfactory", "order_change", "order_cancellation", "fraudulent_charge",
           "other")
POLICIES = ("credit", "refund", "offset", "skip")
REFUND_STATUSES = ("pending", "succeeded", "failed")


class CreditNoteNotFound(NotFound):
    resource = "credit_note"


class CreditNoteNotVoidable(NotAllowed):
    code = "no_voidable_amount"


@dataclass(frozen=True)
class CreditNoteItem:
    """One fee given back, pre-tax, with the fee as it was invoiced."""

    id: UUID
    fee: Fee
    amount_cents: int
    precise_amount_cents: Decimal
    precise_coupons_cents: Decimal = Decimal(0)  # the fee's coupon share of this amount, not given back (I5)

    @property
    def taxable_cents(self) -> Decimal:
        return Decimal(self.amount_cents) - self.precise_coupons_cents

    @property
    def taxes_precise_amount_cents(self) -> Decimal:
        return money.taxes_precise(self.taxable_cents, (t.rate for t in self.fee.taxes))


@dataclass(frozen=True)
class Split:
    """How a credit note's total is given back."""

    credit_amount_cents: int
    refund_amount_cents: int
    offset_amount_cents: int


@dataclass(frozen=True)
class Consumption:
    """Credit used by a later invoice (I4 step 5)."""

    invoice_id: UUID
    amount_cents: int


def termination_item(fee: Fee, terminated_at: datetime, timezone: str, *, upgraded: bool = False) -> CreditNoteItem | None:
    """The unused days of an in-advance subscription fee after a termination, at the fee's own daily price (P5, P6):
    the days from the day after termination (an upgrade: from the upgrade day) to the fee's end; None if none."""
    if fee.from_at is None or fee.to_at is None or not fee.days or not fee.period_days:
        return None
    unused = unused_window(Period(fee.from_at, fee.to_at), period_days=fee.period_days, timezone=timezone,
                           terminated_at=terminated_at, upgraded=upgraded)
    if unused is None:
        return None
    precise = min(money.prorated_precise(fee.precise_amount_cents, unused.days, fee.days), Decimal(fee.amount_cents))
    if fee.precise_coupons_amount_cents and fee.amount_cents:
        precise = money.prorated_precise(precise, fee.taxable_cents, fee.amount_cents)  # coupons' share not given back (P5)
    amount = min(money.round_half_up_cents(precise), fee.amount_cents)
    if amount <= 0:
        return None
    return CreditNoteItem(id=uuid5(fee.id, f"credit/{terminated_at.isoformat()}"), fee=fee, amount_cents=amount,
                          precise_amount_cents=precise)


def credit_note_number(invoice_number: str, sequence: int) -> str:
    """``<invoice number>-CN<3-digit sequence per invoice>`` (I2)."""
    return f"{invoice_number}-CN{sequence:03d}"


def taxes_cents(items: Sequence[CreditNoteItem]) -> int:
    """The items' taxes, summed unrounded and rounded once (as an invoice's)."""
    return money.invoice_taxes_cents(i.taxes_precise_amount_cents for i in items)


def coupons_adjustment_cents(items: Sequence[CreditNoteItem]) -> int:
    """The coupons' share of the items, which the note does not give back."""
    return money.round_half_up_cents(sum((i.precise_coupons_cents for i in items), Decimal(0)))


@dataclass(frozen=True)
class Estimate:
    """What a credit note with these items would give back, and the most each part of it could be (I5)."""

    items: tuple[CreditNoteItem, ...]
    sub_total_cents: int
    coupons_adjustment_cents: int
    taxes_cents: int
    max_refundable_cents: int
    max_offsettable_cents: int

    @property
    def total_cents(self) -> int:
        return self.sub_total_cents + self.taxes_cents


def estimate(fees: Sequence[Fee], credited: Mapping[UUID, int], requested: Sequence[tuple[UUID, int]],
             paid_cents: int, due_cents: int, note_id: UUID) -> Estimate:
    """Items of a credit note on an invoice's fees: each at most what is left of its fee to credit, with the fee's
    coupon share removed and its taxes recomputed (I5). Refunds are limited to what was paid, offsets to what is due."""
    problems = Problems()
    by_id = {fee.id: fee for fee in fees}
    items: list[CreditNoteItem] = []
    problems.check(bool(requested), "items", "value_is_mandatory")
    for index, (fee_id, amount) in enumerate(requested):
        fee = by_id.get(fee_id)
        if fee is None:
            problems.add(f"items.{index}.fee_id", "fee_not_found")
            continue
        left = fee.amount_cents - credited.get(fee_id, 0)
        if amount <= 0 or amount > left:
            problems.add(f"items.{index}.amount_cents", "higher_than_creditable_fee_amount")
            continue
        share = money.prorated_precise(fee.precise_coupons_amount_cents, amount, fee.amount_cents) \
            if fee.amount_cents else Decimal(0)
        items.append(CreditNoteItem(id=uuid5(note_id, f"item/{index}"), fee=fee, amount_cents=amount,
                                    precise_amount_cents=Decimal(amount), precise_coupons_cents=share))
    problems.raise_if_any()
    adjustment = coupons_adjustment_cents(items)
    return Estimate(tuple(items), sum(i.amount_cents for i in items) - adjustment, adjustment, taxes_cents(items),
                    max(paid_cents, 0), max(due_cents, 0))


def manual_split(found: Estimate, credit: int, refund: int, offset: int) -> Split:
    """Lago's rule: credit + refund + offset is the note's total within a cent; refund ≤ paid, offset ≤ due."""
    problems = Problems()
    if abs(credit + refund + offset - found.total_cents) > 1 or min(credit, refund, offset) < 0:
        problems.add("base", "does_not_match_item_amounts")
    problems.check(refund <= found.max_refundable_cents, "refund_amount_cents", "higher_than_remaining_invoice_amount")
    problems.check(offset <= found.max_offsettable_cents, "offset_amount_cents", "higher_than_remaining_invoice_amount")
    problems.raise_if_any()
    return Split(credit, refund, offset)


def split(total_cents: int, policy: str, *, paid_cents: int, due_cents: int) -> Split:
    """Lago's termination policies: ``refund`` up to what was paid, ``offset`` up to what is due, the rest credit."""
    if policy == "refund":
        refund = min(total_cents, max(paid_cents, 0))
        return Split(total_cents - refund, refund, 0)
    if policy == "offset":
        offset = min(total_cents, max(due_cents, 0))
        return Split(total_cents - offset, 0, offset)
    return Split(total_cents, 0, 0)


class CreditNote(Aggregate):
    """Money given back on one finalized invoice."""

    @staticmethod
    def create_id(organization_id: UUID, key: str) -> UUID:
        """Deterministic: the credit for one termination is created once, however often it is asked for."""
        return identity.scoped_id(organization_id, "credit_note", key)

    @event("Created")
    def __init__(
        self,
        organization_id: UUID,
        key: str,
        invoice_id: UUID,
        invoice_number: str,
        customer_id: UUID,
        currency: str,
        number: str,
        sequential_id: int,
        issuing_date: date,
        reason: str,
        description: str | None,
        items: tuple[CreditNoteItem, ...],
        taxes_amount_cents: int,
        split: Split,
    ) -> None:
        self.organization_id = organization_id
        self.key = key
        self.invoice_id = invoice_id
        self.invoice_number = invoice_number
        self.customer_id = customer_id
        self.currency = currency
        self.number = number
        self.sequential_id = sequential_id
        self.issuing_date = issuing_date
        self.reason = reason
        self.description = description
        self.items = items
        self.taxes_amount_cents = taxes_amount_cents
        self.split = split
        self.balance_amount_cents = split.credit_amount_cents
        self.credit_status = AVAILABLE if split.credit_amount_cents > 0 else CONSUMED
        self.refund_status = "pending" if split.refund_amount_cents > 0 else None
        self.consumptions: tuple[Consumption, ...] = ()
        self.voided_at: datetime | None = None
        self.metadata: dict[str, str | None] = {}

    @property
    def coupons_adjustment_amount_cents(self) -> int:
        return coupons_adjustment_cents(self.items)

    @property
    def sub_total_excluding_taxes_amount_cents(self) -> int:
        return sum(i.amount_cents for i in self.items) - self.coupons_adjustment_amount_cents

    @property
    def total_amount_cents(self) -> int:
        return self.sub_total_excluding_taxes_amount_cents + self.taxes_amount_cents

    def consume(self, invoice_id: UUID, wanted_cents: int) -> int:
        """Use up to ``wanted_cents`` of the balance on an invoice; returns what was used."""
        used = min(max(wanted_cents, 0), self.balance_amount_cents) if self.credit_status == AVAILABLE else 0
        if used:
            self._consumed(invoice_id=invoice_id, amount_cents=used)
        return used

    @event("Consumed")
    def _consumed(self, invoice_id: UUID, amount_cents: int) -> None:
        self.consumptions = (*self.consumptions, Consumption(invoice_id, amount_cents))
        self.balance_amount_cents -= amount_cents
        if self.balance_amount_cents == 0:
            self.credit_status = CONSUMED

    def void(self, at: datetime) -> None:
        """Withdraw the credit left (Lago's void): the balance goes to zero; what was consumed stays consumed."""
        if self.credit_status != AVAILABLE:
            raise CreditNoteNotVoidable(f"credit note {self.id} is {self.credit_status}")
        self._voided(voided_at=at, withdrawn_cents=self.balance_amount_cents)

    @event("Voided")
    def _voided(self, voided_at: datetime, withdrawn_cents: int) -> None:
        self.credit_status = VOIDED
        self.balance_amount_cents = 0
        self.voided_at = voided_at

    def change(self, *, refund_status: str | None = None, metadata: Mapping[str, str | None] | None = None) -> None:
        """``PUT /credit_notes/{id}`` and the metadata endpoints: the refund's status, free-form metadata."""
        if refund_status is not None and refund_status != self.refund_status:
            if refund_status not in REFUND_STATUSES:
                raise ValidationFailed({"refund_status": ["value_is_invalid"]})
            self._refund_status_changed(refund_status=refund_status)
        if metadata is not None and dict(metadata) != self.metadata:
            self._metadata_changed(metadata=dict(metadata))

    @event("RefundStatusChanged")
    def _refund_status_changed(self, refund_status: str) -> None:
        self.refund_status = refund_status

    @event("MetadataChanged")
    def _metadata_changed(self, metadata: dict[str, str | None]) -> None:
        self.metadata = metadata

    def restore(self, invoice_id: UUID, amount_cents: int) -> None:
        """An invoice that consumed this credit was voided: the credit is the customer's again."""
        if amount_cents > 0:
            self._restored(invoice_id=invoice_id, amount_cents=amount_cents)

    @event("Restored")
    def _restored(self, invoice_id: UUID, amount_cents: int) -> None:
        self.balance_amount_cents += amount_cents
        self.consumptions = tuple(c for c in self.consumptions if c.invoice_id != invoice_id)
        self.credit_status = AVAILABLE  # even on a note voided since: the credit given back is usable
