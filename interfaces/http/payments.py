"""Manual payments and payment requests over Lago's API (reference §2.16)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import falcon
import msgspec

from domain.application import Billing
from domain.customer import CustomerNotFound
from domain.payment import PaymentNotFound
from domain.payment_request import PaymentRequestNotFound
from interfaces.http.customers import filtered_customer
from interfaces.http.invoices import InvoicePresenter
from interfaces.http.openapi import PAGINATION, Operation, Param
from interfaces.http.wire import (
    Body,
    PageRequest,
    filter_id,
    given,
    parse_id,
    respond,
    timestamp,
)
from projections.documents import Document
from projections.invoices import InvoicesReader
from projections.payments import (
    PaymentRecord,
    PaymentRequestRecord,
    PaymentRequestsReader,
    PaymentsReader,
)
from projections.subscriptions import CustomersReader

Unset = msgspec.UnsetType
UNSET = msgspec.UNSET


class PaymentInput(msgspec.Struct, kw_only=True):
    invoice_id: str | Unset = UNSET
    amount_cents: int | Unset = UNSET
    reference: str | Unset = UNSET
    paid_at: datetime | None | Unset = UNSET


_create = Body("payment", PaymentInput)


class PaymentObject(msgspec.Struct):
    lago_id: str
    lago_customer_id: str
    external_customer_id: str | None
    invoice_ids: list[str]
    invoice_numbers: list[str]
    lago_payable_id: str
    payable_type: str
    amount_cents: int
    amount_currency: str
    status: str
    payment_status: str
    type: str
    reference: str
    payment_provider_code: str | None
    payment_provider_type: str | None
    external_payment_id: str | None
    provider_payment_id: str | None
    provider_customer_id: str | None
    next_action: dict[str, Any]
    created_at: str
    paid_at: str | None


class PaymentsBase:
    def __init__(self, billing: Billing, payments: PaymentsReader, customers: CustomersReader,
                 now: Callable[[], datetime]) -> None:
        self._billing = billing
        self._payments = payments
        self._customers = customers
        self._now = now

    def _present(self, organization_id: UUID, documents: Sequence[Document[PaymentRecord]]) -> list[PaymentObject]:
        customers = self._customers.many(organization_id, list({d.data.customer_id for d in documents}))
        found = []
        for document in documents:
            record = document.data
            customer = customers.get(record.customer_id)
            found.append(PaymentObject(
                lago_id=str(document.id), lago_customer_id=str(record.customer_id),
                external_customer_id=customer.key if customer is not None else None,
                invoice_ids=[str(record.invoice_id)], invoice_numbers=[record.invoice_number],
                lago_payable_id=str(record.invoice_id), payable_type="Invoice", amount_cents=record.amount_cents,
                amount_currency=record.currency, status="succeeded", payment_status="succeeded", type="manual",
                reference=record.reference, payment_provider_code=None, payment_provider_type=None,
                external_payment_id=None, provider_payment_id=None, provider_customer_id=None, next_action={},
                created_at=timestamp(document.created_at) or "", paid_at=timestamp(record.paid_at),
            ))
        return found

    def _list(self, req: falcon.Request, resp: falcon.Response, customer_id: UUID | None) -> None:
        page = PageRequest.of(req)
        documents, total = self._payments.matching(req.context.organization_id, page.offset, page.per_page,
                                                   customer_id=customer_id,
                                                   invoice_id=filter_id(req.get_param("invoice_id")))
        respond(resp, {"payments": self._present(req.context.organization_id, documents), "meta": page.meta(total)})


class PaymentCollection(PaymentsBase):
    path = "/api/v1/payments"
    operations = (
        Operation("POST", path, "Record a manual payment of an invoice (partial payments allowed)", "payments",
                  PaymentObject, "payment", request=_create, errors=(401, 404, 422)),
        Operation("GET", path, "List payments", "payments", PaymentObject, "payments", listed=True,
                  query=PAGINATION + (Param("external_customer_id", "The customer's external id."),
                                      Param("invoice_id", "Payments of this invoice."))),
    )

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        changes = given(_create.decode(req.context.body))
        organization_id = req.context.organization_id
        payment_id = self._billing.record_payment(organization_id, changes, self._now())
        document = self._payments.by_id(organization_id, payment_id)
        assert document is not None
        respond(resp, {"payment": self._present(organization_id, [document])[0]})

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._list(req, resp, filtered_customer(req, self._customers))


class PaymentMember(PaymentsBase):
    path = "/api/v1/payments/{lago_id}"
    operations = (Operation("GET", path, "Retrieve a payment", "payments", PaymentObject, "payment", errors=(401, 404)),)

    def on_get(self, req: falcon.Request, resp: falcon.Response, lago_id: str) -> None:
        payment_id = parse_id(lago_id, PaymentNotFound)
        document = self._payments.by_id(req.context.organization_id, payment_id)
        if document is None:
            raise PaymentNotFound(key=lago_id)
        respond(resp, {"payment": self._present(req.context.organization_id, [document])[0]})


class CustomerPayments(PaymentsBase):
    path = "/api/v1/customers/{external_id}/payments"
    operations = (Operation("GET", path, "List a customer's payments", "customers", PaymentObject, "payments",
                            listed=True, query=PAGINATION, errors=(401, 404)),)

    def on_get(self, req: falcon.Request, resp: falcon.Response, external_id: str) -> None:
        customer = self._customers.by_key(req.context.organization_id, external_id)
        if customer is None:
            raise CustomerNotFound(key=external_id)
        self._list(req, resp, customer.id)


def resources(billing: Billing, payments: PaymentsReader, customers: CustomersReader,
              now: Callable[[], datetime]) -> list[Any]:
    parts = (billing, payments, customers, now)
    return [PaymentCollection(*parts), PaymentMember(*parts), CustomerPayments(*parts)]


class PaymentRequestInput(msgspec.Struct, kw_only=True):
    external_customer_id: str | Unset = UNSET
    email: str | Unset = UNSET
    lago_invoice_ids: list[str] | Unset = UNSET


_request = Body("payment_request", PaymentRequestInput)


class PaymentRequestObject(msgspec.Struct):
    lago_id: str
    email: str
    amount_cents: int
    amount_currency: str
    payment_status: str  # succeeded once every invoice in it is paid
    created_at: str
    customer: Any
    invoices: list[Any]


class PaymentRequestsBase:
    def __init__(self, billing: Billing, requests: PaymentRequestsReader, customers: CustomersReader,
                 invoices: InvoicesReader, presenter: InvoicePresenter, now: Callable[[], datetime]) -> None:
        self._billing = billing
        self._requests = requests
        self._customers = customers
        self._invoices = invoices
        self._presenter = presenter
        self._now = now

    def _present(self, organization_id: UUID, documents: Sequence[Document[PaymentRequestRecord]]) -> list[PaymentRequestObject]:
        invoices = self._invoices.many(organization_id, list({i for d in documents for i in d.data.invoice_ids}))
        shown = {UUID(i.lago_id): i for i in self._presenter.many(organization_id, list(invoices.values()), whole=False)}
        found = []
        for document in documents:
            record = document.data
            mine = [invoices[i] for i in record.invoice_ids if i in invoices]
            paid = all(i.data.payment_status == "succeeded" or i.data.status == "voided" for i in mine)
            found.append(PaymentRequestObject(
                lago_id=str(document.id), email=record.email, amount_cents=record.amount_cents,
                amount_currency=record.currency, payment_status="succeeded" if paid else "pending",
                created_at=timestamp(document.created_at) or "",
                customer=shown[mine[0].id].customer if mine else None,
                invoices=[shown[i.id] for i in mine]))
        return found

    def _show(self, resp: falcon.Response, organization_id: UUID, request_id: UUID) -> None:
        document = self._requests.by_id(organization_id, request_id)
        if document is None:
            raise PaymentRequestNotFound(key=request_id)
        respond(resp, {"payment_request": self._present(organization_id, [document])[0]})


class PaymentRequestCollection(PaymentRequestsBase):
    path = "/api/v1/payment_requests"
    operations = (
        Operation("POST", path, "Ask a customer to pay some of their unpaid invoices together", "payments",
                  PaymentRequestObject, "payment_request", request=_request, errors=(401, 404, 422)),
        Operation("GET", path, "List payment requests", "payments", PaymentRequestObject, "payment_requests",
                  listed=True, query=PAGINATION + (Param("external_customer_id", "The customer's external id."),
                                                   Param("payment_status", "pending or succeeded."))),
    )

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        changes = given(_request.decode(req.context.body))
        request_id = self._billing.request_payment(req.context.organization_id, changes, self._now())
        self._show(resp, req.context.organization_id, request_id)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        organization_id = req.context.organization_id
        page = PageRequest.of(req)
        documents, total = self._requests.matching(organization_id, page.offset, page.per_page,
                                                   customer_id=filtered_customer(req, self._customers))
        shown = self._present(organization_id, documents)
        status = req.get_param("payment_status")
        if status:
            shown = [s for s in shown if s.payment_status == status]
        respond(resp, {"payment_requests": shown, "meta": page.meta(total)})


class PaymentRequestMember(PaymentRequestsBase):
    path = "/api/v1/payment_requests/{lago_id}"
    operations = (Operation("GET", path, "Retrieve a payment request", "payments", PaymentRequestObject,
                            "payment_request", errors=(401, 404)),)

    def on_get(self, req: falcon.Request, resp: falcon.Response, lago_id: str) -> None:
        request_id = parse_id(lago_id, PaymentRequestNotFound)
        self._show(resp, req.context.organization_id, request_id)


def request_resources(billing: Billing, requests: PaymentRequestsReader, customers: CustomersReader,
                      invoices: InvoicesReader, presenter: InvoicePresenter, now: Callable[[], datetime]) -> list[Any]:
    parts = (billing, requests, customers, invoices, presenter, now)
    return [PaymentRequestCollection(*parts), PaymentRequestMember(*parts)]
