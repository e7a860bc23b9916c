"""Invoices through the API: back-dated subscriptions, a scheduler pass, and Lago's invoice and fee shapes.

The scheduler pass runs in process with a fixed clock (``Invoicing.run_due``), as ``tally
scheduler --once`` runs it with the wall clock (see test_scheduler_invoicing.py for that).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import falcon.testing
import pytest

from domain.api_key import IssuedKey
from domain.application import Billing
from domain.period_close import TaxTable
from interfaces.http.app import create_app
from application.invoicing import Invoicing
from interfaces.store import Store, application_env
from tests.conftest import bearer

NOW = datetime(2026, 4, 29, 12, tzinfo=UTC)
MARCH_20 = int(datetime(2026, 3, 20, tzinfo=UTC).timestamp())


@pytest.fixture
def api_at(shared_store: Store) -> Iterator[falcon.testing.TestClient]:
    yield falcon.testing.TestClient(
        create_app(shared_store.billing, shared_store.metering, shared_store.readers, clock=lambda: NOW))


@pytest.fixture
def invoicing(shared_store: Store) -> Invoicing:
    return Invoicing(shared_store.billing, shared_store.readers)


class Account:
    """One organization with a $30 monthly plan charging 2 cents a call, and a customer subscribed since March 16."""

    def __init__(self, api: falcon.testing.TestClient, key: IssuedKey, *, in_advance: bool, trial_days: int = 0,
                 customer: dict[str, Any] | None = None, started: str = "2026-03-16T00:00:00Z") -> None:
        self.api, self.key = api, key
        metric = self.call("POST", "billable_metrics", {"billable_metric": {
            "name": "Calls", "code": "calls", "aggregation_type": "count_agg"}})["billable_metric"]
        self.call("POST", "plans", {"plan": {
            "name": "Base", "code": "base", "interval": "monthly", "amount_cents": 3000, "amount_currency": "USD",
            "pay_in_advance": in_advance, "trial_period": trial_days, "charges": [{
                "billable_metric_id": metric["lago_id"], "charge_model": "standard", "properties": {"amount": "0.02"}}]}})
        self.call("POST", "customers", {"customer": {"external_id": "cus", "name": "Zoë", **(customer or {})}})
        self.call("POST", "subscriptions", {"subscription": {
            "external_customer_id": "cus", "plan_code": "base", "external_id": "sub", "subscription_at": started}})

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, status: int = 200) -> dict[str, Any]:
        return self.call_as(self.api, self.key, method, path, body, status)

    @staticmethod
    def call_as(api: falcon.testing.TestClient, key: IssuedKey, method: str, path: str,
                body: dict[str, Any] | None = None, status: int = 200) -> dict[str, Any]:
        response = api.simulate_request(method, f"/api/v1/{path}", headers=bearer(key), json=body)
        assert response.status_code == status, (path, response.text)
        return dict(response.json) if response.text else {}

    def send(self, count: int, at: int = MARCH_20) -> None:
        self.call("POST", "events/batch", {"events": [
            {"transaction_id": f"t{at}-{n}", "external_subscription_id": "sub", "code": "calls", "timestamp": at}
            for n in range(count)]})

    def invoices(self) -> list[dict[str, Any]]:
        listed = self.call("GET", "invoices?per_page=100")["invoices"]
        return [self.call("GET", f"invoices/{i['lago_id']}")["invoice"] for i in sorted(listed, key=lambda i: i["issuing_date"])]


def _fees(invoice: dict[str, Any]) -> list[tuple[str, int]]:
    return [(fee["item"]["type"], fee["amount_cents"]) for fee in invoice["fees"]]


def test_p4_a_back_dated_arrears_subscription_is_invoiced_at_the_next_boundary(
    api_at: falcon.testing.TestClient, tenant: IssuedKey, invoicing: Invoicing
) -> None:
    """$30 arrears from Mar 16 (16 of 31 days: 1548) plus 5 calls at 2 cents (10): one invoice on Apr 1."""
    account = Account(api_at, tenant, in_advance=False)
    account.send(5)

    invoicing.run_due(NOW)

    [invoice] = account.invoices()
    assert _fees(invoice) == [("subscription", 1548), ("charge", 10)]
    assert (invoice["issuing_date"], invoice["status"], invoice["total_amount_cents"]) == ("2026-04-01", "finalized", 1558)
    assert invoice["invoice_type"] == "subscription" and invoice["number"].endswith("-001-001")
    assert invoice["billing_periods"][0]["invoicing_reason"] == "subscription_periodic"
    assert invoice["billing_periods"][0]["charges_from_datetime"] == "2026-03-16T00:00:00Z"
    assert invoice["fees"][1]["units"] == "5.0" and invoice["fees"][1]["events_count"] == 5
    assert len(invoice["provenance"]["digest"]) == 64 and invoice["provenance"]["metering_position"] > 0


def test_a_second_pass_adds_nothing(api_at: falcon.testing.TestClient, tenant: IssuedKey, invoicing: Invoicing) -> None:
    account = Account(api_at, tenant, in_advance=False)

    invoicing.run_due(NOW)
    invoicing.run_due(NOW)

    assert len(account.invoices()) == 1


def test_a_scheduler_down_for_three_periods_catches_up_one_invoice_per_period(
    api_at: falcon.testing.TestClient, tenant: IssuedKey, invoicing: Invoicing
) -> None:
    account = Account(api_at, tenant, in_advance=False)
    account.send(5)
    account.send(7, at=int(datetime(2026, 5, 10, tzinfo=UTC).timestamp()))

    invoicing.run_due(datetime(2026, 7, 2, tzinfo=UTC))

    invoices = account.invoices()
    assert [i["issuing_date"] for i in invoices] == ["2026-04-01", "2026-05-01", "2026-06-01", "2026-07-01"]
    assert [i["total_amount_cents"] for i in invoices] == [1548 + 10, 3000, 3000 + 14, 3000]
    assert [i["number"][-3:] for i in invoices] == ["001", "002", "003", "004"]


def test_p4_an_in_advance_plan_bills_its_next_period_with_the_usage_of_the_last(
    api_at: falcon.testing.TestClient, tenant: IssuedKey, invoicing: Invoicing
) -> None:
    """Back-dated in advance (P3): nothing at start; on Apr 1 the full April fee and March's usage."""
    account = Account(api_at, tenant, in_advance=True)
    account.send(5)
    assert account.invoices() == []

    invoicing.run_due(NOW)

    [invoice] = account.invoices()
    assert _fees(invoice) == [("subscription", 3000), ("charge", 10)]


def test_an_in_advance_subscription_started_today_is_invoiced_at_once(
    api_at: falcon.testing.TestClient, tenant: IssuedKey
) -> None:
    """Started Apr 29 (now) on a 30-day month: 2 days × 3000 / 30 = 200, on the spot (subscription_starting)."""
    account = Account(api_at, tenant, in_advance=True, started="2026-04-29T12:00:00Z")

    [invoice] = account.invoices()
    assert _fees(invoice) == [("subscription", 200)]
    assert invoice["billing_periods"][0]["invoicing_reason"] == "subscription_starting"


def test_p7_a_trial_is_not_charged(api_at: falcon.testing.TestClient, tenant: IssuedKey, invoicing: Invoicing) -> None:
    """Arrears from Mar 16 with 14 trial days: the March fee is 2 days × 3000 / 31 = 194."""
    account = Account(api_at, tenant, in_advance=False, trial_days=14)

    invoicing.run_due(NOW)

    [invoice] = account.invoices()
    assert _fees(invoice) == [("subscription", 194)]


def test_p5_terminating_issues_the_final_invoice_at_once(
    api_at: falcon.testing.TestClient, tenant: IssuedKey, invoicing: Invoicing
) -> None:
    """Terminated Apr 29: March is closed first (catch-up), then 29 of 30 April days (2900) and April's usage."""
    account = Account(api_at, tenant, in_advance=False)
    account.send(3, at=int(datetime(2026, 4, 10, tzinfo=UTC).timestamp()))

    account.call("DELETE", "subscriptions/sub")

    invoices = account.invoices()
    assert [(i["issuing_date"], i["billing_periods"][0]["invoicing_reason"]) for i in invoices] == [
        ("2026-04-01", "subscription_periodic"), ("2026-04-29", "subscription_terminating")]
    assert _fees(invoices[1]) == [("subscription", 2900), ("charge", 6)]


def test_a_grace_period_gives_a_draft_that_refreshes_and_finalizes(
    api_at: falcon.testing.TestClient, tenant: IssuedKey, invoicing: Invoicing
) -> None:
    account = Account(api_at, tenant, in_advance=False, customer={"billing_configuration": {"invoice_grace_period": 3}})
    account.send(5)
    invoicing.run_due(datetime(2026, 4, 1, 1, tzinfo=UTC))
    [draft] = account.invoices()
    assert (draft["status"], draft["number"][-6:], draft["total_amount_cents"]) == ("draft", "-DRAFT", 1558)

    account.send(5, at=MARCH_20 + 60)  # a late event for March
    refreshed = account.call("PUT", f"invoices/{draft['lago_id']}/refresh")["invoice"]
    finalized = account.call("PUT", f"invoices/{draft['lago_id']}/finalize")["invoice"]

    assert refreshed["total_amount_cents"] == 1568
    assert (finalized["status"], finalized["number"][-7:]) == ("finalized", "001-001")


def test_invoice_lifecycle_over_the_api(api_at: falcon.testing.TestClient, tenant: IssuedKey, invoicing: Invoicing) -> None:
    account = Account(api_at, tenant, in_advance=False)
    invoicing.run_due(NOW)
    [invoice] = account.invoices()
    lago_id = invoice["lago_id"]

    paid = account.call("PUT", f"invoices/{lago_id}", {"invoice": {"payment_status": "succeeded",
                                                                     "metadata": [{"key": "po", "value": "42"}]}})
    assert (paid["invoice"]["payment_status"], paid["invoice"]["total_due_amount_cents"]) == ("succeeded", 0)
    assert paid["invoice"]["metadata"][0]["key"] == "po"
    account.call("PUT", f"invoices/{lago_id}/finalize", status=404)
    account.call("DELETE", f"invoices/{lago_id}", status=405)
    voided = account.call("POST", f"invoices/{lago_id}/void")["invoice"]
    assert voided["status"] == "voided"
    assert account.call("PUT", f"invoices/{lago_id}", {"invoice": {"payment_status": "failed"}}, status=405)["code"] == \
        "update_on_voided_invoice"
    account.call("GET", "invoices/not-a-uuid", status=404)


def test_invoices_and_fees_are_listed_with_lagos_filters(
    api_at: falcon.testing.TestClient, tenant: IssuedKey, invoicing: Invoicing
) -> None:
    account = Account(api_at, tenant, in_advance=False)
    account.send(5)
    invoicing.run_due(NOW)

    assert account.call("GET", "invoices?status=draft")["meta"]["total_count"] == 0
    assert account.call("GET", "invoices?external_customer_id=cus&status=finalized")["meta"]["total_count"] == 1
    assert account.call("GET", "invoices?issuing_date_from=2026-04-02")["meta"]["total_count"] == 0
    assert account.call("GET", "invoices?status=bogus", status=422)["error_details"] == {"status": ["value_is_invalid"]}
    fees = account.call("GET", "fees?fee_type=charge")["fees"]
    assert [(f["item"]["code"], f["amount_cents"], f["external_subscription_id"]) for f in fees] == [("calls", 10, "sub")]
    assert account.call("GET", f"fees/{fees[0]['lago_id']}")["fee"]["lago_id"] == fees[0]["lago_id"]
    assert account.call("GET", "customers/cus/invoices")["meta"]["total_count"] == 1


def test_an_organization_never_sees_anothers_invoices(
    api_at: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store, invoicing: Invoicing
) -> None:
    account = Account(api_at, tenant, in_advance=False)
    invoicing.run_due(NOW)
    [invoice] = account.invoices()
    other = shared_store.billing.create_organization("Other Org For Invoices")
    stranger = Account.__new__(Account)
    stranger.api, stranger.key = api_at, other

    assert stranger.call("GET", "invoices")["meta"]["total_count"] == 0
    stranger.call("GET", f"invoices/{invoice['lago_id']}", status=404)
    stranger.call("GET", f"fees/{invoice['fees'][0]['lago_id']}", status=404)


def test_download_renders_the_pdf_once_and_serves_it(
    api_at: falcon.testing.TestClient, tenant: IssuedKey, invoicing: Invoicing
) -> None:
    account = Account(api_at, tenant, in_advance=False, customer={
        "address_line1": "Östra Hamngatan 5", "city": "Göteborg", "zipcode": "411 10", "country": "SE"})
    account.send(5)
    invoicing.run_due(NOW)
    [invoice] = account.invoices()

    downloaded = account.call("POST", f"invoices/{invoice['lago_id']}/download")["invoice"]
    again = account.call("POST", f"invoices/{invoice['lago_id']}/download_pdf")["invoice"]
    pdf = api_at.simulate_get(f"/api/v1/invoices/{invoice['lago_id']}/file.pdf", headers=bearer(account.key))

    assert downloaded["file_url"] == again["file_url"] == f"/api/v1/invoices/{invoice['lago_id']}/file.pdf"
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF") and len(pdf.content) > 5000
    unauthenticated = api_at.simulate_get(f"/api/v1/invoices/{invoice['lago_id']}/file.pdf")
    assert unauthenticated.status_code == 401


def test_drafts_have_no_pdf(api_at: falcon.testing.TestClient, tenant: IssuedKey, invoicing: Invoicing) -> None:
    account = Account(api_at, tenant, in_advance=False, customer={"billing_configuration": {"invoice_grace_period": 3}})
    invoicing.run_due(datetime(2026, 4, 1, 1, tzinfo=UTC))
    [draft] = account.invoices()

    account.call("POST", f"invoices/{draft['lago_id']}/download", status=404)


def test_p6_an_upgrade_bills_the_new_plan_from_the_upgrade_day_at_once(shared_store: Store, tenant: IssuedKey) -> None:
    """A $30 → B $60 in advance on Apr 11 (30-day month): B is invoiced 20 × 6000 / 30 = 4000 on the spot, and A's
    final invoice is issued with it. A was back-dated and never paid for April, so no credit is owed
    (the credit note of P6 proper: test_credit_notes_api.py)."""
    april_11 = datetime(2026, 4, 11, 9, tzinfo=UTC)
    api = falcon.testing.TestClient(
        create_app(shared_store.billing, shared_store.metering, shared_store.readers, clock=lambda: april_11))
    account = Account(api, tenant, in_advance=True, started="2026-04-01T00:00:00Z")
    account.call("POST", "plans", {"plan": {"name": "Big", "code": "big", "interval": "monthly", "amount_cents": 6000,
                                            "amount_currency": "USD", "pay_in_advance": True}})

    upgraded = account.call("POST", "subscriptions", {"subscription": {
        "external_customer_id": "cus", "plan_code": "big", "external_id": "sub"}})["subscription"]

    invoices = account.invoices()
    reasons = [(i["issuing_date"], i["billing_periods"][0]["invoicing_reason"], _fees(i)) for i in invoices]
    assert upgraded["plan_code"] == "big"
    assert ("2026-04-11", "subscription_starting", [("subscription", 4000)]) in reasons
    assert ("2026-04-11", "subscription_terminating", []) in reasons


def test_a_one_off_invoice_bills_add_ons_at_once(api_at: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    account = Account(api_at, tenant, in_advance=False)
    account.call("POST", "taxes", {"tax": {"name": "VAT", "code": "vat", "rate": "20"}})
    account.call("POST", "add_ons", {"add_on": {"name": "Setup", "code": "setup", "amount_cents": 10000,
                                                "amount_currency": "USD", "tax_codes": ["vat"]}})

    invoice = account.call("POST", "invoices", {"invoice": {"external_customer_id": "cus", "fees": [
        {"add_on_code": "setup", "units": "2"},
        {"add_on_code": "setup", "unit_amount_cents": 2550, "description": "Extra hour"}]}})["invoice"]

    assert (invoice["invoice_type"], invoice["status"], invoice["currency"]) == ("one_off", "finalized", "USD")
    assert [(f["item"]["type"], f["units"], f["amount_cents"], f["taxes_amount_cents"]) for f in invoice["fees"]] == [
        ("add_on", "2.0", 20000, 4000), ("add_on", "1.0", 2550, 510)]
    assert (invoice["fees_amount_cents"], invoice["taxes_amount_cents"], invoice["total_amount_cents"]) == (22550, 4510, 27060)
    assert invoice["number"].endswith("-001-001")


def test_a_one_off_invoice_refuses_what_it_cannot_bill(api_at: falcon.testing.TestClient, tenant: IssuedKey) -> None:
    account = Account(api_at, tenant, in_advance=False)
    account.call("POST", "add_ons", {"add_on": {"name": "Setup", "code": "setup", "amount_cents": 100, "amount_currency": "USD"}})

    account.call("POST", "invoices", {"invoice": {"external_customer_id": "nobody", "fees": [{"add_on_code": "setup"}]}},
                 status=404)
    account.call("POST", "invoices", {"invoice": {"external_customer_id": "cus", "fees": [{"add_on_code": "nothing"}]}},
                 status=404)
    refused = account.call("POST", "invoices", {"invoice": {"external_customer_id": "cus", "fees": [
        {"add_on_code": "setup", "units": "-1"}]}}, status=422)
    assert refused["error_details"] == {"fees.0.units": ["value_is_invalid"]}
    assert account.call("POST", "invoices", {"invoice": {"external_customer_id": "cus"}}, status=422)["error_details"] == {
        "fees": ["value_is_mandatory"]}
    assert account.call("GET", "invoices")["meta"]["total_count"] == 0


def test_past_usage_lists_the_invoiced_periods_newest_first(
    api_at: falcon.testing.TestClient, tenant: IssuedKey, invoicing: Invoicing
) -> None:
    account = Account(api_at, tenant, in_advance=False)
    account.send(5)
    account.send(7, at=int(datetime(2026, 5, 10, tzinfo=UTC).timestamp()))
    invoicing.run_due(datetime(2026, 6, 2, tzinfo=UTC))

    past = account.call("GET", "customers/cus/past_usage?external_subscription_id=sub")

    assert [(p["from_datetime"], p["amount_cents"]) for p in past["usage_periods"]] == [
        ("2026-05-01T00:00:00Z", 14), ("2026-04-01T00:00:00Z", 0), ("2026-03-16T00:00:00Z", 10)]
    assert past["usage_periods"][0]["charges_usage"][0]["units"] == "7.0"
    assert account.call("GET", "customers/cus/past_usage?external_subscription_id=sub&periods_count=1")["meta"]["total_count"] == 1
    account.call("GET", "customers/cus/past_usage", status=422)
    account.call("GET", "customers/nobody/past_usage?external_subscription_id=sub", status=404)


def test_bad_invoice_queries_and_one_offs_are_refused_in_lagos_format(
    api_at: falcon.testing.TestClient, tenant: IssuedKey
) -> None:
    account = Account(api_at, tenant, in_advance=False)
    account.call("POST", "add_ons", {"add_on": {"name": "Setup", "code": "setup", "amount_cents": 100, "amount_currency": "USD"}})

    assert account.call("GET", "customers/cus/past_usage?external_subscription_id=sub&periods_count=abc",
                        status=422)["error_details"] == {"periods_count": ["value_is_invalid"]}
    assert account.call("GET", "fees?fee_type=bogus", status=422)["error_details"] == {"fee_type": ["value_is_invalid"]}
    assert account.call("POST", "invoices", {"invoice": {"external_customer_id": "cus", "currency": "XXX",
                                                         "fees": [{"add_on_code": "setup"}]}},
                        status=422)["error_details"] == {"currency": ["value_is_invalid"]}
    assert account.call("GET", "invoices")["meta"]["total_count"] == 0


def test_invoice_now_bills_usage_so_far_and_the_period_invoice_bills_the_rest(
    shared_store: Store, tenant: IssuedKey
) -> None:
    """5 calls invoiced on Apr 10 (10 cents, at once); 3 more by the close: May 1 bills the $30 fee and the period's
    8 calls (16) less the 10 already invoiced, as a progressive-billing credit: 3006."""
    now = [datetime(2026, 4, 10, 12, tzinfo=UTC)]
    api = falcon.testing.TestClient(
        create_app(shared_store.billing, shared_store.metering, shared_store.readers, clock=lambda: now[0]))
    account = Account(api, tenant, in_advance=False, started="2026-04-01T00:00:00Z")
    account.send(5, at=int(datetime(2026, 4, 5, tzinfo=UTC).timestamp()))

    early = account.call("POST", "subscriptions/sub/invoice_now")["invoice"]
    refused = account.call("POST", "subscriptions/sub/invoice_now", status=422)
    account.send(3, at=int(datetime(2026, 4, 20, tzinfo=UTC).timestamp()))
    now[0] = datetime(2026, 5, 1, 1, tzinfo=UTC)
    Invoicing(shared_store.billing, shared_store.readers).run_due(now[0])

    assert (early["invoice_type"], early["status"], _fees(early)) == ("progressive_billing", "finalized", [("charge", 10)])
    assert early["billing_periods"][0]["charges_to_datetime"] == "2026-04-10T12:00:00Z"
    assert refused["error_details"] == {"usage": ["no_usage_to_invoice"]}
    [periodic] = [i for i in account.invoices() if i["billing_periods"][0]["invoicing_reason"] == "subscription_periodic"]
    assert _fees(periodic) == [("subscription", 3000), ("charge", 16)]
    assert periodic["fees"][1]["units"] == "8.0"
    assert (periodic["progressive_billing_credit_amount_cents"], periodic["total_amount_cents"]) == (10, 3006)
    account.call("POST", "subscriptions/nobody/invoice_now", status=404)
    account.call("DELETE", "subscriptions/sub")
    account.call("POST", "subscriptions/sub/invoice_now", status=404)


def test_p7_an_in_advance_plan_is_invoiced_when_its_trial_ends(shared_store: Store, tenant: IssuedKey) -> None:
    """In advance from Mar 16 with 14 trial days: nothing at start or during the trial; on Mar 30 the scheduler
    invoices the 2 days left of March (2 × 3000 / 31 = 194); Apr 1 bills April in full."""
    now = [datetime(2026, 3, 16, 9, tzinfo=UTC)]
    api = falcon.testing.TestClient(
        create_app(shared_store.billing, shared_store.metering, shared_store.readers, clock=lambda: now[0]))
    account = Account(api, tenant, in_advance=True, trial_days=14, started="2026-03-16T09:00:00Z")
    invoicing = Invoicing(shared_store.billing, shared_store.readers)
    assert account.invoices() == []

    invoicing.run_due(datetime(2026, 3, 29, 23, tzinfo=UTC))
    assert account.invoices() == []
    invoicing.run_due(datetime(2026, 3, 30, 9, 30, tzinfo=UTC))
    invoicing.run_due(datetime(2026, 4, 1, 1, tzinfo=UTC))

    invoices = account.invoices()
    assert [(i["issuing_date"], i["billing_periods"][0]["invoicing_reason"], _fees(i)) for i in invoices] == [
        ("2026-03-30", "subscription_starting", [("subscription", 194)]),
        ("2026-04-01", "subscription_periodic", [("subscription", 3000)]),
    ]


def test_recurring_usage_is_carried_into_every_later_period(
    api_at: falcon.testing.TestClient, tenant: IssuedKey, invoicing: Invoicing
) -> None:
    """A recurring sum (seats, $2 each): 10 added in March, 3 removed in April, none in May: the invoices of
    Apr 1, May 1 and Jun 1 bill 10, 7 and 7 seats."""
    account = Account(api_at, tenant, in_advance=False)
    seats = account.call("POST", "billable_metrics", {"billable_metric": {
        "name": "Seats", "code": "seats", "aggregation_type": "sum_agg", "field_name": "n", "recurring": True}})
    account.call("POST", "plans/base/charges", {"charge": {
        "billable_metric_id": seats["billable_metric"]["lago_id"], "charge_model": "standard", "code": "seats",
        "properties": {"amount": "2"}}})
    for transaction, day, n in (("s1", datetime(2026, 3, 20, tzinfo=UTC), 10), ("s2", datetime(2026, 4, 20, tzinfo=UTC), -3)):
        account.call("POST", "events", {"event": {"transaction_id": transaction, "external_subscription_id": "sub",
                                                  "code": "seats", "timestamp": int(day.timestamp()), "properties": {"n": n}}})

    invoicing.run_due(datetime(2026, 6, 2, tzinfo=UTC))

    seat_fees = [[(f["units"], f["amount_cents"]) for f in i["fees"] if f["item"]["code"] == "seats"]
                 for i in account.invoices()]
    assert seat_fees == [[("10.0", 2000)], [("7.0", 1400)], [("7.0", 1400)]]


def test_p4_an_arrears_plan_terminated_on_april_tenth_bills_ten_days(shared_store: Store, tenant: IssuedKey) -> None:
    """$30 in arrears from Apr 1, terminated on Apr 10: 10 × 3000 / 30 = 1000, invoiced at once."""
    api = falcon.testing.TestClient(create_app(shared_store.billing, shared_store.metering, shared_store.readers,
                                               clock=lambda: datetime(2026, 4, 10, 18, tzinfo=UTC)))
    account = Account(api, tenant, in_advance=False, started="2026-04-01T00:00:00Z")

    account.call("DELETE", "subscriptions/sub")

    [final] = account.invoices()
    assert final["billing_periods"][0]["invoicing_reason"] == "subscription_terminating"
    assert _fees(final) == [("subscription", 1000)]


def test_i2_numbers_per_organization_and_per_customer(
    api_at: falcon.testing.TestClient, tenant: IssuedKey, invoicing: Invoicing
) -> None:
    """Per organization: ``ACM-<YYYYMM>-<organization sequence>``; per customer (the default):
    ``<prefix>-<customer number>-<customer's invoice sequence>``, customers numbered as first invoiced."""
    account = Account(api_at, tenant, in_advance=False)
    account.call("POST", "customers", {"customer": {"external_id": "second", "name": "Second"}})
    account.call("POST", "subscriptions", {"subscription": {"external_customer_id": "second", "plan_code": "base",
                                                            "external_id": "sub2", "subscription_at": "2026-03-20T00:00:00Z"}})
    invoicing.run_due(datetime(2026, 4, 1, 1, tzinfo=UTC))
    prefix = account.call("GET", "organizations")["organization"]["document_number_prefix"]
    per_customer = sorted(i["number"] for i in account.call("GET", "invoices")["invoices"])
    account.call("PUT", "organizations", {"organization": {"document_numbering": "per_organization",
                                                           "document_number_prefix": "ACM"}})

    invoicing.run_due(datetime(2026, 5, 1, 1, tzinfo=UTC))

    numbers = sorted(i["number"] for i in account.call("GET", "invoices?issuing_date_from=2026-05-01")["invoices"])
    assert per_customer == [f"{prefix}-001-001", f"{prefix}-002-001"]
    assert numbers == ["ACM-202605-001", "ACM-202605-002"]


def test_a_pass_whose_batch_meets_a_concurrent_close_still_invoices_each_period_once(
    api_at: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store, shared_database_url: str
) -> None:
    """Another closer wins while the pass's batch loads: the batch stores nothing, then each is closed alone, once."""
    account = Account(api_at, tenant, in_advance=False)
    account.send(5)
    account.call("POST", "subscriptions", {"subscription": {
        "external_customer_id": "cus-2", "plan_code": "base", "external_id": "sub-2", "subscription_at": "2026-03-16T00:00:00Z"}})
    subscription = shared_store.readers.subscriptions.by_external_id(tenant.organization_id, "sub", "active")
    assert subscription is not None
    billing, other = shared_store.billing, Billing(env=application_env(shared_database_url), new_id=uuid4)
    select_aggregates = billing.recorder.select_aggregates  # type: ignore[attr-defined]
    raced: list[UUID | None] = []

    def racing(ids: Any, **kwargs: Any) -> Any:
        found = select_aggregates(ids, **kwargs)
        if kwargs.get("from_snapshots") and not raced:  # a batch of closes has loaded its subscriptions
            raced.append(other.close_period(subscription.id, datetime(2026, 4, 1, tzinfo=UTC), [], TaxTable({}, (), ()),
                                            (0, 0), NOW))
        return found

    billing.recorder.select_aggregates = racing  # type: ignore[attr-defined]
    try:
        done = Invoicing(billing, shared_store.readers).run_due(NOW)
    finally:
        billing.recorder.select_aggregates = select_aggregates  # type: ignore[attr-defined]
        other.close()

    first, second = sorted(account.invoices(), key=lambda i: i["customer"]["external_id"])
    assert raced == [UUID(first["lago_id"])] and done.failed == 0
    assert _fees(first) == [("subscription", 1548)]  # the other closer's figures: it was given no usage
    assert _fees(second) == [("subscription", 1548)]
