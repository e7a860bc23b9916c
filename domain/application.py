"""The Billing application: every catalog, customer and invoice write goes through here.

Each method loads, calls one aggregate command, saves, and translates library errors into
domain errors. Commands are grouped by concept in mixins (catalog, plans, customers,
subscriptions); this module adds organizations and API keys. Usage events have their own
application (docs/adr/0004), so their writes never queue behind these.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from uuid import UUID

from eventsourcing.application import (
    AggregateNotFoundError,
    Application,
    Repository,
    project_aggregate,
)
from eventsourcing.persistence import IntegrityError

from domain import api_key, identity
from domain.api_key import ApiKey, ApiKeyNotFound, InvalidApiKey, IssuedKey
from domain.batched_invoicing import BatchedInvoicing
from domain.errors import ValidationFailed
from domain.keyed_store import ConcurrentWrite
from domain.organization import (
    Organization,
    OrganizationAlreadyExists,
    OrganizationNotFound,
    OrganizationSettings,
    default_document_prefix,
)
from domain.sequence import Sequence

__all__ = ["Billing", "ConcurrentWrite"]


class Billing(BatchedInvoicing, Application[UUID]):
    """The write side of everything but usage events."""

    name = "Billing"
    snapshotting_intervals = {Sequence: 50}  # numbers are taken often; a snapshot keeps each load short

    def __init__(self, env: Any = None, *, new_id: Callable[[], UUID]) -> None:
        """``new_id`` makes the ids nothing else determines (a one-off invoice, a charge): the domain reads
        no clock and draws no random number itself; its callers pass both in."""
        super().__init__(env)
        self.new_id = new_id
        self.observers: list[Callable[[], None]] = []  # told after every save, e.g. to drop caches

    def construct_repository(self) -> Repository[UUID]:
        """Only number sequences have snapshots: they alone are looked up with one (``snapshot_repository``);
        every other load skips the snapshot query it could never use."""
        self.snapshot_repository = super().construct_repository()
        return Repository(event_store=self.events, snapshot_store=None)

    def take_snapshot(self, aggregate_id: UUID, version: int | None = None,
                      projector_func: Callable[..., Any] = project_aggregate) -> None:
        """The library rebuilds the state to snapshot with ``repository``, which here replays a sequence from its
        first number: every 50th number would cost a read of all before it. Start from the last snapshot instead."""
        aggregate = self.snapshot_repository.get(aggregate_id, version=version, projector_func=projector_func)
        snapshot_class = getattr(type(aggregate), "Snapshot", type(self).snapshot_class)
        if self.snapshots is not None and snapshot_class is not None:
            self.snapshots.put([snapshot_class.take(aggregate)])

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        recordings = super().save(*objs, **kwargs)
        for observer in self.observers:
            observer()
        return recordings

    # --- organizations -------------------------------------------------------------------

    def create_organization(self, name: str, slug: str | None = None) -> IssuedKey:
        """Open an organization with default settings and issue its first API key."""
        slug = identity.slugify(name) if slug is None else slug
        if not slug:
            raise ValidationFailed({"slug": ["value_is_mandatory"]})
        organization_id = identity.organization_id(slug)
        settings = OrganizationSettings(
            document_number_prefix=default_document_prefix(name, organization_id)
        )
        organization = Organization.register(name=name, slug=slug, settings=settings)
        key, issued = self._issue_key(organization, "default")
        try:
            self.save(organization, key)
        except IntegrityError:
            raise OrganizationAlreadyExists(f"an organization with slug {slug!r} exists") from None
        return issued

    def organization(self, organization_id: UUID) -> Organization:
        return self._load(organization_id, Organization, OrganizationNotFound)

    def find_organization(self, slug: str) -> Organization | None:
        try:
            return self.organization(identity.organization_id(slug))
        except OrganizationNotFound:
            return None

    def update_organization(self, organization_id: UUID, changes: Mapping[str, Any]) -> None:
        """Apply a partial update: a new name and/or settings, each recorded only if it changes."""
        organization = self.organization(organization_id)
        if "name" in changes:
            organization.rename(changes["name"])
        organization.change_settings(organization.settings.amended(changes))
        self._save(organization)

    # --- API keys ------------------------------------------------------------------------

    def issue_api_key(self, organization_id: UUID, name: str = "") -> IssuedKey:
        organization = self.organization(organization_id)
        key, issued = self._issue_key(organization, name)
        self._save(organization, key)
        return issued

    def revoke_api_key(self, key_id: UUID) -> None:
        key = self._load(key_id, ApiKey, ApiKeyNotFound)
        key.revoke()
        self._save(key)

    def api_keys(self, organization_id: UUID) -> list[ApiKey]:
        organization = self.organization(organization_id)
        return [self._load(k, ApiKey, ApiKeyNotFound) for k in organization.api_key_ids]

    def authenticate(self, secret: str) -> UUID:
        """The organization a presented key acts for; InvalidApiKey if unknown or revoked."""
        if not secret.startswith(api_key.SECRET_PREFIX) or len(secret) > 128:
            raise InvalidApiKey("malformed API key")
        try:
            key = self.repository.get(api_key.key_id_for(secret))
        except AggregateNotFoundError:
            raise InvalidApiKey("unknown API key") from None
        return key.authorize()

    def _issue_key(self, organization: Organization, name: str) -> tuple[ApiKey, IssuedKey]:
        secret = api_key.new_secret()
        key = ApiKey(secret_hash=api_key.hash_secret(secret), organization_id=organization.id, name=name)
        organization.record_api_key(key.id)
        return key, IssuedKey(key_id=key.id, organization_id=organization.id, secret=secret)
