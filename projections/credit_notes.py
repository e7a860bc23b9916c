"""Credit notes read model: what ``/credit_notes`` lists and shows.

One row per credit note, holding the note as one document plus the columns Lago's filters
use. Consumption by later invoices and voiding patch the document in the page transaction.
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

from domain.credit_note import (
    Consumption,
    CreditNote,
    CreditNoteItem,
    Split,
    coupons_adjustment_cents,
)
from projections.documents import (
    Condition,
    Document,
    DocumentReader,
    DocumentView,
    comparisons,
)
from projections.projection import Projection


@dataclass(frozen=True)
class CreditNoteRecord:
    """A credit note as read: the aggregate's state, flattened into one value."""

    invoice_id: UUID
    invoice_number: str
    customer_id: UUID
    currency: str
    number: str
    sequential_id: int
    issuing_date: date
    reason: str
    description: str | None
    items: tuple[CreditNoteItem, ...]
    taxes_amount_cents: int
    split: Split
    balance_amount_cents: int
    credit_status: str
    refund_status: str | None = None
    consumptions: tuple[Consumption, ...] = ()
    voided_at: datetime | None = None
    metadata: dict[str, str | None] = field(default_factory=dict)

    @property
    def coupons_adjustment_amount_cents(self) -> int:
        return coupons_adjustment_cents(self.items)

    @property
    def sub_total_excluding_taxes_amount_cents(self) -> int:
        return sum(i.amount_cents for i in self.items) - self.coupons_adjustment_amount_cents

    @property
    def total_amount_cents(self) -> int:
        return self.sub_total_excluding_taxes_amount_cents + self.taxes_amount_cents


class CreditNotesView(DocumentView):
    table = "credit_notes"
    columns = {
        "customer_id": "uuid NOT NULL",
        "invoice_id": "uuid NOT NULL",
        "credit_status": "text NOT NULL",
        "refund_status": "text",
        "reason": "text NOT NULL",
        "currency": "text NOT NULL",
        "issuing_date": "date NOT NULL",
        "total_amount_cents": "bigint NOT NULL",
        "number": "text NOT NULL",
        "invoice_number": "text NOT NULL",
    }

    def record(self, id: UUID) -> CreditNoteRecord:
        row = self.cursor.execute("SELECT data FROM credit_notes WHERE id = %s", (id,)).fetchone()
        return msgspec.convert(row[0], CreditNoteRecord)


def _columns(record: CreditNoteRecord) -> dict[str, Any]:
    return {
        "customer_id": record.customer_id, "invoice_id": record.invoice_id, "credit_status": record.credit_status,
        "refund_status": record.refund_status, "reason": record.reason, "currency": record.currency,
        "issuing_date": record.issuing_date, "total_amount_cents": record.total_amount_cents, "number": record.number,
        "invoice_number": record.invoice_number,
    }


class CreditNotes(Projection[CreditNotesView]):
    name = "credit_notes"

    @singledispatchmethod
    def process_event(self, event: Any, tracking: Tracking) -> None:
        """Other events do not change credit notes."""

    @process_event.register
    def _(self, event: CreditNote.Created, tracking: Tracking) -> None:
        record = CreditNoteRecord(
            invoice_id=event.invoice_id, invoice_number=event.invoice_number, customer_id=event.customer_id,
            currency=event.currency, number=event.number, sequential_id=event.sequential_id,
            issuing_date=event.issuing_date, reason=event.reason, description=event.description, items=event.items,
            taxes_amount_cents=event.taxes_amount_cents, split=event.split,
            balance_amount_cents=event.split.credit_amount_cents,
            credit_status="available" if event.split.credit_amount_cents > 0 else "consumed",
            refund_status="pending" if event.split.refund_amount_cents > 0 else None,
        )
        self.view.insert(event.originator_id, event.organization_id, event.key, record, event.timestamp, tracking,
                         **_columns(record))

    @process_event.register
    def _(self, event: CreditNote.Consumed, tracking: Tracking) -> None:
        record = self.view.record(event.originator_id)
        balance = record.balance_amount_cents - event.amount_cents
        self._save(event, tracking, replace(
            record, balance_amount_cents=balance, credit_status="consumed" if balance == 0 else record.credit_status,
            consumptions=(*record.consumptions, Consumption(event.invoice_id, event.amount_cents))))

    @process_event.register
    def _(self, event: CreditNote.Restored, tracking: Tracking) -> None:
        record = self.view.record(event.originator_id)
        self._save(event, tracking, replace(
            record, balance_amount_cents=record.balance_amount_cents + event.amount_cents, credit_status="available",
            consumptions=tuple(c for c in record.consumptions if c.invoice_id != event.invoice_id)))

    @process_event.register
    def _(self, event: CreditNote.RefundStatusChanged, tracking: Tracking) -> None:
        self._save(event, tracking, replace(self.view.record(event.originator_id), refund_status=event.refund_status))

    @process_event.register
    def _(self, event: CreditNote.MetadataChanged, tracking: Tracking) -> None:
        self._save(event, tracking, replace(self.view.record(event.originator_id), metadata=event.metadata))

    @process_event.register
    def _(self, event: CreditNote.Voided, tracking: Tracking) -> None:
        record = self.view.record(event.originator_id)
        self._save(event, tracking, replace(record, balance_amount_cents=0, credit_status="voided",
                                            voided_at=event.voided_at))

    def _save(self, event: Any, tracking: Tracking, record: CreditNoteRecord) -> None:
        self.view.update(event.originator_id, event.timestamp, tracking, data=record, **_columns(record))


@dataclass(frozen=True)
class CreditNoteFilters:
    """Lago's credit note list filters (reference §2.8) that Tally keeps."""

    customer_ids: list[UUID] | None = None
    credit_status: str | None = None
    refund_status: str | None = None
    reason: str | None = None
    currency: str | None = None
    invoice_number: str | None = None
    issuing_date_from: date | None = None
    issuing_date_to: date | None = None
    amount_from: int | None = None
    amount_to: int | None = None

    def conditions(self) -> list[Condition]:
        found: list[Condition] = []
        if self.customer_ids is not None:
            found.append((sql.SQL("customer_id = ANY(%s)"), [self.customer_ids]))
        return found + comparisons(
            ("credit_status", self.credit_status, "="), ("refund_status", self.refund_status, "="),
            ("reason", self.reason, "="), ("currency", self.currency, "="), ("invoice_number", self.invoice_number, "="),
            ("issuing_date", self.issuing_date_from, ">="), ("issuing_date", self.issuing_date_to, "<="),
            ("total_amount_cents", self.amount_from, ">="), ("total_amount_cents", self.amount_to, "<="))


class CreditNotesReader(DocumentReader[CreditNoteRecord]):
    def filtered(self, organization_id: UUID, offset: int, limit: int,
                 filters: CreditNoteFilters) -> tuple[list[Document[CreditNoteRecord]], int]:
        return self.page(organization_id, offset, limit, filters.conditions())
