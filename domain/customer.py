"""Customers: who is billed, where documents go, and in which timezone periods turn (§2.3)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from domain import limits
from domain.address import Address, is_email
from domain.catalog import CatalogItem
from domain.currency import is_accepted_currency
from domain.errors import NotFound, Problems
from domain.organization import is_timezone

CUSTOMER_TYPES = ("company", "individual")
ACCOUNT_TYPES = ("customer", "partner")
ZERO_AMOUNT_POLICIES = ("inherit", "skip", "finalize")
MAX_METADATA = 5
_ADDRESS_FIELDS = frozenset(f.name for f in fields(Address))


class CustomerNotFound(NotFound):
    resource = "customer"


@dataclass(frozen=True)
class CustomerMetadata:
    id: UUID
    key: str
    value: str | None
    display_in_invoice: bool
    created_at: datetime


@dataclass(frozen=True)
class CustomerBillingConfiguration:
    invoice_grace_period: int | None = None
    payment_provider: str | None = None
    payment_provider_code: str | None = None
    provider_customer_id: str | None = None
    sync: bool | None = None
    sync_with_provider: bool | None = None
    document_locale: str | None = None
    provider_payment_methods: tuple[str, ...] = ()
    subscription_invoice_issuing_date_anchor: str | None = None
    subscription_invoice_issuing_date_adjustment: str | None = None


@dataclass(frozen=True)
class CustomerProfile:
    external_id: str = ""
    name: str | None = None
    firstname: str | None = None
    lastname: str | None = None
    customer_type: str | None = None
    account_type: str = "customer"
    email: str | None = None
    phone: str | None = None
    url: str | None = None
    logo_url: str | None = None
    legal_name: str | None = None
    legal_number: str | None = None
    tax_identification_number: str | None = None
    address: Address = field(default_factory=Address)
    shipping_address: Address = field(default_factory=Address)
    currency: str | None = None
    timezone: str | None = None
    net_payment_term: int | None = None
    external_salesforce_id: str | None = None
    finalize_zero_amount_invoice: str = "inherit"
    skip_invoice_custom_sections: bool = False
    invoice_custom_section_codes: tuple[str, ...] = ()
    tax_codes: tuple[str, ...] = ()
    metadata: tuple[CustomerMetadata, ...] = ()
    billing_configuration: CustomerBillingConfiguration = field(default_factory=CustomerBillingConfiguration)
    billing_entity_code: str | None = None

    @property
    def key(self) -> str:
        return self.external_id

    def amended(self, changes: Mapping[str, Any], *, new_id: Callable[[], UUID], now: datetime) -> CustomerProfile:
        """The sent fields over these; address fields come flat, metadata replaces the set."""
        own = {k: v for k, v in changes.items() if k in _PROFILE_FIELDS and k not in _ADDRESS_FIELDS}
        for name in ("tax_codes", "invoice_custom_section_codes"):
            if name in own:
                own[name] = tuple(own[name] or ())
        if "country" in changes or any(k in changes for k in _ADDRESS_FIELDS):
            address = {k: v for k, v in changes.items() if k in _ADDRESS_FIELDS}
            if address.get("country"):
                address["country"] = str(address["country"]).upper()
            own["address"] = replace(self.address, **address)
        if "shipping_address" in changes:
            shipping = dict(changes["shipping_address"] or {})
            if shipping.get("country"):
                shipping["country"] = str(shipping["country"]).upper()
            own["shipping_address"] = Address(**{k: v for k, v in shipping.items() if k in _ADDRESS_FIELDS})
        if "billing_configuration" in changes:
            config = dict(changes["billing_configuration"] or {})
            if "provider_payment_methods" in config:
                config["provider_payment_methods"] = tuple(config["provider_payment_methods"] or ())
            own["billing_configuration"] = replace(self.billing_configuration, **config)
        if "metadata" in changes:
            own["metadata"] = self._metadata(changes["metadata"] or (), new_id, now)
        for name, default in (("account_type", "customer"), ("finalize_zero_amount_invoice", "inherit"),
                               ("skip_invoice_custom_sections", False)):
            if name in own and own[name] is None:
                own[name] = default
        return replace(self, **own)

    def _metadata(self, raws: Any, new_id: Callable[[], UUID], now: datetime) -> tuple[CustomerMetadata, ...]:
        by_id = {str(m.id): m for m in self.metadata}
        by_key = {m.key: m for m in self.metadata}
        entries = []
        for raw in raws:
            previous = by_id.get(str(raw.get("id"))) or by_key.get(raw.get("key") or "")
            entries.append(
                CustomerMetadata(
                    id=previous.id if previous is not None else new_id(),
                    key=str(raw.get("key") or ""),
                    value=raw.get("value"),
                    display_in_invoice=bool(raw.get("display_in_invoice")),
                    created_at=previous.created_at if previous is not None else now,
                )
            )
        return tuple(entries)

    def check(self) -> None:
        problems = Problems()
        problems.check(bool(self.external_id.strip()), "external_id", "value_is_mandatory")
        if self.email:
            problems.check(all(is_email(e.strip()) for e in self.email.split(",")), "email", "invalid_email_format")
        if self.currency is not None:
            problems.check(is_accepted_currency(self.currency), "currency", "value_is_invalid")
        if self.timezone is not None:
            problems.check(is_timezone(self.timezone), "timezone", "invalid_timezone")
        if self.net_payment_term is not None:
            problems.check(limits.days_within(self.net_payment_term), "net_payment_term", "value_is_out_of_range")
        if self.customer_type is not None:
            problems.check(self.customer_type in CUSTOMER_TYPES, "customer_type", "value_is_invalid")
        problems.check(self.account_type in ACCOUNT_TYPES, "account_type", "value_is_invalid")
        problems.check(self.finalize_zero_amount_invoice in ZERO_AMOUNT_POLICIES, "finalize_zero_amount_invoice", "value_is_invalid")
        grace = self.billing_configuration.invoice_grace_period
        problems.check(grace is None or 0 <= grace <= 365, "invoice_grace_period", "value_is_out_of_range")
        self.address.check(problems)
        self.shipping_address.check(problems, "shipping_address.")
        keys = [m.key for m in self.metadata]
        problems.check(len(keys) <= MAX_METADATA, "metadata", "invalid_count")
        problems.check(all(keys) and len(keys) == len(set(keys)), "metadata", "invalid_key")
        problems.raise_if_any()


_PROFILE_FIELDS = frozenset(f.name for f in fields(CustomerProfile)) | _ADDRESS_FIELDS


class Customer(CatalogItem):
    """A customer of one organization, addressed by its external id (and any former ones)."""

    kind = "customer"
    missing = CustomerNotFound
    keeps_aliases = True
    key_field = "external_id"

    class Defined(CatalogItem.Defined):
        definition: CustomerProfile

    class Redefined(CatalogItem.Redefined):
        definition: CustomerProfile

    class Deleted(CatalogItem.Deleted):
        pass

    class SubscriptionOpened(CatalogItem.Event):
        subscription_id: UUID

        def apply(self, aggregate: Any) -> None:
            aggregate.subscription_ids.append(self.subscription_id)

    class Numbered(CatalogItem.Event):
        sequential_id: int

        def apply(self, aggregate: Any) -> None:
            aggregate.sequential_id = self.sequential_id

    class CreditAvailable(CatalogItem.Event):
        credit_note_id: UUID

        def apply(self, aggregate: Any) -> None:
            aggregate.credit_note_ids = (*aggregate.credit_note_ids, self.credit_note_id)

    class CreditSpent(CatalogItem.Event):
        credit_note_id: UUID

        def apply(self, aggregate: Any) -> None:
            aggregate.credit_note_ids = tuple(i for i in aggregate.credit_note_ids if i != self.credit_note_id)

    class CouponApplied(CatalogItem.Event):
        applied_coupon_id: UUID
        coupon_id: UUID

        def apply(self, aggregate: Any) -> None:
            aggregate.applied_coupon_ids = (*aggregate.applied_coupon_ids, self.applied_coupon_id)
            aggregate.coupon_counts = {**aggregate.coupon_counts,
                                       str(self.coupon_id): aggregate.coupon_counts.get(str(self.coupon_id), 0) + 1}

    class CouponEnded(CatalogItem.Event):
        applied_coupon_id: UUID

        def apply(self, aggregate: Any) -> None:
            aggregate.applied_coupon_ids = tuple(i for i in aggregate.applied_coupon_ids if i != self.applied_coupon_id)

    class CouponRevived(CatalogItem.Event):
        applied_coupon_id: UUID

        def apply(self, aggregate: Any) -> None:
            if self.applied_coupon_id not in aggregate.applied_coupon_ids:
                aggregate.applied_coupon_ids = (*aggregate.applied_coupon_ids, self.applied_coupon_id)

    class WalletOpened(CatalogItem.Event):
        wallet_id: UUID

        def apply(self, aggregate: Any) -> None:
            aggregate.wallet_ids = (*aggregate.wallet_ids, self.wallet_id)
            aggregate.wallets_opened += 1

    class WalletClosed(CatalogItem.Event):
        wallet_id: UUID

        def apply(self, aggregate: Any) -> None:
            aggregate.wallet_ids = tuple(i for i in aggregate.wallet_ids if i != self.wallet_id)

    def __init__(self, organization_id: UUID, definition: Any) -> None:
        super().__init__(organization_id, definition)
        self.wallet_ids: tuple[UUID, ...] = ()  # active wallets (I4 step 6)
        self.wallets_opened = 0
        self.subscription_ids: list[UUID] = []
        self.applied_coupon_ids: tuple[UUID, ...] = ()  # active applied coupons, oldest first (I4 step 3)
        self.coupon_counts: dict[str, int] = {}  # how often each coupon was applied, by coupon id
        self.sequential_id: int | None = None
        self.credit_note_ids: tuple[UUID, ...] = ()  # credit notes with credit left, oldest first (I4 step 5)

    def wallet_opened(self, wallet_id: UUID) -> None:
        self.trigger_event(Customer.WalletOpened, wallet_id=wallet_id)

    def wallet_closed(self, wallet_id: UUID) -> None:
        if wallet_id in self.wallet_ids:
            self.trigger_event(Customer.WalletClosed, wallet_id=wallet_id)

    def coupon_applied(self, applied_coupon_id: UUID, coupon_id: UUID) -> None:
        self.trigger_event(Customer.CouponApplied, applied_coupon_id=applied_coupon_id, coupon_id=coupon_id)

    def coupon_ended(self, applied_coupon_id: UUID) -> None:
        if applied_coupon_id in self.applied_coupon_ids:
            self.trigger_event(Customer.CouponEnded, applied_coupon_id=applied_coupon_id)

    def coupon_revived(self, applied_coupon_id: UUID) -> None:
        if applied_coupon_id not in self.applied_coupon_ids:
            self.trigger_event(Customer.CouponRevived, applied_coupon_id=applied_coupon_id)

    def credit_available(self, credit_note_id: UUID) -> None:
        if credit_note_id not in self.credit_note_ids:
            self.trigger_event(Customer.CreditAvailable, credit_note_id=credit_note_id)

    def credit_spent(self, credit_note_id: UUID) -> None:
        if credit_note_id in self.credit_note_ids:
            self.trigger_event(Customer.CreditSpent, credit_note_id=credit_note_id)

    def number(self, sequential_id: int) -> None:
        """Give the customer its number in the organization, once (used in invoice numbers, I2)."""
        if self.sequential_id is None:
            self.trigger_event(Customer.Numbered, sequential_id=sequential_id)

    def record_subscription(self, subscription_id: UUID) -> None:
        """Remember a subscription, so deleting the customer ends it in the same transaction."""
        if subscription_id not in self.subscription_ids:
            self.trigger_event(Customer.SubscriptionOpened, subscription_id=subscription_id)
