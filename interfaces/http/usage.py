"""Current usage of a customer's subscription (reference §2.3), fresh to the last acknowledged event."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import falcon
import msgspec

from domain.charge import Charge
from domain.customer import CustomerNotFound
from domain.errors import NotAllowed, ValidationFailed
from domain.plan import PlanDefinition
from domain.usage import group_values
from interfaces.http.openapi import Operation, Param
from interfaces.http.wire import respond, timestamp
from projections.catalog import TaxesReader
from projections.documents import DocumentReader
from projections.subscriptions import CustomersReader, SubscriptionsReader
from projections.usage_reader import BucketUsage, ChargeUsage, PeriodUsage, UsageReader


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
        self._customers = customers
        self._subscriptions = subscriptions
        self._plans = plans
        self._metrics = metrics
        self._taxes = taxes
        self._usage = usage
        self._clock = clock

    def on_get(self, req: falcon.Request, resp: falcon.Response, external_id: str) -> None:
        organization_id = req.context.organization_id
        external_subscription_id = req.get_param("external_subscription_id")
        if not external_subscription_id:
            raise ValidationFailed({"external_subscription_id": ["value_is_mandatory"]})
        customer = self._customers.by_key(organization_id, external_id)
        if customer is None:
            raise CustomerNotFound(key=external_id)
        subscription = self._subscriptions.by_external_id(organization_id, external_subscription_id, "active")
        if subscription is None or subscription.extra["customer_id"] != customer.id:
            raise NoActiveSubscription(f"no active subscription {external_subscription_id}")
        plan = self._plans.by_id(organization_id, subscription.extra["plan_id"])
        assert plan is not None
        usage = self._usage.current(subscription.id, self._clock(), plan.data.amount_currency)
        if usage is None:
            raise NoActiveSubscription(f"no active subscription {external_subscription_id}")
        apply_taxes = (req.get_param("apply_taxes") or "true").lower() != "false"
        rates = self._rates(organization_id, plan.data, customer.data.tax_codes) if apply_taxes else None
        respond(resp, {"customer_usage": self._present(organization_id, usage, rates)})

    def _rates(self, organization_id: UUID, plan: PlanDefinition, customer_codes: Sequence[str]) -> Callable[[Charge], Decimal]:
        """Sum of tax rates a charge's fee bears: its own, else the plan's, customer's or organization's (M2)."""
        codes = {c for charge in plan.charges for c in charge.tax_codes} | set(plan.tax_codes) | set(customer_codes)
        known = self._taxes.by_keys(organization_id, sorted(codes))
        defaults = [d.data.rate or Decimal(0) for d in self._taxes.organization_defaults(organization_id)]

        def rate(charge: Charge) -> Decimal:
            for chosen in (charge.tax_codes, plan.tax_codes, customer_codes):
                if chosen:
                    return sum((known[c].data.rate or Decimal(0) for c in chosen if c in known), Decimal(0))
            return sum(defaults, Decimal(0))

        return rate

    def _present(self, organization_id: UUID, usage: PeriodUsage, rates: Callable[[Charge], Decimal] | None) -> CustomerUsageObject:
        metrics = self._metrics.many(organization_id, [c.metric_id for c in usage.charges])
        charges = []
        taxes = 0
        for charge_usage in usage.charges:
            charge = charge_usage.charge
            metric = metrics.get(charge_usage.metric_id)
            if rates is not None:
                taxes += int((Decimal(charge_usage.amount_cents) * rates(charge) / 100).quantize(Decimal(1), ROUND_HALF_UP))
            charges.append(ChargeUsageObject(
                units=_units(charge_usage.units),
                total_aggregated_units=_units(charge_usage.units),
                events_count=charge_usage.events_count,
                amount_cents=charge_usage.amount_cents,
                amount_currency=usage.currency,
                charge={"lago_id": str(charge.id), "code": charge.code, "charge_model": charge.charge_model,
                        "invoice_display_name": charge.invoice_display_name},
                billable_metric={"lago_id": str(charge_usage.metric_id), "name": metric.data.name if metric else None,
                                 "code": charge_usage.metric.code, "aggregation_type": charge_usage.metric.aggregation_type},
                filters=_filters(charge_usage, charge_usage.buckets),
                grouped_usage=_groups(charge_usage),
            ))
        amount = usage.amount_cents
        period = usage.period
        local_end = period.ends_at.astimezone(ZoneInfo(usage.context.timezone))
        return CustomerUsageObject(
            from_datetime=timestamp(period.starts_at) or "", to_datetime=timestamp(period.lago_ending_at()) or "",
            issuing_date=local_end.date().isoformat(), currency=usage.currency, amount_cents=amount,
            taxes_amount_cents=taxes, total_amount_cents=amount + taxes, charges_usage=charges,
        )
