"""Billable metrics over the API: Lago's fields, rules and error codes, scoped per organization."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import falcon.testing
import pytest

from domain.api_key import IssuedKey
from interfaces.store import Store
from tests.conftest import bearer

METRICS = "/api/v1/billable_metrics"


def create(api: falcon.testing.TestClient, key: IssuedKey, **fields: Any) -> falcon.testing.Result:
    return api.simulate_post(METRICS, headers=bearer(key), json={"billable_metric": fields})


@pytest.mark.parametrize(
    ("aggregation", "extra"),
    [
        ("count_agg", {}),
        ("sum_agg", {"field_name": "bytes", "recurring": True}),
        ("max_agg", {"field_name": "cpus"}),
        ("unique_count_agg", {"field_name": "user_id", "recurring": True}),
        ("weighted_sum_agg", {"field_name": "gb", "weighted_interval": "seconds"}),
        ("latest_agg", {"field_name": "level"}),
    ],
)
def test_every_aggregation_type_round_trips(api: falcon.testing.TestClient, tenant: IssuedKey, aggregation: str, extra: dict[str, Any]) -> None:
    """What is created is what GET returns, in Lago's shape."""
    created = create(api, tenant, name="Usage", code=f"m_{aggregation}", aggregation_type=aggregation,
                     rounding_function="ceil", rounding_precision=2,
                     filters=[{"key": "region", "values": ["us", "eu"]}], **extra)

    fetched = api.simulate_get(f"{METRICS}/m_{aggregation}", headers=bearer(tenant))

    assert created.status_code == 200, created.text
    assert fetched.json == created.json
    metric = fetched.json["billable_metric"]
    assert metric["aggregation_type"] == aggregation
    assert metric["field_name"] == extra.get("field_name")
    assert metric["recurring"] is extra.get("recurring", False)
    assert metric["weighted_interval"] == extra.get("weighted_interval")
    assert metric["filters"] == [{"key": "region", "values": ["eu", "us"]}]
    assert (metric["rounding_function"], metric["rounding_precision"]) == ("ceil", 2)
    assert metric["plans_count"] == 0 and metric["lago_id"]


@pytest.mark.parametrize(
    ("fields", "details"),
    [
        ({"name": "S", "code": "s", "aggregation_type": "sum_agg"}, {"field_name": ["value_is_mandatory"]}),
        ({"name": "M", "code": "m", "aggregation_type": "max_agg", "field_name": "x", "recurring": True},
         {"recurring": ["not_compatible_with_aggregation_type"]}),
        ({"name": "W", "code": "w", "aggregation_type": "weighted_sum_agg", "field_name": "x"},
         {"weighted_interval": ["value_is_invalid"]}),
        ({"name": "X", "code": "x", "aggregation_type": "median_agg"}, {"aggregation_type": ["value_is_invalid"]}),
        ({"name": "C", "code": "c", "aggregation_type": "custom_agg"}, {"aggregation_type": ["value_is_invalid"]}),
        ({"code": "n", "aggregation_type": "count_agg"}, {"name": ["value_is_mandatory"]}),
        ({"name": "E", "code": "e", "aggregation_type": "sum_agg", "field_name": "v", "expression": "round(event.properties.v"},
         {"expression": ["invalid_expression"]}),
        ({"name": "T", "code": "t", "aggregation_type": "count_agg", "rounding_precision": "two"},
         {"rounding_precision": ["value_is_invalid"]}),
    ],
    ids=["sum-needs-field", "max-not-recurring", "weighted-interval", "unknown-type", "custom", "name", "expression", "type"],
)
def test_invalid_metrics_are_422_naming_the_field(api: falcon.testing.TestClient, tenant: IssuedKey, fields: dict[str, Any], details: dict[str, list[str]]) -> None:
    """Lago's validation codes, never a 500, and nothing stored."""
    response = create(api, tenant, **fields)

    assert response.status_code == 422
    assert response.json["error_details"] == details
    assert api.simulate_get(METRICS, headers=bearer(tenant)).json["billable_metrics"] == []


def test_a_count_metric_never_keeps_a_field_name(api: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """Lago forces field_name to null for count_agg."""
    response = create(api, tenant, name="Calls", code="calls", aggregation_type="count_agg", field_name="ignored")

    assert response.json["billable_metric"]["field_name"] is None


def test_codes_are_unique_per_organization_only(api: falcon.testing.TestClient, shared_store: Store, tenant: IssuedKey) -> None:
    """A second metric with a code is refused; another organization may use it."""
    other = shared_store.billing.create_organization("Metric neighbour")
    create(api, tenant, name="Calls", code="calls", aggregation_type="count_agg")

    duplicate = create(api, tenant, name="Again", code="calls", aggregation_type="count_agg")
    elsewhere = create(api, other, name="Theirs", code="calls", aggregation_type="count_agg")

    assert duplicate.status_code == 422 and duplicate.json["error_details"] == {"code": ["value_already_exist"]}
    assert elsewhere.status_code == 200
    assert api.simulate_get(f"{METRICS}/calls", headers=bearer(other)).json["billable_metric"]["name"] == "Theirs"
    assert api.simulate_get(f"{METRICS}/calls", headers=bearer(tenant)).json["billable_metric"]["name"] == "Calls"


def test_update_changes_the_fields_sent_and_can_change_the_code(api: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """PUT by code is partial; a new code frees the old one, as in Lago."""
    created = create(api, tenant, name="Storage", code="gb", aggregation_type="sum_agg", field_name="gb")

    updated = api.simulate_put(f"{METRICS}/gb", headers=bearer(tenant),
                               json={"billable_metric": {"code": "storage_gb", "description": "GB stored"}})

    metric = updated.json["billable_metric"]
    assert (metric["code"], metric["name"], metric["description"]) == ("storage_gb", "Storage", "GB stored")
    assert metric["lago_id"] == created.json["billable_metric"]["lago_id"]
    assert api.simulate_get(f"{METRICS}/gb", headers=bearer(tenant)).status_code == 404
    assert create(api, tenant, name="Old code reused", code="gb", aggregation_type="count_agg").status_code == 200


def test_delete_answers_with_the_deleted_metric_and_frees_its_code(api: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """DELETE returns the object; the code can then be used for a new metric with a new lago_id."""
    first = create(api, tenant, name="Seats", code="seats", aggregation_type="unique_count_agg", field_name="seat")

    deleted = api.simulate_delete(f"{METRICS}/seats", headers=bearer(tenant))
    gone = api.simulate_get(f"{METRICS}/seats", headers=bearer(tenant))
    second = create(api, tenant, name="Seats", code="seats", aggregation_type="count_agg")

    assert deleted.status_code == 200 and deleted.json == first.json
    assert gone.status_code == 404
    assert gone.json == {"status": 404, "error": "Not Found", "code": "billable_metric_not_found"}
    assert second.json["billable_metric"]["lago_id"] != first.json["billable_metric"]["lago_id"]


def test_the_list_is_newest_first_and_paginated(api: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """Three metrics, two per page."""
    for n in range(3):
        create(api, tenant, name=f"M{n}", code=f"m{n}", aggregation_type="count_agg")

    first = api.simulate_get(METRICS, headers=bearer(tenant), params={"per_page": 2})
    second = api.simulate_get(METRICS, headers=bearer(tenant), params={"per_page": 2, "page": 2})

    assert [m["code"] for m in first.json["billable_metrics"]] == ["m2", "m1"]
    assert first.json["meta"] == {"current_page": 1, "next_page": 2, "prev_page": None, "total_pages": 2, "total_count": 3}
    assert [m["code"] for m in second.json["billable_metrics"]] == ["m0"]


def test_expressions_evaluate_against_a_sample_event(api: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """POST /billable_metrics/evaluate_expression computes what ingestion would store."""
    response = api.simulate_post(f"{METRICS}/evaluate_expression", headers=bearer(tenant), json={
        "expression": "round((event.properties.ended_at - event.properties.started_at) * event.properties.replicas / 3600, 2)",
        "event": {"code": "compute", "timestamp": 1735689600, "properties": {"started_at": 0, "ended_at": 5400, "replicas": "3"}},
    })
    broken = api.simulate_post(f"{METRICS}/evaluate_expression", headers=bearer(tenant),
                               json={"expression": "ceil(", "event": {"code": "x", "properties": {}}})
    empty = api.simulate_post(f"{METRICS}/evaluate_expression", headers=bearer(tenant))

    assert response.status_code == 200
    assert response.json == {"expression_result": {"value": 4.5}}
    assert broken.status_code == 422 and broken.json["error_details"] == {"expression": ["invalid_expression"]}
    assert empty.status_code == 422 and empty.json["error_details"] == {"expression": ["value_is_mandatory"]}


def test_every_metric_change_is_an_event(api: falcon.testing.TestClient, shared_store: Store, tenant: IssuedKey) -> None:
    """Create, update and delete are three events on the metric's aggregate."""
    created = create(api, tenant, name="Calls", code="calls", aggregation_type="count_agg")
    api.simulate_put(f"{METRICS}/calls", headers=bearer(tenant), json={"billable_metric": {"name": "API calls"}})
    api.simulate_delete(f"{METRICS}/calls", headers=bearer(tenant))

    events = shared_store.billing.repository.event_store.get(UUID(created.json["billable_metric"]["lago_id"]))

    assert [type(e).__name__ for e in events] == ["Defined", "Redefined", "Deleted"]
