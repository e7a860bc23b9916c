"""Payment requests: asking a customer to pay several overdue invoices at once (reference §2.16, dunning)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain import identity
from domain.errors import NotFound


class PaymentRequestNotFound(NotFound):
    resource = "payment_request"


class PaymentRequest(Aggregate):
    """The invoices a customer was asked to pay together, for how much, and to which address."""

    @staticmethod
    def create_id(organization_id: UUID, key: str) -> UUID:
        return identity.scoped_id(organization_id, "payment_request", key)

    @event("Requested")
    def __init__(self, organization_id: UUID, key: str, customer_id: UUID, email: str, invoice_ids: tuple[UUID, ...],
                 amount_cents: int, currency: str, requested_at: datetime) -> None:
        self.organization_id = organization_id
        self.key = key
        self.customer_id = customer_id
        self.email = email
        self.invoice_ids = invoice_ids
        self.amount_cents = amount_cents
        self.currency = currency
        self.requested_at = requested_at
