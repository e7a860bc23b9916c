"""Lago's wire conventions, enforced once for every resource: auth, envelopes, errors, paging."""

from __future__ import annotations

from uuid import uuid4

import falcon.testing
import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.api_key import IssuedKey
from interfaces.http.wire import PageRequest
from interfaces.store import Store
from tests.conftest import bearer

ORGANIZATIONS = "/api/v1/organizations"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer"}, {"Authorization": "Bearer tly_unknown"}, {"Authorization": "Bearer not-a-key"}],
    ids=["missing", "empty", "unknown", "foreign-format"],
)
def test_requests_without_a_valid_key_are_unauthorized(client: falcon.testing.TestClient, org: IssuedKey, headers: dict[str, str]) -> None:
    """Missing or unknown keys get Lago's 401 body."""
    response = client.simulate_get(ORGANIZATIONS, headers=headers)

    assert response.status_code == 401
    assert response.json == {"status": 401, "error": "Unauthorized"}


def test_a_revoked_key_is_unauthorized_at_once(client: falcon.testing.TestClient, store: Store, org: IssuedKey) -> None:
    """Revocation takes effect on the very next request."""
    assert client.simulate_get(ORGANIZATIONS, headers=bearer(org)).status_code == 200

    store.billing.revoke_api_key(org.key_id)

    assert client.simulate_get(ORGANIZATIONS, headers=bearer(org)).json == {"status": 401, "error": "Unauthorized"}


def test_the_scheme_word_is_not_checked(client: falcon.testing.TestClient, org: IssuedKey) -> None:
    """Like Lago, the second token of the header is the key, whatever the first says."""
    response = client.simulate_get(ORGANIZATIONS, headers={"Authorization": f"Token {org.secret}"})

    assert response.status_code == 200


def test_unknown_routes_are_lago_404s(client: falcon.testing.TestClient, org: IssuedKey) -> None:
    """A path we do not serve is resource_not_found, with or without a key."""
    for headers in (bearer(org), {}):
        response = client.simulate_get("/api/v1/no_such_thing", headers=headers)
        assert response.status_code == 404
        assert response.json == {"status": 404, "error": "Not Found", "code": "resource_not_found"}


def test_unsupported_methods_are_405_not_allowed(client: falcon.testing.TestClient, org: IssuedKey) -> None:
    """A known path with the wrong verb answers 405 and says which verbs exist."""
    response = client.simulate_delete(ORGANIZATIONS, headers=bearer(org))

    assert response.status_code == 405
    assert response.json == {"status": 405, "error": "Method Not Allowed", "code": "not_allowed"}
    assert "PUT" in response.headers["allow"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b'{"organisation": {"timezone": "UTC"}}', "BadRequest: param is missing or the value is empty or invalid: organization"),
        (b'{"organization": {}}', "BadRequest: param is missing or the value is empty or invalid: organization"),
        (b'{"organization": "UTC"}', "BadRequest: param is missing or the value is empty or invalid: organization"),
        (b"[]", "BadRequest: request body must be a JSON object"),
    ],
)
def test_a_missing_or_empty_envelope_is_a_400(client: falcon.testing.TestClient, org: IssuedKey, body: bytes, error: str) -> None:
    """The resource's root key is mandatory and must hold an object with something in it."""
    response = client.simulate_put(ORGANIZATIONS, headers=bearer(org), body=body)

    assert response.status_code == 400
    assert response.json == {"status": 400, "error": error, "code": "bad_request"}


@pytest.mark.parametrize("body", [b"{not json", b"", b'{"organization": {"timezone": "UTC"'])
def test_malformed_json_is_a_400(client: falcon.testing.TestClient, org: IssuedKey, body: bytes) -> None:
    """Bytes that are not JSON are a bad request, never a 500."""
    response = client.simulate_put(ORGANIZATIONS, headers=bearer(org), body=body)

    assert response.status_code == 400
    assert response.json["code"] == "bad_request"
    assert response.json["error"].startswith("BadRequest: malformed JSON")


def test_a_field_of_the_wrong_type_is_a_422_naming_it(client: falcon.testing.TestClient, org: IssuedKey) -> None:
    """Type errors deep in the body name the field, dotted, with a Lago code."""
    response = client.simulate_put(
        ORGANIZATIONS, headers=bearer(org), body=b'{"organization": {"billing_configuration": {"invoice_grace_period": "two"}}}'
    )

    assert response.status_code == 422
    assert response.json == {
        "status": 422,
        "error": "Unprocessable Entity",
        "code": "validation_errors",
        "error_details": {"billing_configuration.invoice_grace_period": ["value_is_invalid"]},
    }


def test_an_oversized_body_is_refused_before_it_is_read(client: falcon.testing.TestClient, org: IssuedKey) -> None:
    """Bodies above the limit get 413 and change nothing."""
    huge = b'{"organization": {"legal_name": "' + b"x" * 70_000 + b'"}}'

    response = client.simulate_put(ORGANIZATIONS, headers=bearer(org), body=huge)

    assert response.status_code == 413
    assert response.json["code"] == "request_too_large"
    assert client.simulate_get(ORGANIZATIONS, headers=bearer(org)).json["organization"]["legal_name"] is None


def test_health_needs_no_key_and_reports_projection_lag(client: falcon.testing.TestClient, org: IssuedKey) -> None:
    """GET /health checks the database and says how far behind each view is."""
    response = client.simulate_get("/health")

    assert response.status_code == 200
    assert response.json["message"] == "Success"
    assert {"organizations", "billable_metrics"} <= set(response.json["projections_lag"])


def test_the_openapi_document_describes_every_route(client: falcon.testing.TestClient) -> None:
    """Our OpenAPI 3.1 document is public and generated from the routed operations."""
    document = client.simulate_get("/api/v1/openapi.json").json

    assert document["openapi"] == "3.1.0"
    assert set(document["paths"][ORGANIZATIONS]) == {"get", "put"}
    put = document["paths"][ORGANIZATIONS]["put"]
    envelope = put["requestBody"]["content"]["application/json"]["schema"]
    assert envelope["required"] == ["organization"]
    assert {"400", "401", "422"} <= set(put["responses"])
    schemas = document["components"]["schemas"]
    assert {"OrganizationObject", "OrganizationUpdate", "ErrorBody", "PaginationMeta"} <= set(schemas)
    assert "lago_id" in schemas["OrganizationObject"]["required"]
    assert document["paths"]["/health"]["get"]["security"] == []


def test_an_empty_collection_has_lagos_zero_page_meta() -> None:
    """With nothing to list, current_page and total_pages are 0."""
    assert PageRequest(1, 100).meta(0) == {
        "current_page": 0, "next_page": None, "prev_page": None, "total_pages": 0, "total_count": 0,
    }


def test_the_worked_pagination_example() -> None:
    """250 items at 100 per page: page 1 of 3, next 2."""
    assert PageRequest(1, 100).meta(250) == {
        "current_page": 1, "next_page": 2, "prev_page": None, "total_pages": 3, "total_count": 250,
    }


@given(st.integers(1, 50), st.integers(1, 200), st.integers(1, 10_000))
def test_pages_cover_the_collection_exactly(page: int, per_page: int, total: int) -> None:
    """total_pages pages of per_page hold every item; next/prev link only to pages that exist."""
    meta = PageRequest(page, per_page).meta(total)

    assert (meta["total_pages"] - 1) * per_page < total <= meta["total_pages"] * per_page
    assert meta["next_page"] is None or meta["next_page"] <= meta["total_pages"]
    assert (meta["prev_page"] is None) == (page == 1)


def test_remembered_keys_are_forgotten_when_the_billing_log_moves(store: Store, database_url: str, org: IssuedKey) -> None:
    """With the listening cache, a key revoked here is refused at once, one revoked elsewhere within moments."""
    from domain.application import Billing
    from interfaces.http.app import create_app
    from interfaces.store import application_env
    from tests.conftest import wait_until

    api = falcon.testing.TestClient(create_app(store.billing, store.metering, store.readers, cache_listens_to=database_url))
    spare = store.billing.issue_api_key(org.organization_id, "spare")
    wait_until(lambda: api.simulate_get(ORGANIZATIONS, headers=bearer(org)).status_code == 200)
    assert api.simulate_get(ORGANIZATIONS, headers=bearer(spare)).status_code == 200

    store.billing.revoke_api_key(org.key_id)
    assert api.simulate_get(ORGANIZATIONS, headers=bearer(org)).status_code == 401

    elsewhere = Billing(env=application_env(database_url), new_id=uuid4)
    elsewhere.revoke_api_key(spare.key_id)
    wait_until(lambda: api.simulate_get(ORGANIZATIONS, headers=bearer(spare)).status_code == 401, timeout=5)
    elsewhere.close()
