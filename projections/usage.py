"""The usage read model: every usage event, and running figures per billable bucket.

A bucket is subscription × charge × charge period × filter × pricing group. Each event
updates the buckets it counts for, a page at a time in one statement per table, so reading
usage never scans events. When the catalog changes under a subscription (its plan, its
metrics, its start or end, its customer's timezone), the subscription's buckets are
recomputed from the stored events: that is how an event sent before its metric or
subscription existed comes to count (issue 4, "beyond Lago").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from functools import singledispatchmethod
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.persistence import Tracking
from psycopg import sql
from psycopg.types.json import Jsonb

from domain.advance_charge import AdvanceUsage
from domain.billable_metric import BillableMetric, MetricDefinition
from domain.charge import Charge
from domain.customer import Customer, CustomerProfile
from domain.organization import Organization
from domain.periods import Period, local_days
from domain.plan import Plan, PlanDefinition
from domain.pricing import allowance_head_length, transaction_amount
from domain.subscription import Subscription, SubscriptionTerms, billing_period
from domain.usage import Contribution, Stats, contribution, epoch
from domain.usage_event import UsageEvent, parse_properties
from projections.documents import jsonb
from projections.projection import Projection, View

# The period key of recurring usage from before the subscription started (year 1, before any period).
CARRY_IN = datetime(1, 1, 1, tzinfo=UTC)
_ROWS = 2_000  # events per recompute batch
# The catalog views this projection reads; the store brings them up to each Billing page first.
USAGE_READS = ("organizations", "billable_metrics", "plans", "customers", "subscriptions")


@dataclass(frozen=True)
class SubscriptionContext:
    """What routing an event for one subscription needs, read from the catalog views."""

    id: UUID
    organization_id: UUID
    keys: tuple[str, ...]
    started_at: datetime
    terminated_at: datetime | None
    terms: SubscriptionTerms
    timezone: str
    interval: str
    charges: tuple[tuple[Charge, MetricDefinition], ...]
    currency: str = "USD"
    tax_codes: tuple[str, ...] = ()

    def codes(self) -> set[str]:
        return {metric.code for _, metric in self.charges}


@dataclass
class _Bucket:
    stats: Stats = field(default_factory=Stats)
    latest_at: datetime | None = None
    latest_position: int = -1


@dataclass(frozen=True)
class StoredEvent:
    id: UUID
    organization_id: UUID
    external_subscription_id: str | None
    code: str
    occurred_at: datetime
    properties: dict[str, Any]
    precise_total_amount_cents: Decimal | None
    position: int
    transaction_id: str = ""


class UsageView(View):
    version = 1
    tables = ("usage_events", "usage_aggregates", "usage_unique_values", "usage_heads", "advance_charge_queue")
    ddl = (
        """
        CREATE TABLE IF NOT EXISTS usage_events (
            id uuid PRIMARY KEY,
            organization_id uuid NOT NULL,
            transaction_id text NOT NULL,
            external_subscription_id text,
            code text NOT NULL,
            occurred_at timestamptz NOT NULL,
            properties jsonb NOT NULL,
            precise_total_amount_cents numeric,
            received_at timestamptz NOT NULL,
            position bigint NOT NULL
        )
        """,
        "CREATE INDEX IF NOT EXISTS usage_events_by_subscription ON usage_events "
        "(organization_id, external_subscription_id, code, occurred_at, position)",
        "CREATE INDEX IF NOT EXISTS usage_events_by_transaction ON usage_events (organization_id, transaction_id)",
        "CREATE INDEX IF NOT EXISTS usage_events_by_arrival ON usage_events (organization_id, position DESC)",
        """
        CREATE TABLE IF NOT EXISTS usage_aggregates (
            subscription_id uuid NOT NULL,
            charge_id uuid NOT NULL,
            period_start timestamptz NOT NULL,
            filter_id uuid NOT NULL,
            group_key text NOT NULL,
            events_count bigint NOT NULL,
            value_sum numeric NOT NULL,
            value_max numeric,
            latest_at timestamptz,
            latest_position bigint,
            latest_value numeric,
            weighted_moment numeric NOT NULL,
            prorated_sum numeric NOT NULL,
            amount_sum numeric NOT NULL,
            rest_clamped numeric NOT NULL DEFAULT 0,
            PRIMARY KEY (subscription_id, charge_id, period_start, filter_id, group_key)
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS usage_unique_values (
            subscription_id uuid NOT NULL,
            charge_id uuid NOT NULL,
            period_start timestamptz NOT NULL,
            filter_id uuid NOT NULL,
            group_key text NOT NULL,
            value text NOT NULL,
            last_at timestamptz NOT NULL,
            last_position bigint NOT NULL,
            last_add boolean NOT NULL,
            PRIMARY KEY (subscription_id, charge_id, period_start, filter_id, group_key, value)
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS usage_heads (
            subscription_id uuid NOT NULL,
            charge_id uuid NOT NULL,
            period_start timestamptz NOT NULL,
            filter_id uuid NOT NULL,
            group_key text NOT NULL,
            occurred_at timestamptz NOT NULL,
            position bigint NOT NULL,
            value numeric NOT NULL,
            PRIMARY KEY (subscription_id, charge_id, period_start, filter_id, group_key, occurred_at, position)
        )
        """,
        # Events of pay-in-advance charges waiting to be invoiced (C10), oldest first; Invoicing drains it.
        """
        CREATE TABLE IF NOT EXISTS advance_charge_queue (
            event_id uuid NOT NULL,
            charge_id uuid NOT NULL,
            subscription_id uuid NOT NULL,
            position bigint NOT NULL,
            usage jsonb NOT NULL,
            PRIMARY KEY (event_id, charge_id, subscription_id)
        )
        """,
        "CREATE INDEX IF NOT EXISTS advance_charge_queue_by_position ON advance_charge_queue (position)",
    )

    def __init__(self) -> None:
        super().__init__()
        self._reset()

    def discard(self) -> None:
        self._reset()

    def _reset(self) -> None:
        """A fresh buffer for the next page."""
        self._events: list[tuple[Any, ...]] = []
        self._new: list[StoredEvent] = []
        self._dirty_subscriptions: set[UUID] = set()
        self._dirty_plans: set[UUID] = set()
        self._dirty_metrics: set[UUID] = set()
        self._dirty_customers: set[UUID] = set()
        self._dirty_organizations: set[UUID] = set()

    # --- what the projection hands over during a page ----------------------------------

    def record(self, event: UsageEvent.Recorded, tracking: Tracking) -> None:
        properties = parse_properties(event.properties)
        self._events.append((
            event.originator_id, event.organization_id, event.transaction_id, event.external_subscription_id,
            event.code, event.occurred_at, Jsonb(properties, dumps=_dumps), event.precise_total_amount_cents,
            event.timestamp, tracking.notification_id,
        ))
        self._new.append(StoredEvent(
            event.originator_id, event.organization_id, event.external_subscription_id, event.code,
            event.occurred_at, properties, event.precise_total_amount_cents, tracking.notification_id,
            event.transaction_id,
        ))

    def subscription_changed(self, subscription_id: UUID) -> None:
        self._dirty_subscriptions.add(subscription_id)

    def plan_changed(self, plan_id: UUID) -> None:
        self._dirty_plans.add(plan_id)

    def metric_changed(self, metric_id: UUID) -> None:
        self._dirty_metrics.add(metric_id)

    def customer_changed(self, customer_id: UUID) -> None:
        self._dirty_customers.add(customer_id)

    def organization_changed(self, organization_id: UUID) -> None:
        self._dirty_organizations.add(organization_id)

    # --- the page's writes ------------------------------------------------------------

    def flush(self) -> None:
        if self._events:
            self.cursor.executemany(
                "INSERT INTO usage_events (id, organization_id, transaction_id, external_subscription_id, code, "
                "occurred_at, properties, precise_total_amount_cents, received_at, position) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                self._events,
            )
        dirty = self._dirty()
        if dirty:
            self._recompute(dirty)
        if self._new:
            router = Router(self.cursor, enqueue=True)
            router.route(self._new, skip=dirty)
            router.write()
            if dirty:  # recomputed from the stored events above, but still new: their in-advance charges are owed
                waiting = Router(self.cursor, enqueue=True, count=False)
                waiting.route(self._new, only=dirty)
                waiting.write()
        self._reset()

    def _dirty(self) -> set[UUID]:
        found = set(self._dirty_subscriptions)
        queries = (
            (self._dirty_plans, "SELECT id FROM subscriptions WHERE plan_id = ANY(%s)"),
            (self._dirty_customers, "SELECT id FROM subscriptions WHERE customer_id = ANY(%s)"),
            (self._dirty_organizations, "SELECT id FROM subscriptions WHERE organization_id = ANY(%s)"),
            (self._dirty_metrics,
             "SELECT DISTINCT s.id FROM subscriptions s JOIN plans p ON p.id = s.plan_id "
             "CROSS JOIN LATERAL jsonb_array_elements(p.data->'charges') c "
             "WHERE (c->>'billable_metric_id')::uuid = ANY(%s)"),
        )
        for ids, query in queries:
            if ids:
                found |= {row[0] for row in self.cursor.execute(query, (list(ids),)).fetchall()}
        return found

    def _recompute(self, subscription_ids: set[UUID]) -> None:
        """Forget the subscriptions' buckets and route all their stored events again."""
        ids = list(subscription_ids)
        for table in ("usage_aggregates", "usage_unique_values", "usage_heads"):
            self.cursor.execute(sql.SQL("DELETE FROM {} WHERE subscription_id = ANY(%s)").format(sql.Identifier(table)), (ids,))
        for context in contexts_by_id(self.cursor, ids):
            router = Router(self.cursor, {(context.organization_id, key): [context] for key in context.keys})
            after: tuple[Any, ...] = (CARRY_IN, -1)
            while True:
                rows = self.cursor.execute(
                    "SELECT id, organization_id, external_subscription_id, code, occurred_at, properties, "
                    "precise_total_amount_cents, position FROM usage_events "
                    "WHERE organization_id = %s AND external_subscription_id = ANY(%s) AND code = ANY(%s) "
                    "AND (occurred_at, position) > (%s, %s) ORDER BY occurred_at, position LIMIT %s",
                    (context.organization_id, list(context.keys), list(context.codes()), *after, _ROWS),
                ).fetchall()
                if not rows:
                    break
                router.route([StoredEvent(*row) for row in rows])
                router.write()
                after = (rows[-1][4], rows[-1][7])


class Router:
    """Routes events to the buckets they count for and writes the page's changes at once."""

    def __init__(self, cursor: Any, contexts: dict[tuple[UUID, str], list[SubscriptionContext]] | None = None, *,
                 enqueue: bool = False, count: bool = True) -> None:
        """``enqueue``: new events also queue their pay-in-advance charges for invoicing (replays do not);
        ``count``: update the buckets (off: only queue)."""
        self._cursor = cursor
        self._contexts = contexts
        self._enqueue = enqueue
        self._counting = count
        self._queued: list[AdvanceUsage] = []
        self._buckets: dict[tuple[Any, ...], _Bucket] = defaultdict(_Bucket)
        self._uniques: dict[tuple[Any, ...], tuple[datetime, int, bool]] = {}
        self._heads: dict[tuple[Any, ...], list[tuple[datetime, int, Decimal]]] = defaultdict(list)
        self._percentage: dict[tuple[Any, ...], Charge] = {}

    def route(self, events: Sequence[StoredEvent], skip: set[UUID] = frozenset(),  # type: ignore[assignment]
              only: set[UUID] | None = None) -> None:
        contexts = self._contexts
        if contexts is None:
            wanted = {(e.organization_id, e.external_subscription_id) for e in events if e.external_subscription_id}
            contexts = contexts_by_keys(self._cursor, wanted)
        for event in events:
            for context in contexts.get((event.organization_id, event.external_subscription_id or ""), ()):
                if context.id not in skip and (only is None or context.id in only):
                    self._count(context, event)

    def _count(self, context: SubscriptionContext, event: StoredEvent) -> None:
        for charge, metric in context.charges:
            if metric.code != event.code:
                continue
            placement = place(context, metric, event.occurred_at)
            if placement is None:
                continue
            period_start, period = placement
            counted = contribution(metric, charge, event.properties)
            if counted is None:
                continue
            if self._enqueue and charge.pay_in_advance and charge.invoiceable and period is not None:
                self._queued.append(AdvanceUsage(
                    event_id=event.id, transaction_id=event.transaction_id, position=event.position,
                    organization_id=context.organization_id, subscription_id=context.id, charge_id=charge.id,
                    metric_id=charge.billable_metric_id, metric_code=metric.code, metric_name=metric.name,
                    aggregation=metric.aggregation_type, period_starts_at=period.starts_at,
                    period_ends_at=period.ends_at, filter_id=counted.filter_id, group=counted.group,
                    value=counted.value, unique=counted.unique, adds=counted.adds, occurred_at=event.occurred_at,
                ))
            if not self._counting:
                continue
            key = (context.id, charge.id, period_start, counted.filter_id, counted.group)
            self._add(key, counted, event, context, charge, period)

    def _add(self, key: tuple[Any, ...], counted: Contribution, event: StoredEvent, context: SubscriptionContext,
             charge: Charge, period: Any) -> None:
        bucket = self._buckets[key]
        value = counted.value if counted.value is not None else Decimal(0)
        stats = bucket.stats
        prorated = Decimal(0)
        if charge.prorated and period is not None:
            prorated = value * remaining_days(event.occurred_at, period, context.timezone)
        bucket.stats = Stats(
            events_count=stats.events_count + 1,
            value_sum=stats.value_sum + value,
            value_max=value if stats.value_max is None or (counted.value is not None and value > stats.value_max) else stats.value_max,
            latest_value=stats.latest_value,
            weighted_moment=stats.weighted_moment + value * epoch(event.occurred_at),
            prorated_sum=stats.prorated_sum + prorated,
            amount_sum=stats.amount_sum + (event.precise_total_amount_cents or Decimal(0)),
        )
        if bucket.latest_at is None or (event.occurred_at, event.position) > (bucket.latest_at, bucket.latest_position):
            bucket.latest_at, bucket.latest_position = event.occurred_at, event.position
            bucket.stats = replace(bucket.stats, latest_value=counted.value)
        if counted.unique is not None:
            unique_key = (*key, counted.unique)
            previous = self._uniques.get(unique_key)
            if previous is None or (event.occurred_at, event.position) > previous[:2]:
                self._uniques[unique_key] = (event.occurred_at, event.position, counted.adds)
        if charge.charge_model == "percentage" and _needs_head(charge):
            self._heads[key].append((event.occurred_at, event.position, value))
            self._percentage[key] = charge

    def write(self) -> None:
        """One upsert per table for everything routed since the last write."""
        if self._buckets:
            self._cursor.executemany(_UPSERT, [_row(key, bucket) for key, bucket in self._buckets.items()])
        if self._uniques:
            self._cursor.executemany(
                "INSERT INTO usage_unique_values VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (subscription_id, charge_id, period_start, filter_id, group_key, value) DO UPDATE SET "
                "last_at = excluded.last_at, last_position = excluded.last_position, last_add = excluded.last_add "
                "WHERE (excluded.last_at, excluded.last_position) > (usage_unique_values.last_at, usage_unique_values.last_position)",
                [(*_db_key(key[:5]), key[5], at, position, adds) for key, (at, position, adds) in self._uniques.items()],
            )
        for key, arrivals in self._heads.items():
            self._advance_head(key, arrivals, self._percentage[key])
        if self._queued:
            self._cursor.executemany(
                "INSERT INTO advance_charge_queue VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                [(u.event_id, u.charge_id, u.subscription_id, u.position, jsonb(u)) for u in self._queued])
            self._queued.clear()
        self._buckets.clear()
        self._uniques.clear()
        self._heads.clear()

    def _advance_head(self, key: tuple[Any, ...], arrivals: list[tuple[datetime, int, Decimal]], charge: Charge) -> None:
        """Keep the earliest events a percentage charge's free allowance needs; sum the rest clamped.

        Inserting an earlier event can only use the allowance up sooner, so events once
        moved to the clamped sum never have to come back.
        """
        where = sql.SQL("subscription_id = %s AND charge_id = %s AND period_start = %s AND filter_id = %s AND group_key = %s")
        db_key = _db_key(key)
        stored = self._cursor.execute(
            sql.SQL("SELECT occurred_at, position, value FROM usage_heads WHERE ") + where + sql.SQL(" ORDER BY occurred_at, position"),
            db_key,
        ).fetchall()
        properties = _bucket_properties(charge, key[3])
        merged = sorted([*map(tuple, stored), *arrivals], key=lambda r: (r[0], r[1]))
        keep = allowance_head_length([r[2] for r in merged], properties)
        spilled = merged[keep:]
        self._cursor.execute(sql.SQL("DELETE FROM usage_heads WHERE ") + where, db_key)
        self._cursor.executemany(
            "INSERT INTO usage_heads VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [(*db_key, at, position, value) for at, position, value in merged[:keep]],
        )
        if spilled:
            spill = sum((transaction_amount(r[2], properties) for r in spilled), Decimal(0))
            self._cursor.execute(sql.SQL("UPDATE usage_aggregates SET rest_clamped = rest_clamped + %s WHERE ") + where, (spill, *db_key))


def _needs_head(charge: Charge) -> bool:
    properties = [charge.properties, *(f.properties for f in charge.filters)]
    return any(
        p.free_units_per_events or p.free_units_per_total_aggregation or p.per_transaction_min_amount is not None
        or p.per_transaction_max_amount is not None
        for p in properties
    )


def _bucket_properties(charge: Charge, filter_id: UUID) -> Any:
    chosen = next((f for f in charge.filters if f.id == filter_id), None)
    return chosen.properties if chosen is not None else charge.properties


def place(context: SubscriptionContext, metric: MetricDefinition, occurred_at: datetime) -> tuple[datetime, Any] | None:
    """Which period of the subscription an event falls in, the carry-in for recurring usage
    from before its start, or None when it does not count for this subscription (E4, A7)."""
    if occurred_at < context.started_at:
        return (CARRY_IN, None) if metric.recurring else None
    if context.terminated_at is not None and occurred_at >= context.terminated_at:
        return None
    period = billing_period(
        interval=context.interval, billing_time=context.terms.billing_time,
        subscription_at=context.terms.subscription_at, started_at=context.started_at,
        timezone=context.timezone, at=occurred_at,
    )
    return period.starts_at, period


def remaining_days(occurred_at: datetime, period: Period, timezone: str) -> int:
    """Days from the event's day to the period's end, both counted, in local time (C11)."""
    return local_days(Period(occurred_at, period.ends_at), timezone)


_UPSERT = """
INSERT INTO usage_aggregates (subscription_id, charge_id, period_start, filter_id, group_key, events_count,
    value_sum, value_max, latest_at, latest_position, latest_value, weighted_moment, prorated_sum, amount_sum)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (subscription_id, charge_id, period_start, filter_id, group_key) DO UPDATE SET
    events_count = usage_aggregates.events_count + excluded.events_count,
    value_sum = usage_aggregates.value_sum + excluded.value_sum,
    value_max = GREATEST(usage_aggregates.value_max, excluded.value_max),
    latest_value = CASE WHEN usage_aggregates.latest_at IS NULL
        OR (excluded.latest_at, excluded.latest_position) > (usage_aggregates.latest_at, usage_aggregates.latest_position)
        THEN excluded.latest_value ELSE usage_aggregates.latest_value END,
    latest_position = CASE WHEN usage_aggregates.latest_at IS NULL
        OR (excluded.latest_at, excluded.latest_position) > (usage_aggregates.latest_at, usage_aggregates.latest_position)
        THEN excluded.latest_position ELSE usage_aggregates.latest_position END,
    latest_at = GREATEST(usage_aggregates.latest_at, excluded.latest_at),
    weighted_moment = usage_aggregates.weighted_moment + excluded.weighted_moment,
    prorated_sum = usage_aggregates.prorated_sum + excluded.prorated_sum,
    amount_sum = usage_aggregates.amount_sum + excluded.amount_sum
"""


def _db_key(key: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(key[:5])


def _row(key: tuple[Any, ...], bucket: _Bucket) -> tuple[Any, ...]:
    s = bucket.stats
    return (*_db_key(key), s.events_count, s.value_sum, s.value_max, bucket.latest_at, bucket.latest_position,
            s.latest_value, s.weighted_moment, s.prorated_sum, s.amount_sum)


def _dumps(value: Any) -> str:
    return msgspec.json.encode(value, enc_hook=str).decode()


# --- reading the catalog the router needs --------------------------------------------------

# One round trip: the subscription, its plan, timezones and the live metrics its charges use.
# A subscription's routing context; needs ``s`` subscriptions, ``p`` plans, ``c`` customers, ``o`` organizations.
# Formatted with psycopg's ``sql.SQL``, hence the doubled braces.
CONTEXT_COLUMNS = """s.id, s.organization_id, s.keys, s.started_at, s.terminated_at, s.data, s.status,
       p.data, c.data->>'timezone', o.settings->>'timezone',
       (SELECT coalesce(jsonb_object_agg(m.id, m.data), '{{}}'::jsonb) FROM billable_metrics m
        WHERE m.deleted_at IS NULL AND m.id IN (
            SELECT (charge->>'billable_metric_id')::uuid FROM jsonb_array_elements(p.data->'charges') charge))"""

_CONTEXT_QUERY = f"""
SELECT {CONTEXT_COLUMNS}
FROM subscriptions s
JOIN plans p ON p.id = s.plan_id
JOIN customers c ON c.id = s.customer_id
JOIN organizations o ON o.id = s.organization_id
WHERE s.started_at IS NOT NULL AND {{}}
"""


def contexts_by_keys(cursor: Any, wanted: Iterable[tuple[UUID, str | None]]) -> dict[tuple[UUID, str], list[SubscriptionContext]]:
    """Every started subscription (any term) holding one of these (organization, external id) keys."""
    pairs = [(o, k) for o, k in wanted if k]
    if not pairs:
        return {}
    rows = cursor.execute(
        sql.SQL(_CONTEXT_QUERY).format(sql.SQL("s.keys && %s::text[] AND s.organization_id = ANY(%s)")),
        (list({k for _, k in pairs}), list({o for o, _ in pairs})),
    ).fetchall()
    asked = set(pairs)
    found: dict[tuple[UUID, str], list[SubscriptionContext]] = defaultdict(list)
    for context in contexts_from_rows(cursor, rows):
        for key in context.keys:
            if (context.organization_id, key) in asked:
                found[(context.organization_id, key)].append(context)
    return found


def contexts_by_id(cursor: Any, ids: Sequence[UUID]) -> list[SubscriptionContext]:
    rows = cursor.execute(sql.SQL(_CONTEXT_QUERY).format(sql.SQL("s.id = ANY(%s)")), (list(ids),)).fetchall()
    return contexts_from_rows(cursor, rows)


def contexts_from_rows(cursor: Any, rows: Sequence[Any]) -> list[SubscriptionContext]:
    contexts = []
    for sid, organization_id, keys, started_at, terminated_at, terms, _, plan_data, customer_tz, organization_tz, found in rows:
        plan = msgspec.convert(plan_data, PlanDefinition)
        metrics = {UUID(k): msgspec.convert(v, MetricDefinition) for k, v in found.items()}
        interval = plan.charges_interval
        contexts.append(SubscriptionContext(
            id=sid, organization_id=organization_id, keys=tuple(keys), started_at=started_at,
            terminated_at=terminated_at, terms=msgspec.convert(terms, SubscriptionTerms),
            timezone=customer_tz or organization_tz or "UTC", interval=interval,
            charges=tuple((c, metrics[c.billable_metric_id]) for c in plan.charges if c.billable_metric_id in metrics),
            currency=plan.amount_currency, tax_codes=plan.tax_codes,
        ))
    return contexts


class Usage(Projection[UsageView]):
    """Follows usage events and the catalog; recomputes a subscription when its terms change."""

    name = "usage"
    follows = ("Metering", "Billing")

    @singledispatchmethod
    def process_event(self, event: Any, tracking: Tracking) -> None:
        """Other events do not change usage."""

    @process_event.register
    def _(self, event: UsageEvent.Recorded, tracking: Tracking) -> None:
        self.view.record(event, tracking)

    @process_event.register(Subscription.Created)
    @process_event.register(Subscription.Activated)
    @process_event.register(Subscription.Terminated)
    @process_event.register(Subscription.Canceled)
    @process_event.register(Subscription.TermsChanged)
    def _(self, event: Any, tracking: Tracking) -> None:
        self.view.subscription_changed(event.originator_id)

    @process_event.register(Plan.Redefined)
    @process_event.register(Plan.Deleted)
    def _(self, event: Any, tracking: Tracking) -> None:
        self.view.plan_changed(event.originator_id)

    @process_event.register(BillableMetric.Redefined)
    @process_event.register(BillableMetric.Deleted)
    def _(self, event: Any, tracking: Tracking) -> None:
        self.view.metric_changed(event.originator_id)

    @process_event.register(Customer.Redefined)
    def _(self, event: Any, tracking: Tracking) -> None:
        self.view.customer_changed(event.originator_id)

    @process_event.register(Organization.SettingsChanged)
    def _(self, event: Any, tracking: Tracking) -> None:
        self.view.organization_changed(event.originator_id)


__all__ = ["CustomerProfile", "StoredEvent", "SubscriptionContext", "Usage", "UsageView"]
