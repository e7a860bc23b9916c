"""The analytics projection over a few hundred invoices in three currencies and nine months: it answers as a fold of
the invoices read model does, and replaying the log into it gives back the same tables."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import falcon.testing
import pytest

from domain.api_key import IssuedKey
from domain.money import round_half_up_cents
from interfaces.http.app import create_app
from interfaces.store import Store
from projections import runner
from projections.invoices import InvoiceFilters
from tests.conftest import bearer
from tests.test_applied_coupons_api import Shop

CURRENCIES = ("USD", "EUR", "GBP")
ENDPOINTS = ("gross_revenue", "invoiced_usage", "mrr", "invoice_collection", "overdue_balance")
SHARES = {"weekly": Decimal(52) / 12, "monthly": Decimal(1), "quarterly": Decimal(1) / 3,
          "semiannual": Decimal(1) / 6, "yearly": Decimal(1) / 12}


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Books:
    """One organization's invoices, made through the API, and the client that made them."""

    api: falcon.testing.TestClient
    key: IssuedKey
    clock: Clock
    invoices: int

    def get(self, path: str, clock: datetime | None = None) -> Any:
        if clock is not None:
            self.clock.now = clock
        response = self.api.simulate_get(f"/api/v1/{path}", headers=bearer(self.key))
        assert response.status_code == 200, (path, response.text)
        return response.json


def _make_invoices(shop: Shop, clock: Clock, rng: random.Random) -> int:
    """Subscription invoices (with usage) each month, one-offs in three currencies, some paid, part-paid, marked,
    voided or offset by a credit note; then the plan's interval changes."""
    made = 0
    for currency in CURRENCIES:
        for n in range(2):
            shop.call("POST", "customers", {"customer": {"external_id": f"{currency}-{n}", "name": f"{currency} {n}",
                                                         "currency": currency, "net_payment_term": 15 * n}})
    shop.call("POST", "add_ons", {"add_on": {"name": "Work", "code": "work", "amount_cents": 1000,
                                             "amount_currency": "USD"}})
    for month in range(3, 12):
        clock.now = datetime(2026, month, 15, tzinfo=UTC)
        shop.calls(rng.randrange(0, 40), day=10, month=month)
        for _ in range(30):
            currency, n = rng.choice(CURRENCIES), rng.randrange(2)
            invoice = shop.call("POST", "invoices", {"invoice": {
                "external_customer_id": f"{currency}-{n}", "currency": currency,
                "fees": [{"add_on_code": "work", "unit_amount_cents": rng.randrange(0, 50_000)}]}})["invoice"]
            made += 1
            _settle(shop, invoice, rng)
        clock.now = datetime(2026, month + 1, 1, 2, tzinfo=UTC)
        shop.close(month + 1)
        made += 1
    shop.call("PUT", "plans/pro", {"plan": {"interval": "quarterly"}})  # MRR reads the interval a plan has now
    return made


def _settle(shop: Shop, invoice: dict[str, Any], rng: random.Random) -> None:
    lago_id, due = invoice["lago_id"], invoice["total_due_amount_cents"]
    fate = rng.choice(("open", "open", "paid", "part", "marked", "failed", "void", "offset"))
    if due <= 0:
        return
    if fate == "paid":
        shop.call("POST", "payments", {"payment": {"invoice_id": lago_id, "amount_cents": due, "reference": lago_id}})
    elif fate == "part":
        shop.call("POST", "payments", {"payment": {"invoice_id": lago_id, "amount_cents": max(due // 3, 1),
                                                   "reference": lago_id}})
    elif fate in ("marked", "failed"):
        status = "succeeded" if fate == "marked" else "failed"
        shop.call("PUT", f"invoices/{lago_id}", {"invoice": {"payment_status": status}})
        if rng.random() < 0.3:
            shop.call("PUT", f"invoices/{lago_id}", {"invoice": {"payment_status": "pending"}})
    elif fate == "void":
        shop.call("POST", f"invoices/{lago_id}/void")
    elif fate == "offset":
        fee = invoice["fees"][0]
        amount = max(fee["amount_cents"] // 2, 1)
        shop.call("POST", "credit_notes", {"credit_note": {
            "invoice_id": lago_id, "reason": "other", "items": [{"fee_id": fee["lago_id"], "amount_cents": amount}],
            "offset_amount_cents": amount}})


@pytest.fixture(scope="module")
def books(shared_store: Store) -> Iterator[Books]:
    clock = Clock(datetime(2026, 3, 20, tzinfo=UTC))
    api = falcon.testing.TestClient(create_app(shared_store.billing, shared_store.metering, shared_store.readers,
                                               clock=clock))
    key = shared_store.billing.create_organization("Analytics")
    shop = Shop(api, key, shared_store)
    made = _make_invoices(shop, clock, random.Random(11))
    yield Books(api, key, clock, made)


def _month(day: date) -> str:
    return f"{day:%Y-%m}-01T00:00:00.000Z"


def _folded(store: Store, organization_id: UUID, endpoint: str, today: date, currency: str | None = None,
            customer_id: UUID | None = None, months: int = 12) -> list[tuple[Any, ...]]:
    """The answer as a fold over every finalized invoice of the invoices read model, as analytics were served
    before the projection, sorted."""
    documents, _ = store.readers.invoices.filtered(organization_id, 0, 100_000, InvoiceFilters(
        customer_ids=[customer_id] if customer_id else None, statuses=["finalized"], currency=currency))
    plans, _ = store.readers.plans.page(organization_id, 0, 100_000, include_deleted=True)
    intervals = {p.id: p.data.interval for p in plans}
    sums: dict[tuple[Any, ...], list[Any]] = defaultdict(lambda: [0, 0, []])
    for document in documents:
        record = document.data
        month = _month(record.issuing_date)
        if endpoint == "gross_revenue":
            figures = sums[(month, record.currency)]
            figures[0] += record.total_amount_cents
            figures[1] += 1
        elif endpoint == "invoice_collection":
            figures = sums[(month, record.payment_status, record.currency)]
            figures[0] += record.total_amount_cents
            figures[1] += 1
        elif endpoint == "overdue_balance":
            if record.payment_due_date < today and record.total_due_amount_cents > 0:
                figures = sums[(_month(record.payment_due_date), record.currency)]
                figures[0] += record.total_due_amount_cents
                figures[2].append(str(document.id))
        for fee in record.fees:
            if endpoint == "invoiced_usage" and fee.fee_type == "charge":
                sums[(month, fee.item_code, record.currency)][0] += fee.amount_cents
            if endpoint == "mrr" and fee.fee_type == "subscription":
                share = SHARES.get(intervals.get(fee.item_id, "monthly"), Decimal(1))
                sums[(month, record.currency)][0] += Decimal(fee.amount_cents) * share
    newest = sorted({key[0] for key in sums}, reverse=True)[:months]
    rows = []
    for key, (amount, count, ids) in sums.items():
        if key[0] not in newest:
            continue
        if endpoint in ("gross_revenue", "invoice_collection"):
            rows.append((*key, amount, count))
        elif endpoint == "overdue_balance":
            rows.append((*key, amount, ids))
        else:
            rows.append((*key, round_half_up_cents(Decimal(amount))))
    return sorted(rows)


def _served(books: Books, endpoint: str, today: date, query: str = "") -> list[tuple[Any, ...]]:
    envelope = {"gross_revenue": "gross_revenues", "invoiced_usage": "invoiced_usages", "mrr": "mrrs",
                "invoice_collection": "invoice_collections", "overdue_balance": "overdue_balances"}[endpoint]
    found = books.get(f"analytics/{endpoint}{query}", datetime.combine(today, datetime.min.time(), UTC))[envelope]
    months = [row["month"] for row in found]
    assert months == sorted(months, reverse=True)
    keys = {"gross_revenue": ("month", "currency", "amount_cents", "invoices_count"),
            "invoice_collection": ("month", "payment_status", "currency", "amount_cents", "invoices_count"),
            "overdue_balance": ("month", "currency", "amount_cents", "lago_invoice_ids"),
            "invoiced_usage": ("month", "code", "currency", "amount_cents"),
            "mrr": ("month", "currency", "amount_cents")}[endpoint]
    return sorted(tuple(row[k] for k in keys) for row in found)


def _everything(books: Books, store: Store) -> dict[str, Any]:
    customer = store.readers.customers.by_key(books.key.organization_id, "EUR-1")
    assert customer is not None
    found = {}
    for endpoint in ENDPOINTS:
        for today in (date(2026, 6, 20), date(2026, 12, 31)):
            for query in ("", "?currency=EUR", "?months=3", "?months=100&currency=GBP", "?external_customer_id=EUR-1"):
                found[(endpoint, today, query)] = _served(books, endpoint, today, query)
    return found


def test_a_few_hundred_invoices_add_up_as_a_fold_of_the_invoices_does(books: Books, shared_store: Store) -> None:
    """Every analytics answer, with and without filters, equals summing the finalized invoices one by one."""
    organization_id = books.key.organization_id
    customer = shared_store.readers.customers.by_key(organization_id, "EUR-1")
    assert customer is not None

    served = _everything(books, shared_store)

    assert books.invoices >= 270
    for (endpoint, today, query), rows in served.items():
        currency = "EUR" if "EUR" in query and "customer" not in query else "GBP" if "GBP" in query else None
        months = 3 if "months=3" in query else 100 if "months=100" in query else 12
        customer_id = customer.id if "customer" in query and endpoint in ("gross_revenue", "overdue_balance") else None
        expected = _folded(shared_store, organization_id, endpoint, today, currency, customer_id, months)
        assert rows == expected, (endpoint, today, query)
    assert {row[1] for row in served[("gross_revenue", date(2026, 12, 31), "")]} == set(CURRENCIES)
    assert len(served[("gross_revenue", date(2026, 12, 31), "")]) == 9 * 3 + 1  # one-offs Mar–Nov; December's close
    assert {row[1] for row in served[("invoice_collection", date(2026, 12, 31), "")]} == {
        "pending", "succeeded", "failed"}
    assert served[("overdue_balance", date(2026, 12, 31), "")] and served[("mrr", date(2026, 12, 31), "")]


def test_the_projection_rebuilt_from_the_log_equals_the_live_one(books: Books, shared_store: Store) -> None:
    """Dropping the analytics tables and replaying the Billing log gives the same rows and the same answers."""
    projectors = [p for p in shared_store.projectors if p.name == "analytics"]
    before_answers = _everything(books, shared_store)
    before_tables = _tables(shared_store)

    runner.rebuild(shared_store.pool, projectors)
    assert all(p.lag()[0] == 0 for p in projectors)
    after_answers = _everything(books, shared_store)
    after_tables = _tables(shared_store)

    assert after_tables == before_tables
    assert after_answers == before_answers
    assert len(before_tables["analytics_invoices"]) >= books.invoices


def _tables(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    queries = {
        "analytics_invoices": "SELECT * FROM analytics_invoices ORDER BY id",
        "analytics_months": "SELECT * FROM analytics_months ORDER BY organization_id, month, currency, customer_id, "
                            "payment_status",
        "analytics_fees": "SELECT * FROM analytics_fees ORDER BY organization_id, fee_type, month, currency, item_id, "
                          "item_code",
        "analytics_plans": "SELECT * FROM analytics_plans ORDER BY id",
    }
    store.freshness.wait(["analytics"])
    with store.pool.connection() as conn:
        return {table: conn.execute(query).fetchall() for table, query in queries.items()}
