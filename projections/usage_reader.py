"""Reads a subscription's usage for a period and prices it, from bucket figures only.

Costs a handful of indexed reads whatever the number of events: the buckets of the
period (and, for recurring metrics, the earlier ones they carry), distinct values for
unique counts, and the short head of events a percentage charge's free allowance needs.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec
from psycopg import sql
from psycopg_pool import ConnectionPool

from domain.advance_charge import AdvanceUsage, QueuedCharge
from domain.billable_metric import MetricDefinition
from domain.charge import Charge
from domain.currency import minor_unit_exponent
from domain.period_close import PricedBucket
from domain.periods import Period, local_days
from domain.money import to_cents, to_precise_cents
from domain.pricing import PercentageUsage, Price, Usage, price
from domain.subscription import billing_period
from domain.usage import NO_FILTER, Stats, bucket_properties, group_values, merge, units
from projections.freshness import Freshness
from projections.usage import (
    CARRY_IN,
    CONTEXT_COLUMNS,
    USAGE_READS,
    SubscriptionContext,
    contexts_by_id,
    contexts_from_rows,
)


@dataclass(frozen=True)
class BucketUsage:
    """One priced bucket: a filter (or the default) and a pricing group of one charge."""

    filter_id: UUID
    group: str
    units: Decimal
    events_count: int
    price: Price
    amount_cents: int


@dataclass(frozen=True)
class ChargeUsage:
    charge: Charge
    metric_id: UUID
    metric: MetricDefinition
    buckets: tuple[BucketUsage, ...]

    @property
    def units(self) -> Decimal:
        return sum((b.units for b in self.buckets), Decimal(0))

    @property
    def events_count(self) -> int:
        return sum(b.events_count for b in self.buckets)

    @property
    def amount_cents(self) -> int:
        return sum(b.amount_cents for b in self.buckets)


@dataclass(frozen=True)
class PeriodUsage:
    context: SubscriptionContext
    period: Period
    currency: str
    charges: tuple[ChargeUsage, ...]

    @property
    def amount_cents(self) -> int:
        return sum(c.amount_cents for c in self.charges)


@dataclass(frozen=True)
class CustomerUsageRead:
    """What ``current_usage`` needs, read at once: the customer, its subscription's usage, the taxes in force."""

    customer_id: UUID
    customer_tax_codes: tuple[str, ...]
    usage: PeriodUsage | None  # None: no active subscription with that external id
    tax_rates: dict[str, Decimal]
    default_tax_codes: tuple[str, ...]


_CUSTOMER_USAGE_QUERY = f"""
SELECT {{state}}, q.* FROM (SELECT 1) one LEFT JOIN LATERAL (
SELECT c.id, c.data->'tax_codes',
       (SELECT coalesce(jsonb_agg(jsonb_build_array(t.key, t.data->>'rate', t.applied_to_organization)
                                  ORDER BY t.created_at), '[]'::jsonb)
          FROM taxes t WHERE t.organization_id = c.organization_id AND t.deleted_at IS NULL),
       x.*
FROM customers c
LEFT JOIN LATERAL (
    SELECT {CONTEXT_COLUMNS}
    FROM subscriptions s
    JOIN plans p ON p.id = s.plan_id
    JOIN organizations o ON o.id = s.organization_id
    WHERE s.customer_id = c.id AND s.status = 'active' AND s.started_at IS NOT NULL AND s.keys @> ARRAY[%s]::text[]
    LIMIT 1
) x ON true
WHERE c.organization_id = %s AND c.keys @> ARRAY[%s]::text[] AND c.deleted_at IS NULL
LIMIT 1
) q ON true
"""
_CUSTOMER_USAGE_VIEWS = ("taxes", "usage", *USAGE_READS)


class UsageReader:
    def __init__(self, pool: ConnectionPool[Any], freshness: Freshness) -> None:
        self._pool = pool
        self._freshness = freshness
        self._rendered: str | None = None

    def customer_usage(self, organization_id: UUID, customer: str, subscription: str, at: datetime) -> CustomerUsageRead | None:
        """``current_usage`` in two reads whatever the plan: the views' freshness, customer,
        subscription, plan, metrics and taxes in one, the usage figures in the other. None
        when no such customer."""
        with self._pool.connection() as conn:
            query = self._customer_usage_query(conn)
            cursor = conn.cursor()
            state, *row = cursor.execute(query, (subscription, organization_id, customer)).fetchone()
            if not self._freshness.settle(_CUSTOMER_USAGE_VIEWS, state):
                self._freshness.wait(_CUSTOMER_USAGE_VIEWS)  # rare: bring the views forward, then read again
                _, *row = cursor.execute(query, (subscription, organization_id, customer)).fetchone()
            customer_id, customer_codes, taxes, *context_row = row
            if customer_id is None:
                return None
            usage = None
            if context_row[0] is not None:
                context = contexts_from_rows(cursor, [context_row])[0]
                usage = self._usage(conn, context, self._period(context, at))
        return CustomerUsageRead(
            customer_id=customer_id, customer_tax_codes=tuple(customer_codes or ()), usage=usage,
            tax_rates={code: Decimal(rate or 0) for code, rate, _ in taxes},
            default_tax_codes=tuple(code for code, _, default in taxes if default),
        )

    def _customer_usage_query(self, conn: Any) -> str:
        """Rendered once: composing it anew would cost as much as a quarter of the read."""
        if self._rendered is None:
            self._rendered = sql.SQL(_CUSTOMER_USAGE_QUERY).format(state=self._freshness.state_column()).as_string(conn)
        return self._rendered

    @staticmethod
    def _period(context: SubscriptionContext, at: datetime) -> Period:
        return billing_period(
            interval=context.interval, billing_time=context.terms.billing_time,
            subscription_at=context.terms.subscription_at, started_at=context.started_at,
            timezone=context.timezone, at=max(at, context.started_at),
        )

    def for_billing(self, subscription_id: UUID, at: datetime) -> tuple[PeriodUsage | None, dict[str, int]]:
        """Usage of the charge period containing ``at``, and the positions in each log it reflects exactly
        (read in one snapshot with the figures, for an invoice's provenance)."""
        self._freshness.wait(["usage", *USAGE_READS])
        with self._pool.connection() as conn:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                positions = dict(conn.execute(
                    "SELECT application, position FROM projection_tracking WHERE projection = 'usage'").fetchall())
                contexts = contexts_by_id(conn.cursor(), [subscription_id])
                usage = self._usage(conn, contexts[0], self._period(contexts[0], at)) if contexts else None
            finally:
                conn.execute("COMMIT")
        return usage, positions

    def priced_for_billing(self, subscription_id: UUID, at: datetime) -> tuple[list[PricedBucket], tuple[int, int]]:
        """``for_billing`` as Billing takes it: priced buckets and the (Billing, Metering) positions."""
        usage, positions = self.for_billing(subscription_id, at)
        return priced_buckets(usage), _positions(positions)

    def priced_for_billing_many(
        self, wanted: Sequence[tuple[UUID, datetime]]
    ) -> tuple[list[list[PricedBucket]], tuple[int, int]]:
        usages, positions = self.for_billing_many(wanted)
        return [priced_buckets(usage) for usage in usages], _positions(positions)

    @contextmanager
    def advance_queue(self) -> Iterator[AdvanceQueue | None]:
        """The pay-in-advance queue for one drain, in one transaction; None while another drainer holds it."""
        with self._pool.connection() as conn, conn.transaction():
            if not conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (_ADVANCE_LOCK,)).fetchone()[0]:
                yield None
                return
            yield AdvanceQueue(conn)

    def current(self, subscription_id: UUID, at: datetime) -> PeriodUsage | None:
        """Usage of the charge period containing ``at``, including every event acknowledged so far."""
        self._freshness.wait(["usage", *USAGE_READS])
        with self._pool.connection() as conn:
            contexts = contexts_by_id(conn.cursor(), [subscription_id])
            if not contexts:
                return None
            return self._usage(conn, contexts[0], self._period(contexts[0], at))

    def for_billing_many(self, wanted: Sequence[tuple[UUID, datetime]]) -> tuple[list[PeriodUsage | None], dict[str, int]]:
        """``for_billing`` of many subscriptions (each once) in one snapshot, and in a handful of queries whatever
        their number: for each, the usage of the charge period containing its instant (None: no such subscription)."""
        self._freshness.wait(["usage", *USAGE_READS])
        with self._pool.connection() as conn:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                positions = dict(conn.execute(
                    "SELECT application, position FROM projection_tracking WHERE projection = 'usage'").fetchall())
                contexts = {c.id: c for c in contexts_by_id(conn.cursor(), [s for s, _ in wanted])}
                periods = [(contexts[s], self._period(contexts[s], at)) for s, at in wanted if s in contexts]
                usages = {usage.context.id: usage for usage in self._usages(conn, periods)}
            finally:
                conn.execute("COMMIT")
        return [usages.get(s) for s, _ in wanted], positions

    def _usage(self, conn: Any, context: SubscriptionContext, period: Period) -> PeriodUsage:
        rows = conn.execute(
            "SELECT charge_id, period_start, filter_id, group_key, events_count, value_sum, value_max, latest_value, "
            "weighted_moment, prorated_sum, amount_sum, rest_clamped FROM usage_aggregates "
            "WHERE subscription_id = %s AND period_start <= %s",
            (context.id, period.starts_at),
        ).fetchall()
        uniques = self._unique_counts(conn, context, period)
        heads = self._heads(conn, context.id, period) if _has_percentage(context) else {}
        return _priced(context, period, rows, uniques, heads)

    def _usages(self, conn: Any, periods: Sequence[tuple[SubscriptionContext, Period]]) -> list[PeriodUsage]:
        """``_usage`` of many subscriptions: each of the three reads once for all of them."""
        if not periods:
            return []
        rows: dict[UUID, list[Any]] = defaultdict(list)
        for subscription_id, *row in conn.execute(
            "SELECT a.subscription_id, a.charge_id, a.period_start, a.filter_id, a.group_key, a.events_count, "
            "a.value_sum, a.value_max, a.latest_value, a.weighted_moment, a.prorated_sum, a.amount_sum, a.rest_clamped "
            "FROM unnest(%s::uuid[], %s::timestamptz[]) AS w(subscription_id, starts_at) "
            "JOIN usage_aggregates a ON a.subscription_id = w.subscription_id AND a.period_start <= w.starts_at",
            ([c.id for c, _ in periods], [p.starts_at for _, p in periods]),
        ).fetchall():
            rows[subscription_id].append(row)
        uniques = self._unique_counts_many(conn, periods)
        with_heads = [(c, p) for c, p in periods if _has_percentage(c)]
        heads = self._heads_many(conn, with_heads) if with_heads else {}
        return [_priced(context, period, rows[context.id], uniques.get(context.id, {}), heads.get(context.id, {}))
                for context, period in periods]

    def _unique_counts(self, conn: Any, context: SubscriptionContext, period: Period) -> dict[tuple[Any, ...], int]:
        """Distinct values whose latest operation is an add; recurring metrics look back through all periods."""
        recurring = [c.id for c, m in context.charges if m.aggregation_type == "unique_count_agg" and m.recurring]
        plain = [c.id for c, m in context.charges if m.aggregation_type == "unique_count_agg" and not m.recurring]
        counts: dict[tuple[Any, ...], int] = {}
        for charge_ids, lower in ((recurring, CARRY_IN), (plain, period.starts_at)):
            if not charge_ids:
                continue
            rows = conn.execute(
                "SELECT charge_id, filter_id, group_key, count(*) FILTER (WHERE last_add) FROM ("
                " SELECT DISTINCT ON (charge_id, filter_id, group_key, value) charge_id, filter_id, group_key, last_add"
                " FROM usage_unique_values WHERE subscription_id = %s AND charge_id = ANY(%s)"
                " AND period_start >= %s AND period_start <= %s"
                " ORDER BY charge_id, filter_id, group_key, value, last_at DESC, last_position DESC) latest "
                "GROUP BY charge_id, filter_id, group_key",
                (context.id, charge_ids, lower, period.starts_at),
            ).fetchall()
            counts.update({(r[0], r[1], r[2]): r[3] for r in rows})
        return counts

    def _heads(self, conn: Any, subscription_id: UUID, period: Period) -> dict[tuple[Any, ...], list[Decimal]]:
        rows = conn.execute(
            "SELECT charge_id, filter_id, group_key, value FROM usage_heads "
            "WHERE subscription_id = %s AND period_start = %s ORDER BY occurred_at, position",
            (subscription_id, period.starts_at),
        ).fetchall()
        heads: dict[tuple[Any, ...], list[Decimal]] = defaultdict(list)
        for charge_id, filter_id, group, value in rows:
            heads[(charge_id, filter_id, group)].append(value)
        return heads

    def _unique_counts_many(self, conn: Any, periods: Sequence[tuple[SubscriptionContext, Period]]
                            ) -> dict[UUID, dict[tuple[Any, ...], int]]:
        """``_unique_counts`` of many subscriptions in one read."""
        wanted = [(context.id, charge.id, CARRY_IN if metric.recurring else period.starts_at, period.starts_at)
                  for context, period in periods for charge, metric in context.charges
                  if metric.aggregation_type == "unique_count_agg"]
        if not wanted:
            return {}
        rows = conn.execute(
            "SELECT subscription_id, charge_id, filter_id, group_key, count(*) FILTER (WHERE last_add) FROM ("
            " SELECT DISTINCT ON (u.subscription_id, u.charge_id, u.filter_id, u.group_key, u.value)"
            " u.subscription_id, u.charge_id, u.filter_id, u.group_key, u.last_add"
            " FROM unnest(%s::uuid[], %s::uuid[], %s::timestamptz[], %s::timestamptz[]) AS w(subscription_id, charge_id, lower, upper)"
            " JOIN usage_unique_values u ON u.subscription_id = w.subscription_id AND u.charge_id = w.charge_id"
            " AND u.period_start >= w.lower AND u.period_start <= w.upper"
            " ORDER BY u.subscription_id, u.charge_id, u.filter_id, u.group_key, u.value, u.last_at DESC, u.last_position DESC"
            ") latest GROUP BY subscription_id, charge_id, filter_id, group_key",
            [list(column) for column in zip(*wanted, strict=True)],
        ).fetchall()
        counts: dict[UUID, dict[tuple[Any, ...], int]] = defaultdict(dict)
        for subscription_id, charge_id, filter_id, group, count in rows:
            counts[subscription_id][(charge_id, filter_id, group)] = count
        return counts

    def _heads_many(self, conn: Any, periods: Sequence[tuple[SubscriptionContext, Period]]
                    ) -> dict[UUID, dict[tuple[Any, ...], list[Decimal]]]:
        """``_heads`` of many subscriptions in one read."""
        rows = conn.execute(
            "SELECT h.subscription_id, h.charge_id, h.filter_id, h.group_key, h.value "
            "FROM unnest(%s::uuid[], %s::timestamptz[]) AS w(subscription_id, starts_at) "
            "JOIN usage_heads h ON h.subscription_id = w.subscription_id AND h.period_start = w.starts_at "
            "ORDER BY h.subscription_id, h.occurred_at, h.position",
            ([c.id for c, _ in periods], [p.starts_at for _, p in periods]),
        ).fetchall()
        heads: dict[UUID, dict[tuple[Any, ...], list[Decimal]]] = defaultdict(lambda: defaultdict(list))
        for subscription_id, charge_id, filter_id, group, value in rows:
            heads[subscription_id][(charge_id, filter_id, group)].append(value)
        return heads


def _has_percentage(context: SubscriptionContext) -> bool:
    return any(c.charge_model == "percentage" for c, _ in context.charges)


def _priced(context: SubscriptionContext, period: Period, rows: Sequence[Any], uniques: dict[tuple[Any, ...], int],
            heads: dict[tuple[Any, ...], list[Decimal]]) -> PeriodUsage:
    """A subscription's usage of a period, priced from its bucket rows, unique counts and percentage heads."""
    currency = context.currency
    current: dict[tuple[Any, ...], tuple[Stats, Decimal]] = {}
    carried: dict[tuple[Any, ...], Stats] = defaultdict(Stats)
    for charge_id, start, filter_id, group, *figures in rows:
        stats = Stats(figures[0], figures[1], figures[2], figures[3], figures[4], figures[5], figures[6])
        key = (charge_id, filter_id, group)
        if start == period.starts_at:
            current[key] = (stats, figures[7])
        else:
            carried[key] = merge(carried[key], stats)
    exponent = minor_unit_exponent(currency)
    days = max(local_days(period, context.timezone), 1)
    charges = []
    for charge, metric in context.charges:
        keys = {k for k in (*current, *carried) if k[0] == charge.id} or {(charge.id, NO_FILTER, "")}
        buckets = []
        for key in sorted(keys, key=lambda k: (str(k[1]), k[2])):
            stats, rest = current.get(key, (Stats(), Decimal(0)))
            bucket_units = units(metric, stats, carried[key], period, unique_count=uniques.get(key, 0),
                                 prorated=charge.prorated, period_days=days)
            percentage = PercentageUsage(total=stats.value_sum, count=stats.events_count,
                                         head=tuple(heads.get(key, ())), rest_clamped=rest)
            usage = Usage(units=bucket_units, events_count=stats.events_count,
                          precise_total_amount_cents=stats.amount_sum, percentage=percentage)
            priced = price(charge.charge_model, bucket_properties(charge, key[1]), usage, exponent=exponent)
            buckets.append(BucketUsage(key[1], key[2], bucket_units, stats.events_count, priced,
                                       to_cents(priced.amount, exponent)))
        charges.append(ChargeUsage(charge, charge.billable_metric_id, metric, tuple(buckets)))
    return PeriodUsage(context, period, currency, tuple(charges))


__all__: Sequence[str] = ("BucketUsage", "ChargeUsage", "CustomerUsageRead", "PeriodUsage", "UsageReader")


_ADVANCE_LOCK = 7_411_002  # pg advisory lock: one drainer of the pay-in-advance queue at a time


class AdvanceQueue:
    """The queue the usage projection fills with events of pay-in-advance charges (ADR 0022)."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def after(self, cursor: tuple[int, UUID, UUID], limit: int) -> list[QueuedCharge]:
        rows = self._conn.execute(
            "SELECT event_id, charge_id, subscription_id, usage, position FROM advance_charge_queue "
            "WHERE (position, charge_id, subscription_id) > (%s, %s, %s) "
            "ORDER BY position, charge_id, subscription_id LIMIT %s", (*cursor, limit)).fetchall()
        return [QueuedCharge(event_id, charge_id, subscription_id, msgspec.convert(usage, AdvanceUsage), position)
                for event_id, charge_id, subscription_id, usage, position in rows]

    def remove(self, charge: QueuedCharge) -> None:
        self._conn.execute("DELETE FROM advance_charge_queue WHERE event_id = %s AND charge_id = %s "
                           "AND subscription_id = %s", (charge.event_id, charge.charge_id, charge.subscription_id))


def _positions(positions: dict[str, int]) -> tuple[int, int]:
    return positions.get("Billing", 0), positions.get("Metering", 0)


def priced_buckets(usage: PeriodUsage | None) -> list[PricedBucket]:
    """The usage read model's priced buckets, as Billing takes them."""
    if usage is None:
        return []
    exponent = minor_unit_exponent(usage.currency)
    found = []
    for charge_usage in usage.charges:
        charge = charge_usage.charge
        filters = {f.id: f for f in charge.filters}
        keys = charge.properties.pricing_group_keys
        for bucket in charge_usage.buckets:
            grouped = group_values(keys, bucket.group) if bucket.group else {}
            details = tuple((f"tier {t.from_value}-{t.to_value if t.to_value is not None else ''}",
                             json.dumps({"units": str(t.units), "per_unit_amount": str(t.per_unit_amount),
                                         "flat_amount": str(t.flat_amount), "amount": str(t.amount)}))
                            for t in bucket.price.tiers)
            charge_filter = filters.get(bucket.filter_id)
            found.append(PricedBucket(
                charge=charge, metric_id=charge_usage.metric_id, metric_code=charge_usage.metric.code,
                metric_name=charge_usage.metric.name, filter_id=bucket.filter_id,
                filter_display_name=charge_filter.invoice_display_name if charge_filter else None,
                group=tuple((k, "" if v is None else str(v)) for k, v in grouped.items()), units=bucket.units,
                events_count=bucket.events_count, amount_cents=bucket.amount_cents,
                precise_amount_cents=to_precise_cents(bucket.price.amount, exponent), details=details,
            ))
    return found
