"""Our OpenAPI document as a contract: valid OpenAPI 3.1, every body and status described, shapes as answered."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import falcon.testing
import pytest
import schemathesis

# Writes that read no body at all: Lago's action endpoints (the path names the object and the action).
NO_BODY = re.compile(r"/(download|download_pdf|finalize|refresh|void|invoice_now)$|/metadata/\{key\}$")
# Each answers ``{root: [...]}`` without a page ``meta``.
PLAIN_LISTS = {
    ("get", "/api/v1/analytics/gross_revenue"): "gross_revenues",
    ("get", "/api/v1/analytics/invoiced_usage"): "invoiced_usages",
    ("get", "/api/v1/analytics/mrr"): "mrrs",
    ("get", "/api/v1/analytics/invoice_collection"): "invoice_collections",
    ("get", "/api/v1/analytics/overdue_balance"): "overdue_balances",
    ("get", "/api/v1/customers/{external_id}/balance"): "balances",
    ("get", "/api/v1/ledger/accounts"): "accounts",
    ("post", "/api/v1/wallet_transactions"): "wallet_transactions",
    ("post", "/api/v1/events/batch"): "events",
    ("post", "/api/v1/events/estimate_fees"): "fees",
}


@pytest.fixture(scope="module")
def document(api: falcon.testing.TestClient) -> dict[str, Any]:
    response = api.simulate_get("/api/v1/openapi.json")
    assert response.status_code == 200
    return dict(response.json)


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield method, path, operation


def test_the_served_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    """Schemathesis loads it and the OpenAPI 3.1 meta-schema accepts it."""
    schema = schemathesis.openapi.from_dict(document)

    schema.validate()

    assert document["openapi"] == "3.1.0"
    assert len(list(operations(document))) >= 95


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    """Each $ref names a component that exists (two Structs sharing a name get qualified names)."""
    text = repr(document)

    refs = set(re.findall(r"'#/components/schemas/([^']+)'", text))

    assert refs and refs <= set(document["components"]["schemas"])


def test_every_write_that_reads_a_body_documents_it(document: dict[str, Any]) -> None:
    """POST, PUT and PATCH declare their request body, enveloped as they decode it, but Lago's actions."""
    missing = [f"{method.upper()} {path}" for method, path, operation in operations(document)
               if method in ("post", "put", "patch") and "requestBody" not in operation and not NO_BODY.search(path)]

    assert missing == []


def test_events_are_documented_with_their_envelopes(document: dict[str, Any]) -> None:
    """POST /events takes {"event": {...}}, the batch {"events": [...]}, estimate_fees {"event": {...}}."""
    def body(path: str) -> dict[str, Any]:
        return dict(document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"])

    assert body("/api/v1/events")["required"] == ["event"]
    assert body("/api/v1/events/batch")["properties"]["events"]["type"] == "array"
    assert body("/api/v1/events/estimate_fees")["required"] == ["event"]
    event = document["components"]["schemas"]["EventFields"]
    assert set(event["required"]) == {"transaction_id", "code"}


@pytest.mark.parametrize(("method", "path"), sorted(PLAIN_LISTS))
def test_plain_lists_are_documented_as_lists(document: dict[str, Any], method: str, path: str) -> None:
    """Endpoints answering a bare list under their root say so, without pagination meta."""
    schema = document["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]

    assert schema["properties"][PLAIN_LISTS[(method, path)]]["type"] == "array"
    assert "meta" not in schema["properties"]


def test_statuses_every_operation_of_a_kind_can_answer_are_declared(document: dict[str, Any]) -> None:
    """401, 422 and 503 wherever a key is needed, 400 and 413 on every write, 404 under a path id, and the HTTP
    server's 414 and 431 everywhere (a fuzzed query string can pass its request-line limit)."""
    for method, path, operation in operations(document):
        codes = set(operation["responses"])
        assert {"414", "431"} <= codes, (method, path)
        if operation.get("security") != []:
            assert {"401", "422", "503"} <= codes, (method, path)
            if method != "get":
                assert {"400", "413"} <= codes, (method, path)
        if "{" in path:
            assert "404" in codes, (method, path)
        if "requestBody" in operation:
            assert {"400", "404", "422"} <= codes, (method, path)  # a body may name an unknown tax, plan, …


def test_error_bodies_describe_the_keys_errors_carry(document: dict[str, Any]) -> None:
    """413 bodies carry limit_bytes, 503 bodies the projections behind; a batch's 422 is per item."""
    schemas = document["components"]["schemas"]
    batch = document["paths"]["/api/v1/events/batch"]["post"]["responses"]["422"]["content"]["application/json"]

    assert {"limit_bytes", "projections"} <= set(schemas["ErrorBody"]["properties"])
    assert batch["schema"]["$ref"].endswith("/ItemErrorBody")
    details = schemas["ItemErrorBody"]["properties"]["error_details"]
    assert "additionalProperties" in details


def test_pdfs_are_documented_as_pdfs(document: dict[str, Any]) -> None:
    """file.pdf answers application/pdf, not JSON."""
    for path in ("/api/v1/invoices/{lago_id}/file.pdf", "/api/v1/credit_notes/{lago_id}/file.pdf"):
        assert set(document["paths"][path]["get"]["responses"]["200"]["content"]) == {"application/pdf"}
