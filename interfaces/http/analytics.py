"""Lago's analytics (reference §2.15), read from the analytics projection: gross revenue, invoiced usage, MRR,
invoice collection, overdue balance. Months are issuing months (due months for overdue balance); ``months``
limits how many (newest), default 12. See docs/adr/0030-analytics-from-a-projection.md."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import falcon
import msgspec

from domain.customer import CustomerNotFound
from domain.money import round_half_up_cents
from interfaces.http.openapi import Operation, Param
from interfaces.http.wire import count_param, respond
from projections.analytics import AnalyticsReader
from projections.subscriptions import CustomersReader

_MONTHLY_SHARE = {"weekly": Decimal(52) / 12, "monthly": Decimal(1), "quarterly": Decimal(1) / 3,
                  "semiannual": Decimal(1) / 6, "yearly": Decimal(1) / 12}
_MOST_MONTHS = 100_000  # more than any log holds; keeps the parameter within the database's integers


class GrossRevenue(msgspec.Struct):
    month: str
    amount_cents: int
    currency: str
    invoices_count: int
    billing_entity_id: str | None = None


class InvoicedUsage(msgspec.Struct):
    month: str
    code: str
    currency: str
    amount_cents: int


class Mrr(msgspec.Struct):
    month: str
    amount_cents: int
    currency: str


class InvoiceCollection(msgspec.Struct):
    month: str
    payment_status: str
    invoices_count: int
    amount_cents: int
    currency: str


class OverdueBalance(msgspec.Struct):
    month: str
    amount_cents: int
    currency: str
    lago_invoice_ids: list[str]
    billing_entity_id: str | None = None


def _month(day: date) -> str:
    return f"{day:%Y-%m}-01T00:00:00.000Z"


class AnalyticsBase:
    envelope = ""

    def __init__(self, analytics: AnalyticsReader, customers: CustomersReader, now: Callable[[], datetime]) -> None:
        self._analytics = analytics
        self._customers = customers
        self._now = now

    def _customer_id(self, req: falcon.Request) -> UUID | None:
        external_customer_id = req.get_param("external_customer_id")
        if not external_customer_id:
            return None
        customer = self._customers.by_key(req.context.organization_id, external_customer_id)
        if customer is None:
            raise CustomerNotFound(key=external_customer_id)
        return customer.id

    def _months(self, req: falcon.Request) -> int:
        return count_param(req, "months", 12, _MOST_MONTHS) or 12

    def _respond(self, resp: falcon.Response, rows: Iterable[Any]) -> None:
        respond(resp, {self.envelope: list(rows)})


_QUERY = (Param("currency", "ISO 4217 code."), Param("months", "How many months, newest first.", "integer"))
_CUSTOMER = (Param("external_customer_id", "Only this customer's invoices."),)


class GrossRevenueResource(AnalyticsBase):
    path = "/api/v1/analytics/gross_revenue"
    envelope = "gross_revenues"
    operations = (Operation("GET", path, "Finalized invoice amounts per month", "analytics", GrossRevenue,
                            "gross_revenues", query=_QUERY + _CUSTOMER, many=True, errors=(404, 422)),)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        customer_id = self._customer_id(req)
        rows = self._analytics.gross_revenue(req.context.organization_id, self._months(req), req.get_param("currency"),
                                             customer_id)
        self._respond(resp, (GrossRevenue(_month(r.month), r.amount_cents, r.currency, r.invoices_count) for r in rows))


class InvoicedUsageResource(AnalyticsBase):
    path = "/api/v1/analytics/invoiced_usage"
    envelope = "invoiced_usages"
    operations = (Operation("GET", path, "Usage fees invoiced per month and metric", "analytics", InvoicedUsage,
                            "invoiced_usages", query=_QUERY, many=True, errors=(422,)),)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        rows = self._analytics.invoiced_usage(req.context.organization_id, self._months(req), req.get_param("currency"))
        self._respond(resp, (InvoicedUsage(_month(r.month), r.group, r.currency, r.amount_cents) for r in rows))


class MrrResource(AnalyticsBase):
    path = "/api/v1/analytics/mrr"
    envelope = "mrrs"
    operations = (Operation("GET", path, "Monthly recurring revenue: subscription fees per month, as monthly amounts",
                            "analytics", Mrr, "mrrs", query=_QUERY, many=True, errors=(422,)),)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        rows = self._analytics.subscription_fees(req.context.organization_id, self._months(req),
                                                 req.get_param("currency"))
        sums: dict[tuple[date, str], Decimal] = defaultdict(Decimal)
        for r in rows:
            sums[(r.month, r.currency)] += Decimal(r.amount_cents) * _MONTHLY_SHARE.get(r.group, Decimal(1))
        self._respond(resp, (Mrr(_month(month), round_half_up_cents(amount), currency)
                             for (month, currency), amount in sums.items()))


class InvoiceCollectionResource(AnalyticsBase):
    path = "/api/v1/analytics/invoice_collection"
    envelope = "invoice_collections"
    operations = (Operation("GET", path, "Invoices and their amounts per month and payment status", "analytics",
                            InvoiceCollection, "invoice_collections", query=_QUERY, many=True, errors=(422,)),)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        rows = self._analytics.invoice_collection(req.context.organization_id, self._months(req),
                                                  req.get_param("currency"))
        self._respond(resp, (InvoiceCollection(_month(r.month), r.payment_status, r.invoices_count, r.amount_cents,
                                               r.currency) for r in rows))


class OverdueBalanceResource(AnalyticsBase):
    path = "/api/v1/analytics/overdue_balance"
    envelope = "overdue_balances"
    operations = (Operation("GET", path, "What is due past its payment due date, per month of that date",
                            "analytics", OverdueBalance, "overdue_balances", query=_QUERY + _CUSTOMER,
                            many=True, errors=(404, 422)),)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        customer_id = self._customer_id(req)
        rows = self._analytics.overdue_balance(req.context.organization_id, self._now().date(), self._months(req),
                                               req.get_param("currency"), customer_id)
        self._respond(resp, (OverdueBalance(_month(r.month), r.amount_cents, r.currency,
                                            [str(i) for i in r.invoice_ids]) for r in rows))


def resources(analytics: AnalyticsReader, customers: CustomersReader, now: Callable[[], datetime]) -> list[Any]:
    parts = (analytics, customers, now)
    return [GrossRevenueResource(*parts), InvoicedUsageResource(*parts), MrrResource(*parts),
            InvoiceCollectionResource(*parts), OverdueBalanceResource(*parts)]
