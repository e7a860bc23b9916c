"""Payments read model: what ``/payments`` lists."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import singledispatchmethod
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Tracking

from domain.payment import Payment
from domain.payment_request import PaymentRequest
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


@dataclass(frozen=True)
class PaymentRequestRecord:
    customer_id: UUID
    email: str
    invoice_ids: tuple[UUID, ...]
    amount_cents: int
    currency: str
    requested_at: datetime


class PaymentRequestsView(DocumentView):
    table = "payment_requests"
    columns = {"customer_id": "uuid NOT NULL", "currency": "text NOT NULL"}


class PaymentRequests(Projection[PaymentRequestsView]):
    name = "payment_requests"

    @singledispatchmethod
    def process_event(self, event: Any, tracking: Tracking) -> None:
        """Other events do not change payment requests."""

    @process_event.register
    def _(self, event: PaymentRequest.Requested, tracking: Tracking) -> None:
        record = PaymentRequestRecord(customer_id=event.customer_id, email=event.email, invoice_ids=event.invoice_ids,
                                      amount_cents=event.amount_cents, currency=event.currency,
                                      requested_at=event.requested_at)
        self.view.insert(event.originator_id, event.organization_id, event.key, record, event.timestamp, tracking,
                         customer_id=event.customer_id, currency=event.currency)


class PaymentRequestsReader(DocumentReader[PaymentRequestRecord]):
    pass
