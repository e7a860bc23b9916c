"""Billable metrics over Lago's API (reference §2.1), and expression evaluation."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import falcon
import msgspec

from domain.application import Billing
from domain.billable_metric import BillableMetricNotFound, MetricDefinition
from domain.errors import ValidationFailed
from domain.expression import ExpressionError, compile_expression
from interfaces.http.catalog import Catalog, each
from interfaces.http.openapi import Envelope, Operation
from interfaces.http.wire import Body, respond, timestamp
from projections.documents import Document, DocumentReader

Unset = msgspec.UnsetType
UNSET = msgspec.UNSET
AggregationType = Literal["count_agg", "sum_agg", "max_agg", "unique_count_agg", "weighted_sum_agg", "latest_agg", "custom_agg"]


class MetricFilterInput(msgspec.Struct):
    key: str
    values: list[str]


class BillableMetricInput(msgspec.Struct, kw_only=True):
    """Create and update share one body; on update only the fields sent change."""

    name: str | Unset = UNSET
    code: str | Unset = UNSET
    description: str | None | Unset = UNSET
    aggregation_type: AggregationType | Unset = UNSET
    field_name: str | None | Unset = UNSET
    recurring: bool | None | Unset = UNSET
    weighted_interval: Literal["seconds"] | None | Unset = UNSET
    expression: str | None | Unset = UNSET
    rounding_function: Literal["round", "ceil", "floor"] | None | Unset = UNSET
    rounding_precision: int | None | Unset = UNSET
    filters: list[MetricFilterInput] | None | Unset = UNSET


class MetricFilterObject(msgspec.Struct):
    key: str
    values: list[str]


class BillableMetricObject(msgspec.Struct):
    lago_id: str
    name: str
    code: str
    description: str | None
    aggregation_type: str
    weighted_interval: str | None
    recurring: bool
    rounding_function: str | None
    rounding_precision: int | None
    created_at: str
    field_name: str | None
    expression: str | None
    filters: list[MetricFilterObject]
    active_subscriptions_count: int = 0
    draft_invoices_count: int = 0
    plans_count: int = 0


_body = Body("billable_metric", BillableMetricInput)


def present(document: Document[MetricDefinition]) -> BillableMetricObject:
    metric = document.data
    return BillableMetricObject(
        lago_id=str(document.id),
        name=metric.name,
        code=metric.code,
        description=metric.description,
        aggregation_type=metric.aggregation_type,
        weighted_interval=metric.weighted_interval,
        recurring=metric.recurring,
        rounding_function=metric.rounding_function,
        rounding_precision=metric.rounding_precision,
        created_at=timestamp(document.created_at) or "",
        field_name=metric.field_name,
        expression=metric.expression,
        filters=[MetricFilterObject(key=f.key, values=sorted(f.values)) for f in metric.filters],
    )


def _catalog_filter(changes: dict[str, Any]) -> dict[str, Any]:
    if changes.get("aggregation_type") == "custom_agg":
        raise ValidationFailed({"aggregation_type": ["value_is_invalid"]})
    return changes


def catalog(billing: Billing, reader: DocumentReader[MetricDefinition]) -> Catalog:
    return Catalog(
        path="/api/v1/billable_metrics",
        root="billable_metric",
        plural="billable_metrics",
        tag="billable_metrics",
        body=_body,
        response=BillableMetricObject,
        present=each(present),
        reader=reader,
        missing=BillableMetricNotFound,
        create=lambda org, changes: billing.create_billable_metric(org, _catalog_filter(changes)),
        update=lambda org, code, changes: billing.update_billable_metric(org, code, _catalog_filter(changes)),
        delete=billing.delete_billable_metric,
    )


class ExpressionEvent(msgspec.Struct, kw_only=True):
    code: str | None = None
    timestamp: int | float | str | None = None
    properties: dict[str, Any] = {}


class EvaluateExpression(msgspec.Struct, kw_only=True):
    """Not enveloped: Lago reads ``expression`` and ``event`` at the top level."""

    expression: str | None = None
    event: ExpressionEvent | None = None


class ExpressionResult(msgspec.Struct):
    value: str | float | int


_decode_evaluation = msgspec.json.Decoder(EvaluateExpression).decode


class EvaluateExpressionResource:
    path = "/api/v1/billable_metrics/evaluate_expression"
    operations = (
        Operation("POST", path, "Evaluate a metric expression against a sample event", "billable_metrics",
                  ExpressionResult, "expression_result", request=Envelope(None, EvaluateExpression), changes=False),
    )

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            body = _decode_evaluation(req.context.body or b"{}")
        except msgspec.DecodeError:
            body = EvaluateExpression()
        if not body.expression:
            raise ValidationFailed({"expression": ["value_is_mandatory"]})
        event = body.event or ExpressionEvent()
        try:
            moment = Decimal(str(event.timestamp)) if event.timestamp is not None else Decimal(0)
        except InvalidOperation:
            raise ValidationFailed({"timestamp": ["invalid_format"]}) from None
        try:
            value = compile_expression(body.expression).evaluate(
                code=event.code or "", timestamp=moment, properties=event.properties
            )
        except ExpressionError:
            raise ValidationFailed({"expression": ["invalid_expression"]}) from None
        respond(resp, {"expression_result": {"value": value if isinstance(value, str) else _number(value)}})


def _number(value: Decimal) -> int | float | str:
    """A JSON number when it round-trips exactly, else the exact decimal as a string."""
    if value == value.to_integral_value():
        return int(value)
    as_float = float(value)
    return as_float if Decimal(repr(as_float)) == value else str(value)

