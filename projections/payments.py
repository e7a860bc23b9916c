"""Payments read model: what ``/payments`` lists."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import singledispatchmethod
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Tracking

from domain.payment import Payment
from projections.documents import DocumentReader, DocumentView
from projections.projection import Projection


@dataclass(frozen=True)
class PaymentRecord:
    invoice_id: UUID
    invoice_number: str
    customer_id: UUID
    reference: str
    amount_cents: int
    currency: str
    paid_at: datetime


class PaymentsView(DocumentView):
    table = "payments"
    columns = {"customer_id": "uuid NOT NULL", "invoice_id": "uuid NOT NULL"}


class Payments(Projection[PaymentsView]):
    name = "payments"

    @singledispatchmethod
    def process_event(self, event: Any, tracking: Tracking) -> None:
        """Other events do not change payments."""

    @process_event.register
    def _(self, event: Payment.Received, tracking: Tracking) -> None:
        record = PaymentRecord(invoice_id=event.invoice_id, invoice_number=event.invoice_number,
                               customer_id=event.customer_id, reference=event.reference,
                               amount_cents=event.amount_cents, currency=event.currency, paid_at=event.paid_at)
        self.view.insert(event.originator_id, event.organization_id, event.reference, record, event.timestamp, tracking,
                         customer_id=event.customer_id, invoice_id=event.invoice_id)


class PaymentsReader(DocumentReader[PaymentRecord]):
    pass
