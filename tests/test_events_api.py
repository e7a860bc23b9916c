"""Ingesting usage events: durability, Lago's idempotency, batches, late binding, explanations."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import falcon.testing
import pytest

from domain.api_key import IssuedKey
from interfaces.http.app import create_app
from interfaces.store import Store
from tests.conftest import bearer

NOW = datetime.fromisoformat("2026-04-29T12:00:00+00:00")
APRIL = 1775001600


@pytest.fixture
def api_at(shared_store: Store) -> Iterator[falcon.testing.TestClient]:
    yield falcon.testing.TestClient(create_app(shared_store.billing, shared_store.metering, shared_store.readers, clock=lambda: NOW))


def send(api: falcon.testing.TestClient, key: IssuedKey, **event: Any) -> falcon.testing.Result:
    body = {"transaction_id": "tx", "external_subscription_id": "sub", "code": "calls", **event}
    return api.simulate_post("/api/v1/events", headers=bearer(key), json={"event": body})


def call(api: falcon.testing.TestClient, key: IssuedKey, method: str, path: str, body: Any = None) -> dict[str, Any]:
    response = api.simulate_request(method, f"/api/v1/{path}", headers=bearer(key), json=body)
    assert response.status_code == 200, response.text
    return dict(response.json)


def plan_with_calls(api: falcon.testing.TestClient, key: IssuedKey) -> None:
    metric = call(api, key, "POST", "billable_metrics", {"billable_metric": {"name": "Calls", "code": "calls", "aggregation_type": "count_agg"}})
    call(api, key, "POST", "plans", {"plan": {"name": "p", "code": "p", "interval": "monthly", "amount_cents": 0,
                                             "amount_currency": "USD", "pay_in_advance": False, "charges": [{
                                                 "billable_metric_id": metric["billable_metric"]["lago_id"],
                                                 "charge_model": "standard", "properties": {"amount": "1"}}]}})


def units(api: falcon.testing.TestClient, key: IssuedKey) -> str:
    usage = call(api, key, "GET", "customers/cus/current_usage?external_subscription_id=sub")["customer_usage"]
    return str(usage["charges_usage"][0]["units"]) if usage["charges_usage"] else "no charge"


def test_an_event_is_answered_in_lagos_shape(api_at: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """Timestamps with milliseconds, numbers kept exactly, subscription ids null as on Lago's Postgres store."""
    raw = (b'{"event": {"transaction_id": "tx", "external_subscription_id": "sub", "code": "calls", '
           b'"timestamp": "1775001600.123456", "properties": {"gb": 1.50, "big": 12345678901234567890.5}, '
           b'"precise_total_amount_cents": "12.345"}}')
    response = api_at.simulate_post("/api/v1/events", headers=bearer(tenant), body=raw)

    event = response.json["event"]
    assert response.status_code == 200, response.text
    assert event["timestamp"] == "2026-04-01T00:00:00.123Z"
    assert b"12345678901234567890.5" in response.content and b"1.50" in response.content
    assert event["precise_total_amount_cents"] == "12.345"
    assert (event["lago_subscription_id"], event["lago_customer_id"]) == (None, None)


@pytest.mark.parametrize("timestamp", [APRIL, str(APRIL), APRIL + 0.5, None])
def test_timestamps_are_epoch_seconds_or_absent(api_at: falcon.testing.TestClient, tenant: IssuedKey, timestamp: Any) -> None:
    """Integer, numeric string, float, or absent for the receive time (E1)."""
    response = send(api_at, tenant, timestamp=timestamp)

    assert response.status_code == 200, response.text
    expected = "2026-04-29T12:00:00.000Z" if timestamp is None else "2026-04-01T00:00:00"
    assert response.json["event"]["timestamp"].startswith(expected)


@pytest.mark.parametrize(
    ("event", "details"),
    [
        ({"timestamp": "2026-04-01T00:00:00Z"}, {"timestamp": ["invalid_format"]}),
        ({"transaction_id": None}, {"transaction_id": ["value_is_mandatory"]}),
        ({"code": ""}, {"code": ["value_is_mandatory"]}),
        ({"precise_total_amount_cents": "lots"}, {"precise_total_amount_cents": ["value_is_invalid"]}),
        ({"properties": ["not", "an", "object"]}, {"properties": ["value_is_invalid"]}),
    ],
)
def test_invalid_events_are_422(api_at: falcon.testing.TestClient, tenant: IssuedKey, event: dict[str, Any], details: dict[str, list[str]]) -> None:
    """Lago's rules; an ISO timestamp is refused as on Lago."""
    response = send(api_at, tenant, **event)

    assert response.status_code == 422 and response.json["error_details"] == details


def test_a_repeated_transaction_is_refused_and_counted_once(api_at: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """Same subscription and transaction id: 422 value_already_exist; another subscription may reuse the id (E2)."""
    plan_with_calls(api_at, tenant)
    call(api_at, tenant, "POST", "subscriptions", {"subscription": {"external_customer_id": "cus", "plan_code": "p", "external_id": "sub",
                                                                    "subscription_at": "2026-04-01T00:00:00Z"}})

    first = send(api_at, tenant, timestamp=APRIL + 60)
    again = send(api_at, tenant, timestamp=APRIL + 60)
    elsewhere = send(api_at, tenant, external_subscription_id="other_sub")

    assert first.status_code == 200 and elsewhere.status_code == 200
    assert again.status_code == 422 and again.json["error_details"] == {"transaction_id": ["value_already_exist"]}
    assert units(api_at, tenant) == "1.0"


def test_eight_concurrent_senders_of_one_event_store_it_once(api_at: falcon.testing.TestClient, shared_store: Store, tenant: IssuedKey) -> None:
    """Group commit under a race: exactly one 200, seven 422, one event stored and counted."""
    plan_with_calls(api_at, tenant)
    call(api_at, tenant, "POST", "subscriptions", {"subscription": {"external_customer_id": "cus", "plan_code": "p", "external_id": "sub",
                                                                    "subscription_at": "2026-04-01T00:00:00Z"}})
    start = threading.Barrier(8)
    statuses: list[int] = []

    def sender() -> None:
        start.wait()
        statuses.append(send(api_at, tenant, transaction_id="once", timestamp=APRIL + 120).status_code)

    threads = [threading.Thread(target=sender) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [200] + [422] * 7
    listed = call(api_at, tenant, "GET", "events?external_subscription_id=sub")
    assert [e["transaction_id"] for e in listed["events"]] == ["once"]
    assert units(api_at, tenant) == "1.0"


def test_a_batch_is_all_or_nothing_with_errors_by_index(api_at: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """One bad or repeated item refuses the whole batch; nothing of it is stored."""
    good = {"transaction_id": "b1", "external_subscription_id": "sub", "code": "calls"}
    send(api_at, tenant, transaction_id="old")

    refused = api_at.simulate_post("/api/v1/events/batch", headers=bearer(tenant), json={"events": [
        good, {"transaction_id": "b2", "code": "calls", "timestamp": "soon"},
        {"transaction_id": "old", "external_subscription_id": "sub", "code": "calls"}, dict(good)]})
    stored = call(api_at, tenant, "GET", "events")["events"]
    accepted = api_at.simulate_post("/api/v1/events/batch", headers=bearer(tenant), json={"events": [
        good, {**good, "transaction_id": "b2"}]})
    repeated = api_at.simulate_post("/api/v1/events/batch", headers=bearer(tenant), json={"events": [
        {**good, "transaction_id": "b3"}, {**good, "transaction_id": "b2"}]})

    assert refused.status_code == 422
    assert refused.json["error_details"] == {"1": {"timestamp": ["invalid_format"]}, "3": {"transaction_id": ["value_already_exist"]}}
    assert [e["transaction_id"] for e in stored] == ["old"]
    assert accepted.status_code == 200 and [e["transaction_id"] for e in accepted.json["events"]] == ["b1", "b2"]
    assert repeated.status_code == 422 and repeated.json["error_details"] == {"1": {"transaction_id": ["value_already_exist"]}}
    assert {e["transaction_id"] for e in call(api_at, tenant, "GET", "events")["events"]} == {"old", "b1", "b2"}


def test_batch_size_limits(api_at: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """Empty and over-100 batches are refused as Lago does."""
    empty = api_at.simulate_post("/api/v1/events/batch", headers=bearer(tenant), json={"events": []})
    large = api_at.simulate_post("/api/v1/events/batch", headers=bearer(tenant), json={"events": [
        {"transaction_id": f"t{n}", "code": "calls"} for n in range(101)]})

    assert empty.json["error_details"] == {"events": ["no_events"]}
    assert large.json["error_details"] == {"events": ["too_many_events"]}


def test_an_event_for_a_metric_created_afterwards_counts_in_the_open_period(api_at: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """Beyond Lago: events sent before their metric and charge existed are billed once they do."""
    call(api_at, tenant, "POST", "billable_metrics", {"billable_metric": {"name": "Other", "code": "other", "aggregation_type": "count_agg"}})
    other = call(api_at, tenant, "GET", "billable_metrics/other")["billable_metric"]["lago_id"]
    call(api_at, tenant, "POST", "plans", {"plan": {"name": "p", "code": "p", "interval": "monthly", "amount_cents": 0,
                                                   "amount_currency": "USD", "pay_in_advance": False, "charges": [{
                                                       "billable_metric_id": other, "charge_model": "standard",
                                                       "properties": {"amount": "1"}}]}})
    call(api_at, tenant, "POST", "subscriptions", {"subscription": {"external_customer_id": "cus", "plan_code": "p", "external_id": "sub",
                                                                    "subscription_at": "2026-04-01T00:00:00Z"}})
    for n in range(3):
        assert send(api_at, tenant, transaction_id=f"early{n}", timestamp=APRIL + 3600 * (n + 1)).status_code == 200
    before = call(api_at, tenant, "GET", "events/early0")["event"]["billing"]

    metric = call(api_at, tenant, "POST", "billable_metrics", {"billable_metric": {"name": "Calls", "code": "calls", "aggregation_type": "count_agg"}})
    call(api_at, tenant, "POST", "plans/p/charges", {"charge": {"billable_metric_id": metric["billable_metric"]["lago_id"],
                                                                 "charge_model": "standard", "properties": {"amount": "0.5"}}})

    usage = call(api_at, tenant, "GET", "customers/cus/current_usage?external_subscription_id=sub")["customer_usage"]
    after = call(api_at, tenant, "GET", "events/early0")["event"]
    assert {c["billable_metric"]["code"]: (c["units"], c["amount_cents"]) for c in usage["charges_usage"]} == {
        "other": ("0.0", 0), "calls": ("3.0", 150)}
    assert before["status"] == "not_billed" and "no billable metric" in before["reason"]
    assert after["billing"]["status"] == "billed" and after["lago_subscription_id"] is not None
    assert after["billing"]["counts_for"][0]["charge_code"] == "calls"
    assert after["billing"]["counts_for"][0]["from_datetime"] == "2026-04-01T00:00:00+00:00"


def test_an_event_for_an_unknown_subscription_counts_once_it_is_created(api_at: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """Sent first, subscribed later with a start before the event: it counts."""
    plan_with_calls(api_at, tenant)
    send(api_at, tenant, transaction_id="orphan", timestamp=APRIL + 86_400)
    explained = call(api_at, tenant, "GET", "events/orphan")["event"]["billing"]

    call(api_at, tenant, "POST", "subscriptions", {"subscription": {"external_customer_id": "cus", "plan_code": "p", "external_id": "sub",
                                                                    "subscription_at": "2026-04-01T00:00:00Z"}})

    assert explained["status"] == "not_billed" and "no subscription" in explained["reason"]
    assert units(api_at, tenant) == "1.0"


def test_events_outside_the_subscription_say_why(api_at: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """An event before a plain metric's subscription started is not billed, and says so."""
    plan_with_calls(api_at, tenant)
    call(api_at, tenant, "POST", "subscriptions", {"subscription": {"external_customer_id": "cus", "plan_code": "p", "external_id": "sub",
                                                                    "subscription_at": "2026-04-10T00:00:00Z"}})

    send(api_at, tenant, transaction_id="early", timestamp=APRIL)

    billing = call(api_at, tenant, "GET", "events/early")["event"]["billing"]
    assert billing["status"] == "not_billed" and "outside" in billing["reason"]
    assert units(api_at, tenant) == "0.0"


def test_metric_expressions_are_evaluated_at_ingest(api_at: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """The expression's result is stored in the metric's field; an expression error refuses the event (E6)."""
    call(api_at, tenant, "POST", "billable_metrics", {"billable_metric": {
        "name": "Compute", "code": "compute", "aggregation_type": "sum_agg", "field_name": "hours",
        "expression": "round((event.properties.ended - event.properties.started) / 3600, 2)"}})

    stored = send(api_at, tenant, code="compute", properties={"started": 0, "ended": 5400})
    broken = send(api_at, tenant, transaction_id="tx2", code="compute", properties={"started": 0})

    assert stored.json["event"]["properties"]["hours"] == 1.5
    assert broken.status_code == 422 and broken.json["error_details"] == {"expression": ["evaluation_failed"]}


def test_listing_filters_events(api_at: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """By code, subscription and time; newest first."""
    for n, (code, sub) in enumerate([("a", "s1"), ("b", "s1"), ("a", "s2")]):
        send(api_at, tenant, transaction_id=f"t{n}", code=code, external_subscription_id=sub, timestamp=APRIL + n * 86_400)

    def ids(query: str) -> list[str]:
        return [e["transaction_id"] for e in call(api_at, tenant, "GET", f"events?{query}")["events"]]

    assert ids("") == ["t2", "t1", "t0"]
    assert ids("code=a") == ["t2", "t0"]
    assert ids("external_subscription_id=s1") == ["t1", "t0"]
    assert ids("timestamp_from=2026-04-02T00:00:00Z") == ["t2", "t1"]
    assert api_at.simulate_get("/api/v1/events/nope", headers=bearer(tenant)).json["code"] == "event_not_found"


def test_current_usage_errors_follow_lago(api_at: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """Unknown customer 404; no active subscription 405 no_active_subscription."""
    call(api_at, tenant, "POST", "customers", {"customer": {"external_id": "cus"}})

    unknown = api_at.simulate_get("/api/v1/customers/ghost/current_usage", headers=bearer(tenant), params={"external_subscription_id": "sub"})
    inactive = api_at.simulate_get("/api/v1/customers/cus/current_usage", headers=bearer(tenant), params={"external_subscription_id": "sub"})

    assert unknown.status_code == 404 and unknown.json["code"] == "customer_not_found"
    assert inactive.status_code == 405 and inactive.json == {"status": 405, "error": "Method Not Allowed", "code": "no_active_subscription"}


def test_estimate_fees_prices_one_event_on_pay_in_advance_charges(api_at: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """A graduated in-advance charge: the estimate is the price with the event minus without it."""
    metric = call(api_at, tenant, "POST", "billable_metrics", {"billable_metric": {
        "name": "Seats", "code": "seats", "aggregation_type": "sum_agg", "field_name": "n"}})["billable_metric"]["lago_id"]
    call(api_at, tenant, "POST", "plans", {"plan": {"name": "p", "code": "p", "interval": "monthly", "amount_cents": 0,
                                                   "amount_currency": "USD", "pay_in_advance": False, "charges": [{
                                                       "billable_metric_id": metric, "charge_model": "graduated",
                                                       "pay_in_advance": True, "properties": {"graduated_ranges": [
                                                           {"from_value": 0, "to_value": 10, "per_unit_amount": "1", "flat_amount": "0"},
                                                           {"from_value": 10, "to_value": None, "per_unit_amount": "0.5", "flat_amount": "0"}]}}]}})
    call(api_at, tenant, "POST", "subscriptions", {"subscription": {"external_customer_id": "cus", "plan_code": "p", "external_id": "sub",
                                                                    "subscription_at": "2026-04-01T00:00:00Z"}})
    send(api_at, tenant, code="seats", properties={"n": 8}, timestamp=APRIL + 60)

    estimate = api_at.simulate_post("/api/v1/events/estimate_fees", headers=bearer(tenant), json={"event": {
        "code": "seats", "external_subscription_id": "sub", "properties": {"n": 4}}})
    unknown = api_at.simulate_post("/api/v1/events/estimate_fees", headers=bearer(tenant), json={"event": {
        "code": "nope", "external_subscription_id": "sub", "properties": {}}})

    [fee] = estimate.json["fees"]
    assert (fee["amount_cents"], fee["units"], fee["pay_in_advance"]) == (300, "4.0", True)  # 2 × $1 + 2 × $0.50
    assert unknown.status_code == 404 and unknown.json["code"] == "billable_metric_not_found"
