"""Taxes: a named percentage, applied to fees through tax codes (reference §2.12)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from domain import limits
from domain.catalog import CatalogItem
from domain.errors import NotFound, Problems


class TaxNotFound(NotFound):
    resource = "tax"


@dataclass(frozen=True)
class TaxDefinition:
    name: str = ""
    code: str = ""
    rate: Decimal | None = None
    description: str | None = None
    applied_to_organization: bool = False

    @property
    def key(self) -> str:
        return self.code

    def amended(self, changes: Mapping[str, Any]) -> TaxDefinition:
        own = dict(changes)
        if own.get("applied_to_organization") is None:
            own.pop("applied_to_organization", None)
        if own.get("rate") is not None:
            own["rate"] = Decimal(str(own["rate"]))
        return replace(self, **own)

    def check(self) -> None:
        problems = Problems()
        problems.check(bool(self.name.strip()), "name", "value_is_mandatory")
        problems.check(bool(self.code.strip()), "code", "value_is_mandatory")
        if self.rate is None:
            problems.add("rate", "value_is_mandatory")
        elif not self.rate.is_finite() or not Decimal(0) <= self.rate <= limits.MAX_RATE_PERCENT:
            problems.add("rate", "value_is_out_of_range")
        problems.raise_if_any()


class Tax(CatalogItem):
    kind = "tax"
    missing = TaxNotFound

    class Defined(CatalogItem.Defined):
        definition: TaxDefinition

    class Redefined(CatalogItem.Redefined):
        definition: TaxDefinition

    class Deleted(CatalogItem.Deleted):
        pass
