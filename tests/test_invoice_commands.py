"""Closing periods through the Billing service on Postgres: exactly once, numbered, with provenance."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from domain.application import Billing, ConcurrentWrite
from domain.batched_invoicing import PeriodToClose
from domain.invoice import DRAFT, FINALIZED, Invoice
from domain.period_close import TaxTable
from interfaces.store import application_env

NO_TAXES = TaxTable({}, (), ())
CREATED = datetime(2024, 3, 25, 12, tzinfo=UTC)


@pytest.fixture
def billing(database_url: str) -> Iterator[Billing]:
    app = Billing(env=application_env(database_url), new_id=uuid4)
    yield app
    app.close()


def _subscribe(billing: Billing, *, in_advance: bool, started: str = "2024-03-16T00:00:00+00:00",
               grace: int | None = None, **customer: Any) -> tuple[UUID, UUID]:
    organization_id = billing.create_organization("Acme").organization_id
    billing.upsert_customer(organization_id, {"external_id": "cus", **customer,
                                              "billing_configuration": {"invoice_grace_period": grace}}, CREATED)
    billing.create_plan(organization_id, {"name": "Base", "code": "base", "interval": "monthly", "amount_cents": 3000,
                                          "amount_currency": "USD", "pay_in_advance": in_advance}, CREATED)
    subscription_id = billing.create_subscription(organization_id, {
        "external_customer_id": "cus", "plan_code": "base", "external_id": "sub",
        "subscription_at": datetime.fromisoformat(started)}, CREATED)
    return organization_id, subscription_id


def _invoice(billing: Billing, invoice_id: UUID | None) -> Invoice:
    assert invoice_id is not None
    invoice = billing.repository.get(invoice_id)
    assert isinstance(invoice, Invoice)
    return invoice


def test_closing_a_period_twice_issues_one_invoice(billing: Billing) -> None:
    organization_id, subscription_id = _subscribe(billing, in_advance=False)
    april = datetime(2024, 4, 1, tzinfo=UTC)

    first = billing.close_period(subscription_id, april, [], NO_TAXES, (1, 2), CREATED)
    again = billing.close_period(subscription_id, april, [], NO_TAXES, (1, 2), CREATED)

    invoice = _invoice(billing, first)
    assert again is None
    assert (invoice.status, invoice.number, invoice.totals.fees_amount_cents) == (FINALIZED, "ACM-" + str(organization_id)[-4:].upper() + "-001-001", 1548)
    assert invoice.provenance.metering_position == 2 and len(invoice.provenance.digest) == 64
    assert billing.repository.get(subscription_id).billed_until == april


def test_concurrent_closers_of_one_period_store_one_invoice(billing: Billing, database_url: str) -> None:
    _, subscription_id = _subscribe(billing, in_advance=False)
    april = datetime(2024, 4, 1, tzinfo=UTC)
    others = [Billing(env=application_env(database_url), new_id=uuid4) for _ in range(4)]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda app: app.close_period(subscription_id, april, [], NO_TAXES, (1, 2), CREATED), others))
    for app in others:
        app.close()

    assert len([r for r in results if r is not None]) == 1
    assert billing.repository.get(subscription_id).version == 3  # created, dated, then closed once


def test_invoice_numbers_follow_each_other_per_customer(billing: Billing) -> None:
    organization_id, subscription_id = _subscribe(billing, in_advance=False)

    numbers = [_invoice(billing, billing.close_period(subscription_id, boundary, [], NO_TAXES, (0, 0), CREATED)).number
               for boundary in (datetime(2024, 4, 1, tzinfo=UTC), datetime(2024, 5, 1, tzinfo=UTC))]

    prefix = billing.organization(organization_id).settings.document_number_prefix
    assert numbers == [f"{prefix}-001-001", f"{prefix}-001-002"]


def test_a_grace_period_leaves_a_draft_until_finalized(billing: Billing) -> None:
    organization_id, subscription_id = _subscribe(billing, in_advance=False, grace=3)

    invoice_id = billing.close_period(subscription_id, datetime(2024, 4, 1, tzinfo=UTC), [], NO_TAXES, (0, 0), CREATED)
    draft = _invoice(billing, invoice_id)
    assert (draft.status, draft.number, draft.expected_finalization_date.isoformat()) == (DRAFT, None, "2024-04-04")

    billing.finalize_invoice(organization_id, draft.id, CREATED + timedelta(days=10))
    assert _invoice(billing, invoice_id).status == FINALIZED


def test_an_in_advance_start_is_invoiced_once_and_a_termination_bills_the_rest(billing: Billing) -> None:
    organization_id, subscription_id = _subscribe(billing, in_advance=False, started="2024-03-25T12:00:00+00:00")
    assert billing.invoice_start(subscription_id, NO_TAXES, (0, 0), CREATED) is None  # arrears: nothing at start

    billing.terminate_subscription(organization_id, "sub", datetime(2024, 3, 28, 9, tzinfo=UTC))
    final = billing.invoice_termination(subscription_id, [], NO_TAXES, (0, 0), CREATED)

    assert _invoice(billing, final).totals.fees_amount_cents == 387  # 4 days × 3000 / 31
    assert billing.invoice_termination(subscription_id, [], NO_TAXES, (0, 0), CREATED) is None


def _subscribers(billing: Billing, customers: list[str]) -> tuple[UUID, list[UUID]]:
    """An organization with one arrears subscription, since March 16, for each customer named (repeats allowed)."""
    organization_id = billing.create_organization("Acme").organization_id
    billing.create_plan(organization_id, {"name": "Base", "code": "base", "interval": "monthly", "amount_cents": 3000,
                                          "amount_currency": "USD", "pay_in_advance": False}, CREATED)
    subscription_ids = [billing.create_subscription(organization_id, {
        "external_customer_id": customer, "plan_code": "base", "external_id": f"sub-{number}",
        "subscription_at": datetime(2024, 3, 16, tzinfo=UTC)}, CREATED) for number, customer in enumerate(customers)]
    return organization_id, subscription_ids


def _inserts(billing: Billing) -> list[int]:
    """Events per insert into the Billing log from now on."""
    inserted: list[int] = []
    insert_events = billing.recorder.insert_events

    def counting(stored_events: Any, **kwargs: Any) -> Any:
        inserted.append(len(stored_events))
        return insert_events(stored_events, **kwargs)

    billing.recorder.insert_events = counting  # type: ignore[method-assign]
    return inserted


@pytest.fixture(params=["memory", "postgres"])
def any_billing(request: pytest.FixtureRequest) -> Iterator[Billing]:
    if request.param == "memory":
        app = Billing(env={"MAPPER_TOPIC": "interfaces.event_codec:MsgspecMapper"}, new_id=uuid4)
    else:
        app = Billing(env=application_env(request.getfixturevalue("database_url")), new_id=uuid4)
    yield app
    app.close()


def test_a_batch_of_closes_is_one_insert_numbered_as_closes_one_at_a_time_would_be(any_billing: Billing) -> None:
    """Four periods, one customer with two subscriptions: one insert, customers and invoices numbered in order."""
    billing = any_billing
    organization_id, subscription_ids = _subscribers(billing, ["cus-a", "cus-b", "cus-a", "cus-c"])
    april = datetime(2024, 4, 1, tzinfo=UTC)
    closes = [PeriodToClose(s, april, [], NO_TAXES, (1, 2)) for s in subscription_ids]
    inserted = _inserts(billing)

    issued = billing.close_periods(closes, CREATED)
    again = billing.close_periods(closes, CREATED)

    prefix = billing.organization(organization_id).settings.document_number_prefix
    assert [_invoice(billing, i).number for i in issued] == [
        f"{prefix}-001-001", f"{prefix}-002-001", f"{prefix}-001-002", f"{prefix}-003-001"]
    assert again == [None] * 4
    assert len(inserted) == 1
    assert [billing.repository.get(s).billed_until for s in subscription_ids] == [april] * 4


def test_scheduling_many_subscriptions_is_one_insert(any_billing: Billing) -> None:
    """Each started subscription gets its first boundary; all are recorded together, and only once."""
    billing = any_billing
    _, subscription_ids = _subscribers(billing, ["cus-a", "cus-b", "cus-a"])
    inserted = _inserts(billing)

    boundaries = billing.schedule_billings(subscription_ids)
    billing.schedule_billings(subscription_ids)

    assert boundaries == [datetime(2024, 4, 1, tzinfo=UTC)] * 3
    assert inserted == [3]
    assert [billing.repository.get(s).next_close_at for s in subscription_ids] == boundaries

def test_a_batch_that_meets_a_concurrent_close_stores_nothing_then_one_at_a_time_finishes_it(
    billing: Billing, database_url: str
) -> None:
    """Another closer saves first: the batch is refused whole; closing each alone skips the done one, numbers the rest."""
    organization_id, subscription_ids = _subscribers(billing, ["cus-a", "cus-b", "cus-c"])
    april = datetime(2024, 4, 1, tzinfo=UTC)
    closes = [PeriodToClose(s, april, [], NO_TAXES, (1, 2)) for s in subscription_ids]
    other = Billing(env=application_env(database_url), new_id=uuid4)
    select_aggregates = billing.recorder.select_aggregates  # type: ignore[attr-defined]

    def then_another_closes_the_second(ids: Any, **kwargs: Any) -> Any:
        found = select_aggregates(ids, **kwargs)
        if not kwargs.get("from_snapshots"):  # the batch has loaded the subscriptions
            other.close_period(subscription_ids[1], april, [], NO_TAXES, (1, 2), CREATED)
        return found

    billing.recorder.select_aggregates = then_another_closes_the_second  # type: ignore[attr-defined]
    with pytest.raises(ConcurrentWrite):
        billing.close_periods(closes, CREATED)
    billing.recorder.select_aggregates = select_aggregates  # type: ignore[attr-defined]
    other.close()

    assert [billing.repository.get(s).billed_until for s in subscription_ids] == [None, april, None]
    alone = [billing.close_period(c.subscription_id, c.boundary, c.buckets, c.taxes, c.positions, CREATED) for c in closes]
    prefix = billing.organization(organization_id).settings.document_number_prefix
    assert alone[1] is None
    assert [_invoice(billing, i).number for i in (alone[0], alone[2])] == [f"{prefix}-002-001", f"{prefix}-003-001"]
