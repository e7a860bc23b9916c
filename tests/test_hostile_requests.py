"""Hostile and careless requests (issue 10): each gets a 4xx in Lago's error format, stores nothing,
and leaves every projection at the head of the log for every organization."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import falcon.testing
import psycopg
import pytest

from domain.api_key import IssuedKey
from interfaces.http.app import create_app
from interfaces.store import Store, open_store
from tests.conftest import bearer

API = "/api/v1"


@pytest.fixture(scope="module")
def world(shared_database_url: str) -> Iterator[tuple[Store, falcon.testing.TestClient]]:
    store = open_store(shared_database_url, role="test", pool_size=4, read_wait_seconds=10)
    yield store, falcon.testing.TestClient(create_app(store.billing, store.metering, store.readers,
                                                      max_body_bytes=1 << 20))
    store.close()


class Tenant:
    """An organization with one of everything, built through the API."""

    metric_id = ""  # filled in by tests that need them
    fee_id = ""

    def __init__(self, api: falcon.testing.TestClient, key: IssuedKey) -> None:
        self.api, self.key = api, key
        self.call("POST", "billable_metrics", {"billable_metric": {
            "name": "Value", "code": "value", "aggregation_type": "sum_agg", "field_name": "value"}})
        metric = self.call("GET", "billable_metrics/value")["billable_metric"]
        self.call("POST", "plans", {"plan": {
            "name": "Usage", "code": "usage", "interval": "monthly", "amount_cents": 100, "amount_currency": "USD", "pay_in_advance": False,
            "charges": [{"billable_metric_id": metric["lago_id"], "charge_model": "standard",
                         "properties": {"amount": "1"}}]}})
        self.call("POST", "customers", {"customer": {"external_id": "cus", "name": "Ada", "currency": "USD"}})
        self.call("POST", "subscriptions", {"subscription": {
            "external_customer_id": "cus", "plan_code": "usage", "external_id": "sub"}})
        self.call("POST", "add_ons", {"add_on": {"name": "Audit", "code": "audit", "amount_cents": 1000,
                                                 "amount_currency": "USD"}})
        self.invoice_id = self.call("POST", "invoices", {"invoice": {
            "external_customer_id": "cus", "currency": "USD", "fees": [{"add_on_code": "audit"}]}})["invoice"]["lago_id"]
        self.wallet_id = self.call("POST", "wallets", {"wallet": {
            "external_customer_id": "cus", "currency": "USD", "rate_amount": "1",
            "granted_credits": "10"}})["wallet"]["lago_id"]

    def call(self, method: str, path: str, body: Any = None, status: int = 200) -> dict[str, Any]:
        response = self.api.simulate_request(method, f"{API}/{path}", headers=bearer(self.key), json=body)
        assert response.status_code == status, (method, path, response.status_code, response.text)
        return dict(response.json) if response.text else {}

    def send(self, method: str, path: str, body: bytes | None = None,
             query: str | None = None) -> falcon.testing.Result:
        headers = {**bearer(self.key), "Content-Type": "application/json"}
        return self.api.simulate_request(method, f"{API}/{path}", headers=headers, body=body, query_string=query)


def _heads(store: Store) -> dict[str, int]:
    with psycopg.connect(store.url) as conn:
        return {name: conn.execute(f"SELECT coalesce(max(notification_id), 0) FROM {name}_events").fetchone()[0]
                for name in ("billing", "metering")}


def _assert_every_view_at_the_head(store: Store) -> None:
    for projector in store.projectors:
        projector.catch_up()
        position, head = projector.lag()
        assert position == head, (projector.name, position, head)


def _assert_lago_error(response: falcon.testing.Result) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    body = response.json
    assert body["status"] == response.status_code
    assert isinstance(body["error"], str)
    assert "code" in body, body


NUL = "a\u0000b"
DEEP_ARRAY = b'{"customer": {"external_id": "deep", "metadata": ' + b"[" * 10_000 + b"]" * 10_000 + b"}}"
DEEP_OBJECT = b'{"plan": ' + b'{"a":' * 10_000 + b"1" + b"}" * 10_000 + b"}"

# (method, path, JSON body or raw bytes, query string); "{invoice}" and "{wallet}" are filled in.
HOSTILE: dict[str, tuple[str, str, Any, str | None]] = {
    "invoice metadata key with NUL": ("PUT", "invoices/{invoice}",
                                      {"invoice": {"metadata": [{"key": "a\u0000", "value": "x"}]}}, None),
    "customer name with NUL": ("POST", "customers", {"customer": {"external_id": "evil", "name": NUL}}, None),
    "customer external id with NUL": ("POST", "customers", {"customer": {"external_id": NUL}}, None),
    "plan name with NUL": ("POST", "plans", {"plan": {"name": NUL, "code": "nul", "interval": "monthly",
                                                      "amount_cents": 1, "amount_currency": "USD", "pay_in_advance": False}}, None),
    "subscription external id with NUL": ("POST", "subscriptions", {"subscription": {
        "external_customer_id": "cus", "plan_code": "usage", "external_id": NUL}}, None),
    "organization name with NUL": ("PUT", "organizations", {"organization": {"name": NUL}}, None),
    "organization email with NUL": ("PUT", "organizations", {"organization": {"email": NUL}}, None),
    "event property with NUL": ("POST", "events", {"event": {
        "transaction_id": "nul", "external_subscription_id": "sub", "code": "value",
        "properties": {"value": 1, "note": NUL}}}, None),
    "event property key with NUL": ("POST", "events", {"event": {
        "transaction_id": "nulkey", "external_subscription_id": "sub", "code": "value",
        "properties": {NUL: 1}}}, None),
    "event transaction id with NUL": ("POST", "events/batch", {"events": [{
        "transaction_id": NUL, "external_subscription_id": "sub", "code": "value"}]}, None),
    "search term with NUL": ("GET", "customers", None, "search_term=%00"),
    "zipcode filter with NUL": ("GET", "customers", None, "zipcodes[]=%00"),
    "wallet filter with NUL": ("GET", "wallets", None, "external_customer_id=%00"),
    "coupon filter with NUL": ("GET", "applied_coupons", None, "coupon_code[]=%00"),
    "current usage with NUL": ("GET", "customers/cus/current_usage", None, "external_subscription_id=%00"),
    "analytics with NUL": ("GET", "analytics/gross_revenue", None, "currency=%00"),
    "ledger with NUL": ("GET", "ledger/entries", None, "account=%00"),
    "events filter with NUL": ("GET", "events", None, "code=%00"),
    "NUL in a path segment": ("GET", "customers/a%00b", None, None),
    "page past bigint": ("GET", "billable_metrics", None, "page=9223372036854775808"),
    "offset past bigint": ("GET", "events", None, "page=4611686018427387904&per_page=4"),
    "months as a superscript digit": ("GET", "analytics/gross_revenue", None, "months=%C2%B2"),
    "periods_count of 5,000 digits": ("GET", "customers/cus/past_usage", None,
                                      "external_subscription_id=sub&periods_count=" + "9" * 5000),
    "page of 5,000 digits": ("GET", "customers", None, "page=" + "9" * 5000),
    "POST on a metadata key": ("POST", "wallets/{wallet}/metadata/origin", {"x": 1}, None),
    "net payment term of 3,000,000 days": ("PUT", "organizations", {"organization": {"net_payment_term": 3_000_000}},
                                           None),
    "customer net payment term of 3,000,000 days": ("POST", "customers", {"customer": {
        "external_id": "late", "net_payment_term": 3_000_000}}, None),
    "invoice grace period of 3,000,000 days": ("PUT", "organizations", {"organization": {
        "billing_configuration": {"invoice_grace_period": 3_000_000}}}, None),
    "10,000-deep array": ("POST", "customers", DEEP_ARRAY, None),
    "10,000-deep object": ("POST", "plans", DEEP_OBJECT, None),
    "invalid UTF-8": ("POST", "customers", b'{"customer": {"external_id": "\xff\xfe"}}', None),
    "event value of 1e100000": ("POST", "events", b'{"event": {"transaction_id": "huge", "external_subscription_id":'
                                                  b' "sub", "code": "value", "properties": {"value": 1e100000}}}', None),
    "event value with 100,000 digits": ("POST", "events/batch", b'{"events": [{"transaction_id": "long", '
                                        b'"external_subscription_id": "sub", "code": "value", "properties": {"value": '
                                        + b"9" * 100_000 + b"}}]}", None),
    "plan amount of 2**80": ("POST", "plans", {"plan": {"name": "Big", "code": "big", "interval": "monthly",
                                                        "amount_cents": 2**80, "amount_currency": "USD", "pay_in_advance": False}}, None),
    "add-on amount of 2**80": ("POST", "add_ons", {"add_on": {"name": "Big", "code": "big", "amount_cents": 2**80,
                                                              "amount_currency": "USD"}}, None),
    "coupon amount of 2**80": ("POST", "coupons", {"coupon": {
        "name": "Big", "code": "big", "coupon_type": "fixed_amount", "amount_cents": 2**80, "amount_currency": "USD",
        "frequency": "once", "expiration": "no_expiration"}}, None),
    "tax rate of 10**30": ("POST", "taxes", {"tax": {"name": "Big", "code": "big", "rate": "1" + "0" * 30}}, None),
    "wallet of 2**80 credits": ("POST", "wallets", {"wallet": {
        "external_customer_id": "cus", "currency": "USD", "rate_amount": "1", "paid_credits": str(2**80)}}, None),
    "trial of 3,000,000 days": ("POST", "plans", {"plan": {"name": "Trial", "code": "trial", "interval": "monthly",
                                                           "amount_cents": 1, "amount_currency": "USD", "pay_in_advance": False,
                                                           "trial_period": 3_000_000}}, None),
    "subscription starting in year 9999": ("POST", "subscriptions", {"subscription": {
        "external_customer_id": "cus", "plan_code": "usage", "external_id": "far",
        "subscription_at": "9999-12-31T23:59:59Z"}}, None),
}


# Nasty but valid: accepted as Lago accepts them, and nothing breaks afterwards.
NASTY: dict[str, tuple[str, str, Any, str | None]] = {
    "plan code with a percent sign": ("PUT", "plans/usage", {"plan": {"code": "p%o"}}, None),
    "customer renamed to quotes and backslashes": ("PUT", "customers/cus", {"customer": {
        "external_id": "o'ne\\\"%s%%", "name": "Robert'); DROP TABLE customers;--"}}, None),
    "event value of 10^400 as text": ("POST", "events", {"event": {
        "transaction_id": "huge-text", "external_subscription_id": "sub", "code": "value",
        "properties": {"value": "1" + "0" * 400}}}, None),
    "event value with 400 decimals as text": ("POST", "events", {"event": {
        "transaction_id": "tiny-text", "external_subscription_id": "sub", "code": "value",
        "properties": {"value": "0." + "0" * 399 + "1"}}}, None),
    "event value of 1e400 (kept as sent, not aggregated)": (
        "POST", "events", b'{"event": {"transaction_id": "e400", "external_subscription_id": "sub", "code": "value", '
                          b'"properties": {"value": 1e400, "id": 123456789012345678901234567890}}}', None),
    "event value of 10^17": ("POST", "events", {"event": {
        "transaction_id": "big", "external_subscription_id": "sub", "code": "value",
        "properties": {"value": 10**17}}}, None),
    "per_page past bigint (capped at 1000)": ("GET", "plans", None, "per_page=99999999999999999999999"),
    "a last page far away": ("GET", "customers", None, "page=1000000000&per_page=1000"),
    "quotes and percent signs in filters": ("GET", "customers", None, "search_term=%25'%22%5C&zipcodes[]=%25s"),
    "emoji and a 10 kB name": ("POST", "customers", {"customer": {"external_id": "🧾" * 10, "name": "é" * 10_000}},
                               None),
}


def _assert_nothing_is_broken(store: Store, *tenants: Tenant) -> None:
    _assert_every_view_at_the_head(store)
    for tenant in tenants:
        for listing in ("plans", "customers", "invoices", "wallets", "events", "subscriptions", "fees",
                        "credit_notes", "applied_coupons", "ledger/entries", "analytics/gross_revenue"):
            tenant.call("GET", listing)
        tenant.call("GET", "customers/cus/current_usage?external_subscription_id=sub")
        tenant.call("GET", f"wallets/{tenant.wallet_id}")
    tenants[-1].call("POST", "customers", {"customer": {"external_id": "after", "name": "Still works"}})
    tenants[-1].call("POST", "invoices", {"invoice": {"external_customer_id": "cus", "currency": "USD",
                                                      "fees": [{"add_on_code": "audit"}]}})
    tenants[-1].call("POST", "wallets", {"wallet": {"external_customer_id": "cus", "currency": "USD",
                                                    "rate_amount": "1", "paid_credits": "5"}})


@pytest.mark.parametrize("name", list(NASTY))
def test_a_nasty_but_valid_value_is_stored_and_projected_as_sent(
    world: tuple[Store, falcon.testing.TestClient], name: str
) -> None:
    """Values validation lets through reach every view intact, and every view keeps working."""
    store, api = world
    tenant = Tenant(api, store.billing.create_organization(f"Nasty {uuid4().hex[:8]}"))
    method, path, body, query = NASTY[name]

    raw = body if isinstance(body, bytes) or body is None else falcon.testing.helpers.json.dumps(body).encode()
    response = tenant.send(method, path, raw, query)

    assert response.status_code == 200, response.text
    _assert_nothing_is_broken(store, tenant)


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_request_is_refused_in_lagos_format_and_breaks_nothing(
    world: tuple[Store, falcon.testing.TestClient], name: str
) -> None:
    """The request gets a 4xx with status, error and code; nothing is stored; every view reaches the head
    of the log; and another organization's reads and writes still work."""
    store, api = world
    attacker = Tenant(api, store.billing.create_organization(f"Attacker {uuid4().hex[:8]}"))
    bystander = Tenant(api, store.billing.create_organization(f"Bystander {uuid4().hex[:8]}"))
    method, path, body, query = HOSTILE[name]
    path = path.format(invoice=attacker.invoice_id, wallet=attacker.wallet_id)
    raw = body if isinstance(body, bytes) or body is None else falcon.testing.helpers.json.dumps(body).encode()
    before = _heads(store)

    response = attacker.send(method, path, raw, query)

    _assert_lago_error(response)
    assert _heads(store) == before, "a refused request stored events"
    _assert_nothing_is_broken(store, attacker, bystander)


def test_an_unexpected_error_answers_500_with_a_code(world: tuple[Store, falcon.testing.TestClient]) -> None:
    """Even a bug answers in Lago's format, with a machine-readable code."""
    store, _ = world
    app = create_app(store.billing, store.metering, store.readers)

    class Broken:
        path = "/api/v1/broken"
        operations = ()

        def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
            raise RuntimeError("a bug")

    app.add_route(Broken.path, Broken())
    key = store.billing.create_organization("Bug")

    response = falcon.testing.TestClient(app).simulate_get(Broken.path, headers=bearer(key))

    assert response.status_code == 500
    assert response.json == {"status": 500, "error": "Internal Server Error", "code": "internal_error"}


NASTY_TEXT = "p%s%%'\"\\ 🧾 ; DROP TABLE plans;-- \u2028\t"
LONG_TEXT = "é" * 10_000


def test_every_view_holds_the_nastiest_values_validation_lets_through(
    world: tuple[Store, falcon.testing.TestClient]
) -> None:
    """Codes, names, ids, metadata and descriptions full of quotes, percent signs, backslashes, emoji and
    10 kB of text, and amounts and day counts at their bounds, reach every view and read back as sent."""
    store, api = world
    tenant = Tenant(api, store.billing.create_organization(f"Nastiest {uuid4().hex[:8]}"))
    code = NASTY_TEXT
    path_code = falcon.uri.encode_value(code)

    tenant.call("PUT", "organizations", {"organization": {"legal_name": LONG_TEXT, "net_payment_term": 36_500,
                                                          "address_line1": NASTY_TEXT}})
    tenant.call("POST", "taxes", {"tax": {"name": LONG_TEXT, "code": code, "rate": "100", "description": NASTY_TEXT}})
    tenant.call("POST", "billable_metrics", {"billable_metric": {
        "name": NASTY_TEXT, "code": code, "aggregation_type": "sum_agg", "field_name": NASTY_TEXT,
        "description": LONG_TEXT}})
    metric = tenant.call("GET", f"billable_metrics/{path_code}")["billable_metric"]
    tenant.call("POST", "add_ons", {"add_on": {"name": NASTY_TEXT, "code": code, "amount_cents": 10**15,
                                               "amount_currency": "USD", "description": LONG_TEXT}})
    tenant.call("POST", "coupons", {"coupon": {"name": NASTY_TEXT, "code": code, "coupon_type": "fixed_amount",
                                               "amount_cents": 10**15, "amount_currency": "USD",
                                               "frequency": "once", "expiration": "no_expiration"}})
    tenant.call("POST", "plans", {"plan": {
        "name": LONG_TEXT, "code": code, "interval": "monthly", "amount_cents": 10**15, "amount_currency": "USD",
        "pay_in_advance": False, "trial_period": 36_500, "description": NASTY_TEXT, "tax_codes": [code],
        "charges": [{"billable_metric_id": metric["lago_id"], "charge_model": "standard", "invoice_display_name":
                     NASTY_TEXT, "properties": {"amount": "0.000000000001"}}]}})
    tenant.call("POST", "customers", {"customer": {
        "external_id": code, "name": LONG_TEXT, "currency": "USD", "net_payment_term": 36_500, "tax_codes": [code],
        "email": "a@b.co", "city": NASTY_TEXT, "metadata": [{"key": NASTY_TEXT, "value": LONG_TEXT,
                                                            "display_in_invoice": True}]}})
    tenant.call("POST", "subscriptions", {"subscription": {
        "external_customer_id": code, "plan_code": code, "external_id": code, "name": NASTY_TEXT}})
    tenant.call("POST", "applied_coupons", {"applied_coupon": {"external_customer_id": code, "coupon_code": code}})
    tenant.call("POST", "events", {"event": {
        "transaction_id": code, "external_subscription_id": code, "code": code,
        "properties": {NASTY_TEXT: "999999999999999999", "note": LONG_TEXT}}})
    invoice = tenant.call("POST", "invoices", {"invoice": {
        "external_customer_id": code, "currency": "USD", "fees": [{"add_on_code": code, "description": NASTY_TEXT}]
    }})["invoice"]
    tenant.call("PUT", f"invoices/{invoice['lago_id']}", {"invoice": {"metadata": [
        {"key": NASTY_TEXT, "value": LONG_TEXT}]}})
    tenant.call("POST", "payments", {"payment": {"invoice_id": invoice["lago_id"], "amount_cents": 1,
                                                 "reference": NASTY_TEXT}})
    wallet = tenant.call("POST", "wallets", {"wallet": {
        "external_customer_id": code, "currency": "USD", "rate_amount": "1", "name": LONG_TEXT,
        "granted_credits": "1000000000000"}})["wallet"]
    tenant.call("POST", f"wallets/{wallet['lago_id']}/metadata", {"metadata": {NASTY_TEXT: LONG_TEXT}})

    _assert_every_view_at_the_head(store)
    assert tenant.call("GET", f"customers/{path_code}")["customer"]["name"] == LONG_TEXT
    assert tenant.call("GET", f"plans/{path_code}")["plan"]["description"] == NASTY_TEXT
    assert tenant.call("GET", f"taxes/{path_code}")["tax"]["description"] == NASTY_TEXT
    assert tenant.call("GET", f"add_ons/{path_code}")["add_on"]["amount_cents"] == 10**15
    assert tenant.call("GET", f"coupons/{path_code}")["coupon"]["name"] == NASTY_TEXT
    assert tenant.call("GET", f"subscriptions/{path_code}")["subscription"]["name"] == NASTY_TEXT
    assert tenant.call("GET", f"events/{path_code}")["event"]["properties"]["note"] == LONG_TEXT
    assert tenant.call("GET", f"invoices/{invoice['lago_id']}")["invoice"]["metadata"][0]["key"] == NASTY_TEXT
    assert tenant.call("GET", f"wallets/{wallet['lago_id']}")["wallet"]["name"] == LONG_TEXT
    assert tenant.call("GET", "payments")["payments"][0]["reference"] == NASTY_TEXT
    assert tenant.call("GET", "organizations")["organization"]["legal_name"] == LONG_TEXT
    usage = tenant.call("GET", f"customers/{path_code}/current_usage?external_subscription_id={path_code}")
    assert usage["customer_usage"]["charges_usage"][0]["units"] == "999999999999999999.0"
    _assert_nothing_is_broken(store, tenant)
