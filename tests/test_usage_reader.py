"""Usage for billing: many subscriptions read at once give what each one read alone gives."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import falcon.testing
import pytest

from domain.api_key import IssuedKey
from interfaces.http.app import create_app
from interfaces.store import Store
from tests.conftest import bearer

NOW = datetime.fromisoformat("2026-04-29T12:00:00+00:00")
APRIL = datetime.fromisoformat("2026-04-01T00:00:00+00:00")


@pytest.fixture
def api_at(shared_store: Store) -> Iterator[falcon.testing.TestClient]:
    yield falcon.testing.TestClient(
        create_app(shared_store.billing, shared_store.metering, shared_store.readers, clock=lambda: NOW))


def _call(api: falcon.testing.TestClient, key: IssuedKey, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = api.simulate_request("POST", f"/api/v1/{path}", headers=bearer(key), json=body)
    assert response.status_code == 200, (path, response.text)
    return dict(response.json)


def test_usage_of_many_subscriptions_read_at_once_is_each_ones_usage(
    api_at: falcon.testing.TestClient, tenant: IssuedKey, shared_store: Store
) -> None:
    """Sums, unique counts (plain and recurring, with carried values) and percentages with their free heads."""
    charges = []
    for code, metric, charge in (
        ("tokens", {"aggregation_type": "sum_agg", "field_name": "v"}, {"charge_model": "standard", "properties": {"amount": "0.5"}}),
        ("users", {"aggregation_type": "unique_count_agg", "field_name": "user"}, {"charge_model": "standard", "properties": {"amount": "2"}}),
        ("seats", {"aggregation_type": "unique_count_agg", "field_name": "user", "recurring": True},
         {"charge_model": "standard", "properties": {"amount": "3"}}),
        ("payments", {"aggregation_type": "sum_agg", "field_name": "v"},
         {"charge_model": "percentage", "properties": {"rate": "2", "fixed_amount": "0.30", "free_units_per_events": 2}}),
    ):
        created = _call(api_at, tenant, "billable_metrics", {"billable_metric": {"name": code, "code": code, **metric}})
        charges.append({"billable_metric_id": created["billable_metric"]["lago_id"], **charge})
    _call(api_at, tenant, "plans", {"plan": {"name": "p", "code": "p", "interval": "monthly", "amount_cents": 100,
                                             "amount_currency": "USD", "pay_in_advance": False, "charges": charges}})
    subscriptions = []
    for number in range(3):
        created = _call(api_at, tenant, "subscriptions", {"subscription": {
            "external_customer_id": f"cus-{number}", "plan_code": "p", "external_id": f"sub-{number}",
            "subscription_at": "2026-03-01T00:00:00Z"}})
        subscriptions.append(UUID(created["subscription"]["lago_id"]))
    events = []
    for number in range(2):  # the third subscription has no usage
        for day in range(-10, 8):
            at = APRIL + timedelta(days=day)
            events.extend([
                {"code": "tokens", "properties": {"v": day + 20 * number}},
                {"code": "users", "properties": {"user": f"u{day % (3 + number)}"}},
                {"code": "seats", "properties": {"user": f"s{day % 5}" if day < 0 else "s0",
                                                 "operation_type": "remove" if day == 5 else "add"}},
                {"code": "payments", "properties": {"v": 10 * (day + 11)}},
            ])
            for event in events[-4:]:
                event.update(transaction_id=uuid4().hex, external_subscription_id=f"sub-{number}",
                             timestamp=int(at.timestamp()))
    for start in range(0, len(events), 100):
        _call(api_at, tenant, "events/batch", {"events": events[start:start + 100]})
    reader = shared_store.readers.usage
    wanted = [(subscription_id, NOW) for subscription_id in subscriptions] + [(uuid4(), NOW)]

    together, positions = reader.for_billing_many(wanted)

    alone = [reader.for_billing(subscription_id, at) for subscription_id, at in wanted]
    assert together == [usage for usage, _ in alone]
    assert all(p == positions for _, p in alone)
    assert together[-1] is None and together[0] is not None and together[0].amount_cents > 0
