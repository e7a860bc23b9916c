"""Catalog read models: every catalog kind is a document view fed by its three events."""

from __future__ import annotations

from functools import singledispatchmethod
from typing import Any

from eventsourcing.persistence import Tracking

from domain.billable_metric import BillableMetric
from domain.catalog import CatalogItem
from projections.documents import DocumentView
from projections.projection import Projection


class BillableMetricsView(DocumentView):
    table = "billable_metrics"


def catalog_projection(kind: type[CatalogItem], view: type[DocumentView]) -> type[Projection[Any]]:
    """A projection keeping ``view`` equal to the live definitions of ``kind``."""

    class CatalogProjection(Projection[Any]):
        name = view.table

        @singledispatchmethod
        def process_event(self, event: Any, tracking: Tracking) -> None:
            """Other events do not change this catalog."""

        @process_event.register(kind.Defined)
        def _(self, event: Any, tracking: Tracking) -> None:
            self.view.insert(event.originator_id, event.organization_id, event.definition.key, event.definition, event.timestamp, tracking)

        @process_event.register(kind.Redefined)
        def _(self, event: Any, tracking: Tracking) -> None:
            self.view.update(event.originator_id, event.timestamp, tracking, key=event.definition.key, data=event.definition)

        @process_event.register(kind.Deleted)
        def _(self, event: Any, tracking: Tracking) -> None:
            self.view.delete(event.originator_id, event.timestamp, tracking)

    CatalogProjection.__name__ = CatalogProjection.__qualname__ = f"{kind.__name__}Catalog"
    return CatalogProjection


BillableMetrics = catalog_projection(BillableMetric, BillableMetricsView)
