"""The query side the API and the scheduler serve from, wired by ``interfaces.store.open_store``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domain.add_on import AddOnDefinition
from domain.billable_metric import MetricDefinition
from domain.coupon import CouponDefinition
from domain.plan import PlanDefinition
from projections.analytics import AnalyticsReader
from projections.applied_coupons import AppliedCouponsReader
from projections.catalog import TaxesReader
from projections.credit_notes import CreditNotesReader
from projections.documents import DocumentReader
from projections.events import EventsReader
from projections.freshness import Freshness
from projections.invoices import InvoicesReader
from projections.ledger import LedgerReader
from projections.organizations import OrganizationsReader
from projections.payments import PaymentRequestsReader, PaymentsReader
from projections.subscriptions import CustomersReader, SubscriptionsReader
from projections.usage_reader import UsageReader
from projections.wallets import WalletsReader


@dataclass(frozen=True)
class Readers:
    """The query side the API serves from; every reader waits for its views to be fresh."""

    freshness: Freshness
    organizations: OrganizationsReader
    billable_metrics: DocumentReader[MetricDefinition]
    taxes: TaxesReader
    add_ons: DocumentReader[AddOnDefinition]
    coupons: DocumentReader[CouponDefinition]
    plans: DocumentReader[PlanDefinition]
    customers: CustomersReader
    subscriptions: SubscriptionsReader
    usage: UsageReader
    events: EventsReader
    invoices: InvoicesReader
    credit_notes: CreditNotesReader
    applied_coupons: AppliedCouponsReader
    payments: PaymentsReader
    payment_requests: PaymentRequestsReader
    ledger: LedgerReader
    wallets: WalletsReader
    analytics: AnalyticsReader
    pool: Any = None  # the read pool, for files kept beside the views
