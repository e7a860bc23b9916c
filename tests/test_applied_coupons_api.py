"""Applied coupons through the API: Lago's order and amounts (I4 step 3, M3), limits, frequencies, void."""

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

NOW = datetime(2026, 3, 20, tzinfo=UTC)


@pytest.fixture
def api(shared_store: Store) -> Iterator[falcon.testing.TestClient]:
    yield falcon.testing.TestClient(
        create_app(shared_store.billing, shared_store.metering, shared_store.readers, clock=lambda: NOW))


class Shop:
    """A $100 monthly arrears plan with a 1-cent charge on calls, a customer on it since Mar 1 (created Mar 20)."""

    def __init__(self, api: falcon.testing.TestClient, key: IssuedKey, store: Store, *, vat: bool = False) -> None:
        self.api, self.key, self.store = api, key, store
        if vat:
            self.call("POST", "taxes", {"tax": {"name": "VAT", "code": "vat", "rate": "20", "applied_to_organization": True}})
        metric = self.call("POST", "billable_metrics", {"billable_metric": {
            "name": "Calls", "code": "calls", "aggregation_type": "count_agg"}})["billable_metric"]
        self.call("POST", "plans", {"plan": {
            "name": "Pro", "code": "pro", "interval": "monthly", "amount_cents": 10_000, "amount_currency": "USD",
            "pay_in_advance": False, "charges": [{"billable_metric_id": metric["lago_id"], "charge_model": "standard",
                                                  "properties": {"amount": "1"}}]}})
        self.call("POST", "customers", {"customer": {"external_id": "cus", "name": "Ada"}})
        self.call("POST", "subscriptions", {"subscription": {
            "external_customer_id": "cus", "plan_code": "pro", "external_id": "sub", "subscription_at": "2026-03-01T00:00:00Z"}})

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, status: int = 200) -> dict[str, Any]:
        response = self.api.simulate_request(method, f"/api/v1/{path}", headers=bearer(self.key), json=body)
        assert response.status_code == status, (path, response.text)
        return dict(response.json) if response.text else {}

    def coupon(self, code: str, **terms: Any) -> None:
        self.call("POST", "coupons", {"coupon": {"name": code.title(), "code": code, **terms}})

    def apply(self, code: str, status: int = 200, **overrides: Any) -> dict[str, Any]:
        return self.call("POST", "applied_coupons", {"applied_coupon": {
            "external_customer_id": "cus", "coupon_code": code, **overrides}}, status)

    def calls(self, count: int, day: int = 10, month: int = 3) -> None:
        self.call("POST", "events/batch", {"events": [
            {"transaction_id": f"c{month}-{day}-{n}", "external_subscription_id": "sub", "code": "calls",
             "timestamp": int(datetime(2026, month, day, tzinfo=UTC).timestamp())} for n in range(count)]})

    def close(self, month: int) -> dict[str, Any]:
        """The periodic invoice issued on the 1st of ``month``."""
        Invoicing(self.store.billing, self.store.readers).run_due(datetime(2026, month, 1, 1, tzinfo=UTC))
        listed = self.call("GET", f"invoices?issuing_date_from=2026-{month:02d}-01&issuing_date_to=2026-{month:02d}-01")
        [invoice] = listed["invoices"]
        return self.call("GET", f"invoices/{invoice['lago_id']}")["invoice"]

    def applied(self) -> dict[str, dict[str, Any]]:
        return {a["coupon_code"]: a for a in self.call("GET", "applied_coupons?per_page=100")["applied_coupons"]}


def test_i4_coupons_apply_oldest_first_before_taxes(
    api: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store
) -> None:
    """Fees 10,000; coupon A fixed 1,500 (older) → 8,500; coupon B 10 % → 850 → 7,650; VAT 20 % → 1,530; 9,180."""
    shop = Shop(api, tenant, shared_store, vat=True)
    shop.coupon("a", coupon_type="fixed_amount", amount_cents=1500, amount_currency="USD", frequency="once")
    shop.coupon("b", coupon_type="percentage", percentage_rate="10", frequency="once")
    shop.apply("a")
    shop.apply("b")

    invoice = shop.close(4)

    assert (invoice["fees_amount_cents"], invoice["coupons_amount_cents"]) == (10_000, 2_350)
    assert (invoice["sub_total_excluding_taxes_amount_cents"], invoice["taxes_amount_cents"]) == (7_650, 1_530)
    assert invoice["total_amount_cents"] == 9_180
    assert [(c["item"]["code"], c["amount_cents"], c["before_taxes"]) for c in invoice["credits"]] == [
        ("a", 1500, True), ("b", 850, True)]
    assert invoice["fees"][0]["precise_coupons_amount_cents"] == "2350"
    assert {code: a["status"] for code, a in shop.applied().items()} == {"a": "terminated", "b": "terminated"}


def test_m3_a_fixed_coupon_used_once_keeps_what_it_did_not_use(
    api: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store
) -> None:
    """15,000 against a 10,000 invoice: 10,000 taken, 5,000 left for April's invoice, then it ends."""
    shop = Shop(api, tenant, shared_store)
    shop.coupon("big", coupon_type="fixed_amount", amount_cents=15_000, amount_currency="USD", frequency="once")
    shop.apply("big")

    march = shop.close(4)
    left = shop.applied()["big"]
    april = shop.close(5)

    assert (march["coupons_amount_cents"], march["total_amount_cents"], march["payment_status"]) == (10_000, 0, "succeeded")
    assert (left["status"], left["amount_cents_remaining"]) == ("active", 5_000)
    assert (april["coupons_amount_cents"], april["total_amount_cents"]) == (5_000, 5_000)
    assert shop.applied()["big"]["status"] == "terminated"


def test_a_recurring_coupon_applies_for_its_duration_and_a_forever_one_always(
    api: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store
) -> None:
    shop = Shop(api, tenant, shared_store)
    shop.coupon("twice", coupon_type="percentage", percentage_rate="5", frequency="recurring", frequency_duration=2)
    shop.coupon("always", coupon_type="fixed_amount", amount_cents=100, amount_currency="USD", frequency="forever")
    shop.apply("twice")
    shop.apply("always")

    discounts = [shop.close(month)["coupons_amount_cents"] for month in (4, 5, 6)]

    assert discounts == [500 + 100, 500 + 100, 100]  # 5 % of 10,000, then 100 of the 9,500 left; then 100 alone
    assert {code: a["status"] for code, a in shop.applied().items()} == {"twice": "terminated", "always": "active"}


def test_limited_coupons_discount_only_their_fees_and_come_first(
    api: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store
) -> None:
    """A 50 % coupon limited to calls takes half of the 600 of calls (300) before an unrestricted 1,000 coupon;
    a coupon limited to another plan takes nothing."""
    shop = Shop(api, tenant, shared_store)
    shop.call("POST", "plans", {"plan": {"name": "Other", "code": "other", "interval": "monthly", "amount_cents": 1,
                                         "amount_currency": "USD", "pay_in_advance": False}})
    shop.coupon("flat", coupon_type="fixed_amount", amount_cents=1000, amount_currency="USD", frequency="once")
    shop.coupon("calls_half", coupon_type="percentage", percentage_rate="50", frequency="once",
                applies_to={"billable_metric_codes": ["calls"]})
    shop.coupon("elsewhere", coupon_type="percentage", percentage_rate="50", frequency="once",
                applies_to={"plan_codes": ["other"]})
    shop.apply("flat")
    shop.apply("calls_half")
    shop.apply("elsewhere")
    shop.calls(6)

    invoice = shop.close(4)

    assert [(c["item"]["code"], c["amount_cents"]) for c in invoice["credits"]] == [("calls_half", 300), ("flat", 1000)]
    assert shop.applied()["elsewhere"]["status"] == "active"


def test_voiding_an_invoice_gives_its_coupons_back(
    api: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store
) -> None:
    """A 5,000 coupon and a 10 % one, both used up by March's invoice; voiding it makes both whole again."""
    shop = Shop(api, tenant, shared_store)
    shop.coupon("fixed", coupon_type="fixed_amount", amount_cents=5_000, amount_currency="USD", frequency="once")
    shop.coupon("pct", coupon_type="percentage", percentage_rate="10", frequency="once")
    shop.apply("fixed")
    shop.apply("pct")
    march = shop.close(4)
    assert march["coupons_amount_cents"] == 5_500
    assert {code: a["status"] for code, a in shop.applied().items()} == {"fixed": "terminated", "pct": "terminated"}

    shop.call("POST", f"invoices/{march['lago_id']}/void")

    applied = shop.applied()
    assert (applied["fixed"]["status"], applied["fixed"]["amount_cents_remaining"]) == ("active", 5_000)
    assert applied["pct"]["status"] == "active"
    assert shop.close(5)["coupons_amount_cents"] == 5_500


def test_one_off_invoices_take_no_coupons(api: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store) -> None:
    shop = Shop(api, tenant, shared_store)
    shop.coupon("pct", coupon_type="percentage", percentage_rate="10", frequency="once")
    shop.apply("pct")
    shop.call("POST", "add_ons", {"add_on": {"name": "Setup", "code": "setup", "amount_cents": 500, "amount_currency": "USD"}})

    one_off = shop.call("POST", "invoices", {"invoice": {"external_customer_id": "cus", "fees": [{"add_on_code": "setup"}]}})

    assert one_off["invoice"]["coupons_amount_cents"] == 0
    assert shop.applied()["pct"]["status"] == "active"


def test_applying_coupons_is_refused_as_lago_does(
    api: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store
) -> None:
    shop = Shop(api, tenant, shared_store)
    shop.coupon("once", coupon_type="percentage", percentage_rate="10", frequency="once", reusable=False)
    applied = shop.apply("once")

    assert shop.apply("once", status=422)["error_details"] == {"coupon": ["coupon_already_applied"]}
    shop.call("DELETE", f"customers/cus/applied_coupons/{applied['applied_coupon']['lago_id']}")
    assert shop.apply("once", status=422)["error_details"] == {"coupon": ["coupon_is_not_reusable"]}
    assert shop.apply("nope", status=404)["code"] == "coupon_not_found"
    shop.call("POST", "applied_coupons", {"applied_coupon": {"external_customer_id": "ghost", "coupon_code": "once"}},
              status=404)
    shop.call("POST", "applied_coupons", {"applied_coupon": {"coupon_code": "once"}}, status=422)
    shop.call("DELETE", "customers/cus/applied_coupons/not-a-uuid", status=404)
    shop.call("GET", "applied_coupons?status=bogus", status=422)
    assert [a["status"] for a in shop.call("GET", "customers/cus/applied_coupons")["applied_coupons"]] == ["terminated"]
    other = shared_store.billing.create_organization("Coupon neighbour")
    response = api.simulate_get("/api/v1/applied_coupons", headers=bearer(other))
    assert response.json["applied_coupons"] == []
