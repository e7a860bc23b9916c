"""The official lago-python-client, unmodified, against Tally served by gunicorn."""

from __future__ import annotations

import pytest
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models.organization import (
    Organization,
    OrganizationBillingConfiguration,
)

from domain.api_key import IssuedKey

pytestmark = pytest.mark.slow


def test_the_official_client_updates_the_organization(server: str, org: IssuedKey) -> None:
    """organizations.update sends PUT /api/v1/organizations and gets a typed model back."""
    client = Client(api_key=org.secret, api_url=server)

    updated = client.organizations.update(
        Organization(
            default_currency="EUR",
            timezone="Europe/Paris",
            country="FR",
            email="billing@example.com",
            document_numbering="per_organization",
            billing_configuration=OrganizationBillingConfiguration(invoice_grace_period=2, document_locale="fr"),
        )
    )

    assert updated.timezone == "Europe/Paris" and updated.country == "FR"
    assert updated.document_numbering == "per_organization"
    assert updated.billing_configuration is not None and updated.billing_configuration.invoice_grace_period == 2
    assert updated.name.startswith("Org ") and updated.created_at.endswith("Z")


def test_the_official_client_sees_lago_errors(server: str, org: IssuedKey) -> None:
    """A 422 and a 401 reach the client as LagoApiError with Lago's body."""
    with pytest.raises(LagoApiError) as invalid:
        Client(api_key=org.secret, api_url=server).organizations.update(Organization(default_currency="EUR", timezone="Nowhere/City"))
    with pytest.raises(LagoApiError) as unauthorized:
        Client(api_key="tly_wrong", api_url=server).organizations.update(Organization(default_currency="EUR"))

    assert invalid.value.status_code == 422
    assert invalid.value.response == {"status": 422, "error": "Unprocessable Entity", "code": "validation_errors",
                                      "error_details": {"timezone": ["invalid_timezone"]}}
    assert unauthorized.value.status_code == 401
    assert unauthorized.value.response == {"status": 401, "error": "Unauthorized"}
