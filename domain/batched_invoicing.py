"""Closing many periods in one transaction: the scheduler's batches (docs/adr/0020).

A batch runs the one-period commands unchanged against an identity map: each aggregate is
loaded once (many in one read when the recorder can), and an aggregate several closes touch —
a customer, the organization's customer-number sequence — is one object, whose new events
follow each other. At the end everything is saved in one call: one transaction, one table
lock. A batch stores all of its closes or none: a concurrent writer makes it a
ConcurrentWrite, and the caller closes those periods one at a time (``close_period``), which
finds each one done or does it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.invoice_commands import InvoiceCommands, _unique
from domain.period_close import PricedBucket, TaxTable
from domain.sequence import Sequence as NumberSequence
from domain.sequence import SequenceNotFound
from domain.subscription import Subscription

A = TypeVar("A", bound=Aggregate)


@dataclass(frozen=True)
class PeriodToClose:
    """One close of a batch: what ``close_period`` takes, but ``now``."""

    subscription_id: UUID
    boundary: datetime
    buckets: Sequence[PricedBucket]
    taxes: TaxTable
    positions: tuple[int, int]


@dataclass
class _Batch:
    owner: object  # the application running it: another one in the same thread is not in it
    loaded: dict[UUID, Aggregate] = field(default_factory=dict)
    absent: set[UUID] = field(default_factory=set)  # looked for, not stored yet
    changed: list[Aggregate] = field(default_factory=list)


_batch: ContextVar[_Batch | None] = ContextVar("tally_batch", default=None)


class BatchedInvoicing(InvoiceCommands):
    def close_periods(self, closes: Sequence[PeriodToClose], now: datetime) -> list[UUID | None]:
        """``close_period`` for many subscriptions, saved in one transaction: for each, its invoice, or None when
        the period already is invoiced. All or nothing: a ConcurrentWrite, or any one close's error, stores none."""
        with self._batching():
            subscriptions = self._preload([c.subscription_id for c in closes], Subscription)
            self._preload([*{s.customer_id for s in subscriptions}, *self._numbers_of(subscriptions)],
                          from_snapshots=True)
            return [self._close_period(c.subscription_id, c.boundary, c.buckets, c.taxes, c.positions, now)
                    for c in closes]

    def schedule_billings(self, subscription_ids: Sequence[UUID]) -> list[datetime | None]:
        """``schedule_billing`` for many subscriptions, saved in one transaction (all or nothing)."""
        with self._batching():
            subscriptions = self._preload(subscription_ids, Subscription)
            self._preload(list({s.customer_id for s in subscriptions}))
            return [self.schedule_billing(subscription_id) for subscription_id in subscription_ids]

    @staticmethod
    def _numbers_of(subscriptions: Iterable[Subscription]) -> list[UUID]:
        """The sequences finalizing their invoices may take numbers from (a guess: one missed is loaded when asked)."""
        ids: list[UUID] = []
        for subscription in subscriptions:
            organization_id = subscription.organization_id
            ids.append(NumberSequence.create_id(organization_id, f"invoices/customer/{subscription.customer_id}"))
            ids.append(NumberSequence.create_id(organization_id, "customers"))
            ids.append(NumberSequence.create_id(organization_id, "invoices"))
        return ids

    # --- the identity map -----------------------------------------------------------------------------

    @contextmanager
    def _batching(self) -> Iterator[_Batch]:
        """Loads go through one identity map and saves are collected; one save at the end, if nothing failed."""
        if self._current_batch() is not None:
            raise RuntimeError("batches do not nest")
        batch = _Batch(owner=self)
        token = _batch.set(batch)
        try:
            yield batch
        finally:
            _batch.reset(token)
        if batch.changed:
            self._save(*_unique(batch.changed))

    def _current_batch(self) -> _Batch | None:
        batch = _batch.get()
        return batch if batch is not None and batch.owner is self else None

    def _preload(self, aggregate_ids: Iterable[UUID], kind: type[A] = Aggregate,  # type: ignore[assignment]
                 *, from_snapshots: bool = False) -> list[A]:
        """Load many aggregates into the batch in one read, when the recorder can (else each is loaded when asked);
        returns those of ``kind`` among them."""
        batch = self._current_batch()
        assert batch is not None
        wanted = [i for i in dict.fromkeys(aggregate_ids) if i not in batch.loaded and i not in batch.absent]
        select = getattr(self.recorder, "select_aggregates", None)
        if wanted and select is not None:
            events: dict[UUID, list[Any]] = defaultdict(list)
            for stored in select(wanted, from_snapshots=from_snapshots):
                events[stored.originator_id].append(self.mapper.to_domain_event(stored))
            for aggregate_id in wanted:
                aggregate = None
                for event in events.get(aggregate_id, ()):  # a snapshot, if any, comes first and starts over
                    aggregate = event.mutate(aggregate)
                if aggregate is None:
                    batch.absent.add(aggregate_id)
                else:
                    batch.loaded[aggregate_id] = aggregate
        return [a for a in (batch.loaded.get(i) for i in aggregate_ids) if isinstance(a, kind)]

    def _load(self, aggregate_id: UUID, kind: type[A], missing: type[Exception]) -> A:
        batch = self._current_batch()
        if batch is None:
            return super()._load(aggregate_id, kind, missing)
        if aggregate_id in batch.absent:
            raise missing(key=aggregate_id)
        if aggregate_id not in batch.loaded:
            batch.loaded[aggregate_id] = super()._load(aggregate_id, kind, missing)
        found = batch.loaded[aggregate_id]
        if not isinstance(found, kind):
            raise missing(key=aggregate_id)
        return found

    def _sequence(self, organization_id: UUID, scope: str) -> NumberSequence:
        batch = self._current_batch()
        if batch is None:
            return super()._sequence(organization_id, scope)
        sequence_id = NumberSequence.create_id(organization_id, scope)
        if sequence_id not in batch.loaded:
            batch.loaded[sequence_id] = (NumberSequence.start(organization_id, scope) if sequence_id in batch.absent
                                         else super()._sequence(organization_id, scope))
            batch.absent.discard(sequence_id)
        found = batch.loaded[sequence_id]
        if not isinstance(found, NumberSequence):
            raise SequenceNotFound(key=scope)
        return found

    def _save(self, *aggregates: Aggregate) -> Sequence[Any]:
        batch = self._current_batch()
        if batch is None:
            return super()._save(*aggregates)
        batch.changed.extend(aggregates)
        for aggregate in aggregates:  # new ones too: loaded later in the batch, they are these objects
            batch.loaded.setdefault(aggregate.id, aggregate)
            batch.absent.discard(aggregate.id)
        return []
