"""Rendered invoice and credit note PDFs: generated once, on first download, and kept beside the ledger.

A file is derived data — the invoice's events fix every figure on it — so it is stored in a
plain table, not the event store; the invoice records that it has one (``FileAttached``).
A file is never re-rendered, so what a customer downloaded stays what they downloaded.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from psycopg_pool import ConnectionPool

from domain import money
from domain.address import Address
from domain.currency import minor_unit_exponent
from domain.customer import CustomerProfile
from domain.invoice import tax_lines
from interfaces.pdf import (
    InvoiceDocument,
    Party,
    PdfLine,
    PdfTax,
    format_date,
    format_money,
    render_invoice,
)
from projections.credit_notes import CreditNoteRecord
from projections.documents import Document
from projections.invoices import InvoiceRecord
from projections.organizations import OrganizationRecord

DDL = """
CREATE TABLE IF NOT EXISTS invoice_files (
    invoice_id uuid PRIMARY KEY,
    organization_id uuid NOT NULL,
    content bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""


class InvoiceFiles:
    def __init__(self, pool: ConnectionPool[Any]) -> None:
        self._pool = pool

    def get(self, organization_id: UUID, invoice_id: UUID) -> bytes | None:
        with self._pool.connection() as conn:
            row = conn.execute("SELECT content FROM invoice_files WHERE organization_id = %s AND invoice_id = %s",
                               (organization_id, invoice_id)).fetchone()
        return None if row is None else bytes(row[0])

    def present(self, organization_id: UUID, ids: list[UUID]) -> set[UUID]:
        """Which of these documents have a file."""
        if not ids:
            return set()
        with self._pool.connection() as conn:
            rows = conn.execute("SELECT invoice_id FROM invoice_files WHERE organization_id = %s AND invoice_id = ANY(%s)",
                                (organization_id, ids)).fetchall()
        return {r[0] for r in rows}

    def put(self, organization_id: UUID, invoice_id: UUID, content: bytes) -> bytes:
        """Keep the first file rendered for an invoice; a concurrent second render is dropped."""
        with self._pool.connection() as conn:
            conn.execute("INSERT INTO invoice_files (invoice_id, organization_id, content) VALUES (%s, %s, %s) "
                         "ON CONFLICT (invoice_id) DO NOTHING", (invoice_id, organization_id, content))
        return self.get(organization_id, invoice_id) or content


_UNIT_PLACES = 4  # of a minor unit: enough to show sub-cent prices, no repeating digits


def _tiers(details: tuple[tuple[str, str], ...], currency: str) -> tuple[tuple[str, Decimal, int], ...]:
    """A tiered fee's ranges as printed: ``0 – 100``, its units, and what the range billed."""
    exponent = minor_unit_exponent(currency)
    tiers = []
    for label, raw in details:
        if not label.startswith("tier "):
            continue
        low, _, high = label[len("tier "):].partition("-")
        figures = json.loads(raw)
        amount = money.to_cents(Decimal(figures["amount"]), exponent)
        tiers.append((f"{low} – {high}" if high else f"{low} and above", Decimal(figures["units"]), amount))
    return tuple(tiers)


def _lines(address: Address) -> tuple[str, ...]:
    city = " ".join(p for p in (address.zipcode, address.city) if p)
    parts = (address.address_line1, address.address_line2, city, address.state, address.country)
    return tuple(p for p in parts if p)


def _period(start: datetime | None, end: datetime | None, timezone: str) -> str | None:
    if start is None or end is None:
        return None
    zone = ZoneInfo(timezone)
    first = start.astimezone(zone).date()
    last = max((end - timedelta(microseconds=1)).astimezone(zone).date(), first)  # periods are half-open
    return f"{format_date(first)} – {format_date(last)}"


def _buyer(customer_id: UUID, customer: Document[CustomerProfile] | None) -> Party:
    profile = customer.data if customer is not None else CustomerProfile(external_id=str(customer_id))
    return Party(name=profile.name or profile.external_id, legal_name=profile.legal_name,
                 address_lines=_lines(profile.address), email=profile.email,
                 tax_identification_number=profile.tax_identification_number)


def invoice_document(invoice: Document[InvoiceRecord], organization: OrganizationRecord,
                     customer: Document[CustomerProfile] | None, timezone: str) -> InvoiceDocument:
    """What the PDF shows, from the invoice as read: nothing is computed here that the ledger does not hold."""
    record = invoice.data
    settings = organization.settings
    seller = Party(name=organization.name, legal_name=settings.legal_name, address_lines=_lines(settings.address),
                   email=settings.email, tax_identification_number=settings.tax_identification_number)
    buyer = _buyer(record.customer_id, customer)
    lines = []
    for fee in record.fees:
        description = fee.invoice_display_name or fee.item_name
        if fee.filter_display_name:
            description += f" — {fee.filter_display_name}"
        if fee.grouped_by:
            description += " — " + ", ".join(f"{k}: {v}" for k, v in fee.grouped_by)
        if fee.trial:
            description += " (after trial)"
        lines.append(PdfLine(description=description, units=fee.units,
                             unit_amount_cents=money.unit_price(fee.precise_unit_amount, Decimal(1), _UNIT_PLACES).normalize(),
                             amount_cents=fee.amount_cents, period=_period(fee.from_at, fee.to_at, timezone),
                             tiers=_tiers(fee.amount_details, record.currency)))
    period = record.billing_periods[0] if record.billing_periods else None
    return InvoiceDocument(
        number=record.number or "DRAFT", issuing_date=record.issuing_date, payment_due_date=record.payment_due_date,
        currency=record.currency, seller=seller, buyer=buyer, lines=tuple(lines),
        fees_amount_cents=record.fees_amount_cents, coupons_amount_cents=record.totals.coupons_amount_cents,
        taxes=tuple(PdfTax(t.name, t.rate, t.amount_cents) for t in record.tax_lines),
        taxes_amount_cents=record.taxes_amount_cents, credits_amount_cents=record.totals.credit_notes_amount_cents,
        total_amount_cents=record.total_amount_cents, status=record.status,
        billing_period=_period(period.charges_from_at or period.subscription_from_at,
                               period.charges_to_at or period.subscription_to_at, timezone) if period else None,
        footer=settings.billing_configuration.invoice_footer,
        prepaid_amount_cents=record.totals.prepaid_credit_amount_cents,
        billed_early_amount_cents=record.totals.progressive_billing_credit_amount_cents,
    )


def credit_note_document(note: Document[CreditNoteRecord], organization: OrganizationRecord,
                         customer: Document[CustomerProfile] | None) -> InvoiceDocument:
    """A credit note as a PDF: its items as lines, the coupons' share kept, its taxes, what it gives back."""
    record = note.data
    settings = organization.settings
    seller = Party(name=organization.name, legal_name=settings.legal_name, address_lines=_lines(settings.address),
                   email=settings.email, tax_identification_number=settings.tax_identification_number)
    buyer = _buyer(record.customer_id, customer)
    lines = tuple(PdfLine(description=item.fee.invoice_display_name or item.fee.item_name, units=Decimal(1),
                          unit_amount_cents=Decimal(item.amount_cents), amount_cents=item.amount_cents, period=None,
                          tiers=()) for item in record.items)
    credited = [replace(i.fee, amount_cents=i.amount_cents, precise_coupons_amount_cents=i.precise_coupons_cents)
                for i in record.items]
    split = record.split
    parts = ", ".join(f"{name} {format_money(cents, record.currency)}" for name, cents in (
        ("credit", split.credit_amount_cents), ("refund", split.refund_amount_cents),
        ("offset", split.offset_amount_cents)) if cents)
    return InvoiceDocument(
        number=record.number, issuing_date=record.issuing_date, payment_due_date=record.issuing_date,
        currency=record.currency, seller=seller, buyer=buyer, lines=lines,
        fees_amount_cents=sum(i.amount_cents for i in record.items),
        coupons_amount_cents=record.coupons_adjustment_amount_cents,
        taxes=tuple(PdfTax(t.name, t.rate, t.amount_cents) for t in tax_lines(credited)),
        taxes_amount_cents=record.taxes_amount_cents, credits_amount_cents=0,
        total_amount_cents=record.total_amount_cents, status="finalized", kind="Credit note",
        references=(("Invoice", record.invoice_number), ("Reason", record.reason.replace("_", " ")),
                    ("Given back as", parts or "nothing")),
    )


def render(invoice: Document[InvoiceRecord], organization: OrganizationRecord,
           customer: Document[CustomerProfile] | None, timezone: str) -> bytes:
    return render_invoice(invoice_document(invoice, organization, customer, timezone))
