"""The Organization aggregate: one tenant, its billing settings and its API keys."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from eventsourcing.domain import Aggregate, event

from domain import limits
from domain import identity
from domain.address import Address, is_email
from domain.currency import is_accepted_currency
from domain.errors import Conflict, NotFound, Problems, ValidationFailed

DOCUMENT_NUMBERINGS = ("per_customer", "per_organization")
EMAIL_SETTINGS = ("invoice.finalized", "credit_note.created", "payment_receipt.created")
MAX_GRACE_PERIOD_DAYS = 365
_LOCALE = re.compile(r"^[a-z]{2}(-[A-Z]{2})?$")
_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$")


class OrganizationNotFound(NotFound):
    resource = "organization"


class OrganizationAlreadyExists(Conflict):
    code = "organization_already_exists"


def is_timezone(name: str) -> bool:
    """Whether ``name`` is an IANA time zone this machine knows."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class BillingConfiguration:
    """Invoice presentation and the grace period before drafts are finalized."""

    invoice_footer: str | None = None
    invoice_grace_period: int = 0
    document_locale: str = "en"


@dataclass(frozen=True)
class OrganizationSettings:
    """Everything an organization configures through ``PUT /organizations``."""

    default_currency: str = "USD"
    timezone: str = "UTC"
    email: str | None = None
    legal_name: str | None = None
    legal_number: str | None = None
    tax_identification_number: str | None = None
    address: Address = field(default_factory=Address)
    net_payment_term: int = 0
    document_numbering: str = "per_customer"
    document_number_prefix: str = ""
    finalize_zero_amount_invoice: bool = True
    webhook_url: str | None = None
    email_settings: tuple[str, ...] = ()
    billing_configuration: BillingConfiguration = field(default_factory=BillingConfiguration)

    def amended(self, changes: Mapping[str, Any]) -> OrganizationSettings:
        """These settings with ``changes`` applied; address and billing keys may come flat."""
        own = {k: v for k, v in changes.items() if k in _OWN_FIELDS}
        address = {k: v for k, v in changes.items() if k in _ADDRESS_FIELDS}
        billing = changes.get("billing_configuration") or {}
        if "email_settings" in own:
            own["email_settings"] = tuple(own["email_settings"] or ())
        if "document_number_prefix" in own and own["document_number_prefix"] is not None:
            own["document_number_prefix"] = own["document_number_prefix"].upper()
        return replace(
            self,
            **own,
            address=replace(self.address, **address),
            billing_configuration=replace(self.billing_configuration, **billing),
        )

    def check(self) -> None:
        """Raise ValidationFailed naming every invalid field, in Lago's error codes."""
        problems = Problems()
        problems.check(is_accepted_currency(self.default_currency), "default_currency", "value_is_invalid")
        problems.check(is_timezone(self.timezone), "timezone", "invalid_timezone")
        if self.email is not None:
            problems.check(is_email(self.email), "email", "invalid_email_format")
        self.address.check(problems)
        problems.check(limits.days_within(self.net_payment_term), "net_payment_term", "value_is_out_of_range")
        problems.check(self.document_numbering in DOCUMENT_NUMBERINGS, "document_numbering", "value_is_invalid")
        problems.check(bool(self.document_number_prefix), "document_number_prefix", "value_is_mandatory")
        problems.check(len(self.document_number_prefix) <= 10, "document_number_prefix", "value_is_too_long")
        if self.webhook_url is not None:
            problems.check(bool(_URL.match(self.webhook_url)), "webhook_url", "url_is_invalid")
        for setting in self.email_settings:
            problems.check(setting in EMAIL_SETTINGS, "email_settings", "value_is_invalid")
        config = self.billing_configuration
        problems.check(
            0 <= config.invoice_grace_period <= MAX_GRACE_PERIOD_DAYS,
            "invoice_grace_period",
            "value_is_out_of_range",
        )
        problems.check(bool(_LOCALE.match(config.document_locale)), "document_locale", "value_is_invalid")
        problems.raise_if_any()


_ADDRESS_FIELDS = frozenset(f.name for f in fields(Address))
_OWN_FIELDS = frozenset(f.name for f in fields(OrganizationSettings)) - {"address", "billing_configuration"}


def default_document_prefix(name: str, organization_id: UUID) -> str:
    """Lago's default: three letters of the name and four of the id, upper-cased."""
    letters = identity.slugify(name).replace("-", "")[:3] or "ORG"
    return f"{letters}-{organization_id.hex[-4:]}".upper()


class Organization(Aggregate):
    """A tenant. Its id derives from its slug, so two organizations never share a slug."""

    @staticmethod
    def create_id(slug: str) -> UUID:
        return identity.organization_id(slug)

    @classmethod
    def register(cls, name: str, slug: str, settings: OrganizationSettings) -> Organization:
        """Open a new organization after checking its name, slug and settings."""
        problems = Problems()
        problems.check(bool(name.strip()), "name", "value_is_mandatory")
        problems.check(bool(slug) and identity.slugify(slug) == slug, "slug", "value_is_invalid")
        problems.raise_if_any()
        settings.check()
        return cls(name=name, slug=slug, settings=settings)

    @event("Created")
    def __init__(self, name: str, slug: str, settings: OrganizationSettings) -> None:
        self.name = name
        self.slug = slug
        self.settings = settings
        self.api_key_ids: list[UUID] = []

    def rename(self, name: str) -> None:
        if not name.strip():
            raise ValidationFailed({"name": ["value_is_mandatory"]})
        if name != self.name:
            self._renamed(name=name)

    @event("Renamed")
    def _renamed(self, name: str) -> None:
        self.name = name

    def change_settings(self, settings: OrganizationSettings) -> None:
        settings.check()
        if settings != self.settings:
            self._settings_changed(settings=settings)

    @event("SettingsChanged")
    def _settings_changed(self, settings: OrganizationSettings) -> None:
        self.settings = settings

    def record_api_key(self, key_id: UUID) -> None:
        self._api_key_issued(key_id=key_id)

    @event("ApiKeyIssued")
    def _api_key_issued(self, key_id: UUID) -> None:
        self.api_key_ids.append(key_id)
