"""Plans with charges over the API: every charge model, Lago's property rules, sub-resources."""

from __future__ import annotations

from typing import Any

import falcon.testing
import pytest

from domain.api_key import IssuedKey
from tests.conftest import bearer

PLANS = "/api/v1/plans"

MODELS: dict[str, dict[str, Any]] = {
    "standard": {"amount": "0.005", "pricing_group_keys": ["region"]},
    "package": {"amount": "5", "package_size": 100, "free_units": 100},
    "graduated": {"graduated_ranges": [
        {"from_value": 0, "to_value": 100, "per_unit_amount": "0.10", "flat_amount": "0"},
        {"from_value": 101, "to_value": 200, "per_unit_amount": "0.08", "flat_amount": "5"},
        {"from_value": 201, "to_value": None, "per_unit_amount": "0.05", "flat_amount": "0"},
    ]},
    "graduated_percentage": {"graduated_percentage_ranges": [
        {"from_value": 0, "to_value": 1000, "rate": "1", "flat_amount": "0"},
        {"from_value": 1000, "to_value": None, "rate": "0.5", "flat_amount": "0.10"},
    ]},
    "percentage": {"rate": "2", "fixed_amount": "0.30", "free_units_per_events": 2,
                   "free_units_per_total_aggregation": "120", "per_transaction_min_amount": "1",
                   "per_transaction_max_amount": "3"},
    "volume": {"volume_ranges": [
        {"from_value": 0, "to_value": 100, "per_unit_amount": "1.00", "flat_amount": "0"},
        {"from_value": 101, "to_value": None, "per_unit_amount": "0.80", "flat_amount": "10"},
    ]},
    "dynamic": {},
}


def metric(api: falcon.testing.TestClient, key: IssuedKey, code: str = "bytes", **fields: Any) -> str:
    body = {"name": code, "code": code, "aggregation_type": "sum_agg", "field_name": "value", **fields}
    response = api.simulate_post("/api/v1/billable_metrics", headers=bearer(key), json={"billable_metric": body})
    assert response.status_code == 200, response.text
    return str(response.json["billable_metric"]["lago_id"])


def plan(api: falcon.testing.TestClient, key: IssuedKey, charges: list[dict[str, Any]], **fields: Any) -> falcon.testing.Result:
    body = {"name": "Pro", "code": "pro", "interval": "monthly", "amount_cents": 3000, "amount_currency": "USD",
            "pay_in_advance": True, "charges": charges, **fields}
    return api.simulate_post(PLANS, headers=bearer(key), json={"plan": body})


@pytest.mark.parametrize("model", sorted(MODELS))
def test_every_charge_model_round_trips(api: falcon.testing.TestClient, tenant: IssuedKey, model: str) -> None:
    """Properties come back exactly as sent: decimal strings stay strings, counts stay integers."""
    metric_id = metric(api, tenant, filters=[{"key": "region", "values": ["us", "eu"]}])

    created = plan(api, tenant, [{"billable_metric_id": metric_id, "charge_model": model, "properties": MODELS[model]}])
    fetched = api.simulate_get(f"{PLANS}/pro", headers=bearer(tenant))

    assert created.status_code == 200, created.text
    assert fetched.json == created.json
    [charge] = fetched.json["plan"]["charges"]
    assert (charge["charge_model"], charge["billable_metric_code"], charge["code"]) == (model, "bytes", "bytes")
    shown = {k: v for k, v in charge["properties"].items() if v is not None and k != "grouped_by"}
    assert shown == MODELS[model]


@pytest.mark.parametrize(
    ("model", "properties", "code", "path"),
    [
        ("standard", {"amount": 0.5}, "invalid_amount", "charges.0.properties.amount"),
        ("standard", {}, "invalid_amount", "charges.0.properties.amount"),
        ("standard", {"amount": "-1"}, "invalid_amount", "charges.0.properties.amount"),
        ("package", {"amount": "5", "package_size": 0}, "invalid_package_size", "charges.0.properties.package_size"),
        ("package", {"amount": "5", "package_size": 10, "free_units": -1}, "invalid_free_units", "charges.0.properties.free_units"),
        ("graduated", {}, "missing_graduated_ranges", "charges.0.properties.graduated_ranges"),
        ("graduated", {"graduated_ranges": [
            {"from_value": 0, "to_value": 10, "per_unit_amount": "1", "flat_amount": "0"},
            {"from_value": 20, "to_value": None, "per_unit_amount": "1", "flat_amount": "0"}]},
         "invalid_graduated_ranges", "charges.0.properties.graduated_ranges"),
        ("graduated", {"graduated_ranges": [
            {"from_value": 0, "to_value": 10, "per_unit_amount": "1", "flat_amount": "0"}]},
         "invalid_graduated_ranges", "charges.0.properties.graduated_ranges"),
        ("graduated", {"graduated_ranges": [
            {"from_value": 0, "to_value": None, "per_unit_amount": "x", "flat_amount": "0"}]},
         "invalid_amount", "charges.0.properties.graduated_ranges.0.per_unit_amount"),
        ("volume", {"volume_ranges": [{"from_value": 1, "to_value": None, "per_unit_amount": "1", "flat_amount": "0"}]},
         "invalid_volume_ranges", "charges.0.properties.volume_ranges"),
        ("graduated_percentage", {"graduated_percentage_ranges": [
            {"from_value": 0, "to_value": None, "rate": 1, "flat_amount": "0"}]},
         "invalid_rate", "charges.0.properties.graduated_percentage_ranges.0.rate"),
        ("percentage", {"fixed_amount": "1"}, "invalid_rate", "charges.0.properties.rate"),
        ("percentage", {"rate": "1", "per_transaction_min_amount": "5", "per_transaction_max_amount": "2"},
         "invalid_per_transaction_max_amount", "charges.0.properties.per_transaction_max_amount"),
        ("percentage", {"rate": "1", "free_units_per_events": "2"}, "invalid_free_units_per_events",
         "charges.0.properties.free_units_per_events"),
    ],
)
def test_invalid_properties_are_422_naming_the_field(
    api: falcon.testing.TestClient, tenant: IssuedKey, model: str, properties: dict[str, Any], code: str, path: str
) -> None:
    """Lago's code under `properties`, and the exact path of the bad value; nothing stored."""
    metric_id = metric(api, tenant)

    response = plan(api, tenant, [{"billable_metric_id": metric_id, "charge_model": model, "properties": properties}])

    assert response.status_code == 422, response.text
    assert response.json["code"] == "validation_errors"
    assert code in response.json["error_details"]["properties"]
    assert response.json["error_details"][path] == [code]
    assert api.simulate_get(f"{PLANS}/pro", headers=bearer(tenant)).status_code == 404


@pytest.mark.parametrize(
    ("aggregation", "charge", "field", "code"),
    [
        ("max_agg", {"charge_model": "standard", "pay_in_advance": True}, "pay_in_advance", "invalid_aggregation_type_or_charge_model"),
        ("sum_agg", {"charge_model": "volume", "pay_in_advance": True}, "pay_in_advance", "invalid_aggregation_type_or_charge_model"),
        ("count_agg", {"charge_model": "dynamic"}, "charge_model", "invalid_aggregation_type_or_charge_model"),
        ("sum_agg", {"charge_model": "standard", "invoiceable": False}, "invoiceable", "only_compatible_with_pay_in_advance"),
        ("sum_agg", {"charge_model": "standard", "prorated": True}, "prorated", "invalid_billable_metric_or_charge_model"),
        ("sum_agg", {"charge_model": "standard", "pay_in_advance": True, "min_amount_cents": 100},
         "min_amount_cents", "not_compatible_with_pay_in_advance"),
    ],
)
def test_charge_options_must_suit_the_metric(
    api: falcon.testing.TestClient, tenant: IssuedKey, aggregation: str, charge: dict[str, Any], field: str, code: str
) -> None:
    """Semantics C9: which models and options each aggregation allows."""
    fields = {} if aggregation == "count_agg" else {"field_name": "value"}
    metric_id = metric(api, tenant, code="m", aggregation_type=aggregation, **fields)
    properties = MODELS[charge["charge_model"]]

    response = plan(api, tenant, [{"billable_metric_id": metric_id, "properties": properties, **charge}])

    assert response.status_code == 422
    assert response.json["error_details"][f"charges.0.{field}"] == [code]


def test_plan_level_rules(api: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """Required fields, intervals, and monthly charges only on long plans."""
    missing = api.simulate_post(PLANS, headers=bearer(tenant), json={"plan": {"name": "P", "code": "p"}})
    monthly = plan(api, tenant, [], interval="monthly", bill_charges_monthly=True)
    interval = plan(api, tenant, [], interval="daily")

    assert missing.json["error_details"] == {
        "interval": ["value_is_mandatory"], "amount_cents": ["value_is_mandatory"],
        "amount_currency": ["value_is_mandatory"], "pay_in_advance": ["value_is_mandatory"],
    }
    assert monthly.json["error_details"] == {"bill_charges_monthly": ["only_compatible_with_yearly_or_semiannual_interval"]}
    assert interval.json["error_details"] == {"interval": ["value_is_invalid"]}


def test_unknown_or_foreign_metrics_are_404(api: falcon.testing.TestClient, shared_store: Any, tenant: IssuedKey) -> None:
    """A charge may only use a live metric of the caller's own organization."""
    other = shared_store.billing.create_organization("Plan neighbour")
    foreign = metric(api, other, code="theirs")

    unknown = plan(api, tenant, [{"billable_metric_id": "00000000-0000-4000-8000-000000000000", "charge_model": "dynamic"}])
    not_ours = plan(api, tenant, [{"billable_metric_id": foreign, "charge_model": "dynamic"}])
    garbage = plan(api, tenant, [{"billable_metric_id": "nope", "charge_model": "dynamic"}])

    for response in (unknown, not_ours, garbage):
        assert response.status_code == 404 and response.json["code"] == "billable_metric_not_found"


def test_filters_price_slices_of_a_metric(api: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """Charge filters use the metric's keys and values; others are refused."""
    metric_id = metric(api, tenant, filters=[{"key": "region", "values": ["us", "eu"]}, {"key": "tier", "values": ["free", "pro"]}])
    filters = [
        {"invoice_display_name": "US", "properties": {"amount": "0.01"}, "values": {"region": ["us"]}},
        {"invoice_display_name": "US pro", "properties": {"amount": "0.02"}, "values": {"region": ["us"], "tier": ["pro"]}},
    ]

    created = plan(api, tenant, [{"billable_metric_id": metric_id, "charge_model": "standard",
                                  "properties": {"amount": "0.005"}, "filters": filters}])
    bad = plan(api, tenant, [{"billable_metric_id": metric_id, "charge_model": "standard", "properties": {"amount": "1"},
                              "filters": [{"properties": {"amount": "1"}, "values": {"region": ["mars"]}}]}], code="bad")

    assert created.status_code == 200, created.text
    shown = created.json["plan"]["charges"][0]["filters"]
    assert [(f["invoice_display_name"], f["values"], f["properties"]) for f in shown] == [
        ("US", {"region": ["us"]}, {"amount": "0.01"}),
        ("US pro", {"region": ["us"], "tier": ["pro"]}, {"amount": "0.02"}),
    ]
    assert bad.status_code == 422 and bad.json["error_details"]["charges.0.filters.0.values.region"] == ["value_is_invalid"]


def test_a_plan_update_replaces_the_charge_set_and_keeps_charge_ids(api: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """Charges sent with their id are updated in place; charges left out are removed."""
    first, second = metric(api, tenant, code="a"), metric(api, tenant, code="b")
    created = plan(api, tenant, [
        {"billable_metric_id": first, "charge_model": "standard", "properties": {"amount": "1"}},
        {"billable_metric_id": second, "charge_model": "standard", "properties": {"amount": "2"}},
    ]).json["plan"]
    kept = created["charges"][0]

    updated = api.simulate_put(f"{PLANS}/pro", headers=bearer(tenant), json={"plan": {
        "amount_cents": 4000,
        "charges": [{"id": kept["lago_id"], "billable_metric_id": first, "charge_model": "standard", "properties": {"amount": "1.5"}}],
    }}).json["plan"]

    assert updated["amount_cents"] == 4000 and updated["name"] == "Pro"
    assert [(c["lago_id"], c["properties"]["amount"]) for c in updated["charges"]] == [(kept["lago_id"], "1.5")]
    assert updated["charges"][0]["created_at"] == kept["created_at"]


def test_charges_are_sub_resources_of_their_plan(api: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """Add, show, update and remove one charge; list the plan's charges."""
    first, second = metric(api, tenant, code="a"), metric(api, tenant, code="b")
    plan(api, tenant, [{"billable_metric_id": first, "charge_model": "standard", "properties": {"amount": "1"}}])

    added = api.simulate_post(f"{PLANS}/pro/charges", headers=bearer(tenant), json={"charge": {
        "billable_metric_id": second, "code": "b_calls", "charge_model": "package",
        "properties": {"amount": "10", "package_size": 1000}}})
    changed = api.simulate_put(f"{PLANS}/pro/charges/b_calls", headers=bearer(tenant),
                               json={"charge": {"invoice_display_name": "Calls (per 1k)"}})
    listed = api.simulate_get(f"{PLANS}/pro/charges", headers=bearer(tenant))
    removed = api.simulate_delete(f"{PLANS}/pro/charges/a", headers=bearer(tenant))
    remaining = api.simulate_get(f"{PLANS}/pro", headers=bearer(tenant)).json["plan"]["charges"]

    assert added.status_code == 200, added.text
    assert added.json["charge"]["properties"] == {"amount": "10", "package_size": 1000, "free_units": 0}
    assert changed.json["charge"]["invoice_display_name"] == "Calls (per 1k)"
    assert changed.json["charge"]["properties"] == added.json["charge"]["properties"]
    assert [c["code"] for c in listed.json["charges"]] == ["a", "b_calls"] and listed.json["meta"]["total_count"] == 2
    assert removed.json["charge"]["code"] == "a"
    assert [c["code"] for c in remaining] == ["b_calls"]
    assert api.simulate_get(f"{PLANS}/pro/charges/a", headers=bearer(tenant)).json["code"] == "charge_not_found"


def test_charge_filters_are_sub_resources_of_their_charge(api: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """Add, show, update and remove one filter of one charge."""
    metric_id = metric(api, tenant, filters=[{"key": "region", "values": ["us", "eu"]}])
    plan(api, tenant, [{"billable_metric_id": metric_id, "charge_model": "standard", "properties": {"amount": "1"}}])
    base = f"{PLANS}/pro/charges/bytes/filters"

    added = api.simulate_post(base, headers=bearer(tenant), json={"filter": {
        "invoice_display_name": "EU", "properties": {"amount": "2"}, "values": {"region": ["eu"]}}})
    filter_id = added.json["filter"]["lago_id"]
    changed = api.simulate_put(f"{base}/{filter_id}", headers=bearer(tenant), json={"filter": {"properties": {"amount": "3"}}})
    listed = api.simulate_get(base, headers=bearer(tenant))
    removed = api.simulate_delete(f"{base}/{filter_id}", headers=bearer(tenant))

    assert added.status_code == 200, added.text
    assert changed.json["filter"] == {**added.json["filter"], "properties": {"amount": "3"}}
    assert [f["lago_id"] for f in listed.json["filters"]] == [filter_id]
    assert removed.json["filter"]["lago_id"] == filter_id
    assert api.simulate_get(base, headers=bearer(tenant)).json["filters"] == []
    assert api.simulate_get(f"{base}/{filter_id}", headers=bearer(tenant)).json["code"] == "charge_filter_not_found"


def test_plans_carry_taxes_thresholds_and_commitments(api: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """Plan-level extras round trip; unknown tax codes are 404."""
    api.simulate_post("/api/v1/taxes", headers=bearer(tenant), json={"tax": {"name": "VAT", "code": "vat", "rate": "20"}})

    created = plan(api, tenant, [], tax_codes=["vat"], trial_period=14.5,
                   usage_thresholds=[{"amount_cents": 10_000, "threshold_display_name": "10 USD"}],
                   minimum_commitment={"amount_cents": 5_000, "invoice_display_name": "Minimum", "tax_codes": ["vat"]})
    unknown = plan(api, tenant, [], code="other", tax_codes=["nope"])

    body = created.json["plan"]
    assert created.status_code == 200, created.text
    assert [t["code"] for t in body["taxes"]] == ["vat"] and body["trial_period"] == 14.5
    assert [(t["amount_cents"], t["threshold_display_name"]) for t in body["usage_thresholds"]] == [(10_000, "10 USD")]
    assert body["minimum_commitment"]["amount_cents"] == 5_000 and body["minimum_commitment"]["plan_code"] == "pro"
    assert unknown.status_code == 404 and unknown.json["code"] == "tax_not_found"


def test_a_plan_edit_is_a_new_event_and_history_keeps_the_old_terms(api: falcon.testing.TestClient, shared_store: Any, tenant: IssuedKey) -> None:
    """The log holds both definitions; nothing is rewritten."""
    created = plan(api, tenant, []).json["plan"]

    api.simulate_put(f"{PLANS}/pro", headers=bearer(tenant), json={"plan": {"amount_cents": 9900}})

    from uuid import UUID
    events = shared_store.billing.repository.event_store.get(UUID(created["lago_id"]))
    assert [(type(e).__name__, e.definition.amount_cents) for e in events] == [("Defined", 3000), ("Redefined", 9900)]
