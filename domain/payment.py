"""Payments: money received against a finalized invoice (reference §2.16, semantics I1).

A manual payment names its invoice, an amount and a reference. Payments may be partial; the
invoice counts what was paid and is ``succeeded`` once nothing is due. A payment's id derives
from its invoice and reference, so the same payment sent twice is recorded once.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain import identity
from domain.errors import NotFound


class PaymentNotFound(NotFound):
    resource = "payment"


class Payment(Aggregate):
    """One manual payment of (part of) one invoice."""

    @staticmethod
    def create_id(organization_id: UUID, invoice_id: UUID, reference: str) -> UUID:
        return identity.scoped_id(organization_id, "payment", f"{invoice_id}/{reference}")

    @event("Received")
    def __init__(self, organization_id: UUID, invoice_id: UUID, reference: str, customer_id: UUID,
                 invoice_number: str, amount_cents: int, currency: str, paid_at: datetime) -> None:
        self.organization_id = organization_id
        self.invoice_id = invoice_id
        self.reference = reference
        self.customer_id = customer_id
        self.invoice_number = invoice_number
        self.amount_cents = amount_cents
        self.currency = currency
        self.paid_at = paid_at
