"""GET and PUT /api/v1/organizations: the caller's own organization (reference §2.14)."""

from __future__ import annotations

from typing import Literal

import falcon
import msgspec

from domain.application import Billing
from domain.organization import OrganizationNotFound
from interfaces.http.openapi import Operation
from interfaces.http.taxes import TaxObject, present_tax
from interfaces.http.wire import Body, given, respond, timestamp
from projections.catalog import TaxesReader
from projections.organizations import OrganizationRecord, OrganizationsReader

Unset = msgspec.UnsetType
UNSET = msgspec.UNSET


class BillingConfigurationInput(msgspec.Struct, kw_only=True):
    invoice_footer: str | None | Unset = UNSET
    invoice_grace_period: int | Unset = UNSET
    document_locale: str | Unset = UNSET


class OrganizationUpdate(msgspec.Struct, kw_only=True):
    """Fields of ``PUT /organizations``; only those sent change."""

    name: str | Unset = UNSET
    webhook_url: str | None | Unset = UNSET
    country: str | None | Unset = UNSET
    default_currency: str | Unset = UNSET
    address_line1: str | None | Unset = UNSET
    address_line2: str | None | Unset = UNSET
    state: str | None | Unset = UNSET
    zipcode: str | None | Unset = UNSET
    email: str | None | Unset = UNSET
    city: str | None | Unset = UNSET
    legal_name: str | None | Unset = UNSET
    legal_number: str | None | Unset = UNSET
    tax_identification_number: str | None | Unset = UNSET
    net_payment_term: int | Unset = UNSET
    timezone: str | Unset = UNSET
    document_numbering: Literal["per_customer", "per_organization"] | Unset = UNSET
    document_number_prefix: str | Unset = UNSET
    finalize_zero_amount_invoice: bool | Unset = UNSET
    email_settings: list[str] | None | Unset = UNSET
    billing_configuration: BillingConfigurationInput | Unset = UNSET


class BillingConfigurationObject(msgspec.Struct):
    invoice_footer: str | None
    invoice_grace_period: int
    document_locale: str


class OrganizationObject(msgspec.Struct):
    """The organization as Lago serializes it."""

    lago_id: str
    name: str
    slug: str
    created_at: str
    webhook_url: str | None
    webhook_urls: list[str]
    country: str | None
    default_currency: str
    address_line1: str | None
    address_line2: str | None
    state: str | None
    zipcode: str | None
    email: str | None
    city: str | None
    legal_name: str | None
    legal_number: str | None
    tax_identification_number: str | None
    net_payment_term: int
    timezone: str
    document_numbering: str
    document_number_prefix: str
    finalize_zero_amount_invoice: bool
    email_settings: list[str]
    billing_configuration: BillingConfigurationObject
    events_store: str
    taxes: list[TaxObject]


_update = Body("organization", OrganizationUpdate)


def present(record: OrganizationRecord, taxes: list[TaxObject]) -> OrganizationObject:
    settings = record.settings
    address = settings.address
    config = settings.billing_configuration
    return OrganizationObject(
        lago_id=str(record.id),
        name=record.name,
        slug=record.slug,
        created_at=timestamp(record.created_at) or "",
        webhook_url=settings.webhook_url,
        webhook_urls=[settings.webhook_url] if settings.webhook_url else [],
        country=address.country,
        default_currency=settings.default_currency,
        address_line1=address.address_line1,
        address_line2=address.address_line2,
        state=address.state,
        zipcode=address.zipcode,
        email=settings.email,
        city=address.city,
        legal_name=settings.legal_name,
        legal_number=settings.legal_number,
        tax_identification_number=settings.tax_identification_number,
        net_payment_term=settings.net_payment_term,
        timezone=settings.timezone,
        document_numbering=settings.document_numbering,
        document_number_prefix=settings.document_number_prefix,
        finalize_zero_amount_invoice=settings.finalize_zero_amount_invoice,
        email_settings=list(settings.email_settings),
        billing_configuration=BillingConfigurationObject(
            invoice_footer=config.invoice_footer,
            invoice_grace_period=config.invoice_grace_period,
            document_locale=config.document_locale,
        ),
        events_store="postgres",
        taxes=taxes,
    )


class OrganizationResource:
    path = "/api/v1/organizations"
    operations = (
        Operation("GET", path, "Retrieve the caller's organization", "organizations",
                  OrganizationObject, "organization"),
        Operation("PUT", path, "Update the caller's organization settings", "organizations",
                  OrganizationObject, "organization", request=_update),
    )

    def __init__(self, billing: Billing, organizations: OrganizationsReader, taxes: TaxesReader) -> None:
        self._billing = billing
        self._organizations = organizations
        self._taxes = taxes

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._show(req.context.organization_id, resp)

    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        update = _update.decode(req.context.body)
        self._billing.update_organization(req.context.organization_id, given(update))
        self._show(req.context.organization_id, resp)

    def _show(self, organization_id: object, resp: falcon.Response) -> None:
        record = self._organizations.get(organization_id)  # type: ignore[arg-type]
        if record is None:
            raise OrganizationNotFound(key=organization_id)
        defaults = [present_tax(d) for d in self._taxes.organization_defaults(record.id)]
        respond(resp, {"organization": present(record, defaults)})
