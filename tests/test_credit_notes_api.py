"""Credit notes through the API: unused in-advance days given back on termination (P5) and upgrade (P6),
and credit consumed by the next invoice (I4 step 5).

The customer has paid $30 in advance for April on its Apr 1 invoice (a back-dated subscription
from Mar 16, closed by a scheduler pass); the clock then moves to the day of the change.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import falcon.testing
import pytest

from domain.api_key import IssuedKey
from interfaces.http.app import create_app
from application.invoicing import Invoicing
from interfaces.store import Store
from tests.conftest import bearer
from tests.test_invoices_api import Account, _fees

APRIL_1 = datetime(2026, 4, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 3, 20, tzinfo=UTC))


@pytest.fixture
def api(shared_store: Store, clock: Clock) -> Iterator[falcon.testing.TestClient]:
    yield falcon.testing.TestClient(
        create_app(shared_store.billing, shared_store.metering, shared_store.readers, clock=clock))


def _paid_for_april(api: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store, clock: Clock,
                    **account: Any) -> tuple[Account, dict[str, Any]]:
    subscriber = Account(api, tenant, in_advance=True, **account)
    clock.now = APRIL_1
    Invoicing(shared_store.billing, shared_store.readers).run_due(APRIL_1)
    [april] = subscriber.invoices()
    assert _fees(april) == [("subscription", 3000)]
    return subscriber, april


def _credit_notes(account: Account) -> list[dict[str, Any]]:
    listed = account.call("GET", "credit_notes")["credit_notes"]
    return [account.call("GET", f"credit_notes/{n['lago_id']}")["credit_note"] for n in listed]


def test_p5_terminating_an_in_advance_plan_credits_the_unused_days(
    api: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store, clock: Clock
) -> None:
    """$30 in advance, paid Apr 1, terminated Apr 10: 20 unused days × 100 = 2000 credited on the April invoice."""
    account, april = _paid_for_april(api, tenant, shared_store, clock)
    clock.now = datetime(2026, 4, 10, 15, tzinfo=UTC)

    account.call("DELETE", "subscriptions/sub")

    [note] = _credit_notes(account)
    assert (note["total_amount_cents"], note["credit_amount_cents"], note["balance_amount_cents"]) == (2000, 2000, 2000)
    assert (note["refund_amount_cents"], note["offset_amount_cents"], note["taxes_amount_cents"]) == (0, 0, 0)
    assert (note["credit_status"], note["reason"], note["issuing_date"]) == ("available", "order_cancellation", "2026-04-10")
    assert note["lago_invoice_id"] == april["lago_id"] and note["number"] == f"{april['number']}-CN001"
    assert [(i["amount_cents"], i["fee"]["item"]["type"]) for i in note["items"]] == [(2000, "subscription")]
    assert account.call("GET", "customers/cus/credit_notes")["meta"]["total_count"] == 1


def test_p5_the_credit_is_consumed_by_the_next_invoice(
    api: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store, clock: Clock
) -> None:
    """A 2000 credit against a 2500 one-off invoice: credit_notes_amount_cents 2000, 500 left to pay, note consumed."""
    account, _ = _paid_for_april(api, tenant, shared_store, clock)
    clock.now = datetime(2026, 4, 10, 15, tzinfo=UTC)
    account.call("DELETE", "subscriptions/sub")
    account.call("POST", "add_ons", {"add_on": {"name": "Setup", "code": "setup", "amount_cents": 2500,
                                                "amount_currency": "USD"}})

    one_off = account.call("POST", "invoices", {"invoice": {"external_customer_id": "cus", "currency": "USD",
                                                            "fees": [{"add_on_code": "setup"}]}})["invoice"]

    assert (one_off["fees_amount_cents"], one_off["credit_notes_amount_cents"]) == (2500, 2000)
    assert (one_off["total_amount_cents"], one_off["total_due_amount_cents"]) == (500, 500)
    [credit] = one_off["credits"]
    assert (credit["amount_cents"], credit["item"]["type"]) == (2000, "credit_note")
    [note] = _credit_notes(account)
    assert (note["credit_status"], note["balance_amount_cents"]) == ("consumed", 0)


def test_p6_an_upgrade_credits_the_old_plan_and_the_new_plan_consumes_it(
    api: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store, clock: Clock
) -> None:
    """A $30 → B $60 in advance on Apr 11: credit note 20 × 100 = 2000 on A's invoice; B invoiced 20 × 6000 / 30 =
    4000; the credit is consumed by B's invoice, so 2000 is due."""
    account, april = _paid_for_april(api, tenant, shared_store, clock)
    account.call("POST", "plans", {"plan": {"name": "Big", "code": "big", "interval": "monthly", "amount_cents": 6000,
                                            "amount_currency": "USD", "pay_in_advance": True}})
    clock.now = datetime(2026, 4, 11, 9, tzinfo=UTC)

    account.call("POST", "subscriptions", {"subscription": {
        "external_customer_id": "cus", "plan_code": "big", "external_id": "sub"}})

    starting = [i for i in account.invoices() if i["billing_periods"][0]["invoicing_reason"] == "subscription_starting"]
    [b] = starting
    assert _fees(b) == [("subscription", 4000)]
    assert (b["credit_notes_amount_cents"], b["total_amount_cents"], b["total_due_amount_cents"]) == (2000, 2000, 2000)
    [note] = _credit_notes(account)
    assert (note["total_amount_cents"], note["reason"], note["lago_invoice_id"]) == (2000, "order_change", april["lago_id"])
    assert (note["credit_status"], note["balance_amount_cents"]) == ("consumed", 0)


def test_p5_the_credit_bears_the_fees_taxes(
    api: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store, clock: Clock
) -> None:
    """With 20 % VAT on the organization, the 2000 unused days credit 2000 + 400 tax."""
    Account.call_as(api, tenant, "POST", "taxes", {"tax": {"name": "VAT", "code": "vat", "rate": "20.0",
                                                           "applied_to_organization": True}})
    account, april = _paid_for_april(api, tenant, shared_store, clock)
    clock.now = datetime(2026, 4, 10, 15, tzinfo=UTC)

    account.call("DELETE", "subscriptions/sub")

    [note] = _credit_notes(account)
    assert (note["sub_total_excluding_taxes_amount_cents"], note["taxes_amount_cents"]) == (2000, 400)
    assert (note["total_amount_cents"], note["credit_amount_cents"]) == (2400, 2400)
    assert [t["tax_code"] for t in note["applied_taxes"]] == ["vat"]


@pytest.mark.parametrize(("policy", "paid", "expected"), [
    ("offset", False, {"offset_amount_cents": 2000, "credit_amount_cents": 0, "refund_amount_cents": 0}),
    ("refund", True, {"refund_amount_cents": 2000, "credit_amount_cents": 0, "offset_amount_cents": 0}),
    ("refund", False, {"credit_amount_cents": 2000, "refund_amount_cents": 0, "offset_amount_cents": 0}),
])
def test_p5_termination_policies_split_the_credit(
    api: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store, clock: Clock, policy: str, paid: bool,
    expected: dict[str, int],
) -> None:
    """``refund`` gives back only what was paid (the rest is credit); ``offset`` lowers what is due on the invoice."""
    account, april = _paid_for_april(api, tenant, shared_store, clock)
    if paid:
        account.call("PUT", f"invoices/{april['lago_id']}", {"invoice": {"payment_status": "succeeded"}})
    clock.now = datetime(2026, 4, 10, 15, tzinfo=UTC)

    account.call("DELETE", f"subscriptions/sub?on_termination_credit_note={policy}")

    [note] = _credit_notes(account)
    assert {k: note[k] for k in expected} == expected
    invoice = account.call("GET", f"invoices/{april['lago_id']}")["invoice"]
    assert invoice["total_offsetted_credit_note_amount_cents"] == expected["offset_amount_cents"]
    if policy == "offset":
        assert invoice["total_due_amount_cents"] == 1000


def test_skip_issues_no_credit_note_and_arrears_plans_owe_none(
    api: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store, clock: Clock
) -> None:
    account, _ = _paid_for_april(api, tenant, shared_store, clock)
    clock.now = datetime(2026, 4, 10, 15, tzinfo=UTC)

    account.call("DELETE", "subscriptions/sub?on_termination_credit_note=skip")

    assert _credit_notes(account) == []


def test_a_credit_note_can_be_voided_and_is_then_not_consumed(
    api: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store, clock: Clock
) -> None:
    account, _ = _paid_for_april(api, tenant, shared_store, clock)
    clock.now = datetime(2026, 4, 10, 15, tzinfo=UTC)
    account.call("DELETE", "subscriptions/sub")
    [note] = _credit_notes(account)

    voided = account.call("PUT", f"credit_notes/{note['lago_id']}/void")["credit_note"]
    account.call("PUT", f"credit_notes/{note['lago_id']}/void", status=405)
    account.call("POST", "add_ons", {"add_on": {"name": "Setup", "code": "setup", "amount_cents": 2500,
                                                "amount_currency": "USD"}})
    one_off = account.call("POST", "invoices", {"invoice": {"external_customer_id": "cus",
                                                            "fees": [{"add_on_code": "setup"}]}})["invoice"]

    assert (voided["credit_status"], voided["balance_amount_cents"]) == ("voided", 0)
    assert (one_off["credit_notes_amount_cents"], one_off["total_amount_cents"]) == (0, 2500)


def test_credit_notes_are_refused_and_hidden_as_lago_does(
    api: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store, clock: Clock
) -> None:
    account, _ = _paid_for_april(api, tenant, shared_store, clock)
    clock.now = datetime(2026, 4, 10, 15, tzinfo=UTC)
    account.call("DELETE", "subscriptions/sub")
    [note] = _credit_notes(account)
    other = shared_store.billing.create_organization("Other credit notes")

    assert Account.call_as(api, other, "GET", f"credit_notes/{note['lago_id']}", status=404)["code"] == "credit_note_not_found"
    assert Account.call_as(api, other, "GET", "credit_notes")["credit_notes"] == []
    account.call("GET", "credit_notes/not-a-uuid", status=404)
    refused = account.call("GET", "credit_notes?credit_status=bogus&issuing_date_from=x", status=422)
    assert set(refused["error_details"]) == {"credit_status", "issuing_date_from"}
    account.call("GET", "customers/nobody/credit_notes", status=404)


def test_i4_credit_notes_are_taken_after_taxes(
    api: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store, clock: Clock
) -> None:
    """I4 with what exists yet (no coupons or wallets): fees 10,000; tax 20 % → 12,000; the customer's credit
    note of 2,400 (2,000 + its 400 tax) → total 9,600."""
    Account.call_as(api, tenant, "POST", "taxes", {"tax": {"name": "VAT", "code": "vat", "rate": "20.0",
                                                           "applied_to_organization": True}})
    account, _ = _paid_for_april(api, tenant, shared_store, clock)
    clock.now = datetime(2026, 4, 10, 15, tzinfo=UTC)
    account.call("DELETE", "subscriptions/sub")
    account.call("POST", "add_ons", {"add_on": {"name": "Audit", "code": "audit", "amount_cents": 10_000,
                                                "amount_currency": "USD"}})

    invoice = account.call("POST", "invoices", {"invoice": {"external_customer_id": "cus",
                                                            "fees": [{"add_on_code": "audit"}]}})["invoice"]

    assert (invoice["fees_amount_cents"], invoice["taxes_amount_cents"]) == (10_000, 2_000)
    assert invoice["sub_total_including_taxes_amount_cents"] == 12_000
    assert (invoice["credit_notes_amount_cents"], invoice["total_amount_cents"]) == (2_400, 9_600)
    assert invoice["payment_status"] == "pending"


def test_i5_a_credit_note_by_hand_removes_the_coupon_share_and_splits_three_ways(
    shared_store: Store, tenant: IssuedKey
) -> None:
    """March: 10,000 with a 10 % coupon and 20 % VAT (10,800). Crediting 5,000 of the fee: its coupon share (500)
    stays, 4,500 + 900 tax = 5,400, given as 2,000 credit and 3,400 offset (the invoice then owes 7,400)."""
    from tests.test_applied_coupons_api import NOW as SHOP_NOW
    from tests.test_applied_coupons_api import Shop

    shop_api = falcon.testing.TestClient(create_app(shared_store.billing, shared_store.metering, shared_store.readers,
                                                    clock=lambda: SHOP_NOW))
    shop = Shop(shop_api, tenant, shared_store, vat=True)
    shop.coupon("pct", coupon_type="percentage", percentage_rate="10", frequency="once")
    shop.apply("pct")
    march = shop.close(4)
    fee_id = march["fees"][0]["lago_id"]
    body = {"invoice_id": march["lago_id"], "items": [{"fee_id": fee_id, "amount_cents": 5_000}]}

    estimated = shop.call("POST", "credit_notes/estimate", {"credit_note": body})["estimated_credit_note"]
    note = shop.call("POST", "credit_notes", {"credit_note": {
        **body, "reason": "other", "credit_amount_cents": 2_000, "offset_amount_cents": 3_400}})["credit_note"]
    invoice = shop.call("GET", f"invoices/{march['lago_id']}")["invoice"]

    assert (estimated["coupons_adjustment_amount_cents"], estimated["sub_total_excluding_taxes_amount_cents"]) == (500, 4_500)
    assert (estimated["taxes_amount_cents"], estimated["max_creditable_amount_cents"]) == (900, 5_400)
    assert (note["total_amount_cents"], note["credit_amount_cents"], note["offset_amount_cents"]) == (5_400, 2_000, 3_400)
    assert (note["number"], note["balance_amount_cents"]) == (f"{march['number']}-CN001", 2_000)
    assert (invoice["total_due_amount_cents"], invoice["total_offsetted_credit_note_amount_cents"]) == (7_400, 3_400)
    refused = {"items": [{"fee_id": fee_id, "amount_cents": 5_001}], "invoice_id": march["lago_id"]}
    assert shop.call("POST", "credit_notes", {"credit_note": refused}, status=422)["error_details"] == {
        "items.0.amount_cents": ["higher_than_creditable_fee_amount"]}
    mismatch = {**body, "items": [{"fee_id": fee_id, "amount_cents": 1_000}], "credit_amount_cents": 500}
    assert shop.call("POST", "credit_notes", {"credit_note": mismatch}, status=422)["error_details"] == {
        "base": ["does_not_match_item_amounts"]}
    refund = {**body, "items": [{"fee_id": fee_id, "amount_cents": 1_000}], "refund_amount_cents": 1_080}
    assert shop.call("POST", "credit_notes", {"credit_note": refund}, status=422)["error_details"] == {
        "refund_amount_cents": ["higher_than_remaining_invoice_amount"]}
    within_a_cent = {**body, "items": [{"fee_id": fee_id, "amount_cents": 1_000}], "credit_amount_cents": 1_079}
    assert shop.call("POST", "credit_notes", {"credit_note": within_a_cent})["credit_note"]["credit_amount_cents"] == 1_079
    entries = shop.call("GET", "ledger/entries?per_page=1000")["entries"]
    assert sum(e["debit_amount_cents"] for e in entries) == sum(e["credit_amount_cents"] for e in entries)
    shop.call("POST", "credit_notes", {"credit_note": {"invoice_id": "nope", "items": []}}, status=404)


def test_a_credit_note_pdf_is_rendered_once_and_served(
    api: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store, clock: Clock
) -> None:
    account, _ = _paid_for_april(api, tenant, shared_store, clock)
    clock.now = datetime(2026, 4, 10, 15, tzinfo=UTC)
    account.call("DELETE", "subscriptions/sub")
    [note] = _credit_notes(account)
    assert note["file_url"] is None

    downloaded = account.call("POST", f"credit_notes/{note['lago_id']}/download")["credit_note"]
    pdf = api.simulate_get(downloaded["file_url"], headers=bearer(tenant))

    assert downloaded["file_url"] == f"/api/v1/credit_notes/{note['lago_id']}/file.pdf"
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    if os.environ.get("TALLY_KEEP_PDF"):
        with open(os.environ["TALLY_KEEP_PDF"], "wb") as kept:
            kept.write(pdf.content)
    assert api.simulate_get(downloaded["file_url"]).status_code == 401
