"""Handles: a natural key inside an organization (a code, an external id) bound to its object.

See docs/adr/0011-handles-for-changeable-keys.md. Objects whose key can change or be reused
after deletion (metrics, plans, customers, subscriptions …) get random ids, Lago's
``lago_id``; the key lives in a Handle whose id derives from (organization, kind, key), so
two objects can never hold one key at once: the event store's primary key refuses it.
"""

from __future__ import annotations

from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain import identity


class Handle(Aggregate):
    """``kind`` ``key`` of one organization, naming ``target_id`` (None once released)."""

    @staticmethod
    def create_id(organization_id: UUID, kind: str, key: str) -> UUID:
        return identity.scoped_id(organization_id, kind, key)

    @event("Bound")
    def __init__(self, organization_id: UUID, kind: str, key: str, target_id: UUID) -> None:
        self.organization_id = organization_id
        self.kind = kind
        self.key = key
        self.target_id: UUID | None = target_id

    def is_free_for(self, target_id: UUID) -> bool:
        return self.target_id is None or self.target_id == target_id

    def bind(self, target_id: UUID) -> None:
        if self.target_id != target_id:
            self._rebound(target_id=target_id)

    @event("Rebound")
    def _rebound(self, target_id: UUID) -> None:
        self.target_id = target_id

    def release(self) -> None:
        if self.target_id is not None:
            self._released()

    @event("Released")
    def _released(self) -> None:
        self.target_id = None
