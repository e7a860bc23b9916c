"""Taxes over Lago's API (reference §2.12), and the tax objects other resources embed."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec

from domain.application import Billing
from domain.tax import TaxDefinition, TaxNotFound
from interfaces.http.catalog import Catalog, each
from interfaces.http.wire import Body, timestamp
from projections.documents import Document, DocumentReader

Unset = msgspec.UnsetType
UNSET = msgspec.UNSET


class TaxInput(msgspec.Struct, kw_only=True):
    name: str | Unset = UNSET
    code: str | Unset = UNSET
    rate: Decimal | None | Unset = UNSET
    description: str | None | Unset = UNSET
    applied_to_organization: bool | None | Unset = UNSET


class TaxObject(msgspec.Struct):
    lago_id: str
    name: str
    code: str
    rate: float
    description: str | None
    applied_to_organization: bool
    created_at: str
    add_ons_count: int = 0
    customers_count: int = 0
    plans_count: int = 0
    charges_count: int = 0
    commitments_count: int = 0


def number(value: Decimal) -> Any:
    """A Decimal written as a JSON number with its exact digits (Lago serializes rates as numbers)."""
    return msgspec.Raw(format(value, "f").encode())


def present_tax(document: Document[TaxDefinition]) -> TaxObject:
    tax = document.data
    return TaxObject(
        lago_id=str(document.id),
        name=tax.name,
        code=tax.code,
        rate=number(tax.rate or Decimal(0)),
        description=tax.description,
        applied_to_organization=tax.applied_to_organization,
        created_at=timestamp(document.created_at) or "",
    )


def taxes_for(reader: DocumentReader[TaxDefinition], organization_id: UUID, codes: Sequence[str]) -> list[TaxObject]:
    """The tax objects of these codes, in the given order; deleted taxes drop out."""
    found = reader.by_keys(organization_id, list(dict.fromkeys(codes)))
    return [present_tax(found[code]) for code in dict.fromkeys(codes) if code in found]


def catalog(billing: Billing, reader: DocumentReader[TaxDefinition]) -> Catalog:
    return Catalog(
        path="/api/v1/taxes",
        root="tax",
        plural="taxes",
        tag="taxes",
        body=Body("tax", TaxInput),
        response=TaxObject,
        present=each(present_tax),
        reader=reader,
        missing=TaxNotFound,
        create=billing.create_tax,
        update=billing.update_tax,
        delete=billing.delete_tax,
    )
