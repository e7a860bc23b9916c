"""Invoices and fees over Lago's API (reference §2.6, §2.7), plus each invoice's provenance (Tally)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID, uuid5

import falcon
import msgspec
from psycopg import sql

from application.invoicing import Invoicing
from domain import money
from domain.application import Billing
from domain.currency import minor_unit_exponent
from domain.customer import CustomerNotFound
from domain.errors import NotFound, ValidationFailed
from domain.fee import FEE_TYPES, Fee, FeeNotFound
from domain.invoice import INVOICE_TYPES, PAYMENT_STATUSES, InvoiceNotFound
from interfaces.http.customers import CustomerObject, CustomerPresenter, list_param
from interfaces.http.openapi import PAGINATION, Operation, Param
from interfaces.http.wire import (
    Body,
    PageRequest,
    count_param,
    given,
    parse_id,
    query_dates,
    query_ints,
    respond,
    timestamp,
)
from interfaces.invoice_files import InvoiceFiles, render
from projections.documents import Condition, Document
from projections.invoices import InvoiceFilters, InvoiceRecord, InvoicesReader
from projections.organizations import OrganizationsReader
from projections.subscriptions import CustomersReader, SubscriptionsReader

Unset = msgspec.UnsetType
UNSET = msgspec.UNSET
STATUSES = ("draft", "finalized", "voided", "failed", "pending")


class MetadataInput(msgspec.Struct, kw_only=True):
    id: str | None = None
    key: str
    value: str | None = None


class InvoiceUpdate(msgspec.Struct, kw_only=True):
    payment_status: Literal["pending", "succeeded", "failed"] | Unset = UNSET
    metadata: list[MetadataInput] | Unset = UNSET


_update = Body("invoice", InvoiceUpdate)


class OneOffFeeInput(msgspec.Struct, kw_only=True):
    add_on_code: str
    invoice_display_name: str | None = None
    unit_amount_cents: int | None = None
    units: Decimal | None = None  # a decimal string or a number, read exactly
    description: str | None = None
    from_datetime: datetime | None = None
    to_datetime: datetime | None = None
    tax_codes: list[str] | None = None


class OneOffInput(msgspec.Struct, kw_only=True):
    external_customer_id: str | Unset = UNSET
    currency: str | None | Unset = UNSET
    fees: list[OneOffFeeInput] | Unset = UNSET
    billing_entity_code: str | None | Unset = UNSET
    purchase_order_number: str | None | Unset = UNSET
    skip_psp: bool | None | Unset = UNSET
    invoice_custom_section: dict[str, Any] | None | Unset = UNSET
    payment_method: dict[str, Any] | None | Unset = UNSET


_create = Body("invoice", OneOffInput)


class AppliedTaxObject(msgspec.Struct):
    lago_id: str | None
    lago_invoice_id: str | None
    lago_tax_id: str
    tax_name: str
    tax_code: str
    tax_rate: float | str
    tax_description: str | None
    amount_cents: int
    amount_currency: str
    fees_amount_cents: int | None = None
    created_at: str | None = None


class FeeObject(msgspec.Struct):
    lago_id: str
    lago_charge_id: str | None
    lago_charge_filter_id: str | None
    lago_invoice_id: str | None
    lago_true_up_fee_id: str | None
    lago_true_up_parent_fee_id: str | None
    lago_subscription_id: str | None
    external_subscription_id: str | None
    lago_customer_id: str | None
    external_customer_id: str | None
    item: dict[str, Any]
    pay_in_advance: bool
    invoiceable: bool
    amount_cents: int
    amount_currency: str
    precise_amount: str
    precise_total_amount: str
    taxes_amount_cents: int
    taxes_precise_amount: str
    taxes_rate: float
    total_aggregated_units: str
    total_amount_cents: int
    total_amount_currency: str
    units: str
    description: str | None
    precise_unit_amount: str
    precise_coupons_amount_cents: str
    sub_total_excluding_taxes_amount_cents: int
    sub_total_excluding_taxes_precise_amount_cents: str
    events_count: int
    payment_status: str
    created_at: str | None
    succeeded_at: str | None
    failed_at: str | None
    refunded_at: str | None
    amount_details: dict[str, Any]
    self_billed: bool
    from_date: str | None
    to_date: str | None
    applied_taxes: list[AppliedTaxObject] = []
    usage: dict[str, str] = {}
    event_transaction_id: str | Unset = UNSET  # pay-in-advance charge fees: the event billed


class BillingPeriodObject(msgspec.Struct):
    lago_subscription_id: str
    external_subscription_id: str
    lago_plan_id: str
    subscription_from_datetime: str | None
    subscription_to_datetime: str | None
    charges_from_datetime: str | None
    charges_to_datetime: str | None
    invoicing_reason: str


class ProvenanceObject(msgspec.Struct):
    """Tally: where the figures came from — log positions read, and a digest of every input."""

    billing_position: int
    metering_position: int
    digest: str


class InvoiceObject(msgspec.Struct):
    lago_id: str
    billing_entity_code: str | None
    sequential_id: int | None
    number: str
    purchase_order_number: str | None
    issuing_date: str
    payment_due_date: str
    net_payment_term: int
    invoice_type: str
    status: str
    payment_status: str
    payment_dispute_lost_at: str | None
    payment_overdue: bool
    currency: str
    fees_amount_cents: int
    taxes_amount_cents: int
    progressive_billing_credit_amount_cents: int
    coupons_amount_cents: int
    credit_notes_amount_cents: int
    sub_total_excluding_taxes_amount_cents: int
    sub_total_including_taxes_amount_cents: int
    total_amount_cents: int
    total_due_amount_cents: int
    total_paid_amount_cents: int
    total_offsetted_credit_note_amount_cents: int
    prepaid_credit_amount_cents: int
    prepaid_granted_credit_amount_cents: int
    prepaid_purchased_credit_amount_cents: int
    file_url: str | None
    xml_url: str | None
    web_url: str | None
    version_number: int
    self_billed: bool
    created_at: str
    updated_at: str
    voided_at: str | None
    customer: CustomerObject | None
    metadata: list[dict[str, Any]]
    applied_taxes: list[AppliedTaxObject]
    billing_periods: list[BillingPeriodObject] | Unset = UNSET
    fees: list[FeeObject] | Unset = UNSET
    subscriptions: list[dict[str, Any]] | Unset = UNSET
    credits: list[dict[str, Any]] | Unset = UNSET
    error_details: list[dict[str, Any]] | Unset = UNSET
    applied_invoice_custom_sections: list[dict[str, Any]] | Unset = UNSET
    applied_usage_thresholds: list[dict[str, Any]] | Unset = UNSET
    provenance: ProvenanceObject | Unset = UNSET


def _decimal(value: Decimal) -> str:
    text = format(value.normalize(), "f") if value == value.to_integral_value() else format(value, "f")
    return text


def _units(value: Decimal) -> str:
    text = format(value, "f")
    return text if "." in text else f"{text}.0"


def _day(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


class InvoicePresenter:
    def __init__(self, customers: CustomersReader, subscriptions: SubscriptionsReader,
                 organizations: OrganizationsReader, customer_presenter: CustomerPresenter, base_url: str = "") -> None:
        self._customers = customers
        self._subscriptions = subscriptions
        self._organizations = organizations
        self._customer_presenter = customer_presenter
        self._base_url = base_url

    def many(self, organization_id: UUID, documents: Sequence[Document[InvoiceRecord]], *, whole: bool) -> list[InvoiceObject]:
        presented = self.customers(organization_id, documents)
        subscription_ids = {p.subscription_id for d in documents for p in d.data.billing_periods}
        subscriptions = self._subscriptions.many(organization_id, list(subscription_ids)) if whole else {}
        organization = self._organizations.get(organization_id)
        prefix = organization.settings.document_number_prefix if organization is not None else "INV"
        return [self._one(d, presented, subscriptions, prefix, whole=whole) for d in documents]

    def customers(self, organization_id: UUID, documents: Sequence[Document[InvoiceRecord]]) -> dict[UUID, CustomerObject]:
        """The customers of these invoices, presented once each, by customer id."""
        customers = self._customers.many(organization_id, list({d.data.customer_id for d in documents}))
        return {c.id: self._customer_presenter.customer(organization_id, c) for c in customers.values()}

    def _one(self, document: Document[InvoiceRecord], customers: dict[UUID, CustomerObject],
             subscriptions: dict[UUID, Any], prefix: str, *, whole: bool) -> InvoiceObject:
        record = document.data
        lago_id = str(document.id)
        customer = customers.get(record.customer_id)
        total = record.total_amount_cents
        paid = record.paid_amount_cents or (total if record.payment_status == "succeeded" and record.status != "voided" else 0)
        invoice = InvoiceObject(
            lago_id=lago_id, billing_entity_code=None, sequential_id=record.sequential_id,
            number=record.number or f"{prefix}-DRAFT", purchase_order_number=None,
            issuing_date=record.issuing_date.isoformat(), payment_due_date=record.payment_due_date.isoformat(),
            net_payment_term=record.net_payment_term, invoice_type=record.invoice_type, status=record.status,
            payment_status=record.payment_status, payment_dispute_lost_at=None,
            payment_overdue=record.status == "finalized" and record.payment_status != "succeeded"
            and record.payment_due_date < date.today(),
            currency=record.currency, fees_amount_cents=record.fees_amount_cents,
            taxes_amount_cents=record.taxes_amount_cents,
            progressive_billing_credit_amount_cents=record.totals.progressive_billing_credit_amount_cents,
            coupons_amount_cents=record.totals.coupons_amount_cents,
            credit_notes_amount_cents=record.totals.credit_notes_amount_cents,
            sub_total_excluding_taxes_amount_cents=record.totals.sub_total_excluding_taxes_amount_cents,
            sub_total_including_taxes_amount_cents=record.totals.sub_total_including_taxes_amount_cents,
            total_amount_cents=total, total_due_amount_cents=record.total_due_amount_cents, total_paid_amount_cents=paid,
            total_offsetted_credit_note_amount_cents=record.offset_amount_cents,
            prepaid_credit_amount_cents=record.totals.prepaid_credit_amount_cents,
            prepaid_granted_credit_amount_cents=0, prepaid_purchased_credit_amount_cents=0,
            file_url=f"{self._base_url}/api/v1/invoices/{lago_id}/file.pdf" if record.file_key else None,
            xml_url=None, web_url=None, version_number=4, self_billed=False,
            created_at=timestamp(document.created_at) or "", updated_at=timestamp(document.updated_at) or "",
            voided_at=timestamp(record.voided_at), customer=customer,
            metadata=[{"lago_id": None, "key": k, "value": v, "created_at": None} for k, v in record.metadata.items()],
            applied_taxes=[AppliedTaxObject(
                lago_id=None, lago_invoice_id=lago_id, lago_tax_id=str(line.tax_id), tax_name=line.name,
                tax_code=line.code, tax_rate=float(line.rate), tax_description=line.description,
                amount_cents=line.amount_cents, amount_currency=record.currency, fees_amount_cents=line.fees_amount_cents,
                created_at=timestamp(document.created_at)) for line in record.tax_lines],
        )
        if not whole:
            return invoice
        external = record.external_subscription_ids
        invoice.billing_periods = [BillingPeriodObject(
            lago_subscription_id=str(p.subscription_id), external_subscription_id=p.external_subscription_id,
            lago_plan_id=str(p.plan_id), subscription_from_datetime=timestamp(p.subscription_from_at),
            subscription_to_datetime=timestamp(p.subscription_to_at), charges_from_datetime=timestamp(p.charges_from_at),
            charges_to_datetime=timestamp(p.charges_to_at), invoicing_reason=p.invoicing_reason,
        ) for p in record.billing_periods]
        invoice.fees = [present_fee(f, document, customer, external) for f in record.fees]
        invoice.subscriptions = [{"lago_id": str(s), "external_id": external.get(s)} for s in external]
        early = record.totals.progressive_billing_credit_amount_cents
        invoice.credits = ([{
            "lago_id": str(uuid5(document.id, "billed_early")), "amount_cents": early, "amount_currency": record.currency,
            "before_taxes": True, "item": {"lago_item_id": lago_id, "type": "invoice", "code": "progressive_billing",
                                           "name": "Usage already invoiced", "description": None},
            "invoice": {"lago_id": lago_id, "payment_status": record.payment_status},
        }] if early else []) + [{
            "lago_id": str(uuid5(document.id, f"coupon/{c.applied_coupon_id}")), "amount_cents": c.amount_cents,
            "amount_currency": record.currency, "before_taxes": True,
            "item": {"lago_item_id": str(c.applied_coupon_id), "type": "coupon", "code": c.coupon_code,
                     "name": c.coupon_name, "description": None},
            "invoice": {"lago_id": lago_id, "payment_status": record.payment_status},
        } for c in record.coupons] + [{
            "lago_id": str(uuid5(document.id, f"credit/{c.credit_note_id}")), "amount_cents": c.amount_cents,
            "amount_currency": record.currency, "before_taxes": False,
            "item": {"lago_item_id": str(c.credit_note_id), "type": "credit_note", "code": c.number, "name": c.number,
                     "description": None},
            "invoice": {"lago_id": lago_id, "payment_status": record.payment_status},
        } for c in record.credits]  # wallets are not credits in Lago's shape: see prepaid_credit_amount_cents
        invoice.error_details = []
        invoice.applied_invoice_custom_sections = []
        invoice.applied_usage_thresholds = []
        invoice.provenance = ProvenanceObject(record.provenance.billing_position, record.provenance.metering_position,
                                              record.provenance.digest)
        return invoice


def present_fee(fee: Fee, invoice: Document[InvoiceRecord], customer: CustomerObject | None,
                external: dict[UUID, str]) -> FeeObject:
    record = invoice.data
    exponent = minor_unit_exponent(fee.currency)
    item_type = {"subscription": "Subscription", "charge": "BillableMetric", "add_on": "AddOn",
                 "commitment": "Commitment"}.get(fee.fee_type, "Subscription")
    taxes = fee.taxes_amount_cents
    grouped = dict(fee.grouped_by)
    return FeeObject(
        lago_id=str(fee.id), lago_charge_id=str(fee.charge_id) if fee.charge_id else None,
        lago_charge_filter_id=str(fee.charge_filter_id) if fee.charge_filter_id else None,
        lago_invoice_id=str(invoice.id), lago_true_up_fee_id=None,
        lago_true_up_parent_fee_id=None, lago_subscription_id=str(fee.subscription_id) if fee.subscription_id else None,
        external_subscription_id=external.get(fee.subscription_id) if fee.subscription_id else None,
        lago_customer_id=str(record.customer_id), external_customer_id=customer.external_id if customer else None,
        item={"type": fee.fee_type, "code": fee.item_code, "name": fee.item_name, "description": fee.description,
              "invoice_display_name": fee.invoice_display_name or fee.item_name,
              "filters": None, "filter_invoice_display_name": fee.filter_display_name,
              "lago_item_id": str(fee.item_id), "item_type": item_type, "grouped_by": grouped},
        pay_in_advance=fee.pay_in_advance, invoiceable=fee.invoiceable, amount_cents=fee.amount_cents,
        amount_currency=fee.currency, precise_amount=_decimal(money.from_cents(fee.precise_amount_cents, exponent)),
        precise_total_amount=_decimal(money.from_cents(fee.precise_amount_cents + fee.taxes_precise_amount_cents, exponent)),
        taxes_amount_cents=taxes, taxes_precise_amount=_decimal(fee.taxes_precise_amount_cents),
        taxes_rate=float(fee.taxes_rate), total_aggregated_units=_units(fee.units),
        total_amount_cents=fee.amount_cents + taxes, total_amount_currency=fee.currency, units=_units(fee.units),
        description=fee.description, precise_unit_amount=_decimal(money.from_cents(fee.precise_unit_amount, exponent)),
        precise_coupons_amount_cents=_decimal(fee.precise_coupons_amount_cents),
        sub_total_excluding_taxes_amount_cents=money.round_half_up_cents(fee.taxable_cents),
        sub_total_excluding_taxes_precise_amount_cents=_decimal(fee.precise_amount_cents - fee.precise_coupons_amount_cents),
        events_count=fee.events_count, payment_status=record.payment_status,
        created_at=timestamp(invoice.created_at), succeeded_at=None, failed_at=None, refunded_at=None,
        amount_details=dict(fee.amount_details), self_billed=False, from_date=timestamp(fee.from_at),
        to_date=timestamp(fee.to_at),
        applied_taxes=[AppliedTaxObject(
            lago_id=None, lago_invoice_id=str(invoice.id), lago_tax_id=str(t.tax_id), tax_name=t.name, tax_code=t.code,
            tax_rate=float(t.rate), tax_description=t.description,
            amount_cents=cents, amount_currency=fee.currency,
        ) for t, cents in fee.tax_amounts()],
        usage=dict(fee.usage),
        event_transaction_id=fee.event_transaction_id if fee.event_transaction_id is not None else UNSET,
    )


class InvoicesBase:
    def __init__(self, billing: Billing, invoicing: Invoicing, invoices: InvoicesReader, customers: CustomersReader,
                 presenter: InvoicePresenter, now: Callable[[], datetime]) -> None:
        self._billing = billing
        self._invoicing = invoicing
        self._invoices = invoices
        self._customers = customers
        self._presenter = presenter
        self._now = now

    def _show(self, resp: falcon.Response, organization_id: UUID, invoice_id: UUID) -> None:
        document = self._invoices.by_id(organization_id, invoice_id)
        if document is None or document.data.status == "deleted":
            raise InvoiceNotFound(key=invoice_id)
        respond(resp, {"invoice": self._presenter.many(organization_id, [document], whole=True)[0]})

    def _list(self, req: falcon.Request, resp: falcon.Response, customer_ids: list[UUID] | None) -> None:
        page = PageRequest.of(req)
        filters = _filters(req, customer_ids)
        documents, total = self._invoices.filtered(req.context.organization_id, page.offset, page.per_page, filters)
        respond(resp, {"invoices": self._presenter.many(req.context.organization_id, documents, whole=False),
                       "meta": page.meta(total)})


def _id(raw: str, missing: type[NotFound] = InvoiceNotFound) -> UUID:
    return parse_id(raw, missing)


def _filters(req: falcon.Request, customer_ids: list[UUID] | None) -> InvoiceFilters:
    statuses = list_param(req, "status") + list_param(req, "statuses")
    payment_statuses = list_param(req, "payment_status") + list_param(req, "payment_statuses")
    problems: dict[str, list[str]] = {}
    if not set(statuses) <= set(STATUSES):
        problems["status"] = ["value_is_invalid"]
    if not set(payment_statuses) <= set(PAYMENT_STATUSES):
        problems["payment_status"] = ["value_is_invalid"]
    invoice_type = req.get_param("invoice_type")
    if invoice_type is not None and invoice_type not in INVOICE_TYPES:
        problems["invoice_type"] = ["value_is_invalid"]
    dates = query_dates(req, ("issuing_date_from", "issuing_date_to"), problems)
    amounts = query_ints(req, ("amount_from", "amount_to"), problems)
    if problems:
        raise ValidationFailed(problems)
    return InvoiceFilters(
        customer_ids=customer_ids, statuses=statuses or ["draft", "finalized", "voided", "failed", "pending"],
        payment_statuses=payment_statuses or None, invoice_type=invoice_type, currency=req.get_param("currency"),
        issuing_date_from=dates.get("issuing_date_from"), issuing_date_to=dates.get("issuing_date_to"),
        amount_from=amounts.get("amount_from"), amount_to=amounts.get("amount_to"),
    )


DOCUMENT_RANGES = (  # the date and amount filters of invoices and credit notes
    Param("issuing_date_from", "YYYY-MM-DD."),
    Param("issuing_date_to", "YYYY-MM-DD."),
    Param("amount_from", "Smallest total_amount_cents.", "integer"),
    Param("amount_to", "Largest total_amount_cents.", "integer"),
)
_LIST_FILTERS = (
    Param("external_customer_id", "The customer's external id."),
    Param("status", "draft, finalized, voided, failed, pending.", array=True),
    Param("payment_status", "pending, succeeded, failed.", array=True),
    Param("invoice_type", "subscription, add_on, credit, one_off, advance_charges, progressive_billing."),
    Param("currency", "ISO 4217 code."),
    *DOCUMENT_RANGES,
)


class InvoiceCollection(InvoicesBase):
    path = "/api/v1/invoices"
    operations = (
        Operation("POST", path, "Issue a one-off invoice of add-ons, finalized at once", "invoices", InvoiceObject,
                  "invoice", request=_create, errors=(401, 404, 422)),
        Operation("GET", path, "List invoices", "invoices", InvoiceObject, "invoices", listed=True,
                  query=PAGINATION + _LIST_FILTERS),
    )

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = _create.decode(req.context.body)
        problems: dict[str, list[str]] = {}
        if not isinstance(body.external_customer_id, str) or not body.external_customer_id:
            problems["external_customer_id"] = ["value_is_mandatory"]
        if not body.fees:
            problems["fees"] = ["value_is_mandatory"]
        if problems:
            raise ValidationFailed(problems)
        organization_id = req.context.organization_id
        currency = body.currency if isinstance(body.currency, str) else None
        lines = [given(fee) | {"from_datetime": fee.from_datetime, "to_datetime": fee.to_datetime}
                 for fee in body.fees or []]
        invoice_id = self._billing.issue_one_off(organization_id, str(body.external_customer_id), currency, lines,
                                                 self._invoicing.taxes(organization_id), self._now())
        self._show(resp, organization_id, invoice_id)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        external_customer_id = req.get_param("external_customer_id")
        customer_ids = None
        if external_customer_id:
            customer = self._customers.by_key(req.context.organization_id, external_customer_id)
            customer_ids = [customer.id] if customer is not None else []
        self._list(req, resp, customer_ids)


class CustomerInvoices(InvoicesBase):
    path = "/api/v1/customers/{external_id}/invoices"
    operations = (
        Operation("GET", path, "List a customer's invoices", "customers", InvoiceObject, "invoices", listed=True,
                  query=PAGINATION + _LIST_FILTERS[1:], errors=(401, 404)),
    )

    def on_get(self, req: falcon.Request, resp: falcon.Response, external_id: str) -> None:
        customer = self._customers.by_key(req.context.organization_id, external_id)
        if customer is None:
            raise CustomerNotFound(key=external_id)
        self._list(req, resp, [customer.id])


class SubscriptionInvoiceNow(InvoicesBase):
    path = "/api/v1/subscriptions/{external_id}/invoice_now"
    operations = (
        Operation("POST", path, "Invoice the usage of the open period so far, without terminating; the period's "
                  "invoice bills the rest, net of it", "subscriptions", InvoiceObject, "invoice",
                  errors=(401, 404, 422), extension=True),
    )

    def on_post(self, req: falcon.Request, resp: falcon.Response, external_id: str) -> None:
        organization_id = req.context.organization_id
        subscription = self._billing.subscription(organization_id, external_id, "active")
        invoice_id = self._invoicing.invoice_now(subscription.id, self._now())
        self._show(resp, organization_id, invoice_id)


class InvoiceMember(InvoicesBase):
    path = "/api/v1/invoices/{lago_id}"
    operations = (
        Operation("GET", path, "Retrieve an invoice with its fees and provenance", "invoices", InvoiceObject, "invoice",
                  errors=(401, 404)),
        Operation("PUT", path, "Update an invoice's payment status or metadata", "invoices", InvoiceObject, "invoice",
                  request=_update, errors=(401, 404, 405, 422)),
        Operation("DELETE", path, "Delete a draft invoice", "invoices", InvoiceObject, "invoice", errors=(401, 404, 405)),
    )

    def on_get(self, req: falcon.Request, resp: falcon.Response, lago_id: str) -> None:
        self._show(resp, req.context.organization_id, _id(lago_id))

    def on_put(self, req: falcon.Request, resp: falcon.Response, lago_id: str) -> None:
        changes = given(_update.decode(req.context.body))
        metadata = None
        if "metadata" in changes:
            metadata = {m["key"]: m.get("value") for m in changes["metadata"]}
        invoice_id = _id(lago_id)
        self._billing.update_invoice(req.context.organization_id, invoice_id,
                                     payment_status=changes.get("payment_status"), metadata=metadata, now=self._now())
        self._show(resp, req.context.organization_id, invoice_id)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, lago_id: str) -> None:
        invoice_id = _id(lago_id)
        document = self._invoices.by_id(req.context.organization_id, invoice_id)
        if document is None or document.data.status == "deleted":
            raise InvoiceNotFound(key=invoice_id)
        self._billing.delete_invoice(req.context.organization_id, invoice_id, self._now())
        shown = self._presenter.many(req.context.organization_id, [document], whole=True)[0]
        shown.status = "deleted"
        respond(resp, {"invoice": shown})


class InvoiceRefresh(InvoicesBase):
    path = "/api/v1/invoices/{lago_id}/refresh"
    operations = (
        Operation("PUT", path, "Compute a draft again with the latest usage (no-op for others)", "invoices",
                  InvoiceObject, "invoice", errors=(401, 404)),
    )

    def on_put(self, req: falcon.Request, resp: falcon.Response, lago_id: str) -> None:
        invoice_id = _id(lago_id)
        self._invoicing.refresh(req.context.organization_id, invoice_id, self._now())
        self._show(resp, req.context.organization_id, invoice_id)


class InvoiceFinalize(InvoicesBase):
    path = "/api/v1/invoices/{lago_id}/finalize"
    operations = (
        Operation("PUT", path, "Refresh and finalize a draft", "invoices", InvoiceObject, "invoice", errors=(401, 404)),
    )

    def on_put(self, req: falcon.Request, resp: falcon.Response, lago_id: str) -> None:
        invoice_id = _id(lago_id)
        if self._billing.invoice(req.context.organization_id, invoice_id).status != "draft":
            raise InvoiceNotFound(key=invoice_id)  # Lago: only drafts are found here
        self._invoicing.finalize(req.context.organization_id, invoice_id, self._now())
        self._show(resp, req.context.organization_id, invoice_id)


class InvoiceVoid(InvoicesBase):
    path = "/api/v1/invoices/{lago_id}/void"
    operations = (
        Operation("POST", path, "Void a finalized invoice", "invoices", InvoiceObject, "invoice", errors=(401, 404, 405)),
    )

    def on_post(self, req: falcon.Request, resp: falcon.Response, lago_id: str) -> None:
        invoice_id = _id(lago_id)
        self._billing.void_invoice(req.context.organization_id, invoice_id, self._now())
        self._show(resp, req.context.organization_id, invoice_id)


class InvoiceDownload(InvoicesBase):
    path = "/api/v1/invoices/{lago_id}/download"
    operations = (
        Operation("POST", path, "Render the invoice PDF (once) and answer with its file_url", "invoices", InvoiceObject,
                  "invoice", errors=(401, 404)),
    )

    def __init__(self, *args: Any, files: InvoiceFiles, organizations: OrganizationsReader,
                 customer_presenter: CustomerPresenter, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._files = files
        self._organizations = organizations
        self._customer_presenter = customer_presenter

    def on_post(self, req: falcon.Request, resp: falcon.Response, lago_id: str) -> None:
        organization_id = req.context.organization_id
        invoice_id = _id(lago_id)
        document = self._invoices.by_id(organization_id, invoice_id)
        if document is None or document.data.status not in ("finalized", "voided"):
            raise InvoiceNotFound(key=invoice_id)  # Lago: finalized invoices only
        if document.data.file_key is None:
            organization = self._organizations.get(organization_id)
            customer = self._customers.by_id(organization_id, document.data.customer_id)
            timezone = self._customer_presenter.timezone(organization_id, customer.data) if customer else "UTC"
            if self._files.get(organization_id, invoice_id) is None and organization is not None:
                self._files.put(organization_id, invoice_id, render(document, organization, customer, timezone))
            self._billing.attach_invoice_file(organization_id, invoice_id, f"invoice_files/{invoice_id}")
        self._show(resp, organization_id, invoice_id)


class InvoiceDownloadAlias(InvoiceDownload):
    path = "/api/v1/invoices/{lago_id}/download_pdf"
    operations = (
        Operation("POST", path, "Same as /download (Lago's alias)", "invoices", InvoiceObject, "invoice",
                  errors=(401, 404)),
    )


class InvoiceFile(InvoicesBase):
    path = "/api/v1/invoices/{lago_id}/file.pdf"
    operations = (
        Operation("GET", path, "The invoice PDF itself (the file_url; needs the API key)", "invoices", None, None,
                  extension=True, content_type="application/pdf", errors=()),
    )

    def __init__(self, *args: Any, files: InvoiceFiles, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._files = files

    def on_get(self, req: falcon.Request, resp: falcon.Response, lago_id: str) -> None:
        content = self._files.get(req.context.organization_id, _id(lago_id))
        if content is None:
            raise InvoiceNotFound(key=lago_id)
        resp.content_type = "application/pdf"
        resp.data = content


class FeeCollection(InvoicesBase):
    path = "/api/v1/fees"
    operations = (
        Operation("GET", path, "List fees", "fees", FeeObject, "fees", listed=True, query=PAGINATION + (
            Param("fee_type", "subscription, charge, add_on, commitment."),
            Param("external_subscription_id", "Fees of this subscription."),
            Param("external_customer_id", "Fees of this customer."),
            Param("billable_metric_code", "Charge fees of this metric."),
            Param("currency", "ISO 4217 code."),
        )),
    )

    def __init__(self, *args: Any, subscriptions: SubscriptionsReader, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._subscriptions = subscriptions

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        organization_id = req.context.organization_id
        page = PageRequest.of(req)
        conditions: list[Condition] = []
        if req.get_param("fee_type") and req.get_param("fee_type") not in FEE_TYPES:
            raise ValidationFailed({"fee_type": ["value_is_invalid"]})
        if req.get_param("fee_type"):
            conditions.append((sql.SQL("fee_type = %s"), [req.get_param("fee_type")]))
        if req.get_param("billable_metric_code"):
            conditions.append((sql.SQL("fee_type = 'charge' AND item_code = %s"), [req.get_param("billable_metric_code")]))
        if req.get_param("currency"):
            conditions.append((sql.SQL("currency = %s"), [req.get_param("currency")]))
        if req.get_param("external_customer_id"):
            customer = self._customers.by_key(organization_id, req.get_param("external_customer_id"))
            conditions.append((sql.SQL("customer_id = %s"), [customer.id if customer else None]))
        if req.get_param("external_subscription_id"):
            found, _ = self._subscriptions.filtered(organization_id, 0, 1000, statuses=["active", "terminated"],
                                                    external_id=req.get_param("external_subscription_id"))
            conditions.append((sql.SQL("subscription_id = ANY(%s)"), [[d.id for d in found]]))
        fees, total = self._invoices.fees(organization_id, page.offset, page.per_page, conditions)
        invoices = self._invoices.many(organization_id, list({invoice_id for _, invoice_id in fees}))
        customers = self._presenter.customers(organization_id, list(invoices.values()))
        shown = [present_fee(fee, invoices[invoice_id], customers.get(invoices[invoice_id].data.customer_id),
                             invoices[invoice_id].data.external_subscription_ids) for fee, invoice_id in fees]
        respond(resp, {"fees": shown, "meta": page.meta(total)})


class FeeMember(FeeCollection):
    path = "/api/v1/fees/{lago_id}"
    operations = (Operation("GET", path, "Retrieve a fee", "fees", FeeObject, "fee", errors=(401, 404)),)

    def on_get(self, req: falcon.Request, resp: falcon.Response, lago_id: str) -> None:  # type: ignore[override]
        organization_id = req.context.organization_id
        found = self._invoices.fee(organization_id, _id(lago_id, FeeNotFound))
        if found is None:
            raise FeeNotFound(key=lago_id)
        fee, invoice = found
        customer = self._presenter.customers(organization_id, [invoice]).get(invoice.data.customer_id)
        respond(resp, {"fee": present_fee(fee, invoice, customer, invoice.data.external_subscription_ids)})


def resources(billing: Billing, invoicing: Invoicing, invoices: InvoicesReader, customers: CustomersReader,
              subscriptions: SubscriptionsReader, organizations: OrganizationsReader, presenter: InvoicePresenter,
              customer_presenter: CustomerPresenter, files: InvoiceFiles, now: Callable[[], datetime]) -> list[Any]:
    parts = (billing, invoicing, invoices, customers, presenter, now)
    download = {"files": files, "organizations": organizations, "customer_presenter": customer_presenter}
    return [
        InvoiceCollection(*parts), CustomerInvoices(*parts), CustomerPastUsage(*parts), InvoiceMember(*parts),
        SubscriptionInvoiceNow(*parts),
        InvoiceRefresh(*parts),
        InvoiceFinalize(*parts), InvoiceVoid(*parts), InvoiceDownload(*parts, **download),
        InvoiceDownloadAlias(*parts, **download), InvoiceFile(*parts, files=files),
        FeeCollection(*parts, subscriptions=subscriptions), FeeMember(*parts, subscriptions=subscriptions),
    ]


class PastUsageObject(msgspec.Struct):
    from_datetime: str | None
    to_datetime: str | None
    issuing_date: str
    currency: str
    amount_cents: int
    taxes_amount_cents: int
    total_amount_cents: int
    lago_invoice_id: str
    charges_usage: list[dict[str, Any]]


class CustomerPastUsage(InvoicesBase):
    path = "/api/v1/customers/{external_id}/past_usage"
    operations = (
        Operation("GET", path, "Usage of a subscription's invoiced periods, newest first", "customers", PastUsageObject,
                  "usage_periods", listed=True, errors=(401, 404, 422), query=PAGINATION + (
                      Param("external_subscription_id", "The subscription's external id.", required=True),
                      Param("billable_metric_code", "Only this metric's charges."),
                      Param("periods_count", "How many periods, newest first.", "integer"))),
    )

    def on_get(self, req: falcon.Request, resp: falcon.Response, external_id: str) -> None:
        organization_id = req.context.organization_id
        external_subscription_id = req.get_param("external_subscription_id")
        if not external_subscription_id:
            raise ValidationFailed({"external_subscription_id": ["value_is_mandatory"]})
        customer = self._customers.by_key(organization_id, external_id)
        if customer is None:
            raise CustomerNotFound(key=external_id)
        metric = req.get_param("billable_metric_code")
        page = PageRequest.of(req)
        documents, _ = self._invoices.filtered(organization_id, 0, 10_000, InvoiceFilters(
            customer_ids=[customer.id], statuses=["draft", "finalized"], invoice_type="subscription"))
        periods = []
        for document in documents:
            record = document.data
            for period in record.billing_periods:
                if period.external_subscription_id != external_subscription_id or period.charges_from_at is None:
                    continue
                fees = [f for f in record.fees if f.fee_type == "charge" and f.subscription_id == period.subscription_id
                        and (metric is None or f.item_code == metric)]
                amount = sum(f.amount_cents for f in fees)
                taxes = sum(f.taxes_amount_cents for f in fees)
                periods.append(PastUsageObject(
                    from_datetime=timestamp(period.charges_from_at), to_datetime=timestamp(period.charges_to_at),
                    issuing_date=record.issuing_date.isoformat(), currency=record.currency, amount_cents=amount,
                    taxes_amount_cents=taxes, total_amount_cents=amount + taxes, lago_invoice_id=str(document.id),
                    charges_usage=[_charge_usage(f) for f in fees],
                ))
        count = count_param(req, "periods_count")
        if count is not None:
            periods = periods[:count]
        shown = periods[page.offset:page.offset + page.per_page]
        respond(resp, {"usage_periods": shown, "meta": page.meta(len(periods))})


def _charge_usage(fee: Fee) -> dict[str, Any]:
    return {
        "units": _units(fee.units), "events_count": fee.events_count, "amount_cents": fee.amount_cents,
        "amount_currency": fee.currency,
        "charge": {"lago_id": str(fee.charge_id) if fee.charge_id else None, "charge_model": None,
                   "invoice_display_name": fee.invoice_display_name},
        "billable_metric": {"lago_id": str(fee.item_id), "name": fee.item_name, "code": fee.item_code,
                            "aggregation_type": None},
        "filters": [], "grouped_usage": [{"grouped_by": dict(fee.grouped_by)}] if fee.grouped_by else [],
    }
