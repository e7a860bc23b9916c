"""Fees: one priced line of an invoice, and the taxes it bears (semantics M1, M2, I3).

A fee is a value inside its invoice: created with it, replaced when a draft is refreshed,
never edited. Its amount is rounded once, when it is priced; its taxes are computed from
that amount with the rates chosen for it (charge → plan → customer → organization). On an
invoice, the fees' taxes are the invoice's tax apportioned over them (ADR 0029), so they add up to it.
All arithmetic is ``domain.money``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from domain import limits, money
from domain.errors import NotFound

FEE_TYPES = ("subscription", "charge", "add_on", "commitment")
MAX_CENTS = limits.MAX_AMOUNT_CENTS  # the most any fee may be, in minor units: what every read model and ledger column holds


class FeeNotFound(NotFound):
    resource = "fee"


@dataclass(frozen=True)
class AppliedTax:
    """A tax as it was when the fee was priced: later edits to the tax change no issued fee."""

    tax_id: UUID
    code: str
    name: str
    rate: Decimal
    description: str | None = None


@dataclass(frozen=True)
class Fee:
    id: UUID
    fee_type: str
    item_id: UUID  # the plan (subscription fee), billable metric (charge) or add-on
    item_code: str
    item_name: str
    amount_cents: int
    precise_amount_cents: Decimal
    units: Decimal
    currency: str
    from_at: datetime | None = None
    to_at: datetime | None = None
    subscription_id: UUID | None = None
    charge_id: UUID | None = None
    charge_filter_id: UUID | None = None
    invoice_display_name: str | None = None
    filter_display_name: str | None = None
    grouped_by: tuple[tuple[str, str], ...] = ()
    events_count: int = 0
    unit_amount_cents: int = 0
    precise_unit_amount: Decimal = Decimal(0)
    pay_in_advance: bool = False
    invoiceable: bool = True
    description: str | None = None
    taxes: tuple[AppliedTax, ...] = ()
    amount_details: tuple[tuple[str, str], ...] = ()  # model-specific figures, as text (e.g. tiers)
    days: int | None = None  # subscription fees: local days billed …
    period_days: int | None = None  # … out of the full period's
    trial: bool = False
    usage: tuple[tuple[str, str], ...] = field(default_factory=tuple)  # what was priced: aggregate figures, as text
    event_transaction_id: str | None = None  # pay-in-advance charges: the event billed (C10)
    precise_coupons_amount_cents: Decimal = Decimal(0)  # its share of the invoice's coupons (M3)
    progressive_credit_cents: int = 0  # what early invoices (invoice_now) already billed of it (I4 step 2)
    allocated_taxes_cents: int | None = None  # its part of its invoice's rounded tax (ADR 0029); None off an invoice

    @property
    def taxes_rate(self) -> Decimal:
        return sum((t.rate for t in self.taxes), Decimal(0))

    @property
    def creditable_cents(self) -> Decimal:
        """What coupons may still discount: the amount less what early invoices billed of it (I4 steps 2–3)."""
        return Decimal(self.amount_cents - self.progressive_credit_cents)

    @property
    def taxable_cents(self) -> Decimal:
        """The amount taxes are computed on: after early invoices' credit and its share of the coupons (M2)."""
        return self.creditable_cents - self.precise_coupons_amount_cents

    @property
    def taxes_precise_amount_cents(self) -> Decimal:
        return money.taxes_precise(self.taxable_cents, (t.rate for t in self.taxes))

    @property
    def taxes_amount_cents(self) -> int:
        """The fee's tax: its part of the invoice's tax once on an invoice, else rounded once over its rates (M2)."""
        if self.allocated_taxes_cents is not None:
            return self.allocated_taxes_cents
        return money.round_half_up_cents(self.taxes_precise_amount_cents)

    def tax_amounts(self) -> tuple[tuple[AppliedTax, int], ...]:
        """Each of its taxes in minor units, adding up to ``taxes_amount_cents`` (its ``applied_taxes``)."""
        parts = money.apportion(self.taxes_amount_cents,
                                {index: money.percent_of(self.taxable_cents, tax.rate)
                                 for index, tax in enumerate(self.taxes)})
        return tuple((tax, parts[index]) for index, tax in enumerate(self.taxes))

    @property
    def total_amount_cents(self) -> int:
        return self.amount_cents + self.taxes_amount_cents

    @property
    def is_empty(self) -> bool:
        """Zero units, zero amount and no events: not kept on an invoice (I3)."""
        return self.units == 0 and self.amount_cents == 0 and self.events_count == 0




def choose_taxes(*candidates: Sequence[AppliedTax]) -> tuple[AppliedTax, ...]:
    """The first non-empty set of taxes, most specific first (M2's selection)."""
    for taxes in candidates:
        if taxes:
            return tuple(taxes)
    return ()
