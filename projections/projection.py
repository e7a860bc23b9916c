"""Projections and their views: read models fed a page of events per transaction.

See docs/adr/0006-projection-pages-and-read-your-writes.md. A ``View`` owns its tables and
writes only through the cursor of the page transaction the runner binds to it, so the rows
of a whole page and the projection's tracking position commit together or not at all.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Iterator
from contextlib import contextmanager
from functools import singledispatchmethod
from typing import Any, ClassVar, Generic, TypeVar

import psycopg
from eventsourcing.persistence import Tracking
from eventsourcing.utils import get_topic


class View:
    """The tables of one read model. Dropping them and replaying the log rebuilds it."""

    version: ClassVar[int] = 1
    tables: ClassVar[tuple[str, ...]] = ()
    ddl: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        self._cursor: psycopg.Cursor[Any] | None = None

    @property
    def cursor(self) -> psycopg.Cursor[Any]:
        if self._cursor is None:
            raise RuntimeError(f"{type(self).__name__} written outside a page transaction")
        return self._cursor

    @contextmanager
    def bound(self, cursor: psycopg.Cursor[Any]) -> Iterator[None]:
        self._cursor = cursor
        try:
            yield
            self.flush()
        except BaseException:
            self.discard()
            raise
        finally:
            self._cursor = None

    def flush(self) -> None:
        """Views that batch a page's changes in memory write them here, once per page."""

    def discard(self) -> None:
        """The page rolled back: views that batch or cache a page's changes forget them here,
        so a retry starts from the tables, not from the failed attempt."""


V = TypeVar("V", bound=View)


class Projection(ABC, Generic[V]):
    """Turns domain events into view writes. Handlers register per event class."""

    name: ClassVar[str] = ""
    follows: ClassVar[tuple[str, ...]] = ("Billing",)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("name"):
            cls.name = cls.__name__.lower()

    def __init__(self, view: V) -> None:
        self.view = view

    @singledispatchmethod
    def process_event(self, event: Any, tracking: Tracking) -> None:
        """Events without a handler are skipped; the page position still moves past them."""

    @classmethod
    def topics(cls) -> tuple[str, ...]:
        """Topics of the event classes this projection handles, to filter the log in SQL."""
        method = next(
            k.__dict__["process_event"]
            for k in cls.__mro__
            if isinstance(k.__dict__.get("process_event"), singledispatchmethod)
        )
        registry = method.dispatcher.registry
        return tuple(sorted(get_topic(t) for t in registry if t is not object))
