"""Wallets and wallet transactions over Lago's API (reference §2.9)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import falcon
import msgspec

from domain.application import Billing
from domain.currency import minor_unit_exponent
from domain.customer import CustomerNotFound
from domain.money import cents_to_credits
from domain.wallet import WalletNotFound, WalletTransaction, WalletTransactionNotFound
from interfaces.http.customers import filtered_customer
from interfaces.http.openapi import PAGINATION, Operation, Param
from interfaces.http.wire import Body, PageRequest, given, parse_id, respond, timestamp
from projections.documents import Document
from projections.subscriptions import CustomersReader, SubscriptionsReader
from projections.usage_reader import UsageReader
from projections.wallets import WalletRecord, WalletsReader

Unset = msgspec.UnsetType
UNSET = msgspec.UNSET
Credits = str | int | float


class AppliesTo(msgspec.Struct, kw_only=True):
    fee_types: list[str] | None = None
    billable_metric_codes: list[str] | None = None


class WalletInput(msgspec.Struct, kw_only=True):
    external_customer_id: str | Unset = UNSET
    currency: str | Unset = UNSET
    rate_amount: Credits | Unset = UNSET
    name: str | None | Unset = UNSET
    code: str | None | Unset = UNSET
    priority: int | None | Unset = UNSET
    paid_credits: Credits | None | Unset = UNSET
    granted_credits: Credits | None | Unset = UNSET
    expiration_at: datetime | None | Unset = UNSET
    invoice_requires_successful_payment: bool | None | Unset = UNSET
    paid_top_up_min_amount_cents: int | None | Unset = UNSET
    paid_top_up_max_amount_cents: int | None | Unset = UNSET
    transaction_name: str | None | Unset = UNSET
    applies_to: AppliesTo | None | Unset = UNSET
    recurring_transaction_rules: list[dict[str, Any]] | None | Unset = UNSET
    metadata: dict[str, str | None] | None | Unset = UNSET


class TransactionInput(msgspec.Struct, kw_only=True):
    wallet_id: str | Unset = UNSET
    paid_credits: Credits | None | Unset = UNSET
    granted_credits: Credits | None | Unset = UNSET
    voided_credits: Credits | None | Unset = UNSET
    name: str | None | Unset = UNSET


_create = Body("wallet", WalletInput)
_transaction = Body("wallet_transaction", TransactionInput)


class WalletObject(msgspec.Struct):
    lago_id: str
    lago_customer_id: str
    external_customer_id: str | None
    billing_entity_code: str | None
    status: str
    currency: str
    name: str | None
    code: str | None
    rate_amount: str
    credits_balance: str
    credits_ongoing_balance: str
    credits_ongoing_usage_balance: str
    balance_cents: int
    ongoing_balance_cents: int
    ongoing_usage_balance_cents: int
    consumed_credits: str
    created_at: str
    expiration_at: str | None
    last_balance_sync_at: str | None
    last_consumed_credit_at: str | None
    terminated_at: str | None
    invoice_requires_successful_payment: bool
    paid_top_up_min_amount_cents: int | None
    paid_top_up_max_amount_cents: int | None
    priority: int
    recurring_transaction_rules: list[dict[str, Any]]
    applies_to: dict[str, list[str]]
    metadata: dict[str, str | None]


class TransactionObject(msgspec.Struct):
    lago_id: str
    lago_wallet_id: str
    lago_invoice_id: str | None
    lago_credit_note_id: str | None
    status: str
    source: str
    transaction_status: str
    transaction_type: str
    amount: str
    credit_amount: str
    settled_at: str | None
    failed_at: str | None
    created_at: str
    invoice_requires_successful_payment: bool
    name: str | None
    metadata: list[dict[str, str]]


def _decimal(value: Decimal) -> str:
    """Credits and amounts as Lago writes them: no trailing zeros ("10.6", "4")."""
    return format(value.normalize(), "f")


class WalletsBase:
    def __init__(self, billing: Billing, wallets: WalletsReader, customers: CustomersReader,
                 subscriptions: SubscriptionsReader, usage: UsageReader, now: Callable[[], datetime]) -> None:
        self._billing = billing
        self._wallets = wallets
        self._customers = customers
        self._subscriptions = subscriptions
        self._usage = usage
        self._now = now

    def _present(self, organization_id: UUID, documents: Sequence[Document[WalletRecord]]) -> list[WalletObject]:
        customers = self._customers.many(organization_id, list({d.data.customer_id for d in documents}))
        usage = {customer_id: self._current_usage(organization_id, customer_id) for customer_id in customers}
        return [self._one(d, customers.get(d.data.customer_id), usage.get(d.data.customer_id, {})) for d in documents]

    def _current_usage(self, organization_id: UUID, customer_id: UUID) -> dict[str, int]:
        """Unbilled usage of the customer's active subscriptions so far, per currency (the ongoing balance's part)."""
        found: dict[str, int] = {}
        for subscription in self._subscriptions.of_customer(organization_id, customer_id):
            if subscription.extra.get("status") != "active":
                continue
            current = self._usage.current(subscription.id, self._now())
            if current is not None:
                found[current.currency] = found.get(current.currency, 0) + current.amount_cents
        return found

    @staticmethod
    def _one(document: Document[WalletRecord], customer: Any, usage: dict[str, int]) -> WalletObject:
        record = document.data
        exponent = minor_unit_exponent(record.currency)
        ongoing_usage = usage.get(record.currency, 0) if record.status == "active" else 0
        ongoing = record.balance_cents - ongoing_usage

        def credits(cents: int) -> str:
            return _decimal(cents_to_credits(cents, record.rate_amount, exponent))

        terms = record.terms
        return WalletObject(
            lago_id=str(document.id), lago_customer_id=str(record.customer_id),
            external_customer_id=customer.key if customer is not None else None, billing_entity_code=None,
            status=record.status, currency=record.currency, name=terms.name, code=terms.code,
            rate_amount=_decimal(record.rate_amount), credits_balance=credits(record.balance_cents),
            credits_ongoing_balance=credits(ongoing), credits_ongoing_usage_balance=credits(ongoing_usage),
            balance_cents=record.balance_cents, ongoing_balance_cents=ongoing, ongoing_usage_balance_cents=ongoing_usage,
            consumed_credits=credits(record.consumed_cents), created_at=timestamp(record.opened_at) or "",
            expiration_at=timestamp(terms.expiration_at), last_balance_sync_at=timestamp(document.updated_at),
            last_consumed_credit_at=timestamp(record.last_consumed_at), terminated_at=timestamp(record.terminated_at),
            invoice_requires_successful_payment=terms.invoice_requires_successful_payment,
            paid_top_up_min_amount_cents=terms.paid_top_up_min_amount_cents,
            paid_top_up_max_amount_cents=terms.paid_top_up_max_amount_cents, priority=terms.priority,
            recurring_transaction_rules=[{
                "lago_id": str(r.id), "trigger": r.trigger, "method": r.method, "interval": r.interval,
                "paid_credits": _decimal(r.paid_credits), "granted_credits": _decimal(r.granted_credits),
                "threshold_credits": _decimal(r.threshold_credits) if r.threshold_credits is not None else None,
                "target_ongoing_balance": _decimal(r.target_ongoing_balance)
                if r.target_ongoing_balance is not None else None,
                "started_at": timestamp(r.started_at)} for r in terms.recurring_rules],
            applies_to={"fee_types": list(terms.fee_types), "billable_metric_codes": list(terms.billable_metric_codes)},
            metadata=dict(terms.metadata),
        )

    def _show(self, resp: falcon.Response, organization_id: UUID, wallet_id: UUID) -> None:
        document = self._wallets.by_id(organization_id, wallet_id)
        if document is None:
            raise WalletNotFound(key=wallet_id)
        respond(resp, {"wallet": self._present(organization_id, [document])[0]})

    def _list(self, req: falcon.Request, resp: falcon.Response, customer_id: UUID | None) -> None:
        page = PageRequest.of(req)
        documents, total = self._wallets.matching(req.context.organization_id, page.offset, page.per_page,
                                                  customer_id=customer_id, currency=req.get_param("currency") or None)
        respond(resp, {"wallets": self._present(req.context.organization_id, documents), "meta": page.meta(total)})


def _wallet_id(raw: str) -> UUID:
    return parse_id(raw, WalletNotFound)


def present_transaction(transaction: WalletTransaction, wallet: Document[WalletRecord]) -> TransactionObject:
    record = wallet.data
    exponent = minor_unit_exponent(record.currency)
    return TransactionObject(
        lago_id=str(transaction.id), lago_wallet_id=str(wallet.id),
        lago_invoice_id=str(transaction.invoice_id) if transaction.invoice_id else None, lago_credit_note_id=None,
        status=transaction.status, source=transaction.source, transaction_status=transaction.transaction_status,
        transaction_type=transaction.transaction_type,
        amount=_decimal(Decimal(transaction.amount_cents).scaleb(-exponent)),
        credit_amount=_decimal(cents_to_credits(transaction.amount_cents, record.rate_amount, exponent)),
        settled_at=timestamp(transaction.settled_at), failed_at=None, created_at=timestamp(transaction.created_at) or "",
        invoice_requires_successful_payment=record.terms.invoice_requires_successful_payment, name=transaction.name,
        metadata=[],
    )


class WalletCollection(WalletsBase):
    path = "/api/v1/wallets"
    operations = (
        Operation("POST", path, "Create a wallet, with its first paid and granted credits", "wallets", WalletObject,
                  "wallet", request=_create, errors=(401, 404, 422)),
        Operation("GET", path, "List wallets", "wallets", WalletObject, "wallets", listed=True,
                  query=PAGINATION + (Param("external_customer_id", "The customer's external id."),
                                      Param("currency", "ISO 4217 code."))),
    )

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        changes = given(_create.decode(req.context.body))
        wallet_id = self._billing.create_wallet(req.context.organization_id, changes, self._now())
        self._show(resp, req.context.organization_id, wallet_id)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._list(req, resp, filtered_customer(req, self._customers))


class WalletMember(WalletsBase):
    path = "/api/v1/wallets/{lago_id}"
    operations = (
        Operation("GET", path, "Retrieve a wallet", "wallets", WalletObject, "wallet", errors=(401, 404)),
        Operation("PUT", path, "Update a wallet", "wallets", WalletObject, "wallet", request=_create,
                  errors=(401, 404, 405, 422)),
        Operation("DELETE", path, "Terminate a wallet", "wallets", WalletObject, "wallet", errors=(401, 404)),
    )

    def on_get(self, req: falcon.Request, resp: falcon.Response, lago_id: str) -> None:
        self._show(resp, req.context.organization_id, _wallet_id(lago_id))

    def on_put(self, req: falcon.Request, resp: falcon.Response, lago_id: str) -> None:
        changes = given(_create.decode(req.context.body))
        wallet_id = _wallet_id(lago_id)
        self._billing.update_wallet(req.context.organization_id, wallet_id, changes, self._now())
        self._show(resp, req.context.organization_id, wallet_id)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, lago_id: str) -> None:
        wallet_id = _wallet_id(lago_id)
        self._billing.terminate_wallet(req.context.organization_id, wallet_id, self._now())
        self._show(resp, req.context.organization_id, wallet_id)


class CustomerWallets(WalletsBase):
    path = "/api/v1/customers/{external_id}/wallets"
    operations = (Operation("GET", path, "List a customer's wallets", "customers", WalletObject, "wallets",
                            listed=True, query=PAGINATION, errors=(401, 404)),)

    def on_get(self, req: falcon.Request, resp: falcon.Response, external_id: str) -> None:
        customer = self._customers.by_key(req.context.organization_id, external_id)
        if customer is None:
            raise CustomerNotFound(key=external_id)
        self._list(req, resp, customer.id)


class WalletTransactions(WalletsBase):
    path = "/api/v1/wallets/{lago_id}/wallet_transactions"
    operations = (Operation("GET", path, "List a wallet's transactions", "wallets", TransactionObject,
                            "wallet_transactions", listed=True, errors=(401, 404), query=PAGINATION + (
                                Param("status", "pending, settled or failed."),
                                Param("transaction_type", "inbound or outbound."),
                                Param("transaction_status", "purchased, granted, voided or invoiced."))),)

    def on_get(self, req: falcon.Request, resp: falcon.Response, lago_id: str) -> None:
        organization_id = req.context.organization_id
        wallet = self._wallets.by_id(organization_id, _wallet_id(lago_id))
        if wallet is None:
            raise WalletNotFound(key=lago_id)
        page = PageRequest.of(req)
        filters = {name: req.get_param(name) for name in ("status", "transaction_type", "transaction_status")
                   if req.get_param(name)}
        found, total = self._wallets.transactions(organization_id, wallet.id, page.offset, page.per_page, filters)
        respond(resp, {"wallet_transactions": [present_transaction(t, wallet) for t in found], "meta": page.meta(total)})


class WalletTransactionCollection(WalletsBase):
    path = "/api/v1/wallet_transactions"
    operations = (Operation("POST", path, "Top up (paid or granted credits) or void credits", "wallets",
                            TransactionObject, "wallet_transactions", request=_transaction, many=True,
                            errors=(404, 405)),)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        organization_id = req.context.organization_id
        changes = given(_transaction.decode(req.context.body))
        made = self._billing.top_up_wallet(organization_id, changes, self._now())
        shown = []
        for transaction_id in made:
            found = self._wallets.transaction(organization_id, transaction_id)
            if found is not None:
                shown.append(present_transaction(*found))
        respond(resp, {"wallet_transactions": shown})


class WalletTransactionMember(WalletsBase):
    path = "/api/v1/wallet_transactions/{lago_id}"
    operations = (Operation("GET", path, "Retrieve a wallet transaction", "wallets", TransactionObject,
                            "wallet_transaction", errors=(401, 404)),)

    def on_get(self, req: falcon.Request, resp: falcon.Response, lago_id: str) -> None:
        transaction_id = parse_id(lago_id, WalletTransactionNotFound)
        found = self._wallets.transaction(req.context.organization_id, transaction_id)
        if found is None:
            raise WalletTransactionNotFound(key=lago_id)
        respond(resp, {"wallet_transaction": present_transaction(*found)})


def resources(billing: Billing, wallets: WalletsReader, customers: CustomersReader, subscriptions: SubscriptionsReader,
              usage: UsageReader, now: Callable[[], datetime]) -> list[Any]:
    parts = (billing, wallets, customers, subscriptions, usage, now)
    return [WalletCollection(*parts), WalletMember(*parts), CustomerWallets(*parts), WalletTransactions(*parts),
            WalletTransactionCollection(*parts), WalletTransactionMember(*parts)]
