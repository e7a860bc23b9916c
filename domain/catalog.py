"""What every catalog object shares: a definition replaced as a whole, and soft deletion.

Billable metrics, plans, add-ons, taxes and coupons are configured by PUTting their full
or partial definition. Each change is recorded as the complete new definition, so the
terms in force at any moment can be read straight from the log and an invoice keeps the
terms it was computed with (issue 3: "a plan edit never rewrites history").
Each concrete class re-declares the three events with its own definition type, so topics
name the concrete kind and the codec knows what to decode.
"""

from __future__ import annotations

from typing import Any, Protocol, Self
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.errors import NotFound


class Definition(Protocol):
    """A catalog object's whole configuration; ``key`` is the code it is addressed by."""

    @property
    def key(self) -> str: ...

    def check(self) -> None: ...


class CatalogItem(Aggregate):
    """A configurable object of one organization, addressed by its code through a Handle."""

    # Plain class attributes, no annotations: the library turns an annotated aggregate class
    # into a dataclass, and would then generate an __init__ for every subclass.
    kind = ""
    missing = NotFound
    keeps_aliases = False  # True: a changed key keeps resolving to this object (beyond Lago)
    key_field = "code"  # the API field holding the key, named in value_already_exist errors

    class Defined(Aggregate.Created):
        organization_id: UUID
        definition: Any

    class Redefined(Aggregate.Event):
        definition: Any

        def apply(self, aggregate: Any) -> None:
            aggregate.definition = self.definition
            if self.definition.key not in aggregate.keys:
                aggregate.keys.append(self.definition.key)

    class Deleted(Aggregate.Event):
        def apply(self, aggregate: Any) -> None:
            aggregate.is_deleted = True

    def __init__(self, organization_id: UUID, definition: Any) -> None:
        self.organization_id = organization_id
        self.definition = definition
        self.is_deleted = False
        self.keys: list[str] = [definition.key]

    @classmethod
    def define(cls, organization_id: UUID, definition: Any) -> Self:
        """A new object after its definition passed every rule."""
        definition.check()
        return cls._create(cls.Defined, organization_id=organization_id, definition=definition)

    @property
    def key(self) -> str:
        return str(self.definition.key)

    def redefine(self, definition: Any) -> None:
        self.require_live()
        definition.check()
        if definition != self.definition:
            self.trigger_event(type(self).Redefined, definition=definition)

    def delete(self) -> None:
        self.require_live()
        self.trigger_event(type(self).Deleted)

    def require_live(self) -> None:
        if self.is_deleted:
            raise self.missing(key=self.key)
