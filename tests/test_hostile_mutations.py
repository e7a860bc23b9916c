"""Valid write bodies with one value swapped for a hostile one (issue 10): never a 5xx; a refusal stores
nothing; whatever is accepted, every view projects it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import falcon.testing
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interfaces.http.app import create_app
from interfaces.store import Store, open_store
from tests.conftest import bearer
from tests.test_hostile_requests import Tenant, _assert_every_view_at_the_head, _heads

# Raw JSON text, so numbers no Python float holds can be sent as they are.
HOSTILE_VALUES = (
    '"a\\u0000b"', '"\\u0000"', "170141183460469231731687303715884105727", "-9223372036854775809", "1e400", "-1e400",
    "1e-400", '"1e400"', '"' + "9" * 500 + '"', '"9999-12-31T23:59:59Z"', '"0001-01-01"', '"2999-12-31"',
    "[" * 40 + "]" * 40, '""', "null", "true", "-1", "0", "0.000000000000000000000000000000001",
    '"%s%%\'\\\\"', '"' + "x" * 20_000 + '"', "{}", "[]", '{"a": "\\u0000"}', "123456789012345678901234567890.5",
)

# One valid body per write, in the ``Tenant``'s world (customer "cus", plan "usage", metric "value", …).
WRITES: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "customers", {"customer": {"external_id": "c2", "name": "N", "currency": "USD", "net_payment_term": 3,
                                        "timezone": "UTC", "metadata": [{"key": "k", "value": "v",
                                                                         "display_in_invoice": True}]}}),
    ("POST", "plans", {"plan": {"name": "P", "code": "p2", "interval": "monthly", "amount_cents": 100,
                                "amount_currency": "USD", "pay_in_advance": False, "trial_period": 2,
                                "minimum_commitment": {"amount_cents": 500}}}),
    ("POST", "plans", {"plan": {
        "name": "Charged", "code": "p3", "interval": "yearly", "amount_cents": 1000, "amount_currency": "USD",
        "pay_in_advance": True, "bill_charges_monthly": True,
        "usage_thresholds": [{"amount_cents": 5000, "threshold_display_name": "t"}],
        "charges": [
            {"billable_metric_id": "{metric}", "charge_model": "graduated", "invoiceable": True, "properties": {
                "graduated_ranges": [{"from_value": 0, "to_value": 10, "per_unit_amount": "0.5", "flat_amount": "1"},
                                     {"from_value": 11, "to_value": None, "per_unit_amount": "0.25",
                                      "flat_amount": "0"}]}},
            {"billable_metric_id": "{metric}", "charge_model": "package", "properties": {
                "amount": "5", "package_size": 100, "free_units": 10}},
            {"billable_metric_id": "{metric}", "charge_model": "percentage", "min_amount_cents": 10, "properties": {
                "rate": "1.5", "fixed_amount": "0.1", "free_units_per_events": 2, "free_units_per_total_aggregation":
                "10", "per_transaction_min_amount": "0.05", "per_transaction_max_amount": "9"}},
            {"billable_metric_id": "{metric}", "charge_model": "volume", "properties": {
                "volume_ranges": [{"from_value": 0, "to_value": 100, "per_unit_amount": "1", "flat_amount": "0"},
                                  {"from_value": 101, "to_value": None, "per_unit_amount": "0.5",
                                   "flat_amount": "0"}]}}]}}),
    ("PUT", "plans/usage", {"plan": {"name": "Usage 2", "amount_cents": 200, "trial_period": 3}}),
    ("POST", "credit_notes", {"credit_note": {"invoice_id": "{invoice}", "reason": "other", "credit_amount_cents": 100,
                                              "refund_amount_cents": 0, "items": [{"fee_id": "{fee}",
                                                                                   "amount_cents": 100}]}}),
    ("POST", "payments", {"payment": {"invoice_id": "{invoice}", "amount_cents": 100, "reference": "r"}}),
    ("POST", "wallet_transactions", {"wallet_transaction": {"wallet_id": "{wallet}", "paid_credits": "1.5",
                                                            "granted_credits": "2", "voided_credits": "0.5"}}),
    ("PUT", "wallets/{wallet}", {"wallet": {"name": "w", "expiration_at": "2030-01-01T00:00:00Z",
                                            "recurring_transaction_rules": [{"trigger": "interval",
                                                                             "interval": "monthly",
                                                                             "paid_credits": "1"}]}}),
    ("POST", "events/estimate_fees", {"event": {"external_subscription_id": "sub", "code": "value",
                                                "properties": {"value": 5}}}),
    ("POST", "add_ons", {"add_on": {"name": "A", "code": "a2", "amount_cents": 100, "amount_currency": "USD"}}),
    ("POST", "coupons", {"coupon": {"name": "C", "code": "c2", "coupon_type": "percentage", "percentage_rate": "10",
                                    "frequency": "recurring", "frequency_duration": 3, "expiration": "no_expiration"}}),
    ("POST", "taxes", {"tax": {"name": "T", "code": "t2", "rate": "20"}}),
    ("POST", "billable_metrics", {"billable_metric": {"name": "M", "code": "m2", "aggregation_type": "max_agg",
                                                      "field_name": "v", "rounding_function": "round",
                                                      "rounding_precision": 2}}),
    ("POST", "subscriptions", {"subscription": {"external_customer_id": "cus", "plan_code": "usage",
                                                "external_id": "s2", "subscription_at": "2026-01-01T00:00:00Z",
                                                "billing_time": "anniversary"}}),
    ("POST", "events", {"event": {"transaction_id": "t", "external_subscription_id": "sub", "code": "value",
                                  "timestamp": 1767225600, "properties": {"value": "3", "region": "eu"}}}),
    ("POST", "events/batch", {"events": [{"transaction_id": "b", "external_subscription_id": "sub", "code": "value",
                                          "properties": {"value": 2}}]}),
    ("POST", "invoices", {"invoice": {"external_customer_id": "cus", "currency": "USD", "fees": [
        {"add_on_code": "audit", "units": "2", "unit_amount_cents": 150, "description": "d"}]}}),
    ("POST", "wallets", {"wallet": {"external_customer_id": "cus", "currency": "USD", "rate_amount": "1",
                                    "paid_credits": "3", "granted_credits": "2", "expiration_at": "2027-01-01T00:00:00Z",
                                    "recurring_transaction_rules": [{"trigger": "threshold", "threshold_credits": "1",
                                                                     "paid_credits": "5"}]}}),
    ("PUT", "organizations", {"organization": {"net_payment_term": 5, "timezone": "UTC", "email": "a@b.co",
                                               "billing_configuration": {"invoice_grace_period": 2}}}),
    ("POST", "applied_coupons", {"applied_coupon": {"external_customer_id": "cus", "coupon_code": "c1",
                                                    "amount_cents": 50, "amount_currency": "USD"}}),
]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a body a value can be swapped at (the envelope itself excluded)."""
    found = [prefix] if len(prefix) > 1 else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


SENTINEL = "\x01hostile\x01"


def _swap(body: Any, path: tuple[Any, ...]) -> Any:
    if not path:
        return SENTINEL
    if isinstance(body, dict):
        return {k: (_swap(v, path[1:]) if k == path[0] else v) for k, v in body.items()}
    return [(_swap(v, path[1:]) if i == path[0] else v) for i, v in enumerate(body)]


@st.composite
def mutations(draw: st.DrawFn) -> tuple[str, str, bytes]:
    method, path, body = draw(st.sampled_from(WRITES))
    where = draw(st.sampled_from(_paths(body)))
    hostile = draw(st.sampled_from(HOSTILE_VALUES))
    text = msgspec.json.encode(_swap(body, where)).decode()
    return method, path, text.replace(msgspec.json.encode(SENTINEL).decode(), hostile).encode()


def _named(tenant: Tenant, text: str) -> str:
    """Fill in the ids of the tenant's objects."""
    return (text.replace("{invoice}", tenant.invoice_id).replace("{wallet}", tenant.wallet_id)
            .replace("{metric}", tenant.metric_id).replace("{fee}", tenant.fee_id))


@pytest.fixture(scope="module")
def world(shared_database_url: str) -> Iterator[tuple[Store, Tenant]]:
    store = open_store(shared_database_url, role="test", pool_size=4, read_wait_seconds=10)
    api = falcon.testing.TestClient(create_app(store.billing, store.metering, store.readers, max_body_bytes=1 << 20))
    tenant = Tenant(api, store.billing.create_organization(f"Mutations {uuid4().hex[:8]}"))
    tenant.call("POST", "coupons", {"coupon": {"name": "C1", "code": "c1", "coupon_type": "fixed_amount",
                                               "amount_cents": 100, "amount_currency": "USD", "frequency": "once",
                                               "expiration": "no_expiration"}})
    tenant.metric_id = tenant.call("GET", "billable_metrics/value")["billable_metric"]["lago_id"]
    tenant.fee_id = tenant.call("GET", f"invoices/{tenant.invoice_id}")["invoice"]["fees"][0]["lago_id"]
    yield store, tenant
    store.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(mutation=mutations())
def test_a_hostile_value_anywhere_in_a_valid_body_breaks_nothing(world: tuple[Store, Tenant],
                                                                 mutation: tuple[str, str, bytes]) -> None:
    """No 5xx; a 4xx stores nothing and answers in Lago's format; every view reaches the head of the log."""
    store, tenant = world
    method, path, raw = mutation
    path, raw = _named(tenant, path), _named(tenant, raw.decode()).encode()
    before = _heads(store)

    response = tenant.api.simulate_request(method, f"/api/v1/{path}", body=raw,
                                           headers={**bearer(tenant.key), "Content-Type": "application/json"})

    assert response.status_code < 500, (path, raw[:300], response.text)
    if response.status_code >= 400:
        assert response.json["status"] == response.status_code and "code" in response.json, response.text
        assert _heads(store) == before, ("a refused request stored events", path, raw[:300], response.text)
    _assert_every_view_at_the_head(store)
    tenant.call("GET", "customers/cus/current_usage?external_subscription_id=sub")
    tenant.call("GET", f"wallets/{tenant.wallet_id}")
