"""The double-entry ledger over the API (Tally extensions): accounts, entries, and a customer's balance."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

import falcon
import msgspec

from domain.customer import CustomerNotFound
from domain.errors import ValidationFailed
from interfaces.http.openapi import PAGINATION, Operation, Param
from interfaces.http.wire import PageRequest, respond, timestamp
from projections.invoices import InvoiceFilters, InvoicesReader
from projections.ledger import LedgerReader
from projections.subscriptions import CustomersReader


class AccountObject(msgspec.Struct):
    account: str
    external_customer_id: str | None
    lago_customer_id: str | None
    currency: str
    debit_amount_cents: int
    credit_amount_cents: int
    balance_amount_cents: int  # debits less credits


class EntryObject(msgspec.Struct):
    position: int
    line: int
    source_id: str
    event: str
    account: str
    external_customer_id: str | None
    lago_customer_id: str | None
    currency: str
    debit_amount_cents: int
    credit_amount_cents: int
    posted_at: str


class BalanceObject(msgspec.Struct):
    external_customer_id: str
    currency: str
    receivable_amount_cents: int  # finalized invoices still due
    credit_notes_amount_cents: int  # credit-note credit available
    refunds_payable_amount_cents: int
    wallet_amount_cents: int
    overdue_amount_cents: int  # due and past its payment due date


class LedgerBase:
    def __init__(self, ledger: LedgerReader, customers: CustomersReader, invoices: InvoicesReader,
                 now: Callable[[], datetime]) -> None:
        self._ledger = ledger
        self._customers = customers
        self._invoices = invoices
        self._now = now

    def _customer(self, organization_id: UUID, external_id: str | None) -> UUID | None:
        if external_id is None:
            return None
        customer = self._customers.by_key(organization_id, external_id)
        if customer is None:
            raise CustomerNotFound(key=external_id)
        return customer.id

    def _keys(self, organization_id: UUID, ids: set[UUID | None]) -> dict[UUID, str]:
        found = self._customers.many(organization_id, [i for i in ids if i is not None])
        return {id: document.key for id, document in found.items()}


_FILTERS = (Param("external_customer_id", "Only this customer's accounts or entries."),
            Param("account", "An account, or every account under it (e.g. revenue)."))


class LedgerAccounts(LedgerBase):
    path = "/api/v1/ledger/accounts"
    operations = (Operation("GET", path, "Account balances of the double-entry ledger", "ledger", AccountObject,
                            "accounts", query=_FILTERS, many=True, errors=(404,), extension=True),)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        organization_id = req.context.organization_id
        customer_id = self._customer(organization_id, req.get_param("external_customer_id"))
        balances = self._ledger.accounts(organization_id, customer_id, req.get_param("account"))
        keys = self._keys(organization_id, {b.customer_id for b in balances})
        respond(resp, {"accounts": [AccountObject(
            account=b.account, external_customer_id=keys.get(b.customer_id) if b.customer_id else None,
            lago_customer_id=str(b.customer_id) if b.customer_id else None, currency=b.currency,
            debit_amount_cents=b.debit_cents, credit_amount_cents=b.credit_cents, balance_amount_cents=b.balance_cents,
        ) for b in balances]})


class LedgerEntries(LedgerBase):
    path = "/api/v1/ledger/entries"
    operations = (Operation("GET", path, "Journal entries, in log order", "ledger", EntryObject, "entries", listed=True,
                            query=PAGINATION + _FILTERS + (Param("from_datetime", "Posted at or after (ISO 8601)."),
                                                           Param("to_datetime", "Posted before (ISO 8601).")),
                            errors=(401, 404, 422), extension=True),)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        organization_id = req.context.organization_id
        page = PageRequest.of(req)
        customer_id = self._customer(organization_id, req.get_param("external_customer_id"))
        moments: dict[str, datetime | None] = {}
        problems: dict[str, list[str]] = {}
        for name in ("from_datetime", "to_datetime"):
            raw = req.get_param(name)
            try:
                moments[name] = datetime.fromisoformat(raw.replace("Z", "+00:00")) if raw else None
            except ValueError:
                problems[name] = ["invalid_date"]
        if problems:
            raise ValidationFailed(problems)
        entries, total = self._ledger.entries(organization_id, page.offset, page.per_page, customer_id=customer_id,
                                              account=req.get_param("account"), since=moments.get("from_datetime"),
                                              until=moments.get("to_datetime"))
        keys = self._keys(organization_id, {e.customer_id for e in entries})
        respond(resp, {"entries": [EntryObject(
            position=e.position, line=e.line, source_id=str(e.source_id), event=e.event, account=e.account,
            external_customer_id=keys.get(e.customer_id) if e.customer_id else None,
            lago_customer_id=str(e.customer_id) if e.customer_id else None, currency=e.currency,
            debit_amount_cents=e.debit_cents, credit_amount_cents=e.credit_cents, posted_at=timestamp(e.posted_at) or "",
        ) for e in entries], "meta": page.meta(total)})


class CustomerBalance(LedgerBase):
    path = "/api/v1/customers/{external_id}/balance"
    operations = (Operation("GET", path, "What a customer owes and holds, per currency, from the ledger", "customers",
                            BalanceObject, "balances", many=True, errors=(), extension=True),)

    def on_get(self, req: falcon.Request, resp: falcon.Response, external_id: str) -> None:
        organization_id = req.context.organization_id
        customer_id = self._customer(organization_id, external_id)
        assert customer_id is not None
        by_currency: dict[str, dict[str, int]] = {}
        for balance in self._ledger.accounts(organization_id, customer_id):
            figures = by_currency.setdefault(balance.currency, {})
            figures[balance.account] = figures.get(balance.account, 0) + balance.balance_cents
        today = self._now().date()
        documents, _ = self._invoices.filtered(organization_id, 0, 10_000, InvoiceFilters(
            customer_ids=[customer_id], statuses=["finalized"], payment_statuses=["pending", "failed"]))
        overdue: dict[str, int] = {}
        for document in documents:
            record = document.data
            if record.payment_due_date < today:
                overdue[record.currency] = overdue.get(record.currency, 0) + record.total_due_amount_cents
        respond(resp, {"balances": [BalanceObject(
            external_customer_id=external_id, currency=currency,
            receivable_amount_cents=figures.get("receivable", 0),
            credit_notes_amount_cents=-figures.get("customer_credit", 0),
            refunds_payable_amount_cents=-figures.get("refunds_payable", 0),
            wallet_amount_cents=-sum(v for k, v in figures.items() if k.startswith("prepaid_credit")),
            overdue_amount_cents=overdue.get(currency, 0),
        ) for currency, figures in sorted(by_currency.items())]})


def resources(ledger: LedgerReader, customers: CustomersReader, invoices: InvoicesReader,
              now: Callable[[], datetime]) -> list[Any]:
    parts = (ledger, customers, invoices, now)
    return [LedgerAccounts(*parts), LedgerEntries(*parts), CustomerBalance(*parts)]
