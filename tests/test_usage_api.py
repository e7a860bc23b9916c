"""Current usage through the API for every worked example of semantics §2–§3.

Each test configures a metric and a plan over HTTP, sends events over HTTP, and reads
GET /customers/{id}/current_usage right after: every acknowledged event already counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import falcon.testing
import pytest

from domain.api_key import IssuedKey
from interfaces.http.app import create_app
from interfaces.store import Store
from tests.conftest import bearer

NOW = datetime.fromisoformat("2026-04-29T12:00:00+00:00")  # late in April 2026 (30 days)
APRIL = 1775001600  # 2026-04-01T00:00:00Z
DAY = 86_400


@pytest.fixture
def api_at(shared_store: Store) -> Iterator[falcon.testing.TestClient]:
    yield falcon.testing.TestClient(
        create_app(shared_store.billing, shared_store.metering, shared_store.readers, clock=lambda: NOW)
    )


class Meter:
    """One organization with one metric, one plan with one charge, one subscription since April 1."""

    def __init__(self, api: falcon.testing.TestClient, key: IssuedKey, metric: dict[str, Any], charge: dict[str, Any],
                 subscription_at: str = "2026-04-01T00:00:00Z") -> None:
        self.api, self.key = api, key
        self.metric = self.call("POST", "billable_metrics", {"billable_metric": {"name": "m", "code": "m", **metric}})["billable_metric"]
        self.call("POST", "plans", {"plan": {
            "name": "p", "code": "p", "interval": "monthly", "amount_cents": 0, "amount_currency": "USD",
            "pay_in_advance": False, "charges": [{"billable_metric_id": self.metric["lago_id"], **charge}]}})
        self.call("POST", "subscriptions", {"subscription": {
            "external_customer_id": "cus", "plan_code": "p", "external_id": "sub",
            "subscription_at": subscription_at}})
        self.sent = 0

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.api.simulate_request(method, f"/api/v1/{path}", headers=bearer(self.key), json=body)
        assert response.status_code == 200, (path, response.text)
        return dict(response.json)

    def send(self, properties: dict[str, Any] | None = None, at: int = APRIL + DAY, **fields: Any) -> None:
        self.sent += 1
        self.call("POST", "events", {"event": {
            "transaction_id": f"t{self.sent}", "external_subscription_id": "sub", "code": "m",
            "timestamp": at, "properties": properties or {}, **fields}})

    def usage(self) -> dict[str, Any]:
        body = self.call("GET", "customers/cus/current_usage?external_subscription_id=sub")
        return dict(body["customer_usage"])

    def charge(self) -> dict[str, Any]:
        [charge] = self.usage()["charges_usage"]
        return dict(charge)


def standard(amount: str = "1") -> dict[str, Any]:
    return {"charge_model": "standard", "properties": {"amount": amount}}


def test_a1_count_five_calls_at_two_cents(api_at: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """5 events of a count metric at $0.02 each: 5 units, 10 cents."""
    meter = Meter(api_at, tenant, {"aggregation_type": "count_agg"}, standard("0.02"))

    for _ in range(5):
        meter.send()

    charge = meter.charge()
    assert (charge["units"], charge["events_count"], charge["amount_cents"]) == ("5.0", 5, 10)
    usage = meter.usage()
    assert (usage["from_datetime"], usage["to_datetime"], usage["currency"]) == ("2026-04-01T00:00:00Z", "2026-04-30T23:59:59Z", "USD")
    assert usage["amount_cents"] == usage["total_amount_cents"] == 10


def test_a2_sum_skips_non_numbers_and_counts_negatives(api_at: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """10, 2.5, "abc", -3 → 9.5."""
    meter = Meter(api_at, tenant, {"aggregation_type": "sum_agg", "field_name": "v"}, standard())

    for value in (10, 2.5, "abc", -3):
        meter.send({"v": value})

    assert meter.charge()["units"] == "9.5"


def test_a3_max(api_at: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """3, 9, 4 → 9."""
    meter = Meter(api_at, tenant, {"aggregation_type": "max_agg", "field_name": "v"}, standard())

    for value in (3, 9, 4):
        meter.send({"v": value})

    assert meter.charge()["units"] == "9.0"


def test_a4_latest_takes_the_most_recent_event_not_the_last_sent(api_at: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """The latest by timestamp wins; a negative latest value counts as 0."""
    meter = Meter(api_at, tenant, {"aggregation_type": "latest_agg", "field_name": "v"}, standard())

    meter.send({"v": 7}, at=APRIL + 5 * DAY)
    meter.send({"v": 4}, at=APRIL + 2 * DAY)

    assert meter.charge()["units"] == "7.0"
    meter.send({"v": -2}, at=APRIL + 6 * DAY)
    assert meter.charge()["units"] == "0.0"


def test_a5_unique_count_with_add_and_remove(api_at: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """add u1, add u1, add u2, remove u1, remove u3 → 1."""
    meter = Meter(api_at, tenant, {"aggregation_type": "unique_count_agg", "field_name": "user"}, standard())

    for day, (user, operation) in enumerate([("u1", "add"), ("u1", "add"), ("u2", "add"), ("u1", "remove"), ("u3", "remove")]):
        meter.send({"user": user, "operation_type": operation}, at=APRIL + (day + 1) * DAY)

    assert meter.charge()["units"] == "1.0"


def test_a6_weighted_sum_over_a_thirty_day_period(api_at: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """+10 at day 10, −5 at day 20 of 30 → (0·10 + 10·10 + 5·10)/30 = 5."""
    meter = Meter(api_at, tenant, {"aggregation_type": "weighted_sum_agg", "field_name": "gb", "weighted_interval": "seconds"}, standard())

    meter.send({"gb": 10}, at=APRIL + 10 * DAY)
    meter.send({"gb": -5}, at=APRIL + 20 * DAY)

    assert meter.charge()["units"] == "5.00000000000000000000"


@pytest.mark.parametrize(
    ("metric", "expected"),
    [({"aggregation_type": "sum_agg", "field_name": "v", "recurring": True}, "5.0"),
     ({"aggregation_type": "sum_agg", "field_name": "v"}, "2.0"),
     ({"aggregation_type": "weighted_sum_agg", "field_name": "v", "weighted_interval": "seconds", "recurring": True},
      "5.00000000000000000000")],
    ids=["recurring-sum", "plain-sum", "recurring-weighted"],
)
def test_a7_recurring_usage_carries_into_the_next_period(
    api_at: falcon.testing.TestClient, tenant: IssuedKey, metric: dict[str, Any], expected: str
) -> None:
    """3 in March and 2 on April 1: a recurring sum shows 5 in April, a plain one 2; a level carries over."""
    meter = Meter(api_at, tenant, metric, standard(), subscription_at="2026-03-01T00:00:00Z")

    meter.send({"v": 3}, at=APRIL - 20 * DAY)
    meter.send({"v": 2}, at=APRIL)

    assert meter.charge()["units"] == expected


def test_events_from_before_a_subscription_count_only_for_recurring_metrics(api_at: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """Lago's recurring metrics have no lower bound; plain ones start with the subscription."""
    meter = Meter(api_at, tenant, {"aggregation_type": "sum_agg", "field_name": "v", "recurring": True}, standard())

    meter.send({"v": 4}, at=APRIL - 10 * DAY)

    assert meter.charge()["units"] == "4.0"


@pytest.mark.parametrize(("function", "precision", "units"), [("ceil", 1, "10.3"), ("round", 0, "10"), ("floor", 2, "10.23")])
def test_a9_rounding_of_aggregated_units(api_at: falcon.testing.TestClient, tenant: IssuedKey, function: str, precision: int, units: str) -> None:
    """Sum 10.234 rounded after aggregation."""
    meter = Meter(api_at, tenant, {"aggregation_type": "sum_agg", "field_name": "v", "rounding_function": function,
                                   "rounding_precision": precision}, standard())

    meter.send({"v": "10.234"})

    assert Decimal(meter.charge()["units"]) == Decimal(units)


def test_a10_filters_price_the_most_specific_slice(api_at: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """F2 (us, pro) 3 units $0.06; F1 (us) 2 units $0.02; default 4 units $0.02."""
    meter = Meter(api_at, tenant, {"aggregation_type": "count_agg", "filters": [
        {"key": "region", "values": ["us", "eu"]}, {"key": "tier", "values": ["free", "pro"]}]}, {
        "charge_model": "standard", "properties": {"amount": "0.005"}, "filters": [
            {"invoice_display_name": "F1", "properties": {"amount": "0.01"}, "values": {"region": ["us"]}},
            {"invoice_display_name": "F2", "properties": {"amount": "0.02"}, "values": {"region": ["us"], "tier": ["pro"]}}]})

    for region, tier, count in (("us", "pro", 3), ("us", "free", 2), ("eu", "free", 4)):
        for _ in range(count):
            meter.send({"region": region, "tier": tier})

    charge = meter.charge()
    shown = {f["invoice_display_name"]: (f["units"], f["amount_cents"]) for f in charge["filters"]}
    assert shown == {"F1": ("2.0", 2), "F2": ("3.0", 6), None: ("4.0", 2)}
    assert charge["amount_cents"] == 10 and charge["events_count"] == 9


def test_a11_pricing_groups_are_priced_separately(api_at: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """Package pricing per region: each group rounds up its own packages."""
    meter = Meter(api_at, tenant, {"aggregation_type": "count_agg"},
                  {"charge_model": "package", "properties": {"amount": "1", "package_size": 10, "pricing_group_keys": ["region"]}})

    for region, count in (("us", 11), ("eu", 3)):
        for _ in range(count):
            meter.send({"region": region})

    groups = {g["grouped_by"]["region"]: (g["units"], g["amount_cents"]) for g in meter.charge()["grouped_usage"]}
    assert groups == {"us": ("11.0", 200), "eu": ("3.0", 100)}


def test_c1_standard(api_at: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """1,234 units × $0.005 = $6.17."""
    meter = Meter(api_at, tenant, {"aggregation_type": "sum_agg", "field_name": "v"}, standard("0.005"))

    meter.send({"v": 1234})

    assert meter.charge()["amount_cents"] == 617


@pytest.mark.parametrize(("units", "cents"), [(350, 1500), (101, 500), (80, 0)])
def test_c2_package(api_at: falcon.testing.TestClient, tenant: IssuedKey, units: int, cents: int) -> None:
    """$5 per 100 after 100 free units."""
    meter = Meter(api_at, tenant, {"aggregation_type": "sum_agg", "field_name": "v"},
                  {"charge_model": "package", "properties": {"amount": "5", "package_size": 100, "free_units": 100}})

    meter.send({"v": units})

    assert meter.charge()["amount_cents"] == cents


def test_c3_graduated_and_its_first_flat_fee_at_zero_usage(api_at: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """250 units over three inclusive ranges → $25.50; before any usage the first range's flat fee shows."""
    ranges = [
        {"from_value": 0, "to_value": 100, "per_unit_amount": "0.10", "flat_amount": "2"},
        {"from_value": 101, "to_value": 200, "per_unit_amount": "0.08", "flat_amount": "5"},
        {"from_value": 201, "to_value": None, "per_unit_amount": "0.05", "flat_amount": "0"},
    ]
    meter = Meter(api_at, tenant, {"aggregation_type": "sum_agg", "field_name": "v"},
                  {"charge_model": "graduated", "properties": {"graduated_ranges": ranges}})

    assert meter.charge()["amount_cents"] == 200
    meter.send({"v": 250})

    assert meter.charge()["amount_cents"] == 2550 + 200


def test_c4_graduated_percentage(api_at: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """1% up to 1,000 then 0.5% plus $0.10: 1,500 → $12.60."""
    meter = Meter(api_at, tenant, {"aggregation_type": "sum_agg", "field_name": "v"}, {
        "charge_model": "graduated_percentage", "properties": {"graduated_percentage_ranges": [
            {"from_value": 0, "to_value": 1000, "rate": "1", "flat_amount": "0"},
            {"from_value": 1001, "to_value": None, "rate": "0.5", "flat_amount": "0.10"}]}})

    meter.send({"v": 1500})

    assert meter.charge()["amount_cents"] == 1260


@pytest.mark.parametrize(("units", "cents"), [("150", 13000), ("100", 10000), ("100.5", 9040)])
def test_c5_volume(api_at: falcon.testing.TestClient, tenant: IssuedKey, units: str, cents: int) -> None:
    """All units at the tier reached."""
    meter = Meter(api_at, tenant, {"aggregation_type": "sum_agg", "field_name": "v"}, {
        "charge_model": "volume", "properties": {"volume_ranges": [
            {"from_value": 0, "to_value": 100, "per_unit_amount": "1.00", "flat_amount": "0"},
            {"from_value": 101, "to_value": None, "per_unit_amount": "0.80", "flat_amount": "10"}]}})

    meter.send({"v": units})

    assert meter.charge()["amount_cents"] == cents


@pytest.mark.parametrize(
    ("extra", "cents"),
    [({"free_units_per_events": 2}, 480), ({"free_units_per_total_aggregation": "120"}, 570),
     ({"per_transaction_min_amount": "1", "per_transaction_max_amount": "3"}, 760)],
    ids=["free-events", "free-total", "min-max"],
)
def test_c6_percentage(api_at: falcon.testing.TestClient, tenant: IssuedKey, extra: dict[str, Any], cents: int) -> None:
    """2% + $0.30 per event on 100, 50, 200, 10, sent out of order."""
    meter = Meter(api_at, tenant, {"aggregation_type": "sum_agg", "field_name": "v"},
                  {"charge_model": "percentage", "properties": {"rate": "2", "fixed_amount": "0.30", **extra}})

    for day, value in ((3, 200), (1, 100), (4, 10), (2, 50)):
        meter.send({"v": value}, at=APRIL + day * DAY)

    assert meter.charge()["amount_cents"] == cents


def test_c7_dynamic_prices_come_with_the_events(api_at: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """precise_total_amount_cents 1234.5 + 100 → $13.345 → 1335 cents."""
    meter = Meter(api_at, tenant, {"aggregation_type": "sum_agg", "field_name": "v"}, {"charge_model": "dynamic", "properties": {}})

    meter.send({"v": 1}, precise_total_amount_cents="1234.5")
    meter.send({"v": 1}, precise_total_amount_cents="100")

    assert meter.charge()["amount_cents"] == 1335


def test_c11_prorated_seats_added_late_in_the_month(api_at: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """10 seats from April 21 at $30 a seat: 10 × 10/30 = 3.33334 units → $100.00."""
    meter = Meter(api_at, tenant, {"aggregation_type": "sum_agg", "field_name": "seats", "recurring": True},
                  {"charge_model": "standard", "prorated": True, "properties": {"amount": "30"}})

    meter.send({"seats": 10}, at=APRIL + 20 * DAY)

    assert meter.charge()["amount_cents"] == 10000


def test_taxes_follow_charge_then_plan_then_customer_then_organization(api_at: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """M2's selection on current usage: the most specific tax codes win; ``apply_taxes=false`` leaves them out."""
    meter = Meter(api_at, tenant, {"aggregation_type": "count_agg"}, standard("1"))
    for code, rate, default in (("org", "10", True), ("cus", "20", False), ("chg", "5", False)):
        meter.call("POST", "taxes", {"tax": {"name": code, "code": code, "rate": rate, "applied_to_organization": default}})
    for _ in range(10):
        meter.send()

    def taxes(query: str = "") -> tuple[int, int, int]:
        body = meter.call("GET", f"customers/cus/current_usage?external_subscription_id=sub{query}")["customer_usage"]
        return body["amount_cents"], body["taxes_amount_cents"], body["total_amount_cents"]

    assert taxes() == (1000, 100, 1100)
    meter.call("POST", "customers", {"customer": {"external_id": "cus", "tax_codes": ["cus"]}})
    assert taxes() == (1000, 200, 1200)
    plan = meter.call("GET", "plans/p")["plan"]
    meter.call("PUT", "plans/p", {"plan": {"charges": [
        {"id": plan["charges"][0]["lago_id"], "billable_metric_id": meter.metric["lago_id"], **standard("1"), "tax_codes": ["chg"]}]}})
    assert taxes() == (1000, 50, 1050)
    assert taxes("&apply_taxes=false") == (1000, 0, 1000)


def test_current_usage_finds_a_renamed_customer_by_either_external_id(api_at: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    meter = Meter(api_at, tenant, {"aggregation_type": "count_agg"}, standard("1"))
    meter.send()
    meter.call("PUT", "customers/cus", {"customer": {"external_id": "cus-renamed"}})

    for name in ("cus", "cus-renamed"):
        body = meter.call("GET", f"customers/{name}/current_usage?external_subscription_id=sub")["customer_usage"]
        assert body["amount_cents"] == 100
