"""Wiring for one process: the event-sourced applications, the read pool, the projections.

Only ``migrate`` creates tables (docs/adr/0001): long-running processes construct the
applications with ``CREATE_TABLE=n``, because the library's table creation races when
several processes start at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import uuid4

import psycopg
from eventsourcing.application import Application
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

from domain.add_on import AddOnDefinition
from domain.application import Billing
from domain.billable_metric import MetricDefinition
from domain.coupon import CouponDefinition
from domain.customer import CustomerProfile
from domain.metering import Metering
from domain.plan import PlanDefinition
from domain.subscription import SubscriptionTerms
from domain.tax import TaxDefinition
from interfaces import embedded_postgres, invoice_files
from interfaces.readers import Readers
from projections.analytics import Analytics, AnalyticsReader, AnalyticsView
from projections.applied_coupons import (
    AppliedCouponRecord,
    AppliedCoupons,
    AppliedCouponsReader,
    AppliedCouponsView,
)
from projections.catalog import (
    AddOns,
    AddOnsView,
    BillableMetrics,
    BillableMetricsView,
    Coupons,
    CouponsView,
    Plans,
    PlansView,
    Taxes,
    TaxesReader,
    TaxesView,
)
from projections.credit_notes import (
    CreditNoteRecord,
    CreditNotes,
    CreditNotesReader,
    CreditNotesView,
)
from projections.documents import DocumentReader
from projections.events import EventsReader
from projections.freshness import Freshness
from projections.invoices import InvoiceRecord, Invoices, InvoicesReader, InvoicesView
from projections.ledger import Ledger, LedgerReader, LedgerView
from projections.organizations import (
    Organizations,
    OrganizationsReader,
    OrganizationsView,
)
from projections.payments import (
    PaymentRecord,
    PaymentRequestRecord,
    PaymentRequests,
    PaymentRequestsReader,
    PaymentRequestsView,
    Payments,
    PaymentsReader,
    PaymentsView,
)
from projections.projection import Projection
from projections.runner import EventLog, Projector, install
from projections.subscriptions import (
    Customers,
    CustomersReader,
    CustomersView,
    Subscriptions,
    SubscriptionsReader,
    SubscriptionsView,
)
from projections.usage import USAGE_READS, Usage, UsageView
from projections.usage_reader import UsageReader
from projections.wallets import WalletRecord, Wallets, WalletsReader, WalletsView

APPLICATIONS: tuple[type[Application[Any]], ...] = (Billing, Metering)
MIGRATION_LOCK = 7_242_001  # pg_advisory_lock key: one migration at a time per database

IMMUTABLE_EVENTS_DDL = """
CREATE OR REPLACE FUNCTION tally_refuse_event_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'stored events are immutable: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation',
              HINT = 'Corrections are new events (a credit note, a reversal), never edits.';
END
$$
"""


def tally_home() -> Path:
    return Path(os.environ.get("TALLY_HOME", ".tally")).resolve()


def database_url() -> str:
    """DATABASE_URL, or the embedded server under TALLY_HOME (started if need be)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    return embedded_postgres.start(tally_home() / "pg")


def application_env(url: str, *, create_table: bool = False, pool_size: int = 5) -> dict[str, str]:
    """The eventsourcing settings for a Postgres event store at ``url``."""
    info = conninfo_to_dict(url)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "MAPPER_TOPIC": "interfaces.event_codec:MsgspecMapper",
        "POSTGRES_DBNAME": str(info.get("dbname") or info.get("user") or "postgres"),
        "POSTGRES_HOST": str(info.get("host") or "localhost"),
        "POSTGRES_PORT": str(info.get("port") or "5432"),
        "POSTGRES_USER": str(info.get("user") or "postgres"),
        "POSTGRES_PASSWORD": str(info.get("password") or ""),
        "POSTGRES_POOL_SIZE": str(pool_size),
        "POSTGRES_MAX_OVERFLOW": str(pool_size * 2),
        "POSTGRES_CONNECT_TIMEOUT": "10",
        "CREATE_TABLE": "y" if create_table else "n",
        "METERING_APPLICATION_RECORDER_TOPIC": "interfaces.metering_recorder:MeteringRecorder",
        "BILLING_APPLICATION_RECORDER_TOPIC": "interfaces.billing_recorder:BillingRecorder",
    }


def all_projections() -> list[Projection[Any]]:
    """Every projection, each with a fresh view object."""
    return [
        Organizations(OrganizationsView()),
        BillableMetrics(BillableMetricsView()),
        Taxes(TaxesView()),
        AddOns(AddOnsView()),
        Coupons(CouponsView()),
        Plans(PlansView()),
        Customers(CustomersView()),
        Subscriptions(SubscriptionsView()),
        Usage(UsageView()),
        Invoices(InvoicesView()),
        CreditNotes(CreditNotesView()),
        AppliedCoupons(AppliedCouponsView()),
        Payments(PaymentsView()),
        PaymentRequests(PaymentRequestsView()),
        Ledger(LedgerView()),
        Wallets(WalletsView()),
        Analytics(AnalyticsView()),
    ]


def _projectors(apps: dict[str, Application[Any]], pool: ConnectionPool[Any], page_size: int) -> list[Projector]:
    """One projector per projection and log, each with its own view object (views buffer a page)."""
    projectors = [
        Projector(projection, _log(apps[name]), pool, page_size)
        for name in apps
        for projection in all_projections()
        if name in projection.follows
    ]
    billing = {p.name: p for p in projectors if p.log.application == "Billing"}
    usage = billing.get("usage")
    if usage is not None:
        usage.after = [billing[name] for name in USAGE_READS]
    return projectors


def _log(app: Application[Any]) -> EventLog:
    return EventLog(application=app.name, table=app.recorder.events_table_name, mapper=app.mapper)  # type: ignore[attr-defined]


def open_pool(url: str, *, role: str, size: int) -> ConnectionPool[Any]:
    return ConnectionPool(
        url,
        min_size=1,
        max_size=size,
        kwargs={"autocommit": True, "application_name": f"tally-{role}"},
        name=f"tally-{role}",
        open=True,
    )


@dataclass
class Store:
    """Everything a Tally process needs to write events and read views."""

    url: str
    billing: Billing
    metering: Metering
    pool: ConnectionPool[Any]
    projectors: list[Projector]
    freshness: Freshness
    readers: Readers
    applications: dict[str, Application[Any]] = field(default_factory=dict)

    def close(self) -> None:
        self.pool.close()
        for app in self.applications.values():
            app.close()


class NotMigrated(Exception):
    """The database lacks Tally's tables: ``tally migrate`` has not run against it."""


def check_migrated(url: str) -> None:
    tables = [app.name.lower() + "_events" for app in APPLICATIONS] + ["projection_tracking", "projection_failures"]
    with psycopg.connect(url, autocommit=True) as conn:
        missing = [t for t in tables if conn.execute("SELECT to_regclass(%s)", (t,)).fetchone()[0] is None]
    if missing:
        raise NotMigrated(f"database is not migrated (no {', '.join(missing)}); run `tally migrate`")


def open_store(
    url: str,
    *,
    role: str = "api",
    pool_size: int = 10,
    page_size: int | None = None,
    read_wait_seconds: float | None = None,
) -> Store:
    """Connect to a migrated database; creates nothing."""
    check_migrated(url)
    env = application_env(url, pool_size=max(pool_size // 2, 2))
    billing = Billing(env=env, new_id=uuid4)
    metering = Metering(env=env)
    apps: dict[str, Application[Any]] = {billing.name: billing, metering.name: metering}
    pool = open_pool(url, role=role, size=pool_size)
    page = page_size if page_size is not None else int(os.environ.get("TALLY_PROJECTION_PAGE_SIZE", "1000"))
    projectors = _projectors(apps, pool, page)
    wait = read_wait_seconds if read_wait_seconds is not None else float(os.environ.get("TALLY_READ_WAIT_SECONDS", "5"))
    freshness = Freshness(pool, projectors, timeout=wait)
    readers = Readers(
        freshness=freshness,
        organizations=OrganizationsReader(pool, freshness),
        billable_metrics=DocumentReader(pool, freshness, "billable_metrics", BillableMetricsView, MetricDefinition),
        taxes=TaxesReader(pool, freshness, "taxes", TaxesView, TaxDefinition),
        add_ons=DocumentReader(pool, freshness, "add_ons", AddOnsView, AddOnDefinition),
        coupons=DocumentReader(pool, freshness, "coupons", CouponsView, CouponDefinition),
        plans=DocumentReader(pool, freshness, "plans", PlansView, PlanDefinition),
        customers=CustomersReader(pool, freshness, "customers", CustomersView, CustomerProfile),
        subscriptions=SubscriptionsReader(pool, freshness, "subscriptions", SubscriptionsView, SubscriptionTerms),
        usage=UsageReader(pool, freshness),
        events=EventsReader(pool, freshness),
        invoices=InvoicesReader(pool, freshness, "invoices", InvoicesView, InvoiceRecord),
        applied_coupons=AppliedCouponsReader(pool, freshness, "applied_coupons", AppliedCouponsView,
                                             AppliedCouponRecord),
        ledger=LedgerReader(pool, freshness),
        wallets=WalletsReader(pool, freshness, "wallets", WalletsView, WalletRecord),
        payments=PaymentsReader(pool, freshness, "payments", PaymentsView, PaymentRecord),
        payment_requests=PaymentRequestsReader(pool, freshness, "payment_requests", PaymentRequestsView,
                                               PaymentRequestRecord),
        credit_notes=CreditNotesReader(pool, freshness, "credit_notes", CreditNotesView, CreditNoteRecord),
        analytics=AnalyticsReader(pool, freshness),
        pool=pool,
    )
    return Store(url, billing, metering, pool, projectors, freshness, readers, apps)


def _application(cls: type[Application[Any]], env: dict[str, str]) -> Application[Any]:
    """An application as the processes run it: Billing draws the ids nothing determines from ``uuid4``."""
    return Billing(env=env, new_id=uuid4) if cls is Billing else cls(env=env)


def migrate(url: str) -> list[str]:
    """Create every table, trigger and view once; idempotent. Returns views that were reset."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        try:
            apps = {cls.name: _application(cls, application_env(url, create_table=True, pool_size=1)) for cls in APPLICATIONS}
            try:
                conn.execute(IMMUTABLE_EVENTS_DDL)
                conn.execute(invoice_files.DDL)
                for app in apps.values():
                    _make_immutable(conn, app.recorder.events_table_name)  # type: ignore[attr-defined]
                with open_pool(url, role="migrate", size=2) as pool:
                    return install(pool, _projectors(apps, pool, page_size=1))
            finally:
                for app in apps.values():
                    app.close()
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))


def _make_immutable(conn: psycopg.Connection[Any], table: str) -> None:
    for suffix, operations in (("immutable", "UPDATE OR DELETE"), ("no_truncate", "TRUNCATE")):
        conn.execute(
            sql.SQL(
                "CREATE OR REPLACE TRIGGER {} BEFORE " + operations + " ON {} "
                "FOR EACH STATEMENT EXECUTE FUNCTION tally_refuse_event_change()"
            ).format(sql.Identifier(f"{table}_{suffix}"), sql.Identifier(table))
        )
