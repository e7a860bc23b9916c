"""Group commit: many concurrent ingestion requests, one transaction (one lock, one fsync).

Request threads hand over their events, a single event or a whole batch, and wait. The
committer saves everything that arrived while the previous save ran in one transaction,
then answers each request. A batch stays all or nothing: if any of its events is already
stored, the batch is refused whole and the others in the group are saved without it. A
single event that repeats one already stored is answered as a duplicate. See ADR 0004.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from uuid import UUID

from domain.metering import DuplicateUsageEvents, Metering
from domain.usage_event import UsageEvent

log = logging.getLogger(__name__)


@dataclass
class _Unit:
    """What one request asked to store: it is stored whole or refused whole."""

    events: Sequence[UsageEvent.Recorded]
    answer: Future[set[UUID]] = field(default_factory=Future)  # the ids already stored; empty when stored

    @property
    def ids(self) -> set[UUID]:
        return {e.originator_id for e in self.events}


class GroupCommitter:
    def __init__(self, metering: Metering, max_events: int = 5000) -> None:
        self._metering = metering
        self._max_events = max_events
        self._queue: queue.SimpleQueue[_Unit] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="tally-group-commit", daemon=True)
        self._thread.start()

    def store(self, events: Sequence[UsageEvent.Recorded]) -> set[UUID]:
        """Store the events atomically with whatever else is waiting; returns the ids already stored
        (nothing of this request was stored then), or an empty set when all were."""
        unit = _Unit(events)
        self._queue.put(unit)
        return unit.answer.result()

    def _run(self) -> None:
        deferred: list[_Unit] = []
        while True:
            group = deferred or [self._queue.get()]
            deferred = []
            size = sum(len(u.events) for u in group)
            while size < self._max_events:
                try:
                    unit = self._queue.get_nowait()
                except queue.Empty:
                    break
                group.append(unit)
                size += len(unit.events)
            try:
                deferred = self._commit(group)
            except BaseException as error:  # answer every waiting request, never leave one hanging
                log.exception("group commit failed")
                for unit in group:
                    if not unit.answer.done():
                        unit.answer.set_exception(error)

    def _commit(self, group: list[_Unit]) -> list[_Unit]:
        """Commit the group; returns units that overlap an earlier one, to try in the next round."""
        taken: set[UUID] = set()
        pending: list[_Unit] = []
        later: list[_Unit] = []
        for unit in group:
            if unit.ids & taken:
                later.append(unit)  # the same event twice in one group: decide once the first is settled
            else:
                taken |= unit.ids
                pending.append(unit)
        while pending:
            try:
                self._metering.record([e for unit in pending for e in unit.events])
            except DuplicateUsageEvents as refused:  # stored before, maybe by another process a moment ago
                if not refused.ids:
                    raise
                kept = []
                for unit in pending:
                    repeated = unit.ids & refused.ids
                    if repeated:
                        unit.answer.set_result(repeated)
                    else:
                        kept.append(unit)
                pending = kept
                continue
            for unit in pending:
                unit.answer.set_result(set())
            break
        return later
