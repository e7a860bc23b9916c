"""Pay-in-advance charges through the API: every event invoiced as it arrives, above a high-water mark (C10)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import falcon.testing
import pytest

from domain.api_key import IssuedKey
from interfaces.http.app import create_app
from application.invoicing import Invoicing
from interfaces.store import Store
from projections import runner, worker
from tests.conftest import bearer

NOW = datetime(2026, 4, 10, 12, tzinfo=UTC)


@pytest.fixture
def api(shared_store: Store) -> Iterator[falcon.testing.TestClient]:
    yield falcon.testing.TestClient(
        create_app(shared_store.billing, shared_store.metering, shared_store.readers, clock=lambda: NOW))


class Seats:
    """A $10 arrears plan whose charges are paid in advance: storage (sum, $1 a GB), calls (count, 5 cents),
    seats (unique count, $3), each billed per event."""

    def __init__(self, api: falcon.testing.TestClient, key: IssuedKey, store: Store) -> None:
        self.api, self.key = api, key
        self.invoicing = Invoicing(store.billing, store.readers)
        charges = []
        for code, aggregation, field, amount in (("storage", "sum_agg", "gb", "1"), ("calls", "count_agg", None, "0.05"),
                                                 ("seats", "unique_count_agg", "user", "3")):
            metric = self.call("POST", "billable_metrics", {"billable_metric": {
                "name": code.title(), "code": code, "aggregation_type": aggregation, "field_name": field}})
            charges.append({"billable_metric_id": metric["billable_metric"]["lago_id"], "charge_model": "standard",
                            "pay_in_advance": True, "properties": {"amount": amount}})
        self.call("POST", "plans", {"plan": {"name": "Seats", "code": "seats", "interval": "monthly", "amount_cents": 1000,
                                             "amount_currency": "USD", "pay_in_advance": False, "charges": charges}})
        self.call("POST", "customers", {"customer": {"external_id": "cus", "name": "Zoë"}})
        self.call("POST", "subscriptions", {"subscription": {"external_customer_id": "cus", "plan_code": "seats",
                                                             "external_id": "sub", "subscription_at": "2026-04-01T00:00:00Z"}})
        self.sent = 0

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, status: int = 200) -> dict[str, Any]:
        response = self.api.simulate_request(method, f"/api/v1/{path}", headers=bearer(self.key), json=body)
        assert response.status_code == status, (path, response.text)
        return dict(response.json) if response.text else {}

    def send(self, code: str, **properties: Any) -> None:
        self.sent += 1
        self.call("POST", "events", {"event": {
            "transaction_id": f"t{self.sent}", "external_subscription_id": "sub", "code": code,
            "timestamp": int(datetime(2026, 4, 5, tzinfo=UTC).timestamp()) + self.sent, "properties": properties}})

    def billed(self) -> list[tuple[str, int, str]]:
        """Each in-advance invoice as (metric, cents, units), oldest first."""
        self.invoicing.bill_advance_charges(NOW)
        invoices = self.call("GET", "invoices?per_page=100")["invoices"]
        found = []
        for listed in sorted(invoices, key=lambda i: i["number"]):
            invoice = self.call("GET", f"invoices/{listed['lago_id']}")["invoice"]
            if invoice["billing_periods"][0]["invoicing_reason"] != "in_advance_charge":
                continue
            [fee] = invoice["fees"]
            found.append((fee["item"]["code"], fee["amount_cents"], fee["units"]))
        return found


def test_c10_sum_charges_bill_only_rises_above_the_high_water_mark(
    api: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store
) -> None:
    """$1 a unit: +5 → $5; +3 → $3; −4 → nothing (level 4); +6 → level 10 over a maximum of 8 → 2 units, $2."""
    seats = Seats(api, tenant, shared_store)
    for gb in (5, 3, -4, 6):
        seats.send("storage", gb=gb)

    assert seats.billed() == [("storage", 500, "5.0"), ("storage", 300, "3.0"), ("storage", 200, "2.0")]


def test_c10_each_event_of_a_count_charge_is_one_unit_and_unique_counts_bill_new_values(
    api: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store
) -> None:
    """Seats: ann (1), ann again (0), bob (1), ann removed (level 1), cyd (level 2, not above 2: 0)."""
    seats = Seats(api, tenant, shared_store)
    seats.send("calls")
    seats.send("calls")
    for user, operation in (("ann", "add"), ("ann", "add"), ("bob", "add"), ("ann", "remove"), ("cyd", "add")):
        seats.send("seats", user=user, operation_type=operation)

    assert seats.billed() == [("calls", 5, "1.0"), ("calls", 5, "1.0"), ("seats", 300, "1.0"), ("seats", 300, "1.0")]


def test_c10_invoices_are_finalized_at_once_and_the_period_close_does_not_bill_them_again(
    api: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store
) -> None:
    seats = Seats(api, tenant, shared_store)
    seats.send("storage", gb=2)
    seats.billed()

    Invoicing(shared_store.billing, shared_store.readers).run_due(datetime(2026, 5, 1, 1, tzinfo=UTC))

    invoices = [seats.call("GET", f"invoices/{i['lago_id']}")["invoice"]
                for i in seats.call("GET", "invoices")["invoices"]]
    by_reason = {i["billing_periods"][0]["invoicing_reason"]: i for i in invoices}
    advance = by_reason["in_advance_charge"]
    assert (advance["status"], advance["total_amount_cents"], advance["fees"][0]["pay_in_advance"]) == ("finalized", 200, True)
    assert advance["fees"][0]["event_transaction_id"] == "t1"
    assert [(f["item"]["type"], f["amount_cents"]) for f in by_reason["subscription_periodic"]["fees"]] == [
        ("subscription", 1000)]


def test_c10_an_event_is_billed_once_however_often_the_queue_is_drained_or_the_log_replayed(
    api: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store
) -> None:
    seats = Seats(api, tenant, shared_store)
    seats.send("storage", gb=5)
    first = seats.billed()

    runner.rebuild(shared_store.pool, [p for p in shared_store.projectors if p.name == "usage"])
    again = seats.billed()

    assert first == again == [("storage", 500, "5.0")]


def test_c10_the_projection_worker_invoices_events_as_they_arrive(
    api: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store
) -> None:
    """With ``tally worker``'s loop running, an event's invoice appears without anyone asking for it."""
    seats = Seats(api, tenant, shared_store)
    stop = threading.Event()
    invoicing = Invoicing(shared_store.billing, shared_store.readers)
    loop = threading.Thread(target=worker.run, args=(shared_store.projectors, shared_store.url, stop),
                            kwargs={"idle_seconds": 0.05, "after_round": lambda: invoicing.bill_advance_charges(NOW)})
    loop.start()
    try:
        seats.send("calls")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not _queue_drained(shared_store, seats):
            time.sleep(0.05)
    finally:
        stop.set()
        loop.join()

    listed = seats.call("GET", "invoices")["invoices"]
    assert [i["total_amount_cents"] for i in listed] == [5]


def _queue_drained(store: Store, seats: Seats) -> bool:
    with store.pool.connection() as conn:
        queued = conn.execute("SELECT count(*) FROM advance_charge_queue").fetchone()[0]
    listed = seats.call("GET", "invoices")["invoices"]
    return queued == 0 and len(listed) == 1
