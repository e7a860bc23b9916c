"""Group commit of single-event requests: many concurrent POST /events, one transaction.

Request threads hand their event to the committer and wait; the committer saves everything
that arrived while the previous save ran, in one transaction (one lock, one fsync), then
answers each request. An event repeated in the group or already stored is answered as a
duplicate without failing the others. See docs/adr/0004.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from typing import Literal

from domain.metering import DuplicateUsageEvents, Metering
from domain.usage_event import UsageEvent

log = logging.getLogger(__name__)

Outcome = Literal["stored", "duplicate"]


class GroupCommitter:
    def __init__(self, metering: Metering, max_group: int = 1000) -> None:
        self._metering = metering
        self._max_group = max_group
        self._queue: queue.SimpleQueue[tuple[UsageEvent, Future[Outcome]]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="tally-group-commit", daemon=True)
        self._thread.start()

    def submit(self, event: UsageEvent.Recorded) -> Future[Outcome]:
        future: Future[Outcome] = Future()
        self._queue.put((event, future))
        return future

    def _run(self) -> None:
        while True:
            group = [self._queue.get()]
            while len(group) < self._max_group:
                try:
                    group.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._commit(group)
            except BaseException as error:  # answer every waiting request, never leave one hanging
                log.exception("group commit failed")
                for _, future in group:
                    if not future.done():
                        future.set_exception(error)

    def _commit(self, group: list[tuple[UsageEvent, Future[Outcome]]]) -> None:
        events = list({event.originator_id: event for event, _ in reversed(group)}.values())  # first of each id wins
        duplicates: set[object] = set()
        while events:
            try:
                self._metering.record(events)
                break
            except DuplicateUsageEvents as refused:  # stored before, maybe by another process a moment ago
                if not refused.ids:
                    raise
                duplicates |= refused.ids
                events = [e for e in events if e.originator_id not in duplicates]
        answered: set[object] = set()
        for event, future in group:
            if event.originator_id in duplicates or event.originator_id in answered:
                future.set_result("duplicate")
            else:
                answered.add(event.originator_id)
                future.set_result("stored")
