"""Current usage of a customer's subscription (reference §2.3), fresh to the last acknowledged event."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import falcon
import msgspec

from domain import money
from domain.billable_metric import BillableMetricNotFound, MetricDefinition
from domain.charge import Charge
from domain.currency import minor_unit_exponent
from domain.customer import CustomerNotFound
from domain.errors import NotAllowed, ValidationFailed
from domain.plan import PlanDefinition
from domain.pricing import PercentageUsage, Usage, price
from domain.subscription import SubscriptionNotFound
from domain.usage import bucket_properties, contribution, group_values
from domain.usage_event import numeric
from interfaces.http.events import EventFields
from interfaces.http.openapi import Envelope, Operation, Param
from interfaces.http.wire import BadRequest, respond, timestamp
from projections.catalog import TaxesReader
from projections.documents import DocumentReader
from projections.subscriptions import CustomersReader, SubscriptionsReader
from projections.usage_reader import (
    BucketUsage,
    ChargeUsage,
    CustomerUsageRead,
    PeriodUsage,
    UsageReader,
)


class NoActiveSubscription(NotAllowed):
    code = "no_active_subscription"


class ChargeUsageObject(msgspec.Struct):
    units: str
    total_aggregated_units: str
    events_count: int
    amount_cents: int
    amount_currency: str
    charge: dict[str, Any]
    billable_metric: dict[str, Any]
    filters: list[dict[str, Any]]
    grouped_usage: list[dict[str, Any]]
    pricing_unit_details: dict[str, Any] | None = None
    presentation_breakdowns: list[dict[str, Any]] = []


class CustomerUsageObject(msgspec.Struct):
    from_datetime: str
    to_datetime: str
    issuing_date: str
    currency: str
    amount_cents: int
    taxes_amount_cents: int
    total_amount_cents: int
    charges_usage: list[ChargeUsageObject]
    lago_invoice_id: str | None = None


def _units(value: Decimal) -> str:
    text = format(value, "f")
    return text if "." in text else text + ".0"


def _filters(usage: ChargeUsage, buckets: Sequence[BucketUsage]) -> list[dict[str, Any]]:
    if not usage.charge.filters:
        return []
    by_filter = {f.id: f for f in usage.charge.filters}
    shown = []
    for filter_id in [*(f.id for f in usage.charge.filters), None]:
        chosen = [b for b in buckets if (by_filter.get(b.filter_id) and b.filter_id == filter_id)
                  or (filter_id is None and b.filter_id not in by_filter)]
        charge_filter = by_filter.get(filter_id) if filter_id is not None else None
        shown.append({
            "units": _units(sum((b.units for b in chosen), Decimal(0))),
            "events_count": sum(b.events_count for b in chosen),
            "amount_cents": sum(b.amount_cents for b in chosen),
            "invoice_display_name": charge_filter.invoice_display_name if charge_filter else None,
            "values": {v.key: list(v.values) for v in charge_filter.values} if charge_filter else None,
        })
    return shown


def _groups(usage: ChargeUsage) -> list[dict[str, Any]]:
    keys = usage.charge.properties.pricing_group_keys
    if not keys:
        return []
    groups: dict[str, list[BucketUsage]] = {}
    for bucket in usage.buckets:
        groups.setdefault(bucket.group, []).append(bucket)
    return [
        {
            "grouped_by": group_values(keys, group) if group else {k: None for k in keys},
            "units": _units(sum((b.units for b in buckets), Decimal(0))),
            "amount_cents": sum(b.amount_cents for b in buckets),
            "events_count": sum(b.events_count for b in buckets),
            "filters": _filters(usage, buckets),
        }
        for group, buckets in groups.items()
    ]


def _rates(usage: PeriodUsage, read: CustomerUsageRead) -> Callable[[Charge], Decimal]:
    """Sum of tax rates a charge's fee bears: its own, else the plan's, customer's or organization's (M2)."""
    plan_codes = usage.context.tax_codes
    customer_codes = read.customer_tax_codes
    default_rate = sum((read.tax_rates[c] for c in read.default_tax_codes), Decimal(0))

    def rate(charge: Charge) -> Decimal:
        for chosen in (charge.tax_codes, plan_codes, customer_codes):
            if chosen:
                return sum((read.tax_rates[c] for c in chosen if c in read.tax_rates), Decimal(0))
        return default_rate

    return rate


class CurrentUsage:
    path = "/api/v1/customers/{external_id}/current_usage"
    operations = (
        Operation("GET", path, "Usage of the current period, including every event acknowledged before the request",
                  "customers", CustomerUsageObject, "customer_usage", errors=(401, 404, 405, 422),
                  query=(Param("external_subscription_id", "The subscription's external id.", required=True),
                         Param("apply_taxes", "Include taxes (default true).", "boolean"))),
    )

    def __init__(self, customers: CustomersReader, subscriptions: SubscriptionsReader, plans: DocumentReader[PlanDefinition],
                 metrics: DocumentReader[Any], taxes: TaxesReader, usage: UsageReader, clock: Callable[[], datetime]) -> None:
        self.customers = customers
        self.subscriptions = subscriptions
        self.plans = plans
        self.metrics = metrics
        self.taxes = taxes
        self.usage = usage
        self.clock = clock

    def on_get(self, req: falcon.Request, resp: falcon.Response, external_id: str) -> None:
        organization_id = req.context.organization_id
        external_subscription_id = req.get_param("external_subscription_id")
        if not external_subscription_id:
            raise ValidationFailed({"external_subscription_id": ["value_is_mandatory"]})
        found = self.usage.customer_usage(organization_id, external_id, external_subscription_id, self.clock())
        if found is None:
            raise CustomerNotFound(key=external_id)
        if found.usage is None:
            raise NoActiveSubscription(f"no active subscription {external_subscription_id}")
        apply_taxes = (req.get_param("apply_taxes") or "true").lower() != "false"
        rates = _rates(found.usage, found) if apply_taxes else None
        respond(resp, {"customer_usage": self._present(found.usage, rates)})

    def _present(self, usage: PeriodUsage, rates: Callable[[Charge], Decimal] | None) -> CustomerUsageObject:
        charges = []
        fee_taxes: list[Decimal] = []  # rounded once over the period, as an invoice's (M2)
        for charge_usage in usage.charges:
            charge = charge_usage.charge
            metric = charge_usage.metric
            if rates is not None:
                fee_taxes.append(money.taxes_precise(Decimal(charge_usage.amount_cents), (rates(charge),)))
            charges.append(ChargeUsageObject(
                units=_units(charge_usage.units),
                total_aggregated_units=_units(charge_usage.units),
                events_count=charge_usage.events_count,
                amount_cents=charge_usage.amount_cents,
                amount_currency=usage.currency,
                charge={"lago_id": str(charge.id), "code": charge.code, "charge_model": charge.charge_model,
                        "invoice_display_name": charge.invoice_display_name},
                billable_metric={"lago_id": str(charge_usage.metric_id), "name": metric.name, "code": metric.code,
                                 "aggregation_type": metric.aggregation_type},
                filters=_filters(charge_usage, charge_usage.buckets),
                grouped_usage=_groups(charge_usage),
            ))
        amount = usage.amount_cents
        taxes = money.invoice_taxes_cents(fee_taxes)
        period = usage.period
        local_end = period.ends_at.astimezone(ZoneInfo(usage.context.timezone))
        return CustomerUsageObject(
            from_datetime=timestamp(period.starts_at) or "", to_datetime=timestamp(period.lago_ending_at()) or "",
            issuing_date=local_end.date().isoformat(), currency=usage.currency, amount_cents=amount,
            taxes_amount_cents=taxes, total_amount_cents=amount + taxes, charges_usage=charges,
        )


class FeeEstimateObject(msgspec.Struct):
    """Lago's fee shape, for a fee not (yet) created: what one event would cost a pay-in-advance charge."""

    lago_id: str | None
    lago_invoice_id: str | None
    lago_subscription_id: str
    external_subscription_id: str
    lago_customer_id: str
    external_customer_id: str
    item: dict[str, Any]
    pay_in_advance: bool
    invoiceable: bool
    amount_cents: int
    amount_currency: str
    precise_amount: str
    taxes_amount_cents: int
    taxes_rate: float
    total_amount_cents: int
    total_amount_currency: str
    units: str
    events_count: int
    event_transaction_id: str | None
    created_at: str | None = None
    applied_taxes: list[dict[str, Any]] = []


class EstimateInput(msgspec.Struct, kw_only=True):
    code: Any = None
    external_subscription_id: Any = None
    transaction_id: Any = None
    timestamp: Any = None
    properties: Any = None
    precise_total_amount_cents: Any = None


class EstimateEnvelope(msgspec.Struct):
    event: EstimateInput | None = None


_decode_estimate = msgspec.json.Decoder(EstimateEnvelope, float_hook=Decimal).decode


class EstimateFees:
    """What one event would add to the pay-in-advance charges of its subscription, now."""

    path = "/api/v1/events/estimate_fees"
    operations = (
        Operation("POST", path, "Estimate the fees one event would create on pay-in-advance charges", "events",
                  FeeEstimateObject, "fees", request=Envelope("event", EventFields), many=True, changes=False,
                  errors=(404,)),
    )

    def __init__(self, current: CurrentUsage) -> None:
        self._current = current

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            raw = _decode_estimate(req.context.body).event
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            raise BadRequest(f"malformed event: {error}") from None
        if raw is None:
            raise BadRequest("param is missing or the value is empty or invalid: event")
        organization_id = req.context.organization_id
        current = self._current
        subscription = current.subscriptions.by_external_id(organization_id, str(raw.external_subscription_id or ""), "active")
        if subscription is None:
            raise SubscriptionNotFound(key=raw.external_subscription_id)
        plan = current.plans.by_id(organization_id, subscription.extra["plan_id"])
        metric = current.metrics.by_key(organization_id, str(raw.code or ""))
        if metric is None:
            raise BillableMetricNotFound(key=raw.code)
        assert plan is not None
        charges = [c for c in plan.data.charges if c.billable_metric_id == metric.id and c.pay_in_advance]
        if not charges:
            raise ValidationFailed({"code": ["does_not_match_an_instant_charge"]})
        properties = dict(raw.properties or {})
        field_name = metric.data.field_name
        if field_name and metric.data.aggregation_type == "sum_agg" and numeric(properties.get(field_name)) is None:
            raise ValidationFailed({"properties": ["value_is_not_valid_number"]})
        usage = current.usage.current(subscription.id, current.clock())
        assert usage is not None
        customer_id = subscription.extra["customer_id"]
        customer = current.customers.many(organization_id, [customer_id])[customer_id]
        fees = []
        for charge in charges:
            estimate = _estimate(metric.data, charge, properties, usage)
            if estimate is None:
                continue
            amount, added = estimate
            cents = money.to_cents(amount, minor_unit_exponent(usage.currency))
            fees.append(FeeEstimateObject(
                lago_id=None, lago_invoice_id=None, lago_subscription_id=str(subscription.id),
                external_subscription_id=subscription.data.external_id, lago_customer_id=str(customer.id),
                external_customer_id=customer.data.external_id,
                item={"type": "charge", "code": metric.data.code, "name": metric.data.name,
                      "invoice_display_name": charge.invoice_display_name or metric.data.name,
                      "lago_item_id": str(charge.id), "item_type": "BillableMetric"},
                pay_in_advance=True, invoiceable=charge.invoiceable, amount_cents=cents,
                amount_currency=usage.currency, precise_amount=format(amount, "f"),
                taxes_amount_cents=0, taxes_rate=0.0, total_amount_cents=cents,
                total_amount_currency=usage.currency, units=_units(added), events_count=1,
                event_transaction_id=raw.transaction_id if isinstance(raw.transaction_id, str) else None,
            ))
        respond(resp, {"fees": fees})


def _estimate(metric: MetricDefinition, charge: Charge, properties: dict[str, Any], usage: PeriodUsage) -> tuple[Decimal, Decimal] | None:
    """Price of the period with the event minus without it, for the event's bucket (C10, without high-water marks)."""
    counted = contribution(metric, charge, properties)
    if counted is None:
        return None
    charge_usage = next(c for c in usage.charges if c.charge.id == charge.id)
    bucket = next((b for b in charge_usage.buckets if b.filter_id == counted.filter_id and b.group == counted.group), None)
    before = bucket.units if bucket is not None else Decimal(0)
    added = Decimal(1) if metric.aggregation_type in ("count_agg", "unique_count_agg") else (counted.value or Decimal(0))
    priced_by = bucket_properties(charge, counted.filter_id)
    exponent = minor_unit_exponent(usage.currency)
    with_event = price(charge.charge_model, priced_by, Usage(before + added, 1, percentage=PercentageUsage(added, 1, (added,), Decimal(0))), exponent=exponent)
    without = price(charge.charge_model, priced_by, Usage(before, 0, percentage=PercentageUsage(Decimal(0), 0, (), Decimal(0))), exponent=exponent)
    return max(with_event.amount - without.amount, Decimal(0)), added
