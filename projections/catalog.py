"""Catalog read models: every catalog kind is a document view fed by its three events."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import singledispatchmethod
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Tracking
from psycopg import sql

from domain.add_on import AddOn
from domain.billable_metric import BillableMetric
from domain.catalog import CatalogItem
from domain.coupon import Coupon
from domain.fee import AppliedTax
from domain.period_close import TaxTable
from domain.plan import Plan
from domain.tax import Tax, TaxDefinition
from projections.documents import Document, DocumentReader, DocumentView
from projections.projection import Projection


class BillableMetricsView(DocumentView):
    table = "billable_metrics"


class TaxesView(DocumentView):
    table = "taxes"
    columns = {"applied_to_organization": "boolean NOT NULL DEFAULT false"}


class AddOnsView(DocumentView):
    table = "add_ons"


class CouponsView(DocumentView):
    table = "coupons"


class PlansView(DocumentView):
    table = "plans"


def catalog_projection(
    kind: type[CatalogItem],
    view: type[DocumentView],
    columns: Callable[[Any], dict[str, Any]] = lambda definition: {},
) -> type[Projection[Any]]:
    """A projection keeping ``view`` equal to the live definitions of ``kind``."""

    class CatalogProjection(Projection[Any]):
        name = view.table

        @singledispatchmethod
        def process_event(self, event: Any, tracking: Tracking) -> None:
            """Other events do not change this catalog."""

        @process_event.register(kind.Defined)
        def _(self, event: Any, tracking: Tracking) -> None:
            self.view.insert(event.originator_id, event.organization_id, event.definition.key, event.definition,
                             event.timestamp, tracking, **columns(event.definition))

        @process_event.register(kind.Redefined)
        def _(self, event: Any, tracking: Tracking) -> None:
            self.view.update(event.originator_id, event.timestamp, tracking, key=event.definition.key,
                             data=event.definition, **columns(event.definition))

        @process_event.register(kind.Deleted)
        def _(self, event: Any, tracking: Tracking) -> None:
            self.view.delete(event.originator_id, event.timestamp, tracking)

    CatalogProjection.__name__ = CatalogProjection.__qualname__ = f"{kind.__name__}Catalog"
    return CatalogProjection


BillableMetrics = catalog_projection(BillableMetric, BillableMetricsView)
Taxes = catalog_projection(Tax, TaxesView, lambda tax: {"applied_to_organization": tax.applied_to_organization})
AddOns = catalog_projection(AddOn, AddOnsView)
Coupons = catalog_projection(Coupon, CouponsView)
Plans = catalog_projection(Plan, PlansView)


class TaxesReader(DocumentReader[TaxDefinition]):
    """Taxes, plus the organization's default ones (``applied_to_organization``)."""

    def tax_table(self, organization_id: UUID) -> TaxTable:
        """The organization's taxes in force as invoices apply them, and its defaults (M2)."""
        documents, _ = self.page(organization_id, 0, 10_000)
        applied = {d.data.code: (AppliedTax(tax_id=d.id, code=d.data.code, name=d.data.name, rate=d.data.rate or 0,
                                            description=d.data.description), bool(d.extra.get("applied_to_organization")))
                   for d in documents}
        return TaxTable({code: tax for code, (tax, _) in applied.items()},
                        tuple(tax for tax, default in applied.values() if default), ())

    def organization_defaults(self, organization_id: UUID) -> list[Document[TaxDefinition]]:
        return self.applicable(organization_id, ())[1]

    def applicable(self, organization_id: UUID, codes: Sequence[str]) -> tuple[dict[str, Document[TaxDefinition]], list[Document[TaxDefinition]]]:
        """In one read: the live taxes with these codes, and the organization's default taxes."""
        self.fresh()
        with self._pool.connection() as conn:
            rows = conn.execute(
                self._select + sql.SQL(" WHERE organization_id = %s AND deleted_at IS NULL "
                                       "AND (key = ANY(%s) OR applied_to_organization) ORDER BY created_at"),
                [organization_id, list(codes)],
            ).fetchall()
        documents = [self._document(row) for row in rows]
        return ({d.key: d for d in documents if d.key in codes},
                [d for d in documents if d.extra["applied_to_organization"]])
