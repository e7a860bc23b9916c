"""Answers derived from the Billing log, reused until the log moves on (docs/adr/0013).

Authenticating a key and finding the expressions of an organization's metrics each read
the store; on the ingestion path either would cost as much as storing the event. Both only
change when the Billing log does. A listener thread LISTENs on the log's channel (the
library NOTIFYs on every Billing write) and drops every remembered answer when a write
lands; writes made by this process drop them at once, before the writer's call returns.
While the listener is not connected, nothing is remembered.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

T = TypeVar("T")


class BillingCache:
    def __init__(self, conninfo: str | None, channel: str = "billing_events", max_entries: int = 10_000) -> None:
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: dict[Any, Any] = {}
        self._generation = 0
        self._listening = threading.Event()
        if conninfo is not None:
            threading.Thread(target=self._listen, args=(conninfo, channel), name="tally-billing-cache", daemon=True).start()

    def invalidate(self) -> None:
        """Forget everything: the Billing log has moved on."""
        with self._lock:
            self._generation += 1
            self._entries.clear()

    def get(self, key: Any, compute: Callable[[], T]) -> T:
        """The remembered answer for ``key``, or ``compute()``'s (remembered if nothing changed meanwhile)."""
        with self._lock:
            if key in self._entries:
                return self._entries[key]  # type: ignore[no-any-return]
            generation = self._generation
        value = compute()
        with self._lock:
            if self._listening.is_set() and generation == self._generation and len(self._entries) < self._max_entries:
                self._entries[key] = value
        return value

    def _listen(self, conninfo: str, channel: str) -> None:
        failing = False
        while True:
            try:
                with psycopg.connect(conninfo, autocommit=True, application_name="tally-billing-cache") as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    self.invalidate()  # writes made while not listening are unknown
                    self._listening.set()
                    if failing:
                        log.info("billing cache listener reconnected")
                    failing = False
                    for _ in conn.notifies():
                        self.invalidate()
            except Exception as error:  # one line per outage, not per retry
                if not failing:
                    log.warning("billing cache listener lost its connection; caching paused: %s", str(error).splitlines()[0])
                failing = True
            finally:
                self._listening.clear()
                self.invalidate()
            threading.Event().wait(1.0)
