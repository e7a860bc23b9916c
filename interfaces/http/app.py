"""The Falcon application: routes, middleware and error handlers, wired from its arguments."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import falcon

from application.invoicing import Invoicing
from domain.application import Billing
from domain.credit_note import CreditNoteNotFound
from domain.metering import Metering
from domain.wallet import WalletNotFound
from interfaces.billing_cache import BillingCache
from interfaces.group_commit import GroupCommitter
from interfaces.http import (
    add_ons,
    analytics,
    applied_coupons,
    billable_metrics,
    coupons,
    credit_notes,
    errors,
    invoices,
    ledger,
    metadata,
    payments,
    plans,
    taxes,
    wallets,
)
from interfaces.http.auth import Authentication
from interfaces.http.billable_metrics import EvaluateExpressionResource
from interfaces.http.customers import (
    CustomerCollection,
    CustomerMember,
    CustomerPresenter,
)
from interfaces.http.events import EventBatch, EventCollection, EventMember, Ingestion
from interfaces.http.health import HealthResource, ReadyResource
from interfaces.http.openapi import Operation, document
from interfaces.http.organizations import OrganizationResource
from interfaces.http.plans import PlanPresenter
from interfaces.http.subscriptions import (
    CustomerSubscriptions,
    SubscriptionCollection,
    SubscriptionMember,
    SubscriptionPresenter,
)
from interfaces.http.usage import CurrentUsage, EstimateFees
from interfaces.http.wire import respond
from interfaces.invoice_files import InvoiceFiles
from interfaces.readers import Readers

DEFAULT_MAX_BODY_BYTES = 1 << 20




class OpenApiResource:
    path = "/api/v1/openapi.json"
    public = True
    operations = (Operation("GET", path, "This OpenAPI document", "meta", authenticated=False, extension=True, errors=()),)

    def __init__(self, operations: list[Operation]) -> None:
        self._document = document([*operations, *self.operations])

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        respond(resp, self._document)


def create_app(
    billing: Billing,
    metering: Metering,
    readers: Readers,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    cache_listens_to: str | None = None,
) -> falcon.App:
    """The API. With ``cache_listens_to`` (a conninfo), keys and expressions are remembered
    until the Billing log changes; without, they are read for every request."""
    cache = BillingCache(cache_listens_to)
    billing.observers.append(cache.invalidate)
    app = falcon.App(middleware=[Authentication(billing.authenticate, cache, readers.freshness, max_body_bytes)])
    app.req_options.strip_url_path_trailing_slash = True
    app.req_options.auto_parse_qs_csv = False
    errors.register(app)
    plan_presenter = PlanPresenter(readers.billable_metrics, readers.taxes)
    customer_presenter = CustomerPresenter(readers.organizations, readers.taxes)
    subscription_presenter = SubscriptionPresenter(
        readers.subscriptions, readers.customers, readers.plans, customer_presenter, plan_presenter, clock
    )
    ingestion = Ingestion(readers.billable_metrics, cache, clock)
    committer = GroupCommitter(metering)
    current_usage = CurrentUsage(readers.customers, readers.subscriptions, readers.plans, readers.billable_metrics,
                                 readers.taxes, readers.usage, clock)
    invoicing = Invoicing(billing, readers)
    invoice_presenter = invoices.InvoicePresenter(readers.customers, readers.subscriptions, readers.organizations,
                                                  customer_presenter)
    subscription_parts = (billing, readers.subscriptions, readers.customers, readers.plans, subscription_presenter, clock,
                          invoicing)
    resources: list[Any] = [
        HealthResource(readers.freshness),
        ReadyResource(),
        OrganizationResource(billing, readers.organizations, readers.taxes),
        EvaluateExpressionResource(),
        *billable_metrics.catalog(billing, readers.billable_metrics).resources(),
        *taxes.catalog(billing, readers.taxes).resources(),
        *add_ons.catalog(billing, readers.add_ons, readers.taxes).resources(),
        *coupons.catalog(billing, readers.coupons, clock).resources(),
        *plans.resources(billing, readers.plans, plan_presenter, clock),
        CustomerCollection(billing, readers.customers, customer_presenter, clock),
        CustomerMember(billing, readers.customers, customer_presenter, clock),
        SubscriptionCollection(*subscription_parts),
        SubscriptionMember(*subscription_parts),
        CustomerSubscriptions(*subscription_parts),
        current_usage,
        EstimateFees(current_usage),
        EventCollection(ingestion, committer, readers.events),
        EventBatch(ingestion, committer),
        EventMember(readers.events, clock),
        *invoices.resources(billing, invoicing, readers.invoices, readers.customers, readers.subscriptions,
                            readers.organizations, invoice_presenter, customer_presenter, InvoiceFiles(readers.pool),
                            clock),
        *credit_notes.resources(billing, readers.credit_notes, readers.customers, readers.invoices, invoice_presenter,
                                readers.organizations, InvoiceFiles(readers.pool), clock),
        *applied_coupons.resources(billing, readers.applied_coupons, readers.customers, clock),
        *payments.resources(billing, readers.payments, readers.customers, clock),
        *payments.request_resources(billing, readers.payment_requests, readers.customers, readers.invoices,
                                    invoice_presenter, clock),
        *ledger.resources(readers.ledger, readers.customers, readers.invoices, clock),
        *wallets.resources(billing, readers.wallets, readers.customers, readers.subscriptions, readers.usage, clock),
        *analytics.resources(readers.analytics, readers.customers, clock),
        *metadata.resources("credit_notes", "credit_notes", lambda o, i: billing.credit_note(o, i).metadata,
                            lambda o, i, m: billing.update_credit_note(o, i, metadata=m), CreditNoteNotFound),
        *metadata.resources("wallets", "wallets", lambda o, i: dict(billing.wallet(o, i).terms.metadata),
                            billing.set_wallet_metadata, WalletNotFound),
    ]
    operations = [op for resource in resources for op in resource.operations]
    resources.append(OpenApiResource(operations))
    for resource in resources:
        app.add_route(resource.path, resource)
    return app
