"""Invoices: draft → finalized → voided, numbered when finalized, with where they came from (semantics I1–I4).

An invoice is issued as a draft with its fees and the provenance of its figures: the log positions
its usage was read at and a digest of every input, so it can be derived again from the log
and compared. A draft may be refreshed (new fees, new provenance) until it is finalized;
a finalized invoice changes only by voiding, payment status and metadata.

Whenever its fees are set (issued, refreshed, discounted) the invoice's tax, rounded once, is
apportioned over them and over its tax lines, so fee-level taxes add up to the invoice's (ADR 0029).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain import identity, money
from domain.applied_coupon import CouponUse
from domain.errors import NotAllowed, NotFound, ValidationFailed
from domain.fee import MAX_CENTS, AppliedTax, Fee
from domain.wallet import WalletUse

DRAFT, FINALIZED, VOIDED, DELETED = "draft", "finalized", "voided", "deleted"
INVOICE_TYPES = ("subscription", "add_on", "credit", "one_off", "advance_charges", "progressive_billing")
PAYMENT_STATUSES = ("pending", "succeeded", "failed")
INVOICING_REASONS = ("subscription_starting", "subscription_periodic", "subscription_terminating", "in_advance_charge")


class InvoiceNotFound(NotFound):
    resource = "invoice"


class InvoiceNotDraft(NotAllowed):
    code = "not_draft"


class InvoiceNotVoidable(NotAllowed):
    code = "not_voidable"


class InvoiceVoided(NotAllowed):
    code = "update_on_voided_invoice"


@dataclass(frozen=True)
class BillingPeriod:
    """What one subscription's part of the invoice covers (Lago's ``billing_periods`` entry)."""

    subscription_id: UUID
    external_subscription_id: str
    plan_id: UUID
    subscription_from_at: datetime | None
    subscription_to_at: datetime | None
    charges_from_at: datetime | None
    charges_to_at: datetime | None
    invoicing_reason: str


@dataclass(frozen=True)
class Provenance:
    """Where the figures came from: log positions read at, and a digest of every input."""

    billing_position: int
    metering_position: int
    digest: str
    plan_version: int | None = None


@dataclass(frozen=True)
class AppliedCredit:
    """Credit-note credit used by this invoice when it was finalized (I4 step 5)."""

    credit_note_id: UUID
    number: str
    amount_cents: int


@dataclass(frozen=True)
class TaxLine:
    """One tax over the whole invoice: the unrounded sum over its fees (M2), and its part of the invoice's rounded
    tax (ADR 0029: the lines add up to the invoice's tax, where Lago rounds each on its own)."""

    tax_id: UUID
    code: str
    name: str
    rate: Decimal
    description: str | None
    fees_amount_cents: int
    precise_amount_cents: Decimal
    amount_cents: int


@dataclass(frozen=True)
class Totals:
    fees_amount_cents: int
    coupons_amount_cents: int
    taxes_amount_cents: int
    credit_notes_amount_cents: int
    prepaid_credit_amount_cents: int
    progressive_billing_credit_amount_cents: int = 0

    @property
    def sub_total_excluding_taxes_amount_cents(self) -> int:
        return self.fees_amount_cents - self.progressive_billing_credit_amount_cents - self.coupons_amount_cents

    @property
    def sub_total_including_taxes_amount_cents(self) -> int:
        return self.sub_total_excluding_taxes_amount_cents + self.taxes_amount_cents

    @property
    def total_amount_cents(self) -> int:
        return self.sub_total_including_taxes_amount_cents - self.credit_notes_amount_cents - self.prepaid_credit_amount_cents


def tax_lines(fees: Sequence[Fee]) -> tuple[TaxLine, ...]:
    """Per tax, the unrounded sum over the fees bearing it (M2), in the order taxes first appear, with its part of
    the invoice's tax."""
    lines: dict[UUID, tuple[AppliedTax, Decimal, Decimal]] = {}
    for fee in fees:
        for tax in fee.taxes:
            _, base, precise = lines.get(tax.tax_id, (tax, Decimal(0), Decimal(0)))
            lines[tax.tax_id] = (tax, base + fee.taxable_cents, precise + money.percent_of(fee.taxable_cents, tax.rate))
    parts = money.apportion(taxes_cents(fees), {tax_id: precise for tax_id, (_, _, precise) in lines.items()})
    return tuple(TaxLine(t.tax_id, t.code, t.name, t.rate, t.description, money.round_half_up_cents(base), precise,
                         parts[t.tax_id]) for t, base, precise in lines.values())


def taxes_cents(fees: Sequence[Fee]) -> int:
    """The invoice's tax: its fees' unrounded taxes, summed and rounded once (M2)."""
    return money.invoice_taxes_cents(fee.taxes_precise_amount_cents for fee in fees)


def with_taxes_allocated(fees: Sequence[Fee]) -> tuple[Fee, ...]:
    """The fees, each with its part of the invoice's rounded tax, apportioned by its unrounded tax (ADR 0029)."""
    parts = money.apportion(taxes_cents(fees), {index: fee.taxes_precise_amount_cents for index, fee in enumerate(fees)})
    return tuple(replace(fee, allocated_taxes_cents=parts[index]) for index, fee in enumerate(fees))


def totals(fees: Sequence[Fee], credits: Sequence[AppliedCredit] = (), coupons: Sequence[CouponUse] = (),
           prepaid: Sequence[WalletUse] = ()) -> Totals:
    """I4: early invoices' credit and coupons, then taxes on what they leave, rounded once over the invoice, then
    credit notes, then wallets."""
    taxes = taxes_cents(fees)
    return Totals(sum(f.amount_cents for f in fees), sum(c.amount_cents for c in coupons), taxes,
                  sum(c.amount_cents for c in credits), sum(w.amount_cents for w in prepaid),
                  sum(f.progressive_credit_cents for f in fees))


def total_due(total_amount_cents: int, status: str, payment_status: str, offset_amount_cents: int,
              paid_amount_cents: int = 0) -> int:
    """What is still owed: nothing once voided or paid; otherwise the total less payments and credit-note offsets."""
    if status == VOIDED or payment_status == "succeeded":
        return 0
    return max(total_amount_cents - offset_amount_cents - paid_amount_cents, 0)


def digest(inputs: Mapping[str, Any]) -> str:
    """A stable SHA-256 of an invoice's inputs: equal inputs give equal digests on any machine."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str, separators=(",", ":")).encode()).hexdigest()


def invoice_number(prefix: str, customer_sequence: int, invoice_sequence: int) -> str:
    """Per-customer numbering (I2): ``<PREFIX>-<customer number>-<invoice number>``, three digits at least."""
    return f"{prefix}-{customer_sequence:03d}-{invoice_sequence:03d}"


def organization_invoice_number(prefix: str, finalized_on: date, sequence: int) -> str:
    """Per-organization numbering (I2): ``<PREFIX>-<YYYYMM>-<organization-wide number>``."""
    return f"{prefix}-{finalized_on:%Y%m}-{sequence:03d}"


class Invoice(Aggregate):
    """One bill to one customer in one currency."""

    @staticmethod
    def create_id(organization_id: UUID, key: str) -> UUID:
        """Deterministic: the same close (subscription and boundary) always names the same invoice."""
        return identity.scoped_id(organization_id, "invoice", key)

    @event("Issued")
    def __init__(
        self,
        organization_id: UUID,
        key: str,
        customer_id: UUID,
        invoice_type: str,
        currency: str,
        status: str,
        issuing_date: date,
        payment_due_date: date,
        net_payment_term: int,
        billing_periods: tuple[BillingPeriod, ...],
        fees: tuple[Fee, ...],
        provenance: Provenance,
        expected_finalization_date: date | None,
    ) -> None:
        self.organization_id = organization_id
        self.key = key
        self.customer_id = customer_id
        self.invoice_type = invoice_type
        self.currency = currency
        self.status = status
        self.issuing_date = issuing_date
        self.payment_due_date = payment_due_date
        self.net_payment_term = net_payment_term
        self.billing_periods = billing_periods
        self.fees = fees
        self.provenance = provenance
        self.expected_finalization_date = expected_finalization_date
        self.number: str | None = None
        self.sequential_id: int | None = None
        self.finalized_at: datetime | None = None
        self.voided_at: datetime | None = None
        self.payment_status = "pending"
        self.metadata: dict[str, str | None] = {}
        self.file_key: str | None = None
        self.credits: tuple[AppliedCredit, ...] = ()
        self.coupons: tuple[CouponUse, ...] = ()
        self.offset_amount_cents = 0
        self.paid_amount_cents = 0
        self.prepaid: tuple[WalletUse, ...] = ()
        self.credited: dict[UUID, int] = {}  # per fee, what credit notes gave back of it (pre-tax)
        self.totals = totals(fees)

    @classmethod
    def issue(
        cls,
        *,
        organization_id: UUID,
        key: str,
        customer_id: UUID,
        invoice_type: str,
        currency: str,
        issuing_date: date,
        net_payment_term: int,
        billing_periods: Sequence[BillingPeriod],
        fees: Sequence[Fee],
        provenance: Provenance,
        expected_finalization_date: date | None = None,
    ) -> Invoice:
        if any(abs(f.amount_cents) > MAX_CENTS for f in fees):
            raise ValidationFailed({"amount_cents": ["value_is_out_of_range"]})
        return cls(
            organization_id=organization_id,
            key=key,
            customer_id=customer_id,
            invoice_type=invoice_type,
            currency=currency,
            status=DRAFT,
            issuing_date=issuing_date,
            payment_due_date=issuing_date + timedelta(days=net_payment_term),
            net_payment_term=net_payment_term,
            billing_periods=tuple(billing_periods),
            fees=with_taxes_allocated([f for f in fees if not f.is_empty]),
            provenance=provenance,
            expected_finalization_date=expected_finalization_date,
        )

    @property
    def total_due_amount_cents(self) -> int:
        return total_due(self.totals.total_amount_cents, self.status, self.payment_status, self.offset_amount_cents,
                         self.paid_amount_cents)

    def refresh(self, fees: Sequence[Fee], provenance: Provenance) -> None:
        """A draft takes the fees computed again (late events, changed prices); others stay as issued."""
        if self.status != DRAFT:
            return
        kept = with_taxes_allocated([f for f in fees if not f.is_empty])
        if kept != self.fees or provenance.digest != self.provenance.digest:
            self._refreshed(fees=kept, provenance=provenance)

    @event("Refreshed")
    def _refreshed(self, fees: tuple[Fee, ...], provenance: Provenance) -> None:
        self.fees = fees
        self.provenance = provenance
        self.totals = totals(fees)

    def discount(self, coupons: Sequence[CouponUse], fees: Sequence[Fee]) -> None:
        """Coupons taken at finalization (I4 step 3): their uses, and the fees with their shares of them."""
        if self.status != DRAFT:
            raise InvoiceNotDraft(f"invoice {self.id} is {self.status}")
        if coupons:
            self._discounted(coupons=tuple(coupons), fees=with_taxes_allocated(fees))

    @event("Discounted")
    def _discounted(self, coupons: tuple[CouponUse, ...], fees: tuple[Fee, ...]) -> None:
        self.coupons = coupons
        self.fees = fees
        self.totals = totals(fees, self.credits, coupons)

    def finalize(self, *, number: str, sequential_id: int, at: datetime, credits: Sequence[AppliedCredit] = (),
                 prepaid: Sequence[WalletUse] = ()) -> None:
        """Number and freeze a draft, with the credit-note credit and wallet credits it consumes; issued invoices
        without a grace period are finalized in the same save."""
        if self.status != DRAFT:
            raise InvoiceNotDraft(f"invoice {self.id} is {self.status}")
        if credits:
            self._credited(credits=tuple(credits))
        if prepaid:
            self._prepaid(uses=tuple(prepaid))
        self._finalized(number=number, sequential_id=sequential_id, finalized_at=at)

    @event("Credited")
    def _credited(self, credits: tuple[AppliedCredit, ...]) -> None:
        self.credits = credits
        self.totals = totals(self.fees, credits, self.coupons)

    @event("Prepaid")
    def _prepaid(self, uses: tuple[WalletUse, ...]) -> None:
        self.prepaid = uses
        self.totals = totals(self.fees, self.credits, self.coupons, uses)

    def record_credit_note(self, credit_note_id: UUID, amounts: Sequence[tuple[UUID, int]]) -> None:
        """A credit note gave back these amounts of these fees: later notes can give back only the rest."""
        if self.status != FINALIZED:
            raise ValidationFailed({"invoice_id": ["invalid_status"]})
        if amounts:
            self._fees_credited(credit_note_id=credit_note_id, amounts=tuple(amounts))

    @event("FeesCredited")
    def _fees_credited(self, credit_note_id: UUID, amounts: tuple[tuple[UUID, int], ...]) -> None:
        for fee_id, cents in amounts:
            self.credited[fee_id] = self.credited.get(fee_id, 0) + cents

    def offset(self, credit_note_id: UUID, amount_cents: int) -> None:
        """A credit note lowers what is still due on this invoice (its ``offset`` part)."""
        if amount_cents > 0:
            self._offset(credit_note_id=credit_note_id, amount_cents=amount_cents)

    @event("Offset")
    def _offset(self, credit_note_id: UUID, amount_cents: int) -> None:
        self.offset_amount_cents += amount_cents

    @event("Finalized")
    def _finalized(self, number: str, sequential_id: int, finalized_at: datetime) -> None:
        self.status = FINALIZED
        self.number = number
        self.sequential_id = sequential_id
        self.finalized_at = finalized_at
        self.expected_finalization_date = None
        if self.totals.total_amount_cents <= 0:
            self.payment_status = "succeeded"

    def void(self, at: datetime) -> None:
        """Only a finalized invoice nothing was paid or offset on: those are corrected with a credit note."""
        if self.status != FINALIZED or self.paid_amount_cents > 0 or self.offset_amount_cents > 0:
            raise InvoiceNotVoidable(f"invoice {self.id} is {self.status}, {self.paid_amount_cents} paid")
        self._voided(voided_at=at)

    def pay(self, payment_id: UUID, amount_cents: int) -> None:
        """A payment of part or all of what is due; more than is due is refused."""
        due = self.total_due_amount_cents
        if self.status != FINALIZED:
            raise ValidationFailed({"invoice_id": ["invalid_status"]})
        if amount_cents <= 0 or amount_cents > due:
            raise ValidationFailed({"amount_cents": ["invalid_amount"]})
        self._paid(payment_id=payment_id, amount_cents=amount_cents)

    @event("Paid")
    def _paid(self, payment_id: UUID, amount_cents: int) -> None:
        self.paid_amount_cents += amount_cents
        if self.paid_amount_cents + self.offset_amount_cents >= self.totals.total_amount_cents:
            self.payment_status = "succeeded"

    @event("Voided")
    def _voided(self, voided_at: datetime) -> None:
        self.status = VOIDED
        self.voided_at = voided_at

    def delete(self, at: datetime) -> None:
        if self.status != DRAFT:
            raise InvoiceNotDraft(f"invoice {self.id} is {self.status}")
        self._deleted(deleted_at=at)

    @event("Deleted")
    def _deleted(self, deleted_at: datetime) -> None:
        self.status = DELETED

    def update(self, *, payment_status: str | None, metadata: Mapping[str, str | None] | None) -> None:
        if self.status == VOIDED:
            raise InvoiceVoided(f"invoice {self.id} is voided")
        if payment_status is not None and payment_status not in PAYMENT_STATUSES:
            raise ValidationFailed({"payment_status": ["value_is_invalid"]})
        if payment_status is not None and payment_status != self.payment_status:
            self._payment_status_changed(payment_status=payment_status)
        if metadata is not None and dict(metadata) != self.metadata:
            self._metadata_changed(metadata=dict(metadata))

    @event("PaymentStatusChanged")
    def _payment_status_changed(self, payment_status: str) -> None:
        self.payment_status = payment_status

    @event("MetadataChanged")
    def _metadata_changed(self, metadata: dict[str, str | None]) -> None:
        self.metadata = metadata

    def attach_file(self, key: str) -> None:
        if self.file_key != key:
            self._file_attached(key=key)

    @event("FileAttached")
    def _file_attached(self, key: str) -> None:
        self.file_key = key
