"""Invoices and fees read models: what ``/invoices`` and ``/fees`` list and show.

An invoice row holds the whole invoice as one document (fees, taxes, periods, provenance)
plus the columns Lago's filters use; each fee also gets a row of its own for ``/fees``.
Later invoice events patch the document: it is read, changed and written back inside the
page transaction, so it always equals the aggregate's state at the tracked position.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime
from functools import singledispatchmethod
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.persistence import Tracking
from psycopg import sql

from domain.applied_coupon import CouponUse
from domain.fee import Fee
from domain.invoice import (
    AppliedCredit,
    BillingPeriod,
    Invoice,
    Provenance,
    TaxLine,
    Totals,
    tax_lines,
    total_due,
    totals,
)
from domain.wallet import WalletUse
from projections.documents import (
    Condition,
    Document,
    DocumentReader,
    DocumentView,
    comparisons,
    jsonb,
)
from projections.projection import Projection


@dataclass(frozen=True)
class InvoiceRecord:
    """An invoice as read: the aggregate's state, flattened into one value."""

    customer_id: UUID
    invoice_type: str
    currency: str
    status: str
    issuing_date: date
    payment_due_date: date
    net_payment_term: int
    billing_periods: tuple[BillingPeriod, ...]
    fees: tuple[Fee, ...]
    provenance: Provenance
    expected_finalization_date: date | None = None
    number: str | None = None
    sequential_id: int | None = None
    finalized_at: datetime | None = None
    voided_at: datetime | None = None
    payment_status: str = "pending"
    metadata: dict[str, str | None] = field(default_factory=dict)
    file_key: str | None = None
    credits: tuple[AppliedCredit, ...] = ()
    offset_amount_cents: int = 0
    coupons: tuple[CouponUse, ...] = ()
    paid_amount_cents: int = 0
    prepaid: tuple[WalletUse, ...] = ()

    @property
    def totals(self) -> Totals:
        return totals(self.fees, self.credits, self.coupons, self.prepaid)

    @property
    def external_subscription_ids(self) -> dict[UUID, str]:
        return {p.subscription_id: p.external_subscription_id for p in self.billing_periods}

    @property
    def tax_lines(self) -> tuple[TaxLine, ...]:
        return tax_lines(self.fees)

    @property
    def fees_amount_cents(self) -> int:
        return self.totals.fees_amount_cents

    @property
    def taxes_amount_cents(self) -> int:
        return self.totals.taxes_amount_cents

    @property
    def total_amount_cents(self) -> int:
        return self.totals.total_amount_cents

    @property
    def total_due_amount_cents(self) -> int:
        return total_due(self.total_amount_cents, self.status, self.payment_status, self.offset_amount_cents,
                         self.paid_amount_cents)


class InvoicesView(DocumentView):
    table = "invoices"
    columns = {
        "customer_id": "uuid NOT NULL",
        "status": "text NOT NULL",
        "payment_status": "text NOT NULL",
        "invoice_type": "text NOT NULL",
        "currency": "text NOT NULL",
        "issuing_date": "date NOT NULL",
        "total_amount_cents": "bigint NOT NULL",
        "number": "text",
        "expected_finalization_date": "date",
    }
    def record(self, id: UUID) -> InvoiceRecord:
        row = self.cursor.execute("SELECT data FROM invoices WHERE id = %s", (id,)).fetchone()
        return msgspec.convert(row[0], InvoiceRecord)

    def save_record(self, id: UUID, record: InvoiceRecord, at: datetime, tracking: Tracking) -> None:
        self.update(id, at, tracking, data=record, **_columns(record))

    def replace_fees(self, organization_id: UUID, invoice_id: UUID, record: InvoiceRecord, at: datetime,
                     tracking: Tracking) -> None:
        self.cursor.execute("DELETE FROM fees WHERE invoice_id = %s", (invoice_id,))
        rows = [(f.id, organization_id, invoice_id, record.customer_id, f.subscription_id, f.fee_type, f.item_code,
                 f.currency, at, jsonb(f), tracking.notification_id) for f in record.fees]
        if rows:
            self.cursor.executemany(
                "INSERT INTO fees (id, organization_id, invoice_id, customer_id, subscription_id, fee_type, item_code, "
                "currency, created_at, data, position) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", rows)


# DocumentView builds its DDL in __init_subclass__, before the class body above is known; add the fee table after it.
InvoicesView.ddl = (*InvoicesView.ddl, *(
    "CREATE TABLE IF NOT EXISTS fees (id uuid PRIMARY KEY, organization_id uuid NOT NULL, invoice_id uuid NOT NULL, "
    "customer_id uuid NOT NULL, subscription_id uuid, fee_type text NOT NULL, item_code text NOT NULL, "
    "currency text NOT NULL, created_at timestamptz NOT NULL, data jsonb NOT NULL, position bigint NOT NULL)",
    "CREATE INDEX IF NOT EXISTS fees_by_invoice ON fees (invoice_id)",
    "CREATE INDEX IF NOT EXISTS fees_by_age ON fees (organization_id, created_at DESC, id)",
    "CREATE INDEX IF NOT EXISTS invoices_due_drafts ON invoices (expected_finalization_date) WHERE status = 'draft'",
))
InvoicesView.tables = ("invoices", "fees")


def _columns(record: InvoiceRecord) -> dict[str, Any]:
    return {
        "customer_id": record.customer_id, "status": record.status, "payment_status": record.payment_status,
        "invoice_type": record.invoice_type, "currency": record.currency, "issuing_date": record.issuing_date,
        "total_amount_cents": record.total_amount_cents, "number": record.number,
        "expected_finalization_date": record.expected_finalization_date,
    }


class Invoices(Projection[InvoicesView]):
    name = "invoices"

    @singledispatchmethod
    def process_event(self, event: Any, tracking: Tracking) -> None:
        """Other events do not change invoices."""

    @process_event.register
    def _(self, event: Invoice.Issued, tracking: Tracking) -> None:
        record = InvoiceRecord(
            customer_id=event.customer_id, invoice_type=event.invoice_type, currency=event.currency,
            status=event.status, issuing_date=event.issuing_date, payment_due_date=event.payment_due_date,
            net_payment_term=event.net_payment_term, billing_periods=event.billing_periods, fees=event.fees,
            provenance=event.provenance, expected_finalization_date=event.expected_finalization_date,
        )
        self.view.insert(event.originator_id, event.organization_id, event.key, record, event.timestamp, tracking,
                         **_columns(record))
        self.view.replace_fees(event.organization_id, event.originator_id, record, event.timestamp, tracking)

    @process_event.register
    def _(self, event: Invoice.Refreshed, tracking: Tracking) -> None:
        self._new_fees(event, tracking, fees=event.fees, provenance=event.provenance)

    @process_event.register
    def _(self, event: Invoice.Finalized, tracking: Tracking) -> None:
        record = self.view.record(event.originator_id)
        paid = "succeeded" if record.total_amount_cents <= 0 else record.payment_status
        self._patch(event, tracking, status="finalized", number=event.number, sequential_id=event.sequential_id,
                    finalized_at=event.finalized_at, expected_finalization_date=None, payment_status=paid)

    @process_event.register
    def _(self, event: Invoice.Discounted, tracking: Tracking) -> None:
        self._new_fees(event, tracking, fees=event.fees, coupons=event.coupons)

    @process_event.register
    def _(self, event: Invoice.Credited, tracking: Tracking) -> None:
        self._patch(event, tracking, credits=event.credits)

    @process_event.register
    def _(self, event: Invoice.Prepaid, tracking: Tracking) -> None:
        self._patch(event, tracking, prepaid=event.uses)

    @process_event.register
    def _(self, event: Invoice.Offset, tracking: Tracking) -> None:
        record = self.view.record(event.originator_id)
        self._patch(event, tracking, offset_amount_cents=record.offset_amount_cents + event.amount_cents)

    @process_event.register
    def _(self, event: Invoice.Paid, tracking: Tracking) -> None:
        record = self.view.record(event.originator_id)
        paid = record.paid_amount_cents + event.amount_cents
        status = "succeeded" if paid + record.offset_amount_cents >= record.total_amount_cents else record.payment_status
        self._patch(event, tracking, paid_amount_cents=paid, payment_status=status)

    @process_event.register
    def _(self, event: Invoice.Voided, tracking: Tracking) -> None:
        self._patch(event, tracking, status="voided", voided_at=event.voided_at)

    @process_event.register
    def _(self, event: Invoice.Deleted, tracking: Tracking) -> None:
        self._patch(event, tracking, status="deleted")
        self.view.delete(event.originator_id, event.timestamp, tracking)
        self.view.cursor.execute("DELETE FROM fees WHERE invoice_id = %s", (event.originator_id,))

    @process_event.register
    def _(self, event: Invoice.PaymentStatusChanged, tracking: Tracking) -> None:
        self._patch(event, tracking, payment_status=event.payment_status)

    @process_event.register
    def _(self, event: Invoice.MetadataChanged, tracking: Tracking) -> None:
        self._patch(event, tracking, metadata=event.metadata)

    @process_event.register
    def _(self, event: Invoice.FileAttached, tracking: Tracking) -> None:
        self._patch(event, tracking, file_key=event.key)

    def _new_fees(self, event: Any, tracking: Tracking, **changes: Any) -> None:
        """The invoice with new fees (a refresh, coupons' shares), and its rows in the fees table."""
        record = replace(self.view.record(event.originator_id), **changes)
        self.view.save_record(event.originator_id, record, event.timestamp, tracking)
        organization_id = self.view.cursor.execute(
            "SELECT organization_id FROM invoices WHERE id = %s", (event.originator_id,)).fetchone()[0]
        self.view.replace_fees(organization_id, event.originator_id, record, event.timestamp, tracking)

    def _patch(self, event: Any, tracking: Tracking, **changes: Any) -> None:
        record = replace(self.view.record(event.originator_id), **changes)
        self.view.save_record(event.originator_id, record, event.timestamp, tracking)


@dataclass(frozen=True)
class InvoiceFilters:
    """Lago's invoice list filters (reference §2.6)."""

    customer_ids: list[UUID] | None = None
    statuses: list[str] | None = None
    payment_statuses: list[str] | None = None
    invoice_type: str | None = None
    currency: str | None = None
    issuing_date_from: date | None = None
    issuing_date_to: date | None = None
    amount_from: int | None = None
    amount_to: int | None = None

    def conditions(self) -> list[Condition]:
        found: list[Condition] = []
        for column, values in (("customer_id", self.customer_ids), ("status", self.statuses),
                               ("payment_status", self.payment_statuses)):
            if values is not None:
                found.append((sql.SQL("{} = ANY(%s)").format(sql.Identifier(column)), [values]))
        return found + comparisons(
            ("invoice_type", self.invoice_type, "="), ("currency", self.currency, "="),
            ("issuing_date", self.issuing_date_from, ">="), ("issuing_date", self.issuing_date_to, "<="),
            ("total_amount_cents", self.amount_from, ">="), ("total_amount_cents", self.amount_to, "<="))


class InvoicesReader(DocumentReader[InvoiceRecord]):
    def filtered(self, organization_id: UUID, offset: int, limit: int,
                 filters: InvoiceFilters) -> tuple[list[Document[InvoiceRecord]], int]:
        return self.page(organization_id, offset, limit, filters.conditions())

    def drafts_due(self, today: date, limit: int = 1000) -> list[tuple[UUID, UUID]]:
        """Across organizations: drafts whose grace period is over, as (organization, invoice).

        Read as the view stands, without waiting for it: a draft the view has not reached yet is
        finalized by the next pass, a minute later, and finalizing is idempotent."""
        with self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT organization_id, id FROM invoices WHERE status = 'draft' AND deleted_at IS NULL "
                "AND expected_finalization_date <= %s ORDER BY expected_finalization_date LIMIT %s", (today, limit),
            ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def fee(self, organization_id: UUID, fee_id: UUID) -> tuple[Fee, Document[InvoiceRecord]] | None:
        self.fresh()
        with self._pool.connection() as conn:
            row = conn.execute("SELECT invoice_id, data FROM fees WHERE organization_id = %s AND id = %s",
                               (organization_id, fee_id)).fetchone()
        if row is None:
            return None
        invoice = self.by_id(organization_id, row[0])
        return (msgspec.convert(row[1], Fee), invoice) if invoice is not None else None

    def fees(self, organization_id: UUID, offset: int, limit: int, conditions: list[Condition]
             ) -> tuple[list[tuple[Fee, UUID]], int]:
        """Fees newest first with their invoice ids, and the total count."""
        self.fresh()
        where = sql.SQL(" AND ").join([sql.SQL("organization_id = %s"), *(c for c, _ in conditions)])
        params: list[Any] = [organization_id, *(v for _, values in conditions for v in values)]
        with self._pool.connection() as conn:
            total = conn.execute(sql.SQL("SELECT count(*) FROM fees WHERE ") + where, params).fetchone()[0]
            rows = conn.execute(sql.SQL("SELECT data, invoice_id FROM fees WHERE ") + where +
                                sql.SQL(" ORDER BY created_at DESC, id LIMIT %s OFFSET %s"), [*params, limit, offset]).fetchall()
        return [(msgspec.convert(r[0], Fee), r[1]) for r in rows], total
