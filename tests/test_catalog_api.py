"""Taxes, add-ons and coupons over the API: round trips, Lago's rules, references checked."""

from __future__ import annotations

from typing import Any

import falcon.testing
import pytest

from domain.api_key import IssuedKey
from tests.conftest import bearer


def post(api: falcon.testing.TestClient, key: IssuedKey, path: str, root: str, **fields: Any) -> falcon.testing.Result:
    return api.simulate_post(f"/api/v1/{path}", headers=bearer(key), json={root: fields})


def test_a_tax_round_trips_with_its_rate_as_an_exact_number(api: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """Rates arrive as strings or numbers and leave as JSON numbers with their digits."""
    created = post(api, tenant, "taxes", "tax", name="VAT", code="vat_fr", rate="20.5", description="French VAT")
    from_number = post(api, tenant, "taxes", "tax", name="GST", code="gst", rate=7.25)

    assert created.status_code == 200, created.text
    assert created.json["tax"]["rate"] == 20.5 and b'"rate":20.5' in created.content
    assert from_number.json["tax"]["rate"] == 7.25
    assert api.simulate_get("/api/v1/taxes/vat_fr", headers=bearer(tenant)).json == created.json


def test_default_taxes_show_on_the_organization(api: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """applied_to_organization taxes are the organization's defaults."""
    post(api, tenant, "taxes", "tax", name="VAT", code="vat", rate="20", applied_to_organization=True)
    post(api, tenant, "taxes", "tax", name="Other", code="other", rate="5")

    organization = api.simulate_get("/api/v1/organizations", headers=bearer(tenant)).json["organization"]

    assert [t["code"] for t in organization["taxes"]] == ["vat"]


@pytest.mark.parametrize(
    ("fields", "details"),
    [
        ({"name": "T", "code": "t"}, {"rate": ["value_is_mandatory"]}),
        ({"name": "T", "code": "t", "rate": "120"}, {"rate": ["value_is_out_of_range"]}),
        ({"name": "T", "code": "t", "rate": "abc"}, {"rate": ["value_is_invalid"]}),
        ({"code": "t", "rate": "1"}, {"name": ["value_is_mandatory"]}),
    ],
)
def test_invalid_taxes_are_422(api: falcon.testing.TestClient, tenant: IssuedKey, fields: dict[str, Any], details: dict[str, list[str]]) -> None:
    """Each rule names its field."""
    response = post(api, tenant, "taxes", "tax", **fields)

    assert response.status_code == 422 and response.json["error_details"] == details


def test_an_add_on_round_trips_with_its_taxes(api: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """Tax codes come back as full tax objects; an unknown tax code is a 404 as in Lago."""
    post(api, tenant, "taxes", "tax", name="VAT", code="vat", rate="20")

    created = post(api, tenant, "add_ons", "add_on", name="Setup", code="setup", amount_cents=50_000,
                   amount_currency="EUR", invoice_display_name="Setup fee", tax_codes=["vat"])
    unknown_tax = post(api, tenant, "add_ons", "add_on", name="X", code="x", amount_cents=1, amount_currency="EUR",
                       tax_codes=["nope"])
    updated = api.simulate_put("/api/v1/add_ons/setup", headers=bearer(tenant), json={"add_on": {"amount_cents": 60_000}})

    assert created.status_code == 200, created.text
    add_on = created.json["add_on"]
    assert (add_on["amount_cents"], add_on["amount_currency"], add_on["invoice_display_name"]) == (50_000, "EUR", "Setup fee")
    assert [t["code"] for t in add_on["taxes"]] == ["vat"]
    assert unknown_tax.status_code == 404 and unknown_tax.json["code"] == "tax_not_found"
    assert updated.json["add_on"]["amount_cents"] == 60_000 and updated.json["add_on"]["taxes"] == add_on["taxes"]


def test_invalid_add_ons_are_422(api: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """Amounts are non-negative integers in a known currency."""
    negative = post(api, tenant, "add_ons", "add_on", name="A", code="a", amount_cents=-1, amount_currency="EUR")
    currency = post(api, tenant, "add_ons", "add_on", name="A", code="a", amount_cents=1, amount_currency="EURO")
    fraction = post(api, tenant, "add_ons", "add_on", name="A", code="a", amount_cents=1.5, amount_currency="EUR")

    assert negative.json["error_details"] == {"amount_cents": ["value_is_out_of_range"]}
    assert currency.json["error_details"] == {"amount_currency": ["value_is_invalid"]}
    assert fraction.status_code == 422 and fraction.json["error_details"] == {"amount_cents": ["value_is_invalid"]}


def test_coupons_of_both_types_round_trip(api: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """Fixed-amount and percentage coupons, with frequency, expiry and limits."""
    post(api, tenant, "billable_metrics", "billable_metric", name="Calls", code="calls", aggregation_type="count_agg")
    fixed = post(api, tenant, "coupons", "coupon", name="Welcome", code="welcome", coupon_type="fixed_amount",
                 amount_cents=1000, amount_currency="USD", frequency="recurring", frequency_duration=3,
                 expiration="time_limit", expiration_at="2099-12-31T23:59:59Z", reusable=False)
    percent = post(api, tenant, "coupons", "coupon", name="Calls off", code="calls_off", coupon_type="percentage",
                   percentage_rate="12.5", frequency="forever", applies_to={"billable_metric_codes": ["calls"]})

    assert fixed.status_code == 200, fixed.text
    coupon = fixed.json["coupon"]
    assert (coupon["coupon_type"], coupon["amount_cents"], coupon["frequency_duration"]) == ("fixed_amount", 1000, 3)
    assert coupon["expiration_at"] == "2099-12-31T23:59:59Z" and coupon["reusable"] is False
    assert coupon["percentage_rate"] is None and coupon["limited_plans"] is False
    assert percent.status_code == 200, percent.text
    limited = percent.json["coupon"]
    assert limited["percentage_rate"] == 12.5 and limited["amount_cents"] is None
    assert (limited["limited_billable_metrics"], limited["billable_metric_codes"]) == (True, ["calls"])


@pytest.mark.parametrize(
    ("fields", "details"),
    [
        ({"coupon_type": "fixed_amount", "amount_currency": "USD"}, {"amount_cents": ["value_is_mandatory"]}),
        ({"coupon_type": "percentage", "percentage_rate": "150"}, {"percentage_rate": ["value_is_out_of_range"]}),
        ({"coupon_type": "percentage", "percentage_rate": "5", "frequency": "recurring"},
         {"frequency_duration": ["value_is_mandatory"]}),
        ({"coupon_type": "percentage", "percentage_rate": "5", "expiration": "time_limit"},
         {"expiration_at": ["value_is_mandatory"]}),
        ({"coupon_type": "percentage", "percentage_rate": "5", "expiration": "time_limit",
          "expiration_at": "2001-01-01T00:00:00Z"}, {"expiration_at": ["invalid_date"]}),
        ({"coupon_type": "voucher"}, {"coupon_type": ["value_is_invalid"]}),
    ],
)
def test_invalid_coupons_are_422(api: falcon.testing.TestClient, tenant: IssuedKey, fields: dict[str, Any], details: dict[str, list[str]]) -> None:
    """Lago's coupon rules, each naming its field."""
    response = post(api, tenant, "coupons", "coupon", name="C", code="c", **fields)

    assert response.status_code == 422 and response.json["error_details"] == details


def test_a_coupon_limited_to_an_unknown_plan_is_404(api: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """Limits must name plans that exist in the organization."""
    response = post(api, tenant, "coupons", "coupon", name="C", code="c", coupon_type="percentage",
                    percentage_rate="5", applies_to={"plan_codes": ["ghost"]})

    assert response.status_code == 404 and response.json["code"] == "plan_not_found"


def test_a_deleted_coupon_shows_when_it_ended(api: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """DELETE answers with terminated_at set and frees the code."""
    post(api, tenant, "coupons", "coupon", name="C", code="c", coupon_type="percentage", percentage_rate="5")

    deleted = api.simulate_delete("/api/v1/coupons/c", headers=bearer(tenant))

    assert deleted.status_code == 200 and deleted.json["coupon"]["terminated_at"] is not None
    assert api.simulate_get("/api/v1/coupons/c", headers=bearer(tenant)).json["code"] == "coupon_not_found"
