"""GET and PUT /api/v1/organizations: the caller's organization, and only theirs."""

from __future__ import annotations

import falcon.testing

from domain.api_key import IssuedKey
from interfaces.store import Store
from tests.conftest import bearer

ORGANIZATIONS = "/api/v1/organizations"


def test_get_returns_the_organization_in_lagos_shape(client: falcon.testing.TestClient, org: IssuedKey) -> None:
    """The organization envelope carries Lago's fields, with defaults for what was never set."""
    response = client.simulate_get(ORGANIZATIONS, headers=bearer(org))

    assert response.status_code == 200
    body = response.json["organization"]
    assert body["lago_id"] == str(org.organization_id)
    assert body["default_currency"] == "USD" and body["timezone"] == "UTC"
    assert body["document_numbering"] == "per_customer" and body["net_payment_term"] == 0
    assert body["billing_configuration"] == {"invoice_footer": None, "invoice_grace_period": 0, "document_locale": "en"}
    assert body["created_at"].endswith("Z") and len(body["created_at"]) == 20
    assert body["email_settings"] == [] and body["taxes"] == [] and body["webhook_urls"] == []


def test_put_changes_only_the_fields_sent(client: falcon.testing.TestClient, org: IssuedKey) -> None:
    """A PUT is a partial update and answers with the organization as it now is."""
    client.simulate_put(ORGANIZATIONS, headers=bearer(org), json={"organization": {"legal_name": "Acme SAS", "country": "FR"}})

    response = client.simulate_put(
        ORGANIZATIONS,
        headers=bearer(org),
        json={"organization": {
            "timezone": "Europe/Paris",
            "document_number_prefix": "acm",
            "email_settings": ["invoice.finalized"],
            "webhook_url": "https://hooks.example.com/lago",
            "billing_configuration": {"invoice_grace_period": 3, "invoice_footer": "Merci"},
            "unknown_field": "ignored, as Lago ignores it",
        }},
    )

    assert response.status_code == 200
    body = response.json["organization"]
    assert (body["legal_name"], body["country"], body["timezone"]) == ("Acme SAS", "FR", "Europe/Paris")
    assert body["document_number_prefix"] == "ACM"
    assert body["email_settings"] == ["invoice.finalized"]
    assert body["webhook_urls"] == ["https://hooks.example.com/lago"]
    assert body["billing_configuration"] == {"invoice_footer": "Merci", "invoice_grace_period": 3, "document_locale": "en"}
    assert client.simulate_get(ORGANIZATIONS, headers=bearer(org)).json == response.json


def test_a_refused_put_changes_nothing(client: falcon.testing.TestClient, org: IssuedKey) -> None:
    """One invalid field refuses the whole update; stored settings stay as they were."""
    client.simulate_put(ORGANIZATIONS, headers=bearer(org), json={"organization": {"timezone": "Asia/Tokyo"}})

    response = client.simulate_put(
        ORGANIZATIONS, headers=bearer(org), json={"organization": {"timezone": "Europe/Paris", "default_currency": "ABC"}}
    )

    assert response.status_code == 422
    assert response.json["error_details"] == {"default_currency": ["value_is_invalid"]}
    assert client.simulate_get(ORGANIZATIONS, headers=bearer(org)).json["organization"]["timezone"] == "Asia/Tokyo"


def test_an_organization_never_sees_anothers_data(client: falcon.testing.TestClient, store: Store, org: IssuedKey) -> None:
    """Each key reads and writes only its own organization."""
    other = store.billing.create_organization("Other Corp")
    client.simulate_put(ORGANIZATIONS, headers=bearer(org), json={"organization": {"legal_name": "First Ltd"}})

    client.simulate_put(ORGANIZATIONS, headers=bearer(other), json={"organization": {"legal_name": "Second Ltd"}})

    first = client.simulate_get(ORGANIZATIONS, headers=bearer(org)).json["organization"]
    second = client.simulate_get(ORGANIZATIONS, headers=bearer(other)).json["organization"]
    assert (first["lago_id"], first["legal_name"]) == (str(org.organization_id), "First Ltd")
    assert (second["lago_id"], second["legal_name"]) == (str(other.organization_id), "Second Ltd")
    assert "First Ltd" not in str(second) and "Second Ltd" not in str(first)


def test_every_setting_change_is_an_event_in_the_store(client: falcon.testing.TestClient, store: Store, org: IssuedKey) -> None:
    """The API writes domain events, and the view is derived from them."""
    client.simulate_put(ORGANIZATIONS, headers=bearer(org), json={"organization": {"net_payment_term": 30}})
    client.simulate_put(ORGANIZATIONS, headers=bearer(org), json={"organization": {"net_payment_term": 45}})

    notifications = store.billing.recorder.select_notifications(start=1, limit=100)
    changes = [store.billing.mapper.to_domain_event(n) for n in notifications if n.topic.endswith("SettingsChanged")]

    assert [c.settings.net_payment_term for c in changes] == [30, 45]


def test_put_can_rename_the_organization(client: falcon.testing.TestClient, org: IssuedKey) -> None:
    """The name is an organization field too; a blank one is refused."""
    renamed = client.simulate_put(ORGANIZATIONS, headers=bearer(org), json={"organization": {"name": "Acme Europe"}})
    blank = client.simulate_put(ORGANIZATIONS, headers=bearer(org), json={"organization": {"name": " "}})

    assert renamed.json["organization"]["name"] == "Acme Europe"
    assert blank.status_code == 422 and blank.json["error_details"] == {"name": ["value_is_mandatory"]}
    assert client.simulate_get(ORGANIZATIONS, headers=bearer(org)).json["organization"]["name"] == "Acme Europe"
