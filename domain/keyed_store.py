"""How application services reach aggregates: by id within an organization, or by key.

Shared by every command group of the Billing application (docs/adr/0011): loading with a
tenant check, claiming and resolving Handles, and saving with the library's integrity
errors turned into domain refusals.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from domain.catalog import CatalogItem
from domain.errors import Conflict, NotFound, ValidationFailed
from domain.handle import Handle

if TYPE_CHECKING:
    from eventsourcing.application import Repository

A = TypeVar("A", bound=Aggregate)
C = TypeVar("C", bound=CatalogItem)


class ConcurrentWrite(Conflict):
    """Another writer changed the same aggregate first; the caller may retry."""

    code = "concurrent_write"


class KeyedStore:
    """Mixed into the Billing application, which provides ``repository``, ``save`` and ``new_id``."""

    if TYPE_CHECKING:
        repository: Repository[UUID]
        new_id: Callable[[], UUID]

        def save(self, *objs: Any, **kwargs: Any) -> list[Any]: ...

    # --- catalog items -------------------------------------------------------------------

    def _define(
        self, kind: type[C], organization_id: UUID, definition: Any, validate: Callable[[Any], None] | None = None
    ) -> UUID:
        item = kind.define(organization_id, definition)
        if validate is not None:
            validate(item.definition)
        handle = self._claim(organization_id, kind.kind, item.key, item.id, kind.key_field)
        self._save_claiming(kind.key_field, item, handle)
        return item.id

    def _redefine(
        self,
        kind: type[C],
        organization_id: UUID,
        key: str,
        changes: Mapping[str, Any] | Callable[[Any], Any],
        validate: Callable[[Any], None] | None = None,
    ) -> UUID:
        """Replace an item's definition: ``changes`` are sent fields, or a function of the old one."""
        handle, item = self._resolve(organization_id, kind, key)
        amend = changes if callable(changes) else (lambda definition: definition.amended(changes))
        definition = amend(item.definition)
        if validate is not None:
            validate(definition)
        item.redefine(definition)
        changed: list[Aggregate] = [item]
        if item.key != handle.key:
            changed.append(self._claim(organization_id, kind.kind, item.key, item.id, kind.key_field))
            if not kind.keeps_aliases:
                handle.release()
                changed.append(handle)
        self._save_claiming(kind.key_field, *changed)
        return item.id

    def _delete(self, kind: type[C], organization_id: UUID, key: str, *also: Aggregate) -> UUID:
        """Delete an item and free every key still naming it (its aliases included)."""
        _, item = self._resolve(organization_id, kind, key)
        item.delete()
        self._save(item, *self._released(item), *also)
        return item.id

    def _released(self, item: CatalogItem) -> list[Handle]:
        handles = [self._handle(item.organization_id, item.kind, key) for key in item.keys]
        bound = [h for h in handles if h is not None and h.target_id == item.id]
        for handle in bound:
            handle.release()
        return bound

    # --- handles -------------------------------------------------------------------------

    def _handle(self, organization_id: UUID, kind: str, key: str) -> Handle | None:
        try:
            handle = self.repository.get(Handle.create_id(organization_id, kind, key))
        except AggregateNotFoundError:
            return None
        return handle if isinstance(handle, Handle) else None

    def _claim(self, organization_id: UUID, kind: str, key: str, target_id: UUID, field: str) -> Handle:
        """The handle of ``key`` bound to ``target_id``; value_already_exist if another holds it."""
        handle = self._handle(organization_id, kind, key)
        if handle is None:
            return Handle(organization_id=organization_id, kind=kind, key=key, target_id=target_id)
        if not handle.is_free_for(target_id):
            raise ValidationFailed({field: ["value_already_exist"]})
        handle.bind(target_id)
        return handle

    def _resolve(self, organization_id: UUID, kind: type[C], key: str) -> tuple[Handle, C]:
        handle = self._handle(organization_id, kind.kind, key)
        if handle is None or handle.target_id is None:
            raise kind.missing(key=key)
        return handle, self._owned(organization_id, handle.target_id, kind, kind.missing)

    def _owned(self, organization_id: UUID, aggregate_id: UUID, kind: type[A], missing: type[NotFound]) -> A:
        """Load an aggregate by id, but only if it belongs to the caller's organization."""
        aggregate = self._load(aggregate_id, kind, missing)
        if getattr(aggregate, "organization_id", None) != organization_id:
            raise missing(key=aggregate_id)
        return aggregate

    def _save_claiming(self, field: str, *aggregates: Aggregate) -> None:
        """Save; losing a race for a key is the same refusal as finding it taken."""
        try:
            self.save(*aggregates)
        except IntegrityError:
            if any(isinstance(a, Handle) for a in aggregates):
                raise ValidationFailed({field: ["value_already_exist"]}) from None
            raise ConcurrentWrite("another write changed this first; retry") from None

    def _load(self, aggregate_id: UUID, kind: type[A], missing: type[Exception]) -> A:
        try:
            aggregate = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            raise missing(key=aggregate_id) from None
        if not isinstance(aggregate, kind):
            raise missing(key=aggregate_id)
        return aggregate

    def _save(self, *aggregates: Aggregate) -> Sequence[Any]:
        try:
            return self.save(*aggregates)
        except IntegrityError:
            raise ConcurrentWrite("another write changed this first; retry") from None
