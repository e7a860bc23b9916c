"""The money rules through the API: an invoice's taxes add up at every level, and a wallet pays what is due
(ADR 0029). Both tests were written against the two wrong numbers users saw before ``domain.money``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import falcon.testing
import pytest

from domain.api_key import IssuedKey
from interfaces.http.app import create_app
from interfaces.store import Store
from tests.conftest import bearer

NOW = datetime(2026, 4, 1, 9, tzinfo=UTC)


@pytest.fixture
def api(shared_store: Store) -> Iterator[falcon.testing.TestClient]:
    yield falcon.testing.TestClient(
        create_app(shared_store.billing, shared_store.metering, shared_store.readers, clock=lambda: NOW))


class Account:
    """One organization and its customer ``cus``, in USD."""

    def __init__(self, api: falcon.testing.TestClient, key: IssuedKey) -> None:
        self.api, self.key = api, key
        self.call("POST", "customers", {"customer": {"external_id": "cus", "name": "Ada", "currency": "USD"}})

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, status: int = 200) -> dict[str, Any]:
        response = self.api.simulate_request(method, f"/api/v1/{path}", headers=bearer(self.key), json=body)
        assert response.status_code == status, (path, response.text)
        return dict(response.json) if response.text else {}

    def tax(self, code: str, rate: str, *, everywhere: bool = False) -> None:
        self.call("POST", "taxes", {"tax": {"name": code.upper(), "code": code, "rate": rate,
                                            "applied_to_organization": everywhere}})

    def invoices(self) -> list[dict[str, Any]]:
        listed = self.call("GET", "invoices?external_customer_id=cus")["invoices"]
        return [self.call("GET", f"invoices/{i['lago_id']}")["invoice"] for i in listed]


def test_fee_level_taxes_add_up_to_the_invoice_tax_after_a_coupon(
    api: falcon.testing.TestClient, tenant: IssuedKey
) -> None:
    """A 70.55 plan fee bearing VAT 20 % and a local 2.5 %, less a 10.00 coupon: taxed on 60.55, so VAT 12.11
    (not 14.11, VAT on the fee before its coupon), local 1.51375, the fee's tax and the invoice's 13.62 —
    the fee's applied taxes (1211 + 151), the fee's tax and the invoice's tax lines all add up to 1362."""
    account = Account(api, tenant)
    account.tax("vat", "20")
    account.tax("local", "2.5")
    account.call("POST", "plans", {"plan": {"name": "Basic", "code": "basic", "interval": "monthly",
                                            "amount_cents": 7_055, "amount_currency": "USD", "pay_in_advance": True,
                                            "tax_codes": ["vat", "local"]}})
    account.call("POST", "coupons", {"coupon": {"name": "Ten", "code": "ten", "frequency": "once",
                                                "coupon_type": "fixed_amount", "amount_cents": 1_000,
                                                "amount_currency": "USD"}})
    account.call("POST", "applied_coupons", {"applied_coupon": {"external_customer_id": "cus", "coupon_code": "ten"}})

    account.call("POST", "subscriptions", {"subscription": {"external_customer_id": "cus", "plan_code": "basic",
                                                            "external_id": "sub", "billing_time": "anniversary"}})

    [invoice] = account.invoices()
    [fee] = invoice["fees"]
    fee_taxes = {t["tax_code"]: t["amount_cents"] for t in fee["applied_taxes"]}
    invoice_taxes = {t["tax_code"]: t["amount_cents"] for t in invoice["applied_taxes"]}
    assert (invoice["fees_amount_cents"], invoice["coupons_amount_cents"]) == (7_055, 1_000)
    assert fee_taxes == {"vat": 1_211, "local": 151}
    assert fee["taxes_amount_cents"] == sum(fee_taxes.values()) == 1_362
    assert invoice["taxes_amount_cents"] == sum(invoice_taxes.values()) == 1_362
    assert invoice["total_amount_cents"] == 7_055 - 1_000 + 1_362


def test_fee_taxes_add_up_to_the_invoice_tax_when_each_fee_rounds_the_other_way(
    api: falcon.testing.TestClient, tenant: IssuedKey
) -> None:
    """Three add-ons of 0.05 at 10 %: each fee's tax alone is 0.5 cent, which would round to 1 each (3 in all);
    the invoice's is 1.5 → 2, and the fees bear 1, 1 and 0 of it."""
    account = Account(api, tenant)
    account.tax("vat", "10", everywhere=True)
    account.call("POST", "add_ons", {"add_on": {"name": "Tip", "code": "tip", "amount_cents": 5,
                                                "amount_currency": "USD"}})

    invoice = account.call("POST", "invoices", {"invoice": {"external_customer_id": "cus", "currency": "USD",
                                                            "fees": [{"add_on_code": "tip"}] * 3}})["invoice"]

    shown = account.call("GET", f"invoices/{invoice['lago_id']}")["invoice"]
    assert shown["taxes_amount_cents"] == 2
    assert [f["taxes_amount_cents"] for f in shown["fees"]] == [1, 1, 0]
    assert [sum(t["amount_cents"] for t in f["applied_taxes"]) for f in shown["fees"]] == [1, 1, 0]


def test_a_wallet_of_ten_dollars_pays_a_two_dollars_fourteen_invoice_in_full(
    api: falcon.testing.TestClient, tenant: IssuedKey
) -> None:
    """An add-on of 1.95 at 9.5 % tax: 1.95 + 0.18525 → the invoice's tax rounds to 0.19, total 2.14. The wallet's
    cap used to floor 2.13525 to 2.13 and leave 0.01 due; it pays 2.14 and keeps 7.86."""
    account = Account(api, tenant)
    account.tax("vat", "9.5", everywhere=True)
    account.call("POST", "add_ons", {"add_on": {"name": "Setup", "code": "setup", "amount_cents": 195,
                                                "amount_currency": "USD"}})
    wallet = account.call("POST", "wallets", {"wallet": {"external_customer_id": "cus", "currency": "USD",
                                                         "rate_amount": "1", "granted_credits": "10"}})["wallet"]

    invoice = account.call("POST", "invoices", {"invoice": {"external_customer_id": "cus", "currency": "USD",
                                                            "fees": [{"add_on_code": "setup"}]}})["invoice"]

    shown = account.call("GET", f"invoices/{invoice['lago_id']}")["invoice"]
    after = account.call("GET", f"wallets/{wallet['lago_id']}")["wallet"]
    assert (shown["taxes_amount_cents"], shown["sub_total_including_taxes_amount_cents"]) == (19, 214)
    assert (shown["prepaid_credit_amount_cents"], shown["total_amount_cents"], shown["total_due_amount_cents"]) == (
        214, 0, 0)
    assert shown["payment_status"] == "succeeded"
    assert after["balance_cents"] == 1_000 - 214
