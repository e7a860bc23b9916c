"""Billable metrics: what usage is counted and how it is aggregated (reference §2.1, semantics §2)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from domain.catalog import CatalogItem
from domain.errors import NotFound, Problems
from domain.expression import ExpressionError, compile_expression

AGGREGATION_TYPES = (
    "count_agg",
    "sum_agg",
    "max_agg",
    "unique_count_agg",
    "weighted_sum_agg",
    "latest_agg",
)
NOT_RECURRING = ("count_agg", "max_agg", "latest_agg")
ROUNDING_FUNCTIONS = ("round", "ceil", "floor")
WEIGHTED_INTERVALS = ("seconds",)


class BillableMetricNotFound(NotFound):
    resource = "billable_metric"


@dataclass(frozen=True)
class MetricFilter:
    """A dimension of the metric: an event property and the values it may take."""

    key: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class MetricDefinition:
    name: str = ""
    code: str = ""
    description: str | None = None
    aggregation_type: str = ""
    field_name: str | None = None
    recurring: bool = False
    weighted_interval: str | None = None
    expression: str | None = None
    rounding_function: str | None = None
    rounding_precision: int | None = None
    filters: tuple[MetricFilter, ...] = ()

    @property
    def key(self) -> str:
        return self.code

    def amended(self, changes: Mapping[str, Any]) -> MetricDefinition:
        """This definition with the sent fields replaced; count metrics never keep a field."""
        own = dict(changes)
        if "filters" in own:
            own["filters"] = tuple(
                MetricFilter(key=f["key"], values=tuple(f.get("values") or ())) for f in own["filters"] or ()
            )
        if "recurring" in own and own["recurring"] is None:
            own["recurring"] = False
        amended = replace(self, **own)
        if amended.aggregation_type == "count_agg":
            amended = replace(amended, field_name=None)
        if amended.aggregation_type != "weighted_sum_agg":
            amended = replace(amended, weighted_interval=None)
        return amended

    def check(self) -> None:
        """Lago's rules (app/models/billable_metric.rb) with its error codes."""
        problems = Problems()
        problems.check(bool(self.name.strip()), "name", "value_is_mandatory")
        problems.check(bool(self.code.strip()), "code", "value_is_mandatory")
        if not self.aggregation_type:
            problems.add("aggregation_type", "value_is_mandatory")
        elif self.aggregation_type not in AGGREGATION_TYPES:
            problems.add("aggregation_type", "value_is_invalid")
        needs_field = self.aggregation_type in AGGREGATION_TYPES and self.aggregation_type != "count_agg"
        if needs_field and not self.field_name:
            problems.add("field_name", "value_is_mandatory")
        if self.recurring and self.aggregation_type in NOT_RECURRING:
            problems.add("recurring", "not_compatible_with_aggregation_type")
        if self.aggregation_type == "weighted_sum_agg" and self.weighted_interval not in WEIGHTED_INTERVALS:
            problems.add("weighted_interval", "value_is_invalid")
        if self.rounding_function is not None and self.rounding_function not in ROUNDING_FUNCTIONS:
            problems.add("rounding_function", "value_is_invalid")
        if self.rounding_precision is not None and not -15 <= self.rounding_precision <= 15:
            problems.add("rounding_precision", "value_is_out_of_range")
        if self.expression:
            if self.aggregation_type == "count_agg":
                problems.add("expression", "not_compatible_with_aggregation_type")
            try:
                compile_expression(self.expression)
            except ExpressionError:
                problems.add("expression", "invalid_expression")
        keys = [f.key for f in self.filters]
        problems.check(len(keys) == len(set(keys)), "filters", "value_already_exist")
        for metric_filter in self.filters:
            problems.check(bool(metric_filter.key), "filters", "invalid_key")
            problems.check(bool(metric_filter.values), "filters", "invalid_values")
        problems.raise_if_any()

    def filter_values(self, key: str) -> tuple[str, ...] | None:
        return next((f.values for f in self.filters if f.key == key), None)


class BillableMetric(CatalogItem):
    """A metric of one organization; its code is its Handle."""

    kind = "billable_metric"
    missing = BillableMetricNotFound

    class Defined(CatalogItem.Defined):
        definition: MetricDefinition

    class Redefined(CatalogItem.Redefined):
        definition: MetricDefinition

    class Deleted(CatalogItem.Deleted):
        pass
