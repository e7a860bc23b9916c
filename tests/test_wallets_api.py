"""Wallets through the API: top-ups, settlement, consumption in Lago's order, and I4's worked example."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import falcon.testing
import pytest

from domain.api_key import IssuedKey
from interfaces.http.app import create_app
from application.invoicing import Invoicing
from interfaces.store import Store
from tests.conftest import bearer


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 4, 1, 9, tzinfo=UTC))


@pytest.fixture
def api(shared_store: Store, clock: Clock) -> Iterator[falcon.testing.TestClient]:
    yield falcon.testing.TestClient(
        create_app(shared_store.billing, shared_store.metering, shared_store.readers, clock=clock))


class Customer:
    def __init__(self, api: falcon.testing.TestClient, key: IssuedKey) -> None:
        self.api, self.key = api, key
        self.call("POST", "customers", {"customer": {"external_id": "cus", "name": "Ada", "currency": "USD"}})
        self.sent = 0

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, status: int = 200) -> dict[str, Any]:
        response = self.api.simulate_request(method, f"/api/v1/{path}", headers=bearer(self.key), json=body)
        assert response.status_code == status, (path, response.text)
        return dict(response.json) if response.text else {}

    def wallet(self, **fields: Any) -> dict[str, Any]:
        return self.call("POST", "wallets", {"wallet": {"external_customer_id": "cus", "currency": "USD",
                                                        "rate_amount": "1", **fields}})["wallet"]

    def units(self, count: int, day: int) -> None:
        self.call("POST", "events/batch", {"events": [
            {"transaction_id": f"u{self.sent + n}", "external_subscription_id": "usage", "code": "units",
             "timestamp": int(datetime(2026, 4, day, tzinfo=UTC).timestamp())} for n in range(count)]})
        self.sent += count


def test_i4_the_worked_example_ends_at_zero_with_1060_left_in_the_wallet(
    api: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store, clock: Clock
) -> None:
    """Fees 10,000, of which 3,000 were invoiced early (invoice_now): progressive-billing credit 3,000 → 7,000;
    coupon A fixed 1,500 (older) → 5,500; coupon B 10 % → 550 → 4,950; VAT 20 % → 990 → 5,940; a credit note of
    2,000 → 3,940; a wallet of 5,000 pays 3,940 → total 0, succeeded, 1,060 left in the wallet."""
    customer = Customer(api, tenant)
    customer.call("POST", "taxes", {"tax": {"name": "VAT", "code": "vat", "rate": "20", "applied_to_organization": True}})
    customer.call("POST", "taxes", {"tax": {"name": "Exempt", "code": "exempt", "rate": "0"}})
    metric = customer.call("POST", "billable_metrics", {"billable_metric": {
        "name": "Units", "code": "units", "aggregation_type": "count_agg"}})["billable_metric"]
    customer.call("POST", "plans", {"plan": {"name": "Usage", "code": "usage", "interval": "monthly", "amount_cents": 0,
                                             "amount_currency": "USD", "pay_in_advance": False, "charges": [{
                                                 "billable_metric_id": metric["lago_id"], "charge_model": "standard",
                                                 "properties": {"amount": "1"}}]}})
    customer.call("POST", "plans", {"plan": {"name": "Ahead", "code": "ahead", "interval": "monthly", "amount_cents": 3_000,
                                             "amount_currency": "USD", "pay_in_advance": True, "tax_codes": ["exempt"]}})
    for plan in ("usage", "ahead"):
        customer.call("POST", "subscriptions", {"subscription": {"external_customer_id": "cus", "plan_code": plan,
                                                                 "external_id": plan}})
    customer.units(30, day=5)
    clock.now = datetime(2026, 4, 10, 15, tzinfo=UTC)
    early = customer.call("POST", "subscriptions/usage/invoice_now")["invoice"]
    customer.call("DELETE", "subscriptions/ahead")  # 20 unused days of $30: a credit note of 2,000
    for code, terms in (("a", {"coupon_type": "fixed_amount", "amount_cents": 1_500, "amount_currency": "USD"}),
                        ("b", {"coupon_type": "percentage", "percentage_rate": "10"})):
        clock.now = clock.now.replace(day=clock.now.day + 1)
        customer.call("POST", "coupons", {"coupon": {"name": code, "code": code, "frequency": "once", **terms}})
        customer.call("POST", "applied_coupons", {"applied_coupon": {"external_customer_id": "cus", "coupon_code": code}})
    wallet = customer.wallet(granted_credits="50")
    customer.units(70, day=20)

    Invoicing(shared_store.billing, shared_store.readers).run_due(datetime(2026, 5, 1, 1, tzinfo=UTC))

    listed = customer.call("GET", "invoices?issuing_date_from=2026-05-01")["invoices"]
    [invoice] = [customer.call("GET", f"invoices/{i['lago_id']}")["invoice"] for i in listed]
    assert early["fees_amount_cents"] == 3_000
    assert (invoice["fees_amount_cents"], invoice["progressive_billing_credit_amount_cents"]) == (10_000, 3_000)
    assert invoice["coupons_amount_cents"] == 2_050
    assert (invoice["sub_total_excluding_taxes_amount_cents"], invoice["taxes_amount_cents"]) == (4_950, 990)
    assert invoice["sub_total_including_taxes_amount_cents"] == 5_940
    assert (invoice["credit_notes_amount_cents"], invoice["prepaid_credit_amount_cents"]) == (2_000, 3_940)
    assert (invoice["total_amount_cents"], invoice["payment_status"]) == (0, "succeeded")
    after = customer.call("GET", f"wallets/{wallet['lago_id']}")["wallet"]
    assert (after["balance_cents"], after["credits_balance"], after["consumed_credits"]) == (1_060, "10.6", "39.4")


def test_paid_credits_wait_for_payment_when_the_wallet_requires_it(
    api: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store
) -> None:
    """10 paid credits at $2.50: a credit invoice of 2,500; the credits settle when it is paid. Granted ones at once."""
    customer = Customer(api, tenant)
    wallet = customer.wallet(rate_amount="2.5", paid_credits="10", granted_credits="4",
                             invoice_requires_successful_payment=True)
    transactions = customer.call("GET", f"wallets/{wallet['lago_id']}/wallet_transactions")["wallet_transactions"]
    purchase = next(t for t in transactions if t["transaction_status"] == "purchased")
    invoice = customer.call("GET", f"invoices/{purchase['lago_invoice_id']}")["invoice"]

    customer.call("POST", "payments", {"payment": {"invoice_id": invoice["lago_id"], "amount_cents": 2_500,
                                                   "reference": "wire"}})

    settled = customer.call("GET", f"wallet_transactions/{purchase['lago_id']}")["wallet_transaction"]
    after = customer.call("GET", f"wallets/{wallet['lago_id']}")["wallet"]
    assert (wallet["balance_cents"], wallet["credits_balance"]) == (1_000, "4")
    assert (invoice["invoice_type"], invoice["fees_amount_cents"], invoice["taxes_amount_cents"]) == ("credit", 2_500, 0)
    assert (purchase["status"], settled["status"], settled["credit_amount"]) == ("pending", "settled", "10")
    assert (after["balance_cents"], after["credits_balance"]) == (3_500, "14")


def test_top_ups_voids_and_termination(
    api: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store
) -> None:
    customer = Customer(api, tenant)
    wallet = customer.wallet(granted_credits="10", name="Promo", code="promo", priority=2)

    made = customer.call("POST", "wallet_transactions", {"wallet_transaction": {
        "wallet_id": wallet["lago_id"], "paid_credits": "5", "granted_credits": "1", "voided_credits": "3"}})
    after = customer.call("GET", f"wallets/{wallet['lago_id']}")["wallet"]
    ended = customer.call("DELETE", f"wallets/{wallet['lago_id']}")["wallet"]

    kinds = sorted((t["transaction_status"], t["status"], t["credit_amount"]) for t in made["wallet_transactions"])
    assert kinds == [("granted", "settled", "1"), ("purchased", "settled", "5"), ("voided", "settled", "3")]
    assert after["balance_cents"] == 1_000 + 500 + 100 - 300
    assert (ended["status"], ended["balance_cents"]) == ("terminated", 0)
    customer.call("POST", "wallet_transactions", {"wallet_transaction": {"wallet_id": wallet["lago_id"],
                                                                          "granted_credits": "1"}}, status=405)
    assert customer.call("GET", "customers/cus/wallets")["meta"]["total_count"] == 1
    [balance] = customer.call("GET", "customers/cus/balance")["balances"]
    assert balance["wallet_amount_cents"] == 0


def test_wallets_are_refused_as_lago_does(api: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store) -> None:
    customer = Customer(api, tenant)
    bad = customer.call("POST", "wallets", {"wallet": {"external_customer_id": "cus", "currency": "XXX",
                                                       "rate_amount": "0"}}, status=422)
    assert set(bad["error_details"]) == {"currency", "rate_amount"}
    assert customer.call("POST", "wallets", {"wallet": {"external_customer_id": "cus", "currency": "EUR",
                                                        "rate_amount": "1"}}, status=422)["error_details"] == {
        "currency": ["currencies_does_not_match"]}
    customer.call("POST", "wallets", {"wallet": {"external_customer_id": "ghost", "currency": "USD", "rate_amount": "1"}},
                  status=404)
    customer.call("GET", "wallets/nope", status=404)
    customer.call("GET", "wallet_transactions/nope", status=404)
    customer.call("POST", "wallet_transactions", {"wallet_transaction": {"wallet_id": "nope"}}, status=404)
    wallet = customer.wallet()
    customer.call("POST", "wallet_transactions", {"wallet_transaction": {"wallet_id": wallet["lago_id"],
                                                                          "paid_credits": "-1"}}, status=422)
    other = shared_store.billing.create_organization("Wallet neighbour")
    assert api.simulate_get(f"/api/v1/wallets/{wallet['lago_id']}", headers=bearer(other)).status_code == 404


def test_recurring_rules_top_up_at_each_interval_and_at_the_threshold(
    api: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store
) -> None:
    """A monthly rule granting 2 credits from Apr 1, and a threshold rule granting 10 when 3 credits or fewer are
    left: the first pass grants both (balance 0), a second pass in April nothing, a pass in May the monthly 2."""
    customer = Customer(api, tenant)
    wallet = customer.wallet(recurring_transaction_rules=[
        {"trigger": "interval", "interval": "monthly", "granted_credits": "2", "started_at": "2026-04-01T00:00:00Z"},
        {"trigger": "threshold", "threshold_credits": "3", "granted_credits": "10"}])
    invoicing = Invoicing(shared_store.billing, shared_store.readers)

    balances = []
    for moment in (datetime(2026, 4, 1, 10, tzinfo=UTC), datetime(2026, 4, 20, tzinfo=UTC),
                   datetime(2026, 5, 2, tzinfo=UTC)):
        invoicing.run_due(moment)
        balances.append(customer.call("GET", f"wallets/{wallet['lago_id']}")["wallet"]["credits_balance"])

    assert balances == ["12", "12", "14"]
    sources = sorted(t["source"] for t in customer.call(
        "GET", f"wallets/{wallet['lago_id']}/wallet_transactions")["wallet_transactions"])
    assert sources == ["interval", "interval", "threshold"]


def test_voiding_an_invoice_gives_its_wallet_credits_back(
    api: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store
) -> None:
    customer = Customer(api, tenant)
    wallet = customer.wallet(granted_credits="30")
    customer.call("POST", "add_ons", {"add_on": {"name": "Setup", "code": "setup", "amount_cents": 1_200,
                                                 "amount_currency": "USD"}})
    invoice = customer.call("POST", "invoices", {"invoice": {"external_customer_id": "cus",
                                                             "fees": [{"add_on_code": "setup"}]}})["invoice"]
    spent = customer.call("GET", f"wallets/{wallet['lago_id']}")["wallet"]

    customer.call("POST", f"invoices/{invoice['lago_id']}/void")

    restored = customer.call("GET", f"wallets/{wallet['lago_id']}")["wallet"]
    assert (invoice["prepaid_credit_amount_cents"], invoice["total_amount_cents"]) == (1_200, 0)
    assert (spent["balance_cents"], restored["balance_cents"]) == (1_800, 3_000)


def test_an_expired_wallet_is_not_consumed_and_is_terminated_by_the_scheduler(
    api: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store, clock: Clock
) -> None:
    customer = Customer(api, tenant)
    wallet = customer.wallet(granted_credits="30", expiration_at="2026-04-05T00:00:00Z")
    customer.call("POST", "add_ons", {"add_on": {"name": "Setup", "code": "setup", "amount_cents": 1_200,
                                                 "amount_currency": "USD"}})
    clock.now = datetime(2026, 4, 6, tzinfo=UTC)

    invoice = customer.call("POST", "invoices", {"invoice": {"external_customer_id": "cus",
                                                             "fees": [{"add_on_code": "setup"}]}})["invoice"]
    Invoicing(shared_store.billing, shared_store.readers).run_due(clock.now)

    ended = customer.call("GET", f"wallets/{wallet['lago_id']}")["wallet"]
    assert invoice["prepaid_credit_amount_cents"] == 0
    assert (ended["status"], ended["balance_cents"]) == ("terminated", 0)


def test_amounts_too_large_to_hold_are_refused_and_the_views_keep_working(
    api: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store
) -> None:
    """Credits or units worth more than any column holds are a 422, never an invoice that no view could store."""
    customer = Customer(api, tenant)
    wallet = customer.wallet()
    customer.call("POST", "add_ons", {"add_on": {"name": "Setup", "code": "setup", "amount_cents": 100,
                                                 "amount_currency": "USD"}})

    huge_wallet = customer.call("POST", "wallets", {"wallet": {"external_customer_id": "cus", "currency": "USD",
                                                               "rate_amount": "1", "paid_credits": "1e400"}}, status=422)
    huge_top_up = customer.call("POST", "wallet_transactions", {"wallet_transaction": {
        "wallet_id": wallet["lago_id"], "granted_credits": "99999999999999"}}, status=422)
    huge_one_off = customer.call("POST", "invoices", {"invoice": {"external_customer_id": "cus", "fees": [
        {"add_on_code": "setup", "units": "1e20"}]}}, status=422)

    assert huge_wallet["error_details"] == {"paid_credits": ["value_is_out_of_range"]}
    assert huge_top_up["error_details"] == {"granted_credits": ["value_is_out_of_range"]}
    assert huge_one_off["error_details"] == {"amount_cents": ["value_is_out_of_range"]}
    assert customer.call("GET", "invoices")["invoices"] == []
    assert customer.call("GET", "wallets")["meta"]["total_count"] == 1
