"""Gap-free sequences: customer numbers and invoice numbers (semantics I2).

A sequence is an aggregate whose version is its last number. Taking a number is saved in
the same transaction as what it numbers; two writers taking the same number conflict on
the version, one is retried, and no number is skipped or given twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, Snapshot, event

from domain import identity
from domain.errors import NotFound


class SequenceNotFound(NotFound):
    resource = "sequence"


class SequenceSnapshot(Snapshot):
    """A sequence's state at a version: taken every so often, so a long sequence loads in one read.

    Snapshot state is stored as plain JSON; ids and times come back as text and are restored here."""

    def mutate(self, _: Any) -> Any:
        aggregate = super().mutate(None)
        aggregate.organization_id = UUID(str(aggregate.organization_id))
        for name in ("_created_on", "_modified_on"):
            value = getattr(aggregate, name, None)
            if isinstance(value, str):
                setattr(aggregate, name, datetime.fromisoformat(value))
        return aggregate


class Sequence(Aggregate):
    Snapshot = SequenceSnapshot

    @staticmethod
    def create_id(organization_id: UUID, scope: str) -> UUID:
        return identity.scoped_id(organization_id, "sequence", scope)

    @event("Started")
    def __init__(self, organization_id: UUID, scope: str) -> None:
        self.organization_id = organization_id
        self.scope = scope
        self.last = 0

    @classmethod
    def start(cls, organization_id: UUID, scope: str) -> Sequence:
        return cls(organization_id=organization_id, scope=scope)

    def take(self) -> int:
        """The next number, recorded."""
        self._taken(number=self.last + 1)
        return self.last

    @event("Taken")
    def _taken(self, number: int) -> None:
        self.last = number
