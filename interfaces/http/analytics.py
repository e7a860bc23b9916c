"""Lago's analytics (reference §2.15), computed from the invoices read model: gross revenue, invoiced usage, MRR,
invoice collection, overdue balance. Months are issuing months; ``months`` limits how many (newest), default 12."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import falcon
import msgspec

from domain.customer import CustomerNotFound
from domain.errors import ValidationFailed
from domain.fee import round_cents
from domain.plan import PlanDefinition
from interfaces.http.openapi import Operation, Param
from interfaces.http.wire import respond
from projections.documents import Document, DocumentReader
from projections.invoices import InvoiceFilters, InvoiceRecord, InvoicesReader
from projections.subscriptions import CustomersReader

_MONTHLY_SHARE = {"weekly": Decimal(52) / 12, "monthly": Decimal(1), "quarterly": Decimal(1) / 3,
                  "semiannual": Decimal(1) / 6, "yearly": Decimal(1) / 12}


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

    def __init__(self, invoices: InvoicesReader, customers: CustomersReader, plans: DocumentReader[PlanDefinition],
                 now: Callable[[], datetime]) -> None:
        self._invoices = invoices
        self._customers = customers
        self._plans = plans
        self._now = now

    def _documents(self, req: falcon.Request, *, customer_filter: bool) -> list[Document[InvoiceRecord]]:
        organization_id = req.context.organization_id
        customer_ids = None
        external_customer_id = req.get_param("external_customer_id") if customer_filter else None
        if external_customer_id:
            customer = self._customers.by_key(organization_id, external_customer_id)
            if customer is None:
                raise CustomerNotFound(key=external_customer_id)
            customer_ids = [customer.id]
        documents, _ = self._invoices.filtered(organization_id, 0, 100_000, InvoiceFilters(
            customer_ids=customer_ids, statuses=["finalized"], currency=req.get_param("currency")))
        return documents

    def _months(self, req: falcon.Request) -> int:
        raw = req.get_param("months")
        if raw is None:
            return 12
        if not raw.isdigit() or int(raw) < 1:
            raise ValidationFailed({"months": ["value_is_invalid"]})
        return int(raw)

    def _respond(self, req: falcon.Request, resp: falcon.Response, rows: Iterable[Any]) -> None:
        ordered = sorted(rows, key=lambda r: r.month, reverse=True)
        months = sorted({r.month for r in ordered}, reverse=True)[:self._months(req)]
        respond(resp, {self.envelope: [r for r in ordered if r.month in months]})


_QUERY = (Param("currency", "ISO 4217 code."), Param("months", "How many months, newest first.", "integer"))
_CUSTOMER = (Param("external_customer_id", "Only this customer's invoices."),)


class GrossRevenueResource(AnalyticsBase):
    path = "/api/v1/analytics/gross_revenue"
    envelope = "gross_revenues"
    operations = (Operation("GET", path, "Finalized invoice amounts per month", "analytics", GrossRevenue,
                            "gross_revenues", query=_QUERY + _CUSTOMER, many=True, errors=(404, 422)),)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        for document in self._documents(req, customer_filter=True):
            record = document.data
            figures = sums[(_month(record.issuing_date), record.currency)]
            figures[0] += record.total_amount_cents
            figures[1] += 1
        self._respond(req, resp, [GrossRevenue(month, amount, currency, count)
                                  for (month, currency), (amount, count) in sums.items()])


class InvoicedUsageResource(AnalyticsBase):
    path = "/api/v1/analytics/invoiced_usage"
    envelope = "invoiced_usages"
    operations = (Operation("GET", path, "Usage fees invoiced per month and metric", "analytics", InvoicedUsage,
                            "invoiced_usages", query=_QUERY, many=True, errors=(422,)),)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        sums: dict[tuple[str, str, str], int] = defaultdict(int)
        for document in self._documents(req, customer_filter=False):
            record = document.data
            for fee in record.fees:
                if fee.fee_type == "charge":
                    sums[(_month(record.issuing_date), fee.item_code, record.currency)] += fee.amount_cents
        self._respond(req, resp, [InvoicedUsage(month, code, currency, amount)
                                  for (month, code, currency), amount in sums.items()])


class MrrResource(AnalyticsBase):
    path = "/api/v1/analytics/mrr"
    envelope = "mrrs"
    operations = (Operation("GET", path, "Monthly recurring revenue: subscription fees per month, as monthly amounts",
                            "analytics", Mrr, "mrrs", query=_QUERY, many=True, errors=(422,)),)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        organization_id = req.context.organization_id
        documents, _ = self._plans.page(organization_id, 0, 100_000, include_deleted=True)
        intervals = {d.id: d.data.interval for d in documents}
        sums: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for document in self._documents(req, customer_filter=False):
            record = document.data
            for fee in record.fees:
                if fee.fee_type == "subscription":
                    share = _MONTHLY_SHARE.get(intervals.get(fee.item_id, "monthly"), Decimal(1))
                    sums[(_month(record.issuing_date), record.currency)] += Decimal(fee.amount_cents) * share
        self._respond(req, resp, [Mrr(month, round_cents(amount), currency) for (month, currency), amount in sums.items()])


class InvoiceCollectionResource(AnalyticsBase):
    path = "/api/v1/analytics/invoice_collection"
    envelope = "invoice_collections"
    operations = (Operation("GET", path, "Invoices and their amounts per month and payment status", "analytics",
                            InvoiceCollection, "invoice_collections", query=_QUERY, many=True, errors=(422,)),)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        sums: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
        for document in self._documents(req, customer_filter=False):
            record = document.data
            figures = sums[(_month(record.issuing_date), record.payment_status, record.currency)]
            figures[0] += 1
            figures[1] += record.total_amount_cents
        self._respond(req, resp, [InvoiceCollection(month, status, count, amount, currency)
                                  for (month, status, currency), (count, amount) in sums.items()])


class OverdueBalanceResource(AnalyticsBase):
    path = "/api/v1/analytics/overdue_balance"
    envelope = "overdue_balances"
    operations = (Operation("GET", path, "What is due past its payment due date, per month of that date",
                            "analytics", OverdueBalance, "overdue_balances", query=_QUERY + _CUSTOMER,
                            many=True, errors=(404, 422)),)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        today = self._now().date()
        sums: dict[tuple[str, str], tuple[int, list[str]]] = {}
        for document in self._documents(req, customer_filter=True):
            record = document.data
            if record.payment_due_date >= today or record.total_due_amount_cents <= 0:
                continue
            key = (_month(record.payment_due_date), record.currency)
            amount, ids = sums.get(key, (0, []))
            sums[key] = (amount + record.total_due_amount_cents, [*ids, str(document.id)])
        self._respond(req, resp, [OverdueBalance(month, amount, currency, ids)
                                  for (month, currency), (amount, ids) in sums.items()])


def resources(invoices: InvoicesReader, customers: CustomersReader, plans: DocumentReader[PlanDefinition],
              now: Callable[[], datetime]) -> list[Any]:
    parts = (invoices, customers, plans, now)
    return [GrossRevenueResource(*parts), InvoicedUsageResource(*parts), MrrResource(*parts),
            InvoiceCollectionResource(*parts), OverdueBalanceResource(*parts)]

