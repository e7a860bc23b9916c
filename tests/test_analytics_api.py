"""Lago's analytics through the API, from invoices: gross revenue, invoiced usage, MRR, collection, overdue."""

from __future__ import annotations

from datetime import UTC, datetime

import falcon.testing

from domain.api_key import IssuedKey
from interfaces.http.app import create_app
from interfaces.store import Store
from tests.conftest import bearer
from tests.test_applied_coupons_api import Shop, api  # noqa: F401 - the fixture


def test_analytics_sum_finalized_invoices_per_month(
    api: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store  # noqa: F811
) -> None:
    """March (invoiced Apr 1): 10,000 fee + 6 calls (600); April (May 1): 10,000 + 2 calls (200); the first is paid,
    the second overdue by June."""
    shop = Shop(api, tenant, shared_store)
    shop.calls(6)
    april = shop.close(4)
    shop.calls(2, day=10, month=4)
    may = shop.close(5)
    shop.call("POST", "payments", {"payment": {"invoice_id": april["lago_id"], "amount_cents": 10_600, "reference": "r"}})

    gross = shop.call("GET", "analytics/gross_revenue")["gross_revenues"]
    usage = shop.call("GET", "analytics/invoiced_usage")["invoiced_usages"]
    mrr = shop.call("GET", "analytics/mrr?months=1")["mrrs"]
    collection = shop.call("GET", "analytics/invoice_collection")["invoice_collections"]
    later = falcon.testing.TestClient(create_app(shared_store.billing, shared_store.metering, shared_store.readers,
                                                 clock=lambda: datetime(2026, 6, 1, tzinfo=UTC)))
    overdue = later.simulate_get("/api/v1/analytics/overdue_balance", headers=bearer(tenant)).json["overdue_balances"]

    assert [(g["month"][:7], g["amount_cents"], g["invoices_count"]) for g in gross] == [
        ("2026-05", 10_200, 1), ("2026-04", 10_600, 1)]
    assert [(u["month"][:7], u["code"], u["amount_cents"]) for u in usage] == [
        ("2026-05", "calls", 200), ("2026-04", "calls", 600)]
    assert [(m["month"][:7], m["amount_cents"]) for m in mrr] == [("2026-05", 10_000)]
    assert sorted((c["month"][:7], c["payment_status"], c["amount_cents"]) for c in collection) == [
        ("2026-04", "succeeded", 10_600), ("2026-05", "pending", 10_200)]
    assert [(o["amount_cents"], o["lago_invoice_ids"]) for o in overdue] == [(10_200, [may["lago_id"]])]
    assert shop.call("GET", "analytics/gross_revenue?external_customer_id=cus")["gross_revenues"] == gross
    shop.call("GET", "analytics/mrr?months=0", status=422)
    shop.call("GET", "analytics/gross_revenue?external_customer_id=nobody", status=404)
