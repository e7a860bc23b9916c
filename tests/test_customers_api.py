"""Customers over the API: upsert by external id, filters, renames with aliases, deletion."""

from __future__ import annotations

from typing import Any

import falcon.testing
import pytest

from domain.api_key import IssuedKey
from tests.conftest import bearer

CUSTOMERS = "/api/v1/customers"


def upsert(api: falcon.testing.TestClient, key: IssuedKey, **fields: Any) -> falcon.testing.Result:
    return api.simulate_post(CUSTOMERS, headers=bearer(key), json={"customer": fields})


def test_post_creates_then_updates_the_same_customer(api: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """POST /customers is an upsert keyed by external_id; unsent fields are kept."""
    created = upsert(api, tenant, external_id="cus_1", name="Ada", email="ada@example.com", currency="EUR",
                     timezone="Europe/Paris", country="fr", address_line1="1 rue", net_payment_term=30,
                     shipping_address={"city": "Lyon", "country": "FR"},
                     billing_configuration={"invoice_grace_period": 3, "document_locale": "fr"},
                     metadata=[{"key": "segment", "value": "smb", "display_in_invoice": True}])
    updated = upsert(api, tenant, external_id="cus_1", name="Ada Lovelace")

    assert created.status_code == 200, created.text
    first, second = created.json["customer"], updated.json["customer"]
    assert second["lago_id"] == first["lago_id"]
    assert (second["name"], second["email"], second["currency"]) == ("Ada Lovelace", "ada@example.com", "EUR")
    assert (second["country"], second["timezone"], second["applicable_timezone"]) == ("FR", "Europe/Paris", "Europe/Paris")
    assert second["shipping_address"]["city"] == "Lyon" and second["net_payment_term"] == 30
    assert second["billing_configuration"]["invoice_grace_period"] == 3
    assert [(m["key"], m["value"], m["display_in_invoice"]) for m in second["metadata"]] == [("segment", "smb", True)]
    assert api.simulate_get(f"{CUSTOMERS}/cus_1", headers=bearer(tenant)).json == updated.json


def test_the_applicable_timezone_falls_back_to_the_organization(api: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """Without its own timezone a customer follows the organization's."""
    api.simulate_put("/api/v1/organizations", headers=bearer(tenant), json={"organization": {"timezone": "Asia/Tokyo"}})

    customer = upsert(api, tenant, external_id="cus_tz").json["customer"]

    assert (customer["timezone"], customer["applicable_timezone"]) == (None, "Asia/Tokyo")


@pytest.mark.parametrize(
    ("fields", "details"),
    [
        ({"name": "No id"}, {"external_id": ["value_is_mandatory"]}),
        ({"external_id": "c", "timezone": "Mars/Base"}, {"timezone": ["invalid_timezone"]}),
        ({"external_id": "c", "currency": "XYZ"}, {"currency": ["value_is_invalid"]}),
        ({"external_id": "c", "email": "nope"}, {"email": ["invalid_email_format"]}),
        ({"external_id": "c", "country": "ZZ"}, {"country": ["country_code_invalid"]}),
        ({"external_id": "c", "customer_type": "robot"}, {"customer_type": ["value_is_invalid"]}),
        ({"external_id": "c", "metadata": [{"key": f"k{n}"} for n in range(6)]}, {"metadata": ["invalid_count"]}),
    ],
)
def test_invalid_customers_are_422(api: falcon.testing.TestClient, tenant: IssuedKey, fields: dict[str, Any], details: dict[str, list[str]]) -> None:
    """Each rule names its field; nothing is stored."""
    response = upsert(api, tenant, **fields)

    assert response.status_code == 422 and response.json["error_details"] == details
    assert api.simulate_get(CUSTOMERS, headers=bearer(tenant)).json["customers"] == []


def test_the_list_filters_as_lago_does(api: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """Currencies, countries, search term, customer type and metadata narrow the list."""
    upsert(api, tenant, external_id="a", name="Alpha", currency="EUR", country="FR", customer_type="company",
           metadata=[{"key": "tier", "value": "gold"}])
    upsert(api, tenant, external_id="b", name="Beta", currency="USD", country="US", tax_identification_number="T1")
    upsert(api, tenant, external_id="c", name="Gamma", currency="EUR", country="DE")

    def codes(query: str) -> list[str]:
        return sorted(c["external_id"] for c in api.simulate_get(CUSTOMERS, headers=bearer(tenant), query_string=query).json["customers"])

    assert codes("currencies[]=EUR") == ["a", "c"]
    assert codes("countries[]=US&countries[]=DE") == ["b", "c"]
    assert codes("search_term=amm") == ["c"]
    assert codes("customer_type=company") == ["a"]
    assert codes("has_tax_identification_number=true") == ["b"]
    assert codes("metadata[tier]=gold") == ["a"]
    assert codes("") == ["a", "b", "c"]


def test_a_renamed_customer_keeps_answering_to_its_old_external_id(api: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """Beyond Lago: PUT /customers/{id} with a new external_id; the old one is an alias."""
    created = upsert(api, tenant, external_id="old_id", name="Renamed").json["customer"]

    renamed = api.simulate_put(f"{CUSTOMERS}/old_id", headers=bearer(tenant), json={"customer": {"external_id": "new_id"}})
    by_old = api.simulate_get(f"{CUSTOMERS}/old_id", headers=bearer(tenant))
    by_new = api.simulate_get(f"{CUSTOMERS}/new_id", headers=bearer(tenant))
    taken = upsert(api, tenant, external_id="other")
    clash = api.simulate_put(f"{CUSTOMERS}/other", headers=bearer(tenant), json={"customer": {"external_id": "new_id"}})

    assert renamed.status_code == 200, renamed.text
    assert renamed.json["customer"]["external_id"] == "new_id"
    assert renamed.json["customer"]["external_ids"] == ["old_id", "new_id"]
    assert by_old.json["customer"]["lago_id"] == by_new.json["customer"]["lago_id"] == created["lago_id"]
    assert taken.status_code == 200
    assert clash.status_code == 422 and clash.json["error_details"] == {"external_id": ["value_already_exist"]}


def test_delete_answers_with_the_customer_and_frees_its_external_id(api: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    """A deleted customer is gone; a new one may take its external id."""
    first = upsert(api, tenant, external_id="gone").json["customer"]

    deleted = api.simulate_delete(f"{CUSTOMERS}/gone", headers=bearer(tenant))
    missing = api.simulate_get(f"{CUSTOMERS}/gone", headers=bearer(tenant))
    again = upsert(api, tenant, external_id="gone").json["customer"]

    assert deleted.status_code == 200 and deleted.json["customer"]["lago_id"] == first["lago_id"]
    assert missing.status_code == 404 and missing.json["code"] == "customer_not_found"
    assert again["lago_id"] != first["lago_id"]
