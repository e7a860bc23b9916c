"""Manual payments through the API: partial and full payments, what is due, and what is refused."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import falcon.testing

from domain.api_key import IssuedKey
from domain.errors import ValidationFailed
from interfaces.store import Store
from tests.conftest import bearer
from tests.test_applied_coupons_api import Shop, api  # noqa: F401 - the fixture


def _pay(shop: Shop, invoice_id: str, cents: int, reference: str, status: int = 200) -> dict[str, Any]:
    return shop.call("POST", "payments", {"payment": {"invoice_id": invoice_id, "amount_cents": cents,
                                                      "reference": reference}}, status)


def test_partial_payments_lower_what_is_due_until_the_invoice_is_paid(
    api: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store  # noqa: F811
) -> None:
    shop = Shop(api, tenant, shared_store)
    invoice = shop.close(4)

    first = _pay(shop, invoice["lago_id"], 4_000, "wire-1")["payment"]
    part = shop.call("GET", f"invoices/{invoice['lago_id']}")["invoice"]
    _pay(shop, invoice["lago_id"], 6_000, "wire-2")
    paid = shop.call("GET", f"invoices/{invoice['lago_id']}")["invoice"]

    assert (first["amount_cents"], first["invoice_ids"], first["type"]) == (4_000, [invoice["lago_id"]], "manual")
    assert (part["total_paid_amount_cents"], part["total_due_amount_cents"], part["payment_status"]) == (
        4_000, 6_000, "pending")
    assert (paid["total_paid_amount_cents"], paid["total_due_amount_cents"], paid["payment_status"]) == (
        10_000, 0, "succeeded")
    listed = shop.call("GET", f"payments?invoice_id={invoice['lago_id']}")["payments"]
    assert sorted(p["reference"] for p in listed) == ["wire-1", "wire-2"]
    assert shop.call("GET", "customers/cus/payments")["meta"]["total_count"] == 2
    assert shop.call("GET", f"payments/{first['lago_id']}")["payment"]["reference"] == "wire-1"


def test_payments_are_refused_when_they_cannot_be_right(
    api: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store  # noqa: F811
) -> None:
    shop = Shop(api, tenant, shared_store)
    invoice = shop.close(4)
    _pay(shop, invoice["lago_id"], 1_000, "wire-1")

    assert _pay(shop, invoice["lago_id"], 1_000, "wire-1", 422)["error_details"] == {"reference": ["value_already_exist"]}
    assert _pay(shop, invoice["lago_id"], 9_001, "wire-2", 422)["error_details"] == {"amount_cents": ["invalid_amount"]}
    assert _pay(shop, invoice["lago_id"], 0, "wire-3", 422)["error_details"] == {"amount_cents": ["invalid_amount"]}
    assert _pay(shop, "not-a-uuid", 100, "wire-4", 404)["code"] == "invoice_not_found"
    shop.call("POST", "payments", {"payment": {"invoice_id": invoice["lago_id"]}}, status=422)
    assert shop.call("POST", f"invoices/{invoice['lago_id']}/void", status=405)["code"] == "not_voidable"
    shop.call("GET", "payments/not-a-uuid", status=404)
    after = shop.call("GET", f"invoices/{invoice['lago_id']}")["invoice"]
    assert (after["total_paid_amount_cents"], after["total_due_amount_cents"]) == (1_000, 9_000)
    other = shared_store.billing.create_organization("Payment neighbour")
    assert api.simulate_get("/api/v1/payments", headers=bearer(other)).json["payments"] == []
    assert _pay_as(api, other, invoice["lago_id"]).status_code == 404


def _pay_as(api: falcon.testing.TestClient, key: IssuedKey, invoice_id: str) -> Any:  # noqa: F811
    return api.simulate_post("/api/v1/payments", headers=bearer(key), json={"payment": {
        "invoice_id": invoice_id, "amount_cents": 100, "reference": "theirs"}})


def test_a_payment_request_asks_for_unpaid_invoices_and_is_settled_when_they_are(
    api: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store  # noqa: F811
) -> None:
    shop = Shop(api, tenant, shared_store)
    march = shop.close(4)
    april = shop.close(5)
    ids = [march["lago_id"], april["lago_id"]]

    request = shop.call("POST", "payment_requests", {"payment_request": {
        "external_customer_id": "cus", "email": "billing@example.com", "lago_invoice_ids": ids}})["payment_request"]
    for invoice in (march, april):
        _pay(shop, invoice["lago_id"], 10_000, f"for-{invoice['lago_id']}")
    settled = shop.call("GET", f"payment_requests/{request['lago_id']}")["payment_request"]

    assert (request["amount_cents"], request["payment_status"], len(request["invoices"])) == (20_000, "pending", 2)
    assert settled["payment_status"] == "succeeded"
    assert shop.call("GET", "payment_requests?payment_status=succeeded")["payment_requests"][0]["lago_id"] == request["lago_id"]
    again = shop.call("POST", "payment_requests", {"payment_request": {
        "external_customer_id": "cus", "email": "billing@example.com", "lago_invoice_ids": ids}}, status=422)
    assert again["error_details"] == {"lago_invoice_ids": ["invalid_invoice"]}
    shop.call("POST", "payment_requests", {"payment_request": {"external_customer_id": "cus", "email": "nope",
                                                               "lago_invoice_ids": ids}}, status=422)
    shop.call("GET", "payment_requests/nope", status=404)


def test_two_payments_racing_for_one_invoice_never_overpay_it(
    api: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store  # noqa: F811
) -> None:
    """Six senders each pay 4,000 of a 10,000 invoice at once: two are recorded, the rest refused; 2,000 stays due."""
    shop = Shop(api, tenant, shared_store)
    invoice = shop.close(4)
    outcomes: list[str] = []

    def pay(number: int) -> None:
        try:
            shared_store.billing.record_payment(tenant.organization_id, {
                "invoice_id": invoice["lago_id"], "amount_cents": 4_000, "reference": f"racer-{number}"},
                datetime(2026, 4, 2, tzinfo=UTC))
            outcomes.append("paid")
        except ValidationFailed:
            outcomes.append("refused")

    threads = [threading.Thread(target=pay, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    after = shop.call("GET", f"invoices/{invoice['lago_id']}")["invoice"]
    assert sorted(outcomes) == ["paid", "paid", "refused", "refused", "refused", "refused"]
    assert (after["total_paid_amount_cents"], after["total_due_amount_cents"]) == (8_000, 2_000)
