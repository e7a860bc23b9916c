"""Customers over Lago's API (reference §2.3): upsert by external id, list, show, delete.

Beyond Lago: ``PUT /customers/{external_id}`` updates a customer and may rename its
external id; the former one keeps resolving (ADR 0011).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import falcon
import msgspec

from domain.application import Billing
from domain.customer import CustomerNotFound, CustomerProfile
from domain.errors import ValidationFailed
from interfaces.http.openapi import PAGINATION, Operation, Param
from interfaces.http.taxes import TaxObject, taxes_for
from interfaces.http.wire import NO_ID, Body, PageRequest, given, respond, timestamp
from projections.catalog import TaxesReader
from projections.documents import Document
from projections.organizations import OrganizationsReader
from projections.subscriptions import CustomerFilters, CustomersReader

Unset = msgspec.UnsetType
UNSET = msgspec.UNSET


class AddressInput(msgspec.Struct, kw_only=True):
    address_line1: str | None = None
    address_line2: str | None = None
    city: str | None = None
    zipcode: str | None = None
    state: str | None = None
    country: str | None = None


class CustomerBillingConfigurationInput(msgspec.Struct, kw_only=True):
    invoice_grace_period: int | None | Unset = UNSET
    payment_provider: str | None | Unset = UNSET
    payment_provider_code: str | None | Unset = UNSET
    provider_customer_id: str | None | Unset = UNSET
    sync: bool | None | Unset = UNSET
    sync_with_provider: bool | None | Unset = UNSET
    document_locale: str | None | Unset = UNSET
    provider_payment_methods: list[str] | None | Unset = UNSET
    subscription_invoice_issuing_date_anchor: str | None | Unset = UNSET
    subscription_invoice_issuing_date_adjustment: str | None | Unset = UNSET


class MetadataInput(msgspec.Struct, kw_only=True):
    id: str | None = None
    key: str
    value: str | None = None
    display_in_invoice: bool = False


class CustomerInput(msgspec.Struct, kw_only=True):
    external_id: str | Unset = UNSET
    name: str | None | Unset = UNSET
    firstname: str | None | Unset = UNSET
    lastname: str | None | Unset = UNSET
    customer_type: Literal["company", "individual"] | None | Unset = UNSET
    account_type: Literal["customer", "partner"] | None | Unset = UNSET
    email: str | None | Unset = UNSET
    phone: str | None | Unset = UNSET
    url: str | None | Unset = UNSET
    logo_url: str | None | Unset = UNSET
    legal_name: str | None | Unset = UNSET
    legal_number: str | None | Unset = UNSET
    tax_identification_number: str | None | Unset = UNSET
    address_line1: str | None | Unset = UNSET
    address_line2: str | None | Unset = UNSET
    city: str | None | Unset = UNSET
    state: str | None | Unset = UNSET
    zipcode: str | None | Unset = UNSET
    country: str | None | Unset = UNSET
    shipping_address: AddressInput | None | Unset = UNSET
    currency: str | None | Unset = UNSET
    timezone: str | None | Unset = UNSET
    net_payment_term: int | None | Unset = UNSET
    external_salesforce_id: str | None | Unset = UNSET
    finalize_zero_amount_invoice: Literal["inherit", "skip", "finalize"] | None | Unset = UNSET
    skip_invoice_custom_sections: bool | None | Unset = UNSET
    invoice_custom_section_codes: list[str] | None | Unset = UNSET
    tax_codes: list[str] | None | Unset = UNSET
    metadata: list[MetadataInput] | None | Unset = UNSET
    billing_configuration: CustomerBillingConfigurationInput | None | Unset = UNSET
    billing_entity_code: str | None | Unset = UNSET


class AddressObject(msgspec.Struct):
    address_line1: str | None
    address_line2: str | None
    city: str | None
    zipcode: str | None
    state: str | None
    country: str | None


class CustomerBillingConfigurationObject(msgspec.Struct):
    invoice_grace_period: int | None
    payment_provider: str | None
    payment_provider_code: str | None
    provider_customer_id: str | None
    sync: bool | None
    sync_with_provider: bool | None
    document_locale: str | None
    provider_payment_methods: list[str]
    subscription_invoice_issuing_date_anchor: str | None
    subscription_invoice_issuing_date_adjustment: str | None


class MetadataObject(msgspec.Struct):
    lago_id: str
    key: str
    value: str | None
    display_in_invoice: bool
    created_at: str


class CustomerObject(msgspec.Struct):
    lago_id: str
    external_id: str
    external_ids: list[str]
    billing_entity_code: str | None
    account_type: str
    name: str | None
    firstname: str | None
    lastname: str | None
    customer_type: str | None
    sequential_id: int | None
    slug: str | None
    created_at: str
    updated_at: str
    country: str | None
    address_line1: str | None
    address_line2: str | None
    state: str | None
    zipcode: str | None
    email: str | None
    city: str | None
    url: str | None
    phone: str | None
    logo_url: str | None
    legal_name: str | None
    legal_number: str | None
    currency: str | None
    tax_identification_number: str | None
    timezone: str | None
    applicable_timezone: str
    net_payment_term: int | None
    external_salesforce_id: str | None
    finalize_zero_amount_invoice: str
    skip_invoice_custom_sections: bool
    billing_configuration: CustomerBillingConfigurationObject
    shipping_address: AddressObject
    metadata: list[MetadataObject]
    taxes: list[TaxObject]
    integration_customers: list[dict[str, Any]] = []
    applicable_invoice_custom_sections: list[dict[str, Any]] = []


_body = Body("customer", CustomerInput)


class CustomerPresenter:
    def __init__(self, organizations: OrganizationsReader, taxes: TaxesReader) -> None:
        self._organizations = organizations
        self._taxes = taxes

    def timezone(self, organization_id: UUID, profile: CustomerProfile) -> str:
        """The customer's timezone, else the organization's, else UTC (semantics P1)."""
        if profile.timezone:
            return profile.timezone
        organization = self._organizations.get(organization_id)
        return organization.settings.timezone if organization is not None else "UTC"

    def customers(self, organization_id: UUID, documents: Sequence[Document[CustomerProfile]]) -> list[CustomerObject]:
        return [self.customer(organization_id, d) for d in documents]

    def customer(self, organization_id: UUID, document: Document[CustomerProfile]) -> CustomerObject:
        c = document.data
        config = c.billing_configuration
        ship = c.shipping_address
        return CustomerObject(
            lago_id=str(document.id), external_id=c.external_id, external_ids=document.keys,
            billing_entity_code=c.billing_entity_code, account_type=c.account_type, name=c.name,
            firstname=c.firstname, lastname=c.lastname, customer_type=c.customer_type, sequential_id=None, slug=None,
            created_at=timestamp(document.created_at) or "", updated_at=timestamp(document.updated_at) or "",
            country=c.address.country, address_line1=c.address.address_line1, address_line2=c.address.address_line2,
            state=c.address.state, zipcode=c.address.zipcode, email=c.email, city=c.address.city, url=c.url,
            phone=c.phone, logo_url=c.logo_url, legal_name=c.legal_name, legal_number=c.legal_number,
            currency=c.currency, tax_identification_number=c.tax_identification_number, timezone=c.timezone,
            applicable_timezone=self.timezone(organization_id, c), net_payment_term=c.net_payment_term,
            external_salesforce_id=c.external_salesforce_id, finalize_zero_amount_invoice=c.finalize_zero_amount_invoice,
            skip_invoice_custom_sections=c.skip_invoice_custom_sections,
            billing_configuration=CustomerBillingConfigurationObject(
                invoice_grace_period=config.invoice_grace_period, payment_provider=config.payment_provider,
                payment_provider_code=config.payment_provider_code, provider_customer_id=config.provider_customer_id,
                sync=config.sync, sync_with_provider=config.sync_with_provider, document_locale=config.document_locale,
                provider_payment_methods=list(config.provider_payment_methods),
                subscription_invoice_issuing_date_anchor=config.subscription_invoice_issuing_date_anchor,
                subscription_invoice_issuing_date_adjustment=config.subscription_invoice_issuing_date_adjustment,
            ),
            shipping_address=AddressObject(address_line1=ship.address_line1, address_line2=ship.address_line2,
                                           city=ship.city, zipcode=ship.zipcode, state=ship.state, country=ship.country),
            metadata=[MetadataObject(lago_id=str(m.id), key=m.key, value=m.value, display_in_invoice=m.display_in_invoice,
                                     created_at=timestamp(m.created_at) or "") for m in c.metadata],
            taxes=taxes_for(self._taxes, organization_id, c.tax_codes),
        )


def _flag(req: falcon.Request, name: str) -> bool | None:
    raw = req.get_param(name)
    if raw is None:
        return None
    if raw.lower() not in ("true", "false"):
        raise ValidationFailed({name: ["value_is_invalid"]})
    return raw.lower() == "true"


def filtered_customer(req: falcon.Request, customers: Any) -> UUID | None:
    """The customer ``external_customer_id`` names, for a list filter: None when not asked, ``NO_ID`` when unknown
    (the list is then empty, as Lago's)."""
    external_customer_id = req.get_param("external_customer_id")
    if not external_customer_id:
        return None
    customer = customers.by_key(req.context.organization_id, external_customer_id)
    return customer.id if customer is not None else NO_ID


def list_param(req: falcon.Request, name: str) -> list[str]:
    """Lago's array query parameters: ``name[]=a&name[]=b`` (plain ``name`` accepted too)."""
    return [*(req.get_param_as_list(f"{name}[]") or []), *(req.get_param_as_list(name) or [])]


def customer_filters(req: falcon.Request) -> CustomerFilters:
    metadata = [
        (key[len("metadata["):-1], value)
        for key, value in req.params.items()
        if key.startswith("metadata[") and key.endswith("]") and isinstance(value, str)
    ]
    return CustomerFilters(
        search_term=req.get_param("search_term"),
        external_id=req.get_param("external_id"),
        currencies=list_param(req, "currencies"),
        countries=list_param(req, "countries"),
        states=list_param(req, "states"),
        zipcodes=list_param(req, "zipcodes"),
        account_types=list_param(req, "account_type"),
        customer_type=req.get_param("customer_type"),
        has_customer_type=_flag(req, "has_customer_type"),
        has_tax_identification_number=_flag(req, "has_tax_identification_number"),
        metadata=metadata,
    )


_FILTERS = (
    Param("search_term", "Matches external id, names, e-mail and legal name (case-insensitive)."),
    Param("external_id", "One customer by (current or former) external id."),
    Param("currencies", "Customer currencies.", array=True),
    Param("countries", "Billing address countries (ISO 3166).", array=True),
    Param("states", "Billing address states.", array=True),
    Param("zipcodes", "Billing address zip codes.", array=True),
    Param("account_type", "customer or partner.", array=True),
    Param("customer_type", "company or individual."),
    Param("has_customer_type", "true or false.", "boolean"),
    Param("has_tax_identification_number", "true or false.", "boolean"),
)


class CustomerCollection:
    path = "/api/v1/customers"
    operations = (
        Operation("POST", path, "Create or update a customer by external_id", "customers", CustomerObject, "customer",
                  request=_body),
        Operation("GET", path, "List customers", "customers", CustomerObject, "customers", listed=True,
                  query=PAGINATION + _FILTERS),
    )

    def __init__(self, billing: Billing, customers: CustomersReader, presenter: CustomerPresenter,
                 now: Callable[[], datetime]) -> None:
        self._billing = billing
        self._customers = customers
        self._presenter = presenter
        self._now = now

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        changes = given(_body.decode(req.context.body))
        customer_id = self._billing.upsert_customer(req.context.organization_id, changes, self._now())
        show(resp, req.context.organization_id, customer_id, self._customers, self._presenter)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        page = PageRequest.of(req)
        documents, total = self._customers.filtered(req.context.organization_id, page.offset, page.per_page,
                                                    customer_filters(req))
        respond(resp, {"customers": self._presenter.customers(req.context.organization_id, documents),
                       "meta": page.meta(total)})


def show(resp: falcon.Response, organization_id: UUID, customer_id: UUID, customers: CustomersReader,
         presenter: CustomerPresenter) -> None:
    document = customers.by_id(organization_id, customer_id)
    if document is None:
        raise CustomerNotFound(key=customer_id)
    respond(resp, {"customer": presenter.customer(organization_id, document)})


class CustomerMember:
    path = "/api/v1/customers/{external_id}"
    operations = (
        Operation("GET", path, "Retrieve a customer", "customers", CustomerObject, "customer", errors=(401, 404)),
        Operation("PUT", path, "Update a customer, possibly renaming its external_id (Tally)", "customers",
                  CustomerObject, "customer", request=_body, extension=True, errors=(401, 404, 422)),
        Operation("DELETE", path, "Delete a customer and end its subscriptions", "customers", CustomerObject,
                  "customer", errors=(401, 404)),
    )

    def __init__(self, billing: Billing, customers: CustomersReader, presenter: CustomerPresenter,
                 now: Callable[[], datetime]) -> None:
        self._billing = billing
        self._customers = customers
        self._presenter = presenter
        self._now = now

    def on_get(self, req: falcon.Request, resp: falcon.Response, external_id: str) -> None:
        document = self._customers.by_key(req.context.organization_id, external_id)
        if document is None:
            raise CustomerNotFound(key=external_id)
        respond(resp, {"customer": self._presenter.customer(req.context.organization_id, document)})

    def on_put(self, req: falcon.Request, resp: falcon.Response, external_id: str) -> None:
        changes = given(_body.decode(req.context.body))
        customer_id = self._billing.update_customer(req.context.organization_id, external_id, changes, self._now())
        show(resp, req.context.organization_id, customer_id, self._customers, self._presenter)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, external_id: str) -> None:
        customer_id = self._billing.delete_customer(req.context.organization_id, external_id, self._now())
        show(resp, req.context.organization_id, customer_id, self._customers, self._presenter)
