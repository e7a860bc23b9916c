"""Add-ons: one-off charges of a fixed amount, invoiced on demand (reference §2.11)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from domain import limits
from domain.catalog import CatalogItem
from domain.currency import is_accepted_currency
from domain.errors import NotFound, Problems


class AddOnNotFound(NotFound):
    resource = "add_on"


@dataclass(frozen=True)
class AddOnDefinition:
    name: str = ""
    code: str = ""
    invoice_display_name: str | None = None
    amount_cents: int | None = None
    amount_currency: str = ""
    description: str | None = None
    tax_codes: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return self.code

    def amended(self, changes: Mapping[str, Any]) -> AddOnDefinition:
        own = dict(changes)
        if "tax_codes" in own:
            own["tax_codes"] = tuple(own["tax_codes"] or ())
        return replace(self, **own)

    def check(self) -> None:
        problems = Problems()
        problems.check(bool(self.name.strip()), "name", "value_is_mandatory")
        problems.check(bool(self.code.strip()), "code", "value_is_mandatory")
        if self.amount_cents is None:
            problems.add("amount_cents", "value_is_mandatory")
        elif not 0 <= self.amount_cents <= limits.MAX_AMOUNT_CENTS:
            problems.add("amount_cents", "value_is_out_of_range")
        if not self.amount_currency:
            problems.add("amount_currency", "value_is_mandatory")
        elif not is_accepted_currency(self.amount_currency):
            problems.add("amount_currency", "value_is_invalid")
        problems.raise_if_any()


class AddOn(CatalogItem):
    kind = "add_on"
    missing = AddOnNotFound

    class Defined(CatalogItem.Defined):
        definition: AddOnDefinition

    class Redefined(CatalogItem.Redefined):
        definition: AddOnDefinition

    class Deleted(CatalogItem.Deleted):
        pass
