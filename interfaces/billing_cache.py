"""Answers derived from the Billing log, reused until the log moves on.

Authenticating a key and finding the expressions of an organization's metrics each read
the store; on the ingestion path they would cost more than the event itself. Both only
change when the Billing log does, so one read of its head (an index-only query) decides
whether the remembered answers still hold. Any Billing write invalidates everything,
which keeps a revoked key refused from the next request on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from projections.freshness import Freshness

T = TypeVar("T")


class BillingCache:
    def __init__(self, freshness: Freshness, max_entries: int = 10_000) -> None:
        self._freshness = freshness
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._head = -1
        self._entries: dict[Any, Any] = {}

    def get(self, key: Any, compute: Callable[[], T], head: int | None = None) -> T:
        """The remembered answer for ``key`` if the Billing log is still at ``head`` (read if not given)."""
        head = self._freshness.head("Billing") if head is None else head
        with self._lock:
            if head != self._head:
                self._entries.clear()
                self._head = head
            elif key in self._entries:
                return self._entries[key]  # type: ignore[no-any-return]
        value = compute()
        with self._lock:
            if self._head == head and len(self._entries) < self._max_entries:
                self._entries[key] = value
        return value
