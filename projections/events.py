"""Reading stored usage events, and explaining where each one counts (or why it does not)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from psycopg import sql
from psycopg_pool import ConnectionPool

from domain.periods import Period
from domain.usage import contribution
from domain.usage_event import parse_properties
from projections.freshness import Freshness
from projections.usage import USAGE_READS, contexts_by_keys, place


@dataclass(frozen=True)
class StoredUsageEvent:
    id: UUID
    transaction_id: str
    external_subscription_id: str | None
    code: str
    occurred_at: datetime
    properties: str  # the JSON text, numbers exact
    precise_total_amount_cents: Decimal | None
    received_at: datetime
    organization_id: UUID

    @property
    def values(self) -> dict[str, Any]:
        return parse_properties(self.properties)


@dataclass(frozen=True)
class Explanation:
    """Where an event counts now: subscription × charge × period × filter × group, or the reason it does not."""

    customer_id: UUID | None = None
    subscription_id: UUID | None = None
    counts_for: list[dict[str, Any]] = field(default_factory=list)
    reason: str | None = None


_COLUMNS = sql.SQL(
    "SELECT id, transaction_id, external_subscription_id, code, occurred_at, properties::text, "
    "precise_total_amount_cents, received_at, organization_id FROM usage_events"
)


class EventsReader:
    def __init__(self, pool: ConnectionPool[Any], freshness: Freshness) -> None:
        self._pool = pool
        self._freshness = freshness

    def page(
        self,
        organization_id: UUID,
        offset: int,
        limit: int,
        *,
        code: str | None = None,
        external_subscription_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> tuple[list[StoredUsageEvent], int]:
        self._freshness.wait(["usage"])
        where = [sql.SQL("organization_id = %s")]
        params: list[Any] = [organization_id]
        for column, operator, value in (("code", "=", code), ("external_subscription_id", "=", external_subscription_id),
                                        ("occurred_at", ">=", since), ("occurred_at", "<=", until)):
            if value is not None:
                where.append(sql.SQL("{} " + operator + " %s").format(sql.Identifier(column)))
                params.append(value)
        clause = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where)
        with self._pool.connection() as conn:
            total = conn.execute(sql.SQL("SELECT count(*) FROM usage_events") + clause, params).fetchone()[0]
            rows = conn.execute(_COLUMNS + clause + sql.SQL(" ORDER BY position DESC LIMIT %s OFFSET %s"),
                                [*params, limit, offset]).fetchall()
        return [StoredUsageEvent(*row) for row in rows], total

    def by_transaction(self, organization_id: UUID, transaction_id: str,
                       external_subscription_id: str | None = None) -> StoredUsageEvent | None:
        self._freshness.wait(["usage"])
        query = _COLUMNS + sql.SQL(" WHERE organization_id = %s AND transaction_id = %s")
        params: list[Any] = [organization_id, transaction_id]
        if external_subscription_id is not None:
            query += sql.SQL(" AND external_subscription_id = %s")
            params.append(external_subscription_id)
        with self._pool.connection() as conn:
            row = conn.execute(query + sql.SQL(" ORDER BY position LIMIT 1"), params).fetchone()
        return None if row is None else StoredUsageEvent(*row)

    def explain(self, event: StoredUsageEvent) -> Explanation:
        """The same routing the usage projection applies, told in words."""
        self._freshness.wait(USAGE_READS)
        if not event.external_subscription_id:
            return Explanation(reason="the event names no external_subscription_id")
        with self._pool.connection() as conn:
            cursor = conn.cursor()
            known = cursor.execute(
                "SELECT id, customer_id, status FROM subscriptions WHERE organization_id = %s AND %s = ANY(keys) "
                "ORDER BY created_at DESC",
                (event.organization_id, event.external_subscription_id),
            ).fetchall()
            metric = cursor.execute(
                "SELECT 1 FROM billable_metrics WHERE organization_id = %s AND key = %s AND deleted_at IS NULL",
                (event.organization_id, event.code),
            ).fetchone()
            contexts = contexts_by_keys(cursor, [(event.organization_id, event.external_subscription_id)])
        if not known:
            return Explanation(reason=f"no subscription has the external id {event.external_subscription_id!r} (yet); "
                                      "the event will count once one does")
        customer_id = known[0][1]
        if metric is None:
            return Explanation(customer_id=customer_id, subscription_id=known[0][0],
                               reason=f"no billable metric has the code {event.code!r} (yet); "
                                      "the event will count once one does and a plan charges it")
        started = contexts.get((event.organization_id, event.external_subscription_id), [])
        if not started:
            return Explanation(customer_id=customer_id, subscription_id=known[0][0],
                               reason="the subscription has not started yet")
        counts: list[dict[str, Any]] = []
        reasons: list[str] = []
        for context in started:
            charged = [(c, m) for c, m in context.charges if m.code == event.code]
            if not charged:
                reasons.append(f"subscription {context.id} has no charge on metric {event.code!r}")
            for charge, metric_definition in charged:
                placement = place(context, metric_definition, event.occurred_at)
                if placement is None:
                    reasons.append(f"the event's time is outside subscription {context.id}'s active span")
                    continue
                counted = contribution(metric_definition, charge, event.values)
                if counted is None:
                    reasons.append(f"property {metric_definition.field_name!r} is missing or not a number")
                    continue
                period: Period | None = placement[1]
                counts.append({
                    "lago_subscription_id": str(context.id),
                    "charge_code": charge.code,
                    "lago_charge_id": str(charge.id),
                    "from_datetime": None if period is None else period.starts_at.isoformat(),
                    "to_datetime": None if period is None else period.lago_ending_at().isoformat(),
                    "carried_in": period is None,
                    "lago_charge_filter_id": None if counted.filter_id.int == 0 else str(counted.filter_id),
                    "pricing_group": counted.group or None,
                })
        subscription_id = UUID(counts[0]["lago_subscription_id"]) if counts else started[0].id
        return Explanation(customer_id=customer_id, subscription_id=subscription_id, counts_for=counts,
                           reason=None if counts else "; ".join(dict.fromkeys(reasons)))
