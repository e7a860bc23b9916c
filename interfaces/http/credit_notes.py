"""Credit notes over Lago's API (reference §2.8): list, show, a customer's list, void.

Tally issues credit notes itself when a subscription paid in advance ends or is upgraded
(semantics P5, P6); they are also created by hand from a finalized invoice's fees, and estimated first (I5).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import falcon
import msgspec

from domain.application import Billing
from domain.credit_note import REASONS, CreditNoteNotFound
from domain.customer import CustomerNotFound
from domain.errors import ValidationFailed
from domain.fee import Fee
from domain.invoice import tax_lines
from interfaces.http.customers import CustomerObject
from interfaces.http.invoices import (
    DOCUMENT_RANGES,
    AppliedTaxObject,
    FeeObject,
    InvoicePresenter,
    present_fee,
)
from interfaces.http.openapi import PAGINATION, Operation, Param
from interfaces.http.wire import (
    Body,
    PageRequest,
    given,
    parse_id,
    query_dates,
    query_ints,
    respond,
    timestamp,
)
from interfaces.invoice_files import InvoiceFiles, credit_note_document
from interfaces.pdf import render_invoice
from projections.credit_notes import (
    CreditNoteFilters,
    CreditNoteRecord,
    CreditNotesReader,
)
from projections.documents import Document
from projections.invoices import InvoicesReader
from projections.organizations import OrganizationsReader
from projections.subscriptions import CustomersReader

Unset = msgspec.UnsetType
UNSET = msgspec.UNSET
CREDIT_STATUSES = ("available", "consumed", "voided")
REFUND_STATUSES = ("pending", "succeeded", "failed")


class CreditNoteItemObject(msgspec.Struct):
    lago_id: str
    amount_cents: int
    precise_amount_cents: str
    amount_currency: str
    fee: FeeObject | None


class CreditNoteObject(msgspec.Struct):
    lago_id: str
    billing_entity_code: str | None
    sequential_id: int
    number: str
    lago_invoice_id: str
    invoice_number: str
    purchase_order_number: str | None
    issuing_date: str
    credit_status: str
    refund_status: str | None
    reason: str
    description: str | None
    currency: str
    total_amount_cents: int
    precise_total_amount_cents: str
    taxes_amount_cents: int
    precise_taxes_amount_cents: str
    sub_total_excluding_taxes_amount_cents: int
    balance_amount_cents: int
    credit_amount_cents: int
    refund_amount_cents: int
    offset_amount_cents: int
    coupons_adjustment_amount_cents: int
    taxes_rate: float
    created_at: str
    updated_at: str
    file_url: str | None
    xml_url: str | None
    self_billed: bool
    items: list[CreditNoteItemObject]
    applied_taxes: list[AppliedTaxObject]
    customer: CustomerObject | None
    metadata: dict[str, str | None]


class CreditNotePresenter:
    def __init__(self, invoices: InvoicesReader, invoice_presenter: InvoicePresenter, files: InvoiceFiles) -> None:
        self._invoices = invoices
        self._invoice_presenter = invoice_presenter
        self._files = files

    def many(self, organization_id: UUID, documents: Sequence[Document[CreditNoteRecord]]) -> list[CreditNoteObject]:
        invoices = self._invoices.many(organization_id, list({d.data.invoice_id for d in documents}))
        customers = self._invoice_presenter.customers(organization_id, list(invoices.values()))
        with_files = self._files.present(organization_id, [d.id for d in documents])
        return [self._one(d, invoices, customers, d.id in with_files) for d in documents]

    def _one(self, document: Document[CreditNoteRecord], invoices: dict[UUID, Any],
             customers: dict[UUID, CustomerObject], has_file: bool) -> CreditNoteObject:
        record = document.data
        lago_id = str(document.id)
        invoice = invoices.get(record.invoice_id)
        customer = customers.get(record.customer_id)
        external = invoice.data.external_subscription_ids if invoice is not None else {}
        fees = [item.fee for item in record.items]
        rate = max((f.taxes_rate for f in fees), default=Decimal(0))
        credited = [(item.fee, item.amount_cents) for item in record.items]
        lines = tax_lines([_with_amount(fee, amount) for fee, amount in credited])
        precise_taxes = sum((i.taxes_precise_amount_cents for i in record.items), Decimal(0))
        return CreditNoteObject(
            lago_id=lago_id, billing_entity_code=None, sequential_id=record.sequential_id, number=record.number,
            lago_invoice_id=str(record.invoice_id), invoice_number=record.invoice_number, purchase_order_number=None,
            issuing_date=record.issuing_date.isoformat(), credit_status=record.credit_status,
            refund_status=record.refund_status, reason=record.reason, description=record.description,
            currency=record.currency, total_amount_cents=record.total_amount_cents,
            precise_total_amount_cents=str(sum((i.precise_amount_cents for i in record.items), Decimal(0)) + precise_taxes),
            taxes_amount_cents=record.taxes_amount_cents, precise_taxes_amount_cents=str(precise_taxes),
            sub_total_excluding_taxes_amount_cents=record.sub_total_excluding_taxes_amount_cents,
            balance_amount_cents=record.balance_amount_cents, credit_amount_cents=record.split.credit_amount_cents,
            refund_amount_cents=record.split.refund_amount_cents, offset_amount_cents=record.split.offset_amount_cents,
            coupons_adjustment_amount_cents=record.coupons_adjustment_amount_cents, taxes_rate=float(rate),
            created_at=timestamp(document.created_at) or "", updated_at=timestamp(document.updated_at) or "",
            file_url=f"/api/v1/credit_notes/{lago_id}/file.pdf" if has_file else None, xml_url=None, self_billed=False,
            items=[CreditNoteItemObject(
                lago_id=str(item.id), amount_cents=item.amount_cents, precise_amount_cents=str(item.precise_amount_cents),
                amount_currency=record.currency,
                fee=present_fee(item.fee, invoice, customer, external) if invoice is not None else None,
            ) for item in record.items],
            applied_taxes=[AppliedTaxObject(
                lago_id=None, lago_invoice_id=None, lago_tax_id=str(line.tax_id), tax_name=line.name,
                tax_code=line.code, tax_rate=float(line.rate), tax_description=line.description,
                amount_cents=line.amount_cents, amount_currency=record.currency, fees_amount_cents=line.fees_amount_cents,
                created_at=timestamp(document.created_at)) for line in lines],
            customer=customer, metadata=dict(record.metadata),
        )


def _with_amount(fee: Fee, amount_cents: int) -> Fee:
    """The fee as far as it is credited: its taxes over the credited amount."""
    return replace(fee, amount_cents=amount_cents)


class CreditNotesBase:
    def __init__(self, billing: Billing, credit_notes: CreditNotesReader, customers: CustomersReader,
                 presenter: CreditNotePresenter, now: Callable[[], datetime]) -> None:
        self._billing = billing
        self._credit_notes = credit_notes
        self._customers = customers
        self._presenter = presenter
        self._now = now

    def _show(self, resp: falcon.Response, organization_id: UUID, credit_note_id: UUID) -> None:
        document = self._credit_notes.by_id(organization_id, credit_note_id)
        if document is None:
            raise CreditNoteNotFound(key=credit_note_id)
        respond(resp, {"credit_note": self._presenter.many(organization_id, [document])[0]})

    def _list(self, req: falcon.Request, resp: falcon.Response, customer_ids: list[UUID] | None) -> None:
        page = PageRequest.of(req)
        documents, total = self._credit_notes.filtered(req.context.organization_id, page.offset, page.per_page,
                                                       _filters(req, customer_ids))
        respond(resp, {"credit_notes": self._presenter.many(req.context.organization_id, documents),
                       "meta": page.meta(total)})


def _filters(req: falcon.Request, customer_ids: list[UUID] | None) -> CreditNoteFilters:
    problems: dict[str, list[str]] = {}
    for name, allowed in (("credit_status", CREDIT_STATUSES), ("refund_status", REFUND_STATUSES), ("reason", REASONS)):
        value = req.get_param(name)
        if value is not None and value not in allowed:
            problems[name] = ["value_is_invalid"]
    dates = query_dates(req, ("issuing_date_from", "issuing_date_to"), problems)
    amounts = query_ints(req, ("amount_from", "amount_to"), problems)
    if problems:
        raise ValidationFailed(problems)
    return CreditNoteFilters(
        customer_ids=customer_ids, credit_status=req.get_param("credit_status"),
        refund_status=req.get_param("refund_status"), reason=req.get_param("reason"),
        currency=req.get_param("currency"), invoice_number=req.get_param("invoice_number"),
        issuing_date_from=dates.get("issuing_date_from"), issuing_date_to=dates.get("issuing_date_to"),
        amount_from=amounts.get("amount_from"), amount_to=amounts.get("amount_to"),
    )


def _id(raw: str) -> UUID:
    return parse_id(raw, CreditNoteNotFound)


_LIST_FILTERS = (
    Param("external_customer_id", "The customer's external id."),
    Param("credit_status", "available, consumed or voided."),
    Param("refund_status", "pending, succeeded or failed."),
    Param("reason", "Why it was issued (order_change, order_cancellation, …)."),
    Param("currency", "ISO 4217 code."),
    Param("invoice_number", "The credited invoice's number."),
    *DOCUMENT_RANGES,
)


class CreditNoteItemInput(msgspec.Struct, kw_only=True):
    fee_id: str | Unset = UNSET
    amount_cents: int | Unset = UNSET


class CreditNoteInput(msgspec.Struct, kw_only=True):
    invoice_id: str | Unset = UNSET
    reason: str | None | Unset = UNSET
    description: str | None | Unset = UNSET
    credit_amount_cents: int | None | Unset = UNSET
    refund_amount_cents: int | None | Unset = UNSET
    offset_amount_cents: int | None | Unset = UNSET
    items: list[CreditNoteItemInput] | Unset = UNSET


_create = Body("credit_note", CreditNoteInput)


class EstimatedCreditNoteObject(msgspec.Struct):
    lago_invoice_id: str
    invoice_number: str | None
    currency: str
    taxes_amount_cents: int
    precise_taxes_amount_cents: str
    taxes_rate: float
    sub_total_excluding_taxes_amount_cents: int
    max_creditable_amount_cents: int
    max_refundable_amount_cents: int
    max_offsettable_amount_cents: int
    coupons_adjustment_amount_cents: int
    items: list[dict[str, Any]]
    applied_taxes: list[AppliedTaxObject]


class CreditNoteCollection(CreditNotesBase):
    path = "/api/v1/credit_notes"
    operations = (
        Operation("POST", path, "Give back items of a finalized invoice as credit, refund or offset", "credit_notes",
                  CreditNoteObject, "credit_note", request=_create, errors=(401, 404, 422)),
        Operation("GET", path, "List credit notes", "credit_notes", CreditNoteObject, "credit_notes", listed=True,
                  query=PAGINATION + _LIST_FILTERS),
    )

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        changes = given(_create.decode(req.context.body))
        note_id = self._billing.create_credit_note(req.context.organization_id, changes, self._now())
        self._show(resp, req.context.organization_id, note_id)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        external_customer_id = req.get_param("external_customer_id")
        customer_ids = None
        if external_customer_id:
            customer = self._customers.by_key(req.context.organization_id, external_customer_id)
            customer_ids = [customer.id] if customer is not None else []
        self._list(req, resp, customer_ids)


class CreditNoteEstimate(CreditNotesBase):
    path = "/api/v1/credit_notes/estimate"
    operations = (Operation("POST", path, "What a credit note with these items would give back", "credit_notes",
                            EstimatedCreditNoteObject, "estimated_credit_note", request=_create,
                            changes=False, errors=(404,)),)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        changes = given(_create.decode(req.context.body))
        invoice, found = self._billing.estimate_credit_note(req.context.organization_id, changes)
        lines = tax_lines([replace(i.fee, amount_cents=i.amount_cents, precise_coupons_amount_cents=i.precise_coupons_cents)
                           for i in found.items])
        precise_taxes = sum((i.taxes_precise_amount_cents for i in found.items), Decimal(0))
        respond(resp, {"estimated_credit_note": EstimatedCreditNoteObject(
            lago_invoice_id=str(invoice.id), invoice_number=invoice.number, currency=invoice.currency,
            taxes_amount_cents=found.taxes_cents, precise_taxes_amount_cents=str(precise_taxes),
            taxes_rate=float(max((i.fee.taxes_rate for i in found.items), default=Decimal(0))),
            sub_total_excluding_taxes_amount_cents=found.sub_total_cents, max_creditable_amount_cents=found.total_cents,
            max_refundable_amount_cents=min(found.max_refundable_cents, found.total_cents),
            max_offsettable_amount_cents=min(found.max_offsettable_cents, found.total_cents),
            coupons_adjustment_amount_cents=found.coupons_adjustment_cents,
            items=[{"amount_cents": i.amount_cents, "lago_fee_id": str(i.fee.id)} for i in found.items],
            applied_taxes=[AppliedTaxObject(
                lago_id=None, lago_invoice_id=str(invoice.id), lago_tax_id=str(line.tax_id), tax_name=line.name,
                tax_code=line.code, tax_rate=float(line.rate), tax_description=line.description,
                amount_cents=line.amount_cents, amount_currency=invoice.currency,
                fees_amount_cents=line.fees_amount_cents) for line in lines],
        )})


class CustomerCreditNotes(CreditNotesBase):
    path = "/api/v1/customers/{external_id}/credit_notes"
    operations = (
        Operation("GET", path, "List a customer's credit notes", "customers", CreditNoteObject, "credit_notes",
                  listed=True, query=PAGINATION + _LIST_FILTERS[1:], errors=(401, 404)),
    )

    def on_get(self, req: falcon.Request, resp: falcon.Response, external_id: str) -> None:
        customer = self._customers.by_key(req.context.organization_id, external_id)
        if customer is None:
            raise CustomerNotFound(key=external_id)
        self._list(req, resp, [customer.id])


class CreditNoteUpdateInput(msgspec.Struct, kw_only=True):
    refund_status: str | None | Unset = UNSET
    metadata: dict[str, str | None] | None | Unset = UNSET


_update = Body("credit_note", CreditNoteUpdateInput)


class CreditNoteMember(CreditNotesBase):
    path = "/api/v1/credit_notes/{lago_id}"
    operations = (
        Operation("GET", path, "Retrieve a credit note", "credit_notes", CreditNoteObject, "credit_note",
                  errors=(401, 404)),
        Operation("PUT", path, "Update a credit note's refund status or metadata", "credit_notes", CreditNoteObject,
                  "credit_note", request=_update, errors=(401, 404, 422)),
    )

    def on_get(self, req: falcon.Request, resp: falcon.Response, lago_id: str) -> None:
        self._show(resp, req.context.organization_id, _id(lago_id))

    def on_put(self, req: falcon.Request, resp: falcon.Response, lago_id: str) -> None:
        changes = given(_update.decode(req.context.body))
        note_id = _id(lago_id)
        self._billing.update_credit_note(req.context.organization_id, note_id,
                                         refund_status=changes.get("refund_status"), metadata=changes.get("metadata"))
        self._show(resp, req.context.organization_id, note_id)


class CreditNoteVoid(CreditNotesBase):
    path = "/api/v1/credit_notes/{lago_id}/void"
    operations = (
        Operation("PUT", path, "Void a credit note's remaining credit", "credit_notes", CreditNoteObject,
                  "credit_note", errors=(401, 404, 405)),
    )

    def on_put(self, req: falcon.Request, resp: falcon.Response, lago_id: str) -> None:
        credit_note_id = _id(lago_id)
        self._billing.void_credit_note(req.context.organization_id, credit_note_id, self._now())
        self._show(resp, req.context.organization_id, credit_note_id)


class CreditNoteDownload(CreditNotesBase):
    path = "/api/v1/credit_notes/{lago_id}/download"
    operations = (Operation("POST", path, "Render the credit note PDF (once) and answer with its file_url",
                            "credit_notes", CreditNoteObject, "credit_note", errors=(401, 404)),)

    def __init__(self, *args: Any, files: InvoiceFiles, organizations: OrganizationsReader, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._files = files
        self._organizations = organizations

    def on_post(self, req: falcon.Request, resp: falcon.Response, lago_id: str) -> None:
        organization_id = req.context.organization_id
        note_id = _id(lago_id)
        document = self._credit_notes.by_id(organization_id, note_id)
        organization = self._organizations.get(organization_id)
        if document is None or organization is None:
            raise CreditNoteNotFound(key=lago_id)
        if self._files.get(organization_id, note_id) is None:
            customer = self._customers.by_id(organization_id, document.data.customer_id)
            self._files.put(organization_id, note_id, render_invoice(credit_note_document(document, organization, customer)))
        self._show(resp, organization_id, note_id)


class CreditNoteFile(CreditNotesBase):
    path = "/api/v1/credit_notes/{lago_id}/file.pdf"
    operations = (Operation("GET", path, "The credit note PDF itself (the file_url; needs the API key)",
                            "credit_notes", None, None, extension=True, content_type="application/pdf", errors=()),)

    def __init__(self, *args: Any, files: InvoiceFiles, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._files = files

    def on_get(self, req: falcon.Request, resp: falcon.Response, lago_id: str) -> None:
        content = self._files.get(req.context.organization_id, _id(lago_id))
        if content is None:
            raise CreditNoteNotFound(key=lago_id)
        resp.content_type = "application/pdf"
        resp.data = content


def resources(billing: Billing, credit_notes: CreditNotesReader, customers: CustomersReader, invoices: InvoicesReader,
              invoice_presenter: InvoicePresenter, organizations: OrganizationsReader, files: InvoiceFiles,
              now: Callable[[], datetime]) -> list[Any]:
    parts = (billing, credit_notes, customers, CreditNotePresenter(invoices, invoice_presenter, files), now)
    return [CreditNoteCollection(*parts), CreditNoteEstimate(*parts), CustomerCreditNotes(*parts),
            CreditNoteMember(*parts), CreditNoteVoid(*parts),
            CreditNoteDownload(*parts, files=files, organizations=organizations), CreditNoteFile(*parts, files=files)]
