"""The ledger over the API: accounts, entries, a customer's balance, and a rebuild that gives the same books."""

from __future__ import annotations

from typing import Any

import falcon.testing

from domain.api_key import IssuedKey
from interfaces.store import Store
from projections import runner
from tests.test_applied_coupons_api import Shop, api  # noqa: F401 - the fixture


def _books(shop: Shop) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    accounts = shop.call("GET", "ledger/accounts")["accounts"]
    entries = shop.call("GET", "ledger/entries?per_page=1000")["entries"]
    return accounts, entries


def test_the_ledger_balances_and_the_receivable_is_what_invoices_still_owe(
    api: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store  # noqa: F811
) -> None:
    """March: 10,000 with a 10 % coupon (1,000) and 20 % VAT (1,800) → 10,800; 4,000 paid; a one-off of 500 + 100."""
    shop = Shop(api, tenant, shared_store, vat=True)
    shop.coupon("pct", coupon_type="percentage", percentage_rate="10", frequency="once")
    shop.apply("pct")
    march = shop.close(4)
    shop.call("POST", "payments", {"payment": {"invoice_id": march["lago_id"], "amount_cents": 4_000, "reference": "w1"}})
    shop.call("POST", "add_ons", {"add_on": {"name": "Setup", "code": "setup", "amount_cents": 500, "amount_currency": "USD"}})
    shop.call("POST", "invoices", {"invoice": {"external_customer_id": "cus", "fees": [{"add_on_code": "setup"}]}})

    accounts, entries = _books(shop)

    by_account = {a["account"]: a["balance_amount_cents"] for a in accounts}
    assert by_account == {"receivable": 10_800 - 4_000 + 600, "cash": 4_000, "discounts": 1_000,
                          "revenue:subscription:pro": -10_000, "revenue:add_on:setup": -500, "tax_payable:vat": -1_900}
    assert sum(e["debit_amount_cents"] for e in entries) == sum(e["credit_amount_cents"] for e in entries)
    [balance] = shop.call("GET", "customers/cus/balance")["balances"]
    assert (balance["currency"], balance["receivable_amount_cents"], balance["credit_notes_amount_cents"]) == ("USD", 7_400, 0)
    due = sum(i["total_due_amount_cents"] for i in shop.call("GET", "invoices")["invoices"])
    assert due == balance["receivable_amount_cents"]
    revenue = shop.call("GET", "ledger/accounts?account=revenue")["accounts"]
    assert sorted(a["account"] for a in revenue) == ["revenue:add_on:setup", "revenue:subscription:pro"]
    mine = shop.call("GET", "ledger/entries?external_customer_id=cus&account=receivable")["entries"]
    assert [e["event"] for e in mine] == ["Invoice.Finalized", "Invoice.Paid", "Invoice.Finalized"]
    shop.call("GET", "ledger/entries?from_datetime=yesterday", status=422)
    shop.call("GET", "customers/nobody/balance", status=404)


def test_the_ledger_rebuilt_from_the_log_equals_the_live_one(
    api: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store  # noqa: F811
) -> None:
    shop = Shop(api, tenant, shared_store, vat=True)
    shop.coupon("pct", coupon_type="percentage", percentage_rate="10", frequency="once")
    shop.apply("pct")
    march = shop.close(4)
    shop.call("POST", "payments", {"payment": {"invoice_id": march["lago_id"], "amount_cents": 1_234, "reference": "w1"}})
    shop.close(5)
    live = _books(shop)

    runner.rebuild(shared_store.pool, [p for p in shared_store.projectors if p.name == "ledger"])

    assert _books(shop) == live
    assert len(live[1]) == 4 + 2 + 3  # March finalized (revenue, VAT, discount, receivable), paid, April finalized
