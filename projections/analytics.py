"""Analytics read model: per organization, month and currency, what finalized invoices add up to (reference §2.15).

Each invoice keeps one row: what ``domain.ledger.post`` knows of it after its latest event (its ``Book``: status,
payment status, total, due) and the facts its ``Issued`` event gave (customer, currency, dates). An invoice
counts while it is finalized: its total and count in ``analytics_months`` under its issuing month and payment
status, its charge and subscription fees in ``analytics_fees``. Every event moves the invoice's share from
where it was to where it is now, so a read sums a few rows per month instead of folding invoices. Overdue
balance depends on the day asked, so it is read from the invoice rows with that day as a parameter.
See docs/adr/0030-analytics-from-a-projection.md.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import singledispatchmethod
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.persistence import Tracking
from psycopg_pool import ConnectionPool

from domain.invoice import Invoice
from domain.ledger import Book, post
from domain.plan import Plan
from projections.documents import jsonb
from projections.freshness import Freshness
from projections.projection import Projection, View

# The invoice events that change a Book; the others (metadata, files, credited fees) change no figure here.
_INVOICE_EVENTS = (Invoice.Issued, Invoice.Refreshed, Invoice.Discounted, Invoice.Credited, Invoice.Prepaid,
                   Invoice.Finalized, Invoice.Offset, Invoice.Paid, Invoice.PaymentStatusChanged, Invoice.Voided,
                   Invoice.Deleted)
_FEE_TYPES = ("charge", "subscription")  # invoiced usage and MRR read these

MonthKey = tuple[UUID, date, str, UUID, str]  # organization, month, currency, customer, payment status
FeeKey = tuple[UUID, str, date, str, UUID, str]  # organization, fee type, month, currency, item id, item code


@dataclass(frozen=True)
class Facts:
    """What an invoice's ``Issued`` event fixed for good."""

    organization_id: UUID
    customer_id: UUID
    currency: str
    issuing_month: date
    payment_due_date: date


class AnalyticsView(View):
    tables = ("analytics_invoices", "analytics_months", "analytics_fees", "analytics_plans")
    ddl = (
        """
        CREATE TABLE IF NOT EXISTS analytics_invoices (
            id uuid PRIMARY KEY,
            organization_id uuid NOT NULL,
            customer_id uuid NOT NULL,
            currency text NOT NULL,
            issuing_month date NOT NULL,
            payment_due_date date NOT NULL,
            issued_at timestamptz NOT NULL,
            status text NOT NULL,
            total_due_amount_cents bigint NOT NULL,
            book jsonb NOT NULL,
            position bigint NOT NULL
        )
        """,
        "CREATE INDEX IF NOT EXISTS analytics_invoices_due ON analytics_invoices (organization_id, payment_due_date) "
        "WHERE total_due_amount_cents > 0",
        """
        CREATE TABLE IF NOT EXISTS analytics_months (
            organization_id uuid NOT NULL,
            month date NOT NULL,
            currency text NOT NULL,
            customer_id uuid NOT NULL,
            payment_status text NOT NULL,
            invoices_count bigint NOT NULL,
            amount_cents numeric NOT NULL,
            PRIMARY KEY (organization_id, month, currency, customer_id, payment_status)
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS analytics_fees (
            organization_id uuid NOT NULL,
            fee_type text NOT NULL,
            month date NOT NULL,
            currency text NOT NULL,
            item_id uuid NOT NULL,
            item_code text NOT NULL,
            fees_count bigint NOT NULL,
            amount_cents numeric NOT NULL,
            PRIMARY KEY (organization_id, fee_type, month, currency, item_id, item_code)
        )
        """,
        "CREATE TABLE IF NOT EXISTS analytics_plans (id uuid PRIMARY KEY, interval text NOT NULL)",
    )

    def invoice(self, id: UUID) -> tuple[Facts, Book, int] | None:
        """An invoice's facts, its book and the log position of its latest event, if it was issued."""
        row = self.cursor.execute(
            "SELECT organization_id, customer_id, currency, issuing_month, payment_due_date, book, position "
            "FROM analytics_invoices WHERE id = %s", (id,)).fetchone()
        return None if row is None else (Facts(*row[:5]), msgspec.convert(row[5], Book), row[6])

    def issue(self, id: UUID, facts: Facts, book: Book, at: datetime, tracking: Tracking) -> None:
        self.cursor.execute(
            "INSERT INTO analytics_invoices (id, organization_id, customer_id, currency, issuing_month, "
            "payment_due_date, issued_at, status, total_due_amount_cents, book, position) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
            (id, facts.organization_id, facts.customer_id, facts.currency, facts.issuing_month,
             facts.payment_due_date, at, book.status, book.due_cents, jsonb(book), tracking.notification_id))

    def keep(self, id: UUID, book: Book, tracking: Tracking) -> None:
        self.cursor.execute(
            "UPDATE analytics_invoices SET status = %s, total_due_amount_cents = %s, book = %s, position = %s "
            "WHERE id = %s", (book.status, book.due_cents, jsonb(book), tracking.notification_id, id))

    def move(self, months: Counter[MonthKey], months_amounts: Counter[MonthKey], fees: Counter[FeeKey],
             fees_amounts: Counter[FeeKey]) -> None:
        """Add these counts and amounts (negative to take away); rows left counting nothing go."""
        month_rows = [(*k, months[k], months_amounts[k]) for k in months.keys() | months_amounts.keys()
                      if months[k] or months_amounts[k]]
        fee_rows = [(*k, fees[k], fees_amounts[k]) for k in fees.keys() | fees_amounts.keys()
                    if fees[k] or fees_amounts[k]]
        if month_rows:
            self.cursor.executemany(
                "INSERT INTO analytics_months AS m VALUES (%s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (organization_id, month, currency, customer_id, payment_status) DO UPDATE SET "
                "invoices_count = m.invoices_count + excluded.invoices_count, "
                "amount_cents = m.amount_cents + excluded.amount_cents", month_rows)
            self.cursor.executemany(
                "DELETE FROM analytics_months WHERE organization_id = %s AND month = %s AND currency = %s "
                "AND customer_id = %s AND payment_status = %s AND invoices_count = 0",
                [r[:5] for r in month_rows if r[5] < 0])
        if fee_rows:
            self.cursor.executemany(
                "INSERT INTO analytics_fees AS f VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (organization_id, fee_type, month, currency, item_id, item_code) DO UPDATE SET "
                "fees_count = f.fees_count + excluded.fees_count, "
                "amount_cents = f.amount_cents + excluded.amount_cents", fee_rows)
            self.cursor.executemany(
                "DELETE FROM analytics_fees WHERE organization_id = %s AND fee_type = %s AND month = %s "
                "AND currency = %s AND item_id = %s AND item_code = %s AND fees_count = 0",
                [r[:6] for r in fee_rows if r[6] < 0])

    def plan_interval(self, plan_id: UUID, interval: str) -> None:
        self.cursor.execute(
            "INSERT INTO analytics_plans VALUES (%s, %s) ON CONFLICT (id) DO UPDATE SET interval = excluded.interval",
            (plan_id, interval))


def _share(facts: Facts, book: Book | None, sign: int, into: tuple[Counter[Any], ...]) -> None:
    """Count (sign 1) or take back (sign -1) what a finalized invoice adds to its month."""
    if book is None or book.status != "finalized":
        return
    months, months_amounts, fees, fees_amounts = into
    key = (facts.organization_id, facts.issuing_month, facts.currency, facts.customer_id, book.payment_status)
    months[key] += sign
    months_amounts[key] += sign * book.total_cents
    for fee in book.fees:
        if fee.fee_type in _FEE_TYPES:
            fee_key = (facts.organization_id, fee.fee_type, facts.issuing_month, facts.currency, fee.item_id,
                       fee.item_code)
            fees[fee_key] += sign
            fees_amounts[fee_key] += sign * fee.amount_cents


class Analytics(Projection[AnalyticsView]):
    name = "analytics"

    @singledispatchmethod
    def process_event(self, event: Any, tracking: Tracking) -> None:
        """Other events change no figure."""

    def _invoice(self, event: Any, tracking: Tracking) -> None:
        # Finalized and Paid do not carry the payment status they reach: the domain's fold of an invoice's
        # events (the ledger's Book) decides it, so this view never decides it again.
        if isinstance(event, Invoice.Issued):
            facts = Facts(event.organization_id, event.customer_id, event.currency,
                          event.issuing_date.replace(day=1), event.payment_due_date)
            before: Book | None = None
        else:
            found = self.view.invoice(event.originator_id)
            if found is None or found[2] >= tracking.notification_id:
                return  # an invoice this view never saw issued, or an event already counted
            facts, before, _ = found
        after, _ = post(event, before)
        if after is None:
            return
        counters: tuple[Counter[Any], ...] = (Counter(), Counter(), Counter(), Counter())
        _share(facts, before, -1, counters)
        _share(facts, after, 1, counters)
        if before is None:
            self.view.issue(event.originator_id, facts, after, event.timestamp, tracking)
        else:
            self.view.keep(event.originator_id, after, tracking)
        self.view.move(*counters)

    def _plan(self, event: Any, tracking: Tracking) -> None:
        self.view.plan_interval(event.originator_id, event.definition.interval)


for _kind in _INVOICE_EVENTS:
    Analytics.process_event.register(_kind, Analytics._invoice)  # type: ignore[attr-defined]
for _kind in (Plan.Defined, Plan.Redefined):
    Analytics.process_event.register(_kind, Analytics._plan)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Revenue:
    month: date
    currency: str
    invoices_count: int
    amount_cents: int


@dataclass(frozen=True)
class Collection:
    month: date
    payment_status: str
    currency: str
    invoices_count: int
    amount_cents: int


@dataclass(frozen=True)
class FeeSum:
    """Fees of one month and currency summed per metric code (usage) or per plan interval (subscriptions)."""

    month: date
    currency: str
    group: str
    amount_cents: int


@dataclass(frozen=True)
class Overdue:
    month: date
    currency: str
    amount_cents: int
    invoice_ids: list[UUID]


# Every query keeps the newest ``months`` months it found; a currency or customer of None filters nothing.
_NEWEST = "SELECT * FROM found WHERE month IN (SELECT DISTINCT month FROM found ORDER BY month DESC LIMIT %(months)s) "
_GROSS_REVENUE = (
    "WITH found AS (SELECT month, currency, sum(invoices_count) AS invoices_count, sum(amount_cents) AS amount_cents "
    "FROM analytics_months WHERE organization_id = %(organization)s "
    "AND (%(currency)s::text IS NULL OR currency = %(currency)s) "
    "AND (%(customer)s::uuid IS NULL OR customer_id = %(customer)s) GROUP BY month, currency) "
    + _NEWEST + "ORDER BY month DESC, currency")
_INVOICE_COLLECTION = (
    "WITH found AS (SELECT month, payment_status, currency, sum(invoices_count) AS invoices_count, "
    "sum(amount_cents) AS amount_cents FROM analytics_months WHERE organization_id = %(organization)s "
    "AND (%(currency)s::text IS NULL OR currency = %(currency)s) GROUP BY month, payment_status, currency) "
    + _NEWEST + "ORDER BY month DESC, currency, payment_status")
_INVOICED_USAGE = (
    "WITH found AS (SELECT month, currency, item_code, sum(amount_cents) AS amount_cents FROM analytics_fees "
    "WHERE organization_id = %(organization)s AND fee_type = 'charge' "
    "AND (%(currency)s::text IS NULL OR currency = %(currency)s) GROUP BY month, currency, item_code) "
    + _NEWEST + "ORDER BY month DESC, currency, item_code")
# A plan never seen defined is taken as monthly, as a deleted plan keeps the interval it last had.
_SUBSCRIPTION_FEES = (
    "WITH found AS (SELECT f.month, f.currency, coalesce(p.interval, 'monthly') AS interval, "
    "sum(f.amount_cents) AS amount_cents FROM analytics_fees f LEFT JOIN analytics_plans p ON p.id = f.item_id "
    "WHERE f.organization_id = %(organization)s AND f.fee_type = 'subscription' "
    "AND (%(currency)s::text IS NULL OR f.currency = %(currency)s) GROUP BY 1, 2, 3) "
    + _NEWEST + "ORDER BY month DESC, currency, interval")
_OVERDUE_BALANCE = (
    "WITH found AS (SELECT date_trunc('month', payment_due_date)::date AS month, currency, "
    "sum(total_due_amount_cents) AS amount_cents, array_agg(id ORDER BY issued_at DESC, id) AS invoice_ids "
    "FROM analytics_invoices WHERE organization_id = %(organization)s AND total_due_amount_cents > 0 "
    "AND payment_due_date < %(today)s AND status = 'finalized' "
    "AND (%(currency)s::text IS NULL OR currency = %(currency)s) "
    "AND (%(customer)s::uuid IS NULL OR customer_id = %(customer)s) GROUP BY 1, 2) "
    + _NEWEST + "ORDER BY month DESC, currency")


class AnalyticsReader:
    """One query per question, over the analytics view made fresh first; months are first days, newest first."""

    def __init__(self, pool: ConnectionPool[Any], freshness: Freshness) -> None:
        self._pool = pool
        self._freshness = freshness

    def gross_revenue(self, organization_id: UUID, months: int, currency: str | None = None,
                      customer_id: UUID | None = None) -> list[Revenue]:
        rows = self._rows(_GROSS_REVENUE, organization_id, months, currency, customer=customer_id)
        return [Revenue(r[0], r[1], int(r[2]), int(r[3])) for r in rows]

    def invoice_collection(self, organization_id: UUID, months: int, currency: str | None = None) -> list[Collection]:
        rows = self._rows(_INVOICE_COLLECTION, organization_id, months, currency)
        return [Collection(r[0], r[1], r[2], int(r[3]), int(r[4])) for r in rows]

    def invoiced_usage(self, organization_id: UUID, months: int, currency: str | None = None) -> list[FeeSum]:
        """Charge fees per metric code."""
        return [FeeSum(r[0], r[1], r[2], int(r[3])) for r in self._rows(_INVOICED_USAGE, organization_id, months,
                                                                          currency)]

    def subscription_fees(self, organization_id: UUID, months: int, currency: str | None = None) -> list[FeeSum]:
        """Subscription fees per interval their plan has now."""
        return [FeeSum(r[0], r[1], r[2], int(r[3])) for r in self._rows(_SUBSCRIPTION_FEES, organization_id, months,
                                                                          currency)]

    def overdue_balance(self, organization_id: UUID, today: date, months: int, currency: str | None = None,
                        customer_id: UUID | None = None) -> list[Overdue]:
        """What finalized invoices still owe past a due date before ``today``, per month of that date."""
        rows = self._rows(_OVERDUE_BALANCE, organization_id, months, currency, customer=customer_id, today=today)
        return [Overdue(r[0], r[1], int(r[2]), list(r[3])) for r in rows]

    def _rows(self, query: str, organization_id: UUID, months: int, currency: str | None,
              **more: Any) -> Sequence[tuple[Any, ...]]:
        self._freshness.wait(["analytics"])
        params = {"organization": organization_id, "months": months, "currency": currency, **more}
        with self._pool.connection() as conn:
            return conn.execute(query, params).fetchall()
