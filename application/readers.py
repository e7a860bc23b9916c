"""What the application layer reads, as protocols the projections implement (ADR 0031).

Each names only domain types, so the layer never imports a projection, and a test may hand it
any object with these methods.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import date, datetime
from typing import Protocol
from uuid import UUID

from domain.advance_charge import QueuedCharge
from domain.period_close import PricedBucket, TaxTable

Positions = tuple[int, int]  # (Billing, Metering) log positions a reading reflects


class LogFreshness(Protocol):
    def heads(self) -> dict[str, int]:
        """Each log's last position now."""
        ...

    def caught_up(self, names: Iterable[str]) -> bool:
        """Bring the views named up to the logs if nobody else holds them; False when they are still behind."""
        ...

    def read_scope(self) -> AbstractContextManager[object]:
        """One view of the logs for a run of reads that write nothing they read."""
        ...


class BillingUsage(Protocol):
    def priced_for_billing(self, subscription_id: UUID, at: datetime) -> tuple[list[PricedBucket], Positions]:
        """The priced usage of the charge period containing ``at``, and the log positions it reflects."""
        ...

    def priced_for_billing_many(
        self, wanted: Sequence[tuple[UUID, datetime]]
    ) -> tuple[list[list[PricedBucket]], Positions]:
        """``priced_for_billing`` of many, read in one snapshot."""
        ...

    def advance_queue(self) -> AbstractContextManager[AdvanceQueue | None]:
        """The queue of pay-in-advance charges, held by one drainer at a time (None: another holds it)."""
        ...


class AdvanceQueue(Protocol):
    def after(self, cursor: tuple[int, UUID, UUID], limit: int) -> list[QueuedCharge]:
        """The next queued charges past ``cursor``, in log order."""
        ...

    def remove(self, charge: QueuedCharge) -> None:
        """Take a billed (or unbillable) charge off the queue, with the drain's transaction."""
        ...


class Taxes(Protocol):
    def tax_table(self, organization_id: UUID) -> TaxTable:
        """The organization's taxes in force, and its defaults."""
        ...


class DueWork(Protocol):
    to_schedule: list[UUID]
    to_close: list[tuple[UUID, datetime, UUID]]
    to_start: list[UUID]
    to_finish: list[UUID]

    def __len__(self) -> int: ...


class Subscriptions(Protocol):
    def billing_due(self, now: datetime) -> DueWork:
        """Across organizations: what invoicing is due at ``now``."""
        ...


class Wallets(Protocol):
    def expired(self, now: datetime) -> list[tuple[UUID, UUID]]: ...

    def with_rules(self) -> list[tuple[UUID, UUID]]: ...


class Invoices(Protocol):
    def drafts_due(self, today: date) -> list[tuple[UUID, UUID]]: ...


class InvoicingReaders(Protocol):
    """Everything the invoicing process manager reads."""

    @property
    def freshness(self) -> LogFreshness: ...

    @property
    def usage(self) -> BillingUsage: ...

    @property
    def taxes(self) -> Taxes: ...

    @property
    def subscriptions(self) -> Subscriptions: ...

    @property
    def wallets(self) -> Wallets: ...

    @property
    def invoices(self) -> Invoices: ...
