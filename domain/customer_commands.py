"""Customer commands of the Billing application: upsert by external id, rename, delete."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from domain.customer import Customer, CustomerNotFound, CustomerProfile
from domain.errors import ValidationFailed
from domain.organization import Organization, OrganizationNotFound
from domain.plan_commands import PlanCommands
from domain.subscription import Subscription, SubscriptionNotFound


class CustomerCommands(PlanCommands):
    def upsert_customer(self, organization_id: UUID, changes: Mapping[str, Any], now: datetime) -> UUID:
        """POST /customers: create the customer with this external id, or update it (as Lago)."""
        external_id = changes.get("external_id")
        if not external_id:
            raise ValidationFailed({"external_id": ["value_is_mandatory"]})
        handle = self._handle(organization_id, Customer.kind, external_id)
        if handle is not None and handle.target_id is not None:
            return self.update_customer(organization_id, external_id, changes, now)
        profile = CustomerProfile().amended(changes, new_id=self.new_id, now=now)
        return self._define(Customer, organization_id, profile, lambda p: self._require_taxes(organization_id, p.tax_codes))

    def update_customer(self, organization_id: UUID, external_id: str, changes: Mapping[str, Any], now: datetime) -> UUID:
        """Change a customer; a new ``external_id`` renames it and the old one stays an alias."""
        return self._redefine(
            Customer, organization_id, external_id,
            lambda p: p.amended(changes, new_id=self.new_id, now=now),
            lambda p: self._require_taxes(organization_id, p.tax_codes),
        )

    def delete_customer(self, organization_id: UUID, external_id: str, now: datetime) -> UUID:
        """Delete a customer; its live subscriptions end now, in the same transaction."""
        customer = self.customer(organization_id, external_id)
        subscriptions = [self._load(s, Subscription, SubscriptionNotFound) for s in customer.subscription_ids]
        for subscription in subscriptions:
            subscription.terminate(now, "customer_deleted")
        return self._delete(Customer, organization_id, external_id, *subscriptions)

    def customer(self, organization_id: UUID, external_id: str) -> Customer:
        return self._resolve(organization_id, Customer, external_id)[1]

    def _customer_for_subscription(self, organization_id: UUID, external_id: str, now: datetime) -> tuple[Customer, list[Any]]:
        """The customer a subscription names, created on the spot if new (as Lago does)."""
        handle = self._handle(organization_id, Customer.kind, external_id)
        if handle is not None and handle.target_id is not None:
            return self._owned(organization_id, handle.target_id, Customer, CustomerNotFound), []
        customer = Customer.define(organization_id, CustomerProfile(external_id=external_id))
        return customer, [self._claim(organization_id, Customer.kind, external_id, customer.id, "external_customer_id")]

    def _timezone(self, customer: Customer, organization: Organization | None = None) -> str:
        """Customer timezone, else the organization's (loaded unless given), else UTC (semantics P1)."""
        if customer.definition.timezone:
            return str(customer.definition.timezone)
        organization = organization or self._load(customer.organization_id, Organization, OrganizationNotFound)
        return organization.settings.timezone or "UTC"
