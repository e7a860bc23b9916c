"""Add-ons over Lago's API (reference §2.11)."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import msgspec

from domain.add_on import AddOnDefinition, AddOnNotFound
from domain.application import Billing
from domain.tax import TaxDefinition
from interfaces.http.catalog import Catalog
from interfaces.http.taxes import TaxObject, taxes_for
from interfaces.http.wire import Body, timestamp
from projections.documents import Document, DocumentReader

Unset = msgspec.UnsetType
UNSET = msgspec.UNSET


class AddOnInput(msgspec.Struct, kw_only=True):
    name: str | Unset = UNSET
    invoice_display_name: str | None | Unset = UNSET
    code: str | Unset = UNSET
    amount_cents: int | Unset = UNSET
    amount_currency: str | Unset = UNSET
    description: str | None | Unset = UNSET
    tax_codes: list[str] | None | Unset = UNSET


class AddOnObject(msgspec.Struct):
    lago_id: str
    name: str
    invoice_display_name: str | None
    code: str
    amount_cents: int
    amount_currency: str
    description: str | None
    created_at: str
    taxes: list[TaxObject]


def catalog(billing: Billing, reader: DocumentReader[AddOnDefinition], taxes: DocumentReader[TaxDefinition]) -> Catalog:
    def present(organization_id: UUID, documents: Sequence[Document[AddOnDefinition]]) -> list[AddOnObject]:
        return [
            AddOnObject(
                lago_id=str(d.id),
                name=d.data.name,
                invoice_display_name=d.data.invoice_display_name,
                code=d.data.code,
                amount_cents=d.data.amount_cents or 0,
                amount_currency=d.data.amount_currency,
                description=d.data.description,
                created_at=timestamp(d.created_at) or "",
                taxes=taxes_for(taxes, organization_id, d.data.tax_codes),
            )
            for d in documents
        ]

    return Catalog(
        path="/api/v1/add_ons",
        root="add_on",
        plural="add_ons",
        tag="add_ons",
        body=Body("add_on", AddOnInput),
        response=AddOnObject,
        present=present,
        reader=reader,
        missing=AddOnNotFound,
        create=billing.create_add_on,
        update=billing.update_add_on,
        delete=billing.delete_add_on,
    )
