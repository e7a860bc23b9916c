"""The Metering application: usage events, in their own log (docs/adr/0004).

Its events table and notification log are separate from Billing's, so recording usage
never waits on the table lock catalog and invoice writes take, and the reverse.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError

from domain.errors import Conflict
from domain.usage_event import UsageEvent


class DuplicateUsageEvents(Conflict):
    """Some events repeat a (subscription, transaction id) already recorded; nothing was stored."""

    code = "value_already_exist"

    def __init__(self, ids: set[UUID]) -> None:
        super().__init__(f"{len(ids)} event(s) already recorded")
        self.ids = ids


class Metering(Application[UUID]):
    name = "Metering"

    def record(self, events: Sequence[UsageEvent.Recorded]) -> None:
        """Store the events in one transaction, all or none (the caller has removed in-batch repeats)."""
        try:
            self.recorder.insert_events([self.mapper.to_stored_event(e) for e in events])
        except IntegrityError:
            raise DuplicateUsageEvents(self.known(e.originator_id for e in events)) from None

    def known(self, ids: Iterable[UUID]) -> set[UUID]:
        """Which of these events are already recorded."""
        return {i for i in ids if self.recorder.select_events(i, limit=1)}
