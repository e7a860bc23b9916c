"""Subscriptions over the API: periods in local time, plan changes, pending starts, endings."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import falcon.testing
import pytest

from domain.api_key import IssuedKey
from interfaces.http.app import create_app
from interfaces.store import Store
from scheduler.advance_subscriptions import AdvanceSubscriptions
from tests.conftest import bearer

SUBSCRIPTIONS = "/api/v1/subscriptions"


class Clock:
    """The time the API and the scheduler believe it is."""

    def __init__(self, now: str) -> None:
        self.now = datetime.fromisoformat(now)

    def __call__(self) -> datetime:
        return self.now

    def set(self, now: str) -> None:
        self.now = datetime.fromisoformat(now)


@pytest.fixture
def clock() -> Clock:
    return Clock("2026-11-24T12:00:00+00:00")


@pytest.fixture
def timed(shared_store: Store, clock: Clock) -> Iterator[falcon.testing.TestClient]:
    yield falcon.testing.TestClient(create_app(shared_store.billing, shared_store.metering, shared_store.readers, clock=clock))


def scheduler_pass(store: Store, clock: Clock) -> int:
    return AdvanceSubscriptions(store.billing, store.readers.subscriptions, clock)()


def plan(api: falcon.testing.TestClient, key: IssuedKey, code: str, amount_cents: int, interval: str = "monthly") -> None:
    response = api.simulate_post("/api/v1/plans", headers=bearer(key), json={"plan": {
        "name": code, "code": code, "interval": interval, "amount_cents": amount_cents,
        "amount_currency": "USD", "pay_in_advance": True}})
    assert response.status_code == 200, response.text


def customer(api: falcon.testing.TestClient, key: IssuedKey, external_id: str, **fields: Any) -> None:
    response = api.simulate_post("/api/v1/customers", headers=bearer(key), json={"customer": {"external_id": external_id, **fields}})
    assert response.status_code == 200, response.text


def subscribe(api: falcon.testing.TestClient, key: IssuedKey, **fields: Any) -> falcon.testing.Result:
    body = {"external_customer_id": "cus", "plan_code": "basic", "external_id": "sub", **fields}
    return api.simulate_post(SUBSCRIPTIONS, headers=bearer(key), json={"subscription": body})


def show(api: falcon.testing.TestClient, key: IssuedKey, external_id: str = "sub", status: str | None = None) -> dict[str, Any]:
    params = {"status": status} if status else None
    response = api.simulate_get(f"{SUBSCRIPTIONS}/{external_id}", headers=bearer(key), params=params)
    assert response.status_code == 200, response.text
    return dict(response.json["subscription"])


@pytest.mark.parametrize(
    ("timezone", "starts", "ends"),
    [
        ("America/Los_Angeles", "2026-11-01T07:00:00Z", "2026-12-01T07:59:59Z"),
        ("Asia/Tokyo", "2026-10-31T15:00:00Z", "2026-11-30T14:59:59Z"),
        ("UTC", "2026-11-01T00:00:00Z", "2026-11-30T23:59:59Z"),
    ],
)
def test_a_back_dated_subscription_reports_periods_at_local_midnight(
    timed: falcon.testing.TestClient, tenant: IssuedKey, timezone: str, starts: str, ends: str
) -> None:
    """Started in September, shown in late November: the current period is November, local time."""
    plan(timed, tenant, "basic", 3000)
    customer(timed, tenant, "cus", timezone=timezone)

    created = subscribe(timed, tenant, subscription_at="2026-09-15T12:00:00Z")

    body = created.json["subscription"]
    assert created.status_code == 200, created.text
    assert (body["status"], body["started_at"]) == ("active", "2026-09-15T12:00:00.000Z")
    assert (body["current_billing_period_started_at"], body["current_billing_period_ending_at"]) == (starts, ends)
    assert body["plan"]["code"] == "basic" and body["external_customer_id"] == "cus"


def test_anniversary_periods_turn_on_the_subscription_day(timed: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """Anniversary billing from the 15th in Tokyo: Nov 15 to Dec 15, local midnight."""
    plan(timed, tenant, "basic", 3000)
    customer(timed, tenant, "cus", timezone="Asia/Tokyo")

    body = subscribe(timed, tenant, billing_time="anniversary", subscription_at="2026-09-15T03:00:00Z").json["subscription"]

    assert body["current_billing_period_started_at"] == "2026-11-14T15:00:00Z"
    assert body["current_billing_period_ending_at"] == "2026-12-14T14:59:59Z"


def test_the_customer_is_created_when_missing(timed: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """A subscription for an unknown external_customer_id creates the customer, as Lago does."""
    plan(timed, tenant, "basic", 3000)

    body = subscribe(timed, tenant, external_customer_id="brand_new").json["subscription"]

    fetched = timed.simulate_get("/api/v1/customers/brand_new", headers=bearer(tenant)).json["customer"]
    assert body["lago_customer_id"] == fetched["lago_id"] and fetched["external_id"] == "brand_new"


def test_an_upgrade_applies_at_once_and_a_downgrade_at_period_end(
    timed: falcon.testing.TestClient, shared_store: Store, clock: Clock, tenant: IssuedKey
) -> None:
    """Semantics P6: A($30) → B($60) on Apr 11 replaces A now; B → A waits for May 1."""
    plan(timed, tenant, "basic", 3000)
    plan(timed, tenant, "premium", 6000)
    customer(timed, tenant, "cus", timezone="UTC")
    clock.set("2026-04-01T00:00:00+00:00")
    original = subscribe(timed, tenant).json["subscription"]

    clock.set("2026-04-11T09:30:00+00:00")
    upgraded = subscribe(timed, tenant, plan_code="premium").json["subscription"]

    old = timed.simulate_get(SUBSCRIPTIONS, headers=bearer(tenant), params={"status": "terminated"}).json["subscriptions"]
    assert (upgraded["status"], upgraded["plan_code"], upgraded["previous_plan_code"]) == ("active", "premium", "basic")
    assert upgraded["lago_id"] != original["lago_id"] and upgraded["started_at"] == "2026-04-11T09:30:00.000Z"
    assert upgraded["subscription_at"] == original["subscription_at"]
    assert [(s["lago_id"], s["terminated_at"]) for s in old] == [(original["lago_id"], "2026-04-11T09:30:00Z")]

    clock.set("2026-04-20T10:00:00+00:00")
    downgrade = subscribe(timed, tenant, plan_code="basic").json["subscription"]
    pending = show(timed, tenant, status="pending")

    assert (downgrade["lago_id"], downgrade["status"], downgrade["plan_code"]) == (upgraded["lago_id"], "active", "premium")
    assert (downgrade["next_plan_code"], downgrade["downgrade_plan_date"]) == ("basic", "2026-05-01")
    assert (pending["plan_code"], pending["status"], pending["previous_plan_code"]) == ("basic", "pending", "premium")

    clock.set("2026-04-30T23:59:00+00:00")
    assert scheduler_pass(shared_store, clock) == 0
    clock.set("2026-05-01T00:05:00+00:00")
    assert scheduler_pass(shared_store, clock) == 1
    assert scheduler_pass(shared_store, clock) == 0

    current = show(timed, tenant)
    assert (current["lago_id"], current["plan_code"], current["started_at"]) == (pending["lago_id"], "basic", "2026-05-01T00:00:00.000Z")
    ended = show(timed, tenant, status="terminated")
    assert (ended["lago_id"], ended["terminated_at"]) == (upgraded["lago_id"], "2026-05-01T00:00:00Z")


def test_a_future_subscription_is_pending_until_the_scheduler_starts_it(
    timed: falcon.testing.TestClient, shared_store: Store, clock: Clock, tenant: IssuedKey
) -> None:
    """subscription_at in the future: pending, then active from that instant even if the pass is late."""
    plan(timed, tenant, "basic", 3000)
    created = subscribe(timed, tenant, subscription_at="2026-12-01T00:00:00Z").json["subscription"]
    assert (created["status"], created["started_at"], created["current_billing_period_started_at"]) == ("pending", None, None)
    assert timed.simulate_get(f"{SUBSCRIPTIONS}/sub", headers=bearer(tenant)).status_code == 404

    clock.set("2026-12-03T08:00:00+00:00")
    scheduler_pass(shared_store, clock)

    started = show(timed, tenant)
    assert (started["status"], started["started_at"]) == ("active", "2026-12-01T00:00:00.000Z")


def test_ending_at_terminates_at_that_instant(timed: falcon.testing.TestClient, shared_store: Store, clock: Clock, tenant: IssuedKey) -> None:
    """A scheduled end is applied by the scheduler, time-stamped when it was due."""
    plan(timed, tenant, "basic", 3000)
    subscribe(timed, tenant, ending_at="2026-11-30T00:00:00Z")

    clock.set("2026-12-02T00:00:00+00:00")
    scheduler_pass(shared_store, clock)

    assert show(timed, tenant, status="terminated")["terminated_at"] == "2026-11-30T00:00:00Z"


def test_delete_terminates_an_active_and_cancels_a_pending_subscription(timed: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """DELETE ends the active one now; with status=pending it cancels the one not yet started."""
    plan(timed, tenant, "basic", 3000)
    subscribe(timed, tenant)
    subscribe(timed, tenant, external_id="later", subscription_at="2027-01-01T00:00:00Z")

    terminated = timed.simulate_delete(f"{SUBSCRIPTIONS}/sub", headers=bearer(tenant),
                                       params={"on_termination_credit_note": "refund"})
    canceled = timed.simulate_delete(f"{SUBSCRIPTIONS}/later", headers=bearer(tenant), params={"status": "pending"})
    again = timed.simulate_delete(f"{SUBSCRIPTIONS}/sub", headers=bearer(tenant))

    assert (terminated.json["subscription"]["status"], terminated.json["subscription"]["terminated_at"]) == ("terminated", "2026-11-24T12:00:00Z")
    assert terminated.json["subscription"]["on_termination_credit_note"] == "refund"
    assert canceled.json["subscription"]["status"] == "canceled"
    assert again.status_code == 404 and again.json["code"] == "subscription_not_found"


def test_an_external_id_is_one_customers_while_live(timed: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """Another customer cannot take a live external id; after termination it may be reused."""
    plan(timed, tenant, "basic", 3000)
    first = subscribe(timed, tenant).json["subscription"]

    clash = subscribe(timed, tenant, external_customer_id="someone_else")
    timed.simulate_delete(f"{SUBSCRIPTIONS}/sub", headers=bearer(tenant))
    reused = subscribe(timed, tenant, external_customer_id="someone_else")

    assert clash.status_code == 422 and clash.json["error_details"] == {"external_id": ["value_already_exist"]}
    assert reused.status_code == 200 and reused.json["subscription"]["lago_id"] != first["lago_id"]


def test_the_list_shows_active_subscriptions_unless_asked(timed: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """Lago's default status filter is active; status[] widens it; filters by customer and plan."""
    plan(timed, tenant, "basic", 3000)
    plan(timed, tenant, "gold", 9000)
    subscribe(timed, tenant, external_id="one")
    subscribe(timed, tenant, external_id="two", plan_code="gold", external_customer_id="other")
    subscribe(timed, tenant, external_id="three", subscription_at="2027-01-01T00:00:00Z")

    def ids(**params: Any) -> list[str]:
        found = timed.simulate_get(SUBSCRIPTIONS, headers=bearer(tenant), params=params).json["subscriptions"]
        return sorted(s["external_id"] for s in found)

    assert ids() == ["one", "two"]
    assert ids(**{"status[]": ["active", "pending"]}) == ["one", "three", "two"]
    assert ids(plan_code="gold") == ["two"]
    assert ids(external_customer_id="cus") == ["one"]
    by_customer = timed.simulate_get("/api/v1/customers/other/subscriptions", headers=bearer(tenant)).json
    assert [s["external_id"] for s in by_customer["subscriptions"]] == ["two"]


def test_update_changes_terms_and_can_rename_the_external_id(timed: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """Name and ending_at change in place; beyond Lago a new external_id keeps the old as alias."""
    plan(timed, tenant, "basic", 3000)
    subscribe(timed, tenant, name="Main")

    updated = timed.simulate_put(f"{SUBSCRIPTIONS}/sub", headers=bearer(tenant), json={"subscription": {
        "name": "Main account", "ending_at": "2027-06-30T00:00:00Z", "external_id": "sub_renamed"}})
    bad = timed.simulate_put(f"{SUBSCRIPTIONS}/sub", headers=bearer(tenant), json={"subscription": {"ending_at": "2001-01-01T00:00:00Z"}})

    body = updated.json["subscription"]
    assert updated.status_code == 200, updated.text
    assert (body["name"], body["ending_at"], body["external_id"]) == ("Main account", "2027-06-30T00:00:00Z", "sub_renamed")
    assert body["external_ids"] == ["sub", "sub_renamed"]
    assert show(timed, tenant, "sub")["lago_id"] == show(timed, tenant, "sub_renamed")["lago_id"] == body["lago_id"]
    assert bad.status_code == 422 and bad.json["error_details"] == {"ending_at": ["invalid_date"]}


def test_deleting_a_customer_ends_its_subscriptions(timed: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """Lago terminates a deleted customer's subscriptions; here in the same transaction."""
    plan(timed, tenant, "basic", 3000)
    subscribe(timed, tenant)

    timed.simulate_delete("/api/v1/customers/cus", headers=bearer(tenant))

    assert show(timed, tenant, status="terminated")["terminated_at"] == "2026-11-24T12:00:00Z"


def test_deleting_a_plan_ends_its_subscriptions_at_the_next_pass(
    timed: falcon.testing.TestClient, shared_store: Store, clock: Clock, tenant: IssuedKey
) -> None:
    """Plan deletion is asynchronous, as in Lago: the scheduler ends what was on the plan."""
    plan(timed, tenant, "basic", 3000)
    subscribe(timed, tenant)

    deleted = timed.simulate_delete("/api/v1/plans/basic", headers=bearer(tenant))
    scheduler_pass(shared_store, clock)

    assert deleted.json["plan"]["pending_deletion"] is True
    assert show(timed, tenant, status="terminated")["plan_code"] == "basic"


def test_missing_fields_and_unknown_plans_are_refused(timed: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """external_customer_id, plan_code and external_id are mandatory; an unknown plan is 404."""
    missing = timed.simulate_post(SUBSCRIPTIONS, headers=bearer(tenant), json={"subscription": {"external_id": "x"}})
    unknown = subscribe(timed, tenant, plan_code="ghost")
    overrides = subscribe(timed, tenant, plan_overrides={"amount_cents": 1})

    assert missing.json["error_details"] == {"external_customer_id": ["value_is_mandatory"], "plan_code": ["value_is_mandatory"]}
    assert unknown.status_code == 404 and unknown.json["code"] == "plan_not_found"
    assert overrides.status_code == 422 and overrides.json["error_details"] == {"plan_overrides": ["not_supported"]}


def test_deleting_a_metric_removes_its_charges_at_the_next_pass(
    timed: falcon.testing.TestClient, shared_store: Store, clock: Clock, tenant: IssuedKey
) -> None:
    """Lago deletes a metric's charges with it; here the scheduler's next pass does."""
    for code in ("kept", "dropped"):
        timed.simulate_post("/api/v1/billable_metrics", headers=bearer(tenant), json={"billable_metric": {
            "name": code, "code": code, "aggregation_type": "count_agg"}})
    metrics = {m["code"]: m["lago_id"] for m in timed.simulate_get("/api/v1/billable_metrics", headers=bearer(tenant)).json["billable_metrics"]}
    timed.simulate_post("/api/v1/plans", headers=bearer(tenant), json={"plan": {
        "name": "P", "code": "p", "interval": "monthly", "amount_cents": 0, "amount_currency": "USD", "pay_in_advance": False,
        "charges": [{"billable_metric_id": metrics[c], "charge_model": "standard", "properties": {"amount": "1"}} for c in ("kept", "dropped")]}})

    timed.simulate_delete("/api/v1/billable_metrics/dropped", headers=bearer(tenant))
    scheduler_pass(shared_store, clock)

    charges = timed.simulate_get("/api/v1/plans/p", headers=bearer(tenant)).json["plan"]["charges"]
    assert [c["billable_metric_code"] for c in charges] == ["kept"]
