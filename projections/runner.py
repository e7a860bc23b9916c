"""The projector: one projection over one application's log, one page per transaction.

The library's ProjectionRunner commits once per event (~470 events/s here). This commits a
page of up to ``page_size`` events together with the tracking position, so a crash rolls
the whole page back and a restart resumes from the last committed page: exactly once.
Concurrent projectors of the same projection serialize on the tracking row lock.

An event a projection fails on ("poison") is recorded in ``projection_failures`` with its
position, topic, originator and error, and the events before it are committed; the
projection stays there, never skipping it, until code that can project it is running
(docs/adr/0026-poison-events-stop-one-view-not-the-world.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import Mapper, StoredEvent, Tracking
from psycopg import sql
from psycopg_pool import ConnectionPool

from projections.projection import Projection

log = logging.getLogger(__name__)

PROJECTED_CHANNEL = "tally_projected"

TRACKING_DDL = (
    """
    CREATE TABLE IF NOT EXISTS projection_tracking (
        projection text NOT NULL,
        application text NOT NULL,
        position bigint NOT NULL DEFAULT 0,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (projection, application)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS projection_failures (
        projection text NOT NULL,
        application text NOT NULL,
        position bigint NOT NULL,
        topic text NOT NULL,
        originator_id uuid NOT NULL,
        originator_version bigint NOT NULL,
        error_type text NOT NULL,
        error_message text NOT NULL,
        attempts integer NOT NULL DEFAULT 1,
        first_seen_at timestamptz NOT NULL DEFAULT now(),
        last_seen_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (projection, application)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS projection_versions (
        projection text PRIMARY KEY,
        version integer NOT NULL
    )
    """,
)


MAX_ERROR_CHARS = 2000  # of an exception's message kept with its failure


@dataclass(frozen=True)
class Failure:
    """The event a projection failed on (``position`` is its notification id) and the error."""

    projection: str
    application: str
    position: int
    topic: str
    originator_id: UUID
    originator_version: int
    error_type: str
    error_message: str
    attempts: int
    first_seen_at: datetime | None = None
    last_seen_at: datetime | None = None

    @property
    def error(self) -> str:
        """The exception as one line."""
        first = self.error_message.strip().splitlines()[0] if self.error_message.strip() else ""
        return f"{self.error_type}: {first}" if first else self.error_type

    def describe(self) -> str:
        return (f"projection {self.projection} is stuck at event {self.position} of {self.application} "
                f"({self.topic}, originator {self.originator_id} v{self.originator_version}): {self.error}")


class ProjectionFailed(Exception):
    """A page failed on one event: it rolled back, the events before it were committed and the
    failure recorded. The projection stays before the event; retrying is the caller's choice."""

    def __init__(self, failure: Failure) -> None:
        self.failure = failure
        super().__init__(failure.describe())


@dataclass(frozen=True)
class EventLog:
    """An application's notification log: its name, events table and mapper."""

    application: str
    table: str
    mapper: Mapper[Any]

    @property
    def channel(self) -> str:
        """The library NOTIFYs on a channel named after the events table."""
        return self.table.replace(".", "_")


class Projector:
    """Feeds ``projection`` from ``log`` a page at a time; safe to run in many processes."""

    def __init__(
        self,
        projection: Projection[Any],
        log: EventLog,
        pool: ConnectionPool[Any],
        page_size: int = 1000,
    ) -> None:
        self.projection = projection
        self.log = log
        self.pool = pool
        self.page_size = page_size
        self._topics = list(projection.topics())
        self.position = 0
        self.after: list[Projector] = []  # projectors of the same log this one reads; kept ahead of it
        table = sql.Identifier(log.table)
        # A page locks every tracking row of its projection, not just its log's: a projection
        # that follows two logs (usage) then never runs pages of both at once.
        self._lock = sql.SQL(
            "SELECT application, position FROM projection_tracking WHERE projection = %s "
            "ORDER BY application FOR UPDATE"
        )
        self._head = sql.SQL("SELECT coalesce(max(notification_id), 0) FROM {}").format(table)
        self._page = sql.SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state FROM {} "
            "WHERE notification_id > %s AND notification_id <= %s AND topic = ANY(%s) "
            "ORDER BY notification_id LIMIT %s"
        ).format(table)

    @property
    def name(self) -> str:
        return self.projection.name

    def step(self, *, wait: bool = True, limit: int | None = None) -> int | None:
        """Project one page (of at most ``limit`` events). Returns events processed, or None if
        another process holds it. Raises ProjectionFailed, with the event, when an event fails."""
        lock = self._lock if wait else self._lock + sql.SQL(" SKIP LOCKED")
        bound = self._bring_dependencies_forward() if self.after else None
        size = limit or self.page_size
        rows: list[tuple[Any, ...]] = []
        failing: tuple[Any, ...] | None = None  # the row whose handler raised, if one did
        try:
            with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                tracked = dict(cur.execute(lock, (self.name,)).fetchall())
                if self.log.application not in tracked or len(tracked) < len(self.projection.follows):
                    return None
                position = self.position = tracked[self.log.application]
                head = cur.execute(self._head).fetchone()[0]
                if bound is not None:
                    head = min(head, bound)
                if head <= position:
                    return 0
                rows = cur.execute(self._page, (position, head, self._topics, size)).fetchall()
                end = rows[-1][0] if len(rows) == size else head
                with self.projection.view.bound(cur):
                    for row in rows:
                        failing = row
                        notification_id, originator_id, version, topic, state = row
                        event = self.log.mapper.to_domain_event(
                            StoredEvent(originator_id, version, topic, bytes(state))
                        )
                        self.projection.process_event(event, Tracking(self.log.application, notification_id))
                    failing = None
                # Passing an event clears the failure recorded for it, in the page's transaction.
                cur.execute(
                    "WITH cleared AS (DELETE FROM projection_failures "
                    "WHERE projection = %(name)s AND application = %(app)s AND position <= %(end)s) "
                    "UPDATE projection_tracking SET position = %(end)s, updated_at = now() "
                    "WHERE projection = %(name)s AND application = %(app)s",
                    {"end": end, "name": self.name, "app": self.log.application},
                )
                cur.execute("SELECT pg_notify(%s, %s)", (PROJECTED_CHANNEL, f"{self.name}:{end}"))
        except Exception as error:
            if not rows or isinstance(error, (ProjectionFailed, psycopg.OperationalError)):
                raise  # the database's trouble or a dependency's own failure: not this page's events
            return self._isolate(error, rows, failing, wait)
        self.position = end
        return len(rows)

    def _isolate(self, error: Exception, rows: Sequence[tuple[Any, ...]], failing: tuple[Any, ...] | None,
                 wait: bool) -> int | None:
        """After a page rolled back: commit the events before the one that failed, record it, raise.

        When the page failed as a whole (a view writes its page at the end), the events are
        projected one per page until one fails; if none does, the failure was the page's own.
        """
        if failing is None and len(rows) > 1:
            total = 0
            for _ in rows:
                done = self.step(wait=wait, limit=1)  # raises ProjectionFailed at the culprit
                if not done:
                    break
                total += done
            log.warning("projection %s: a page failed (%s) but each of its events passed alone", self.name, error)
            return total
        culprit = failing if failing is not None else rows[0]
        before = rows.index(culprit)
        if before:
            self.step(wait=wait, limit=before)
        raise ProjectionFailed(self._record(culprit, error)) from error

    def _record(self, row: tuple[Any, ...], error: Exception) -> Failure:
        """Note the failure in its own transaction, unless the projection got past the event meanwhile."""
        notification_id, originator_id, version, topic, _ = row
        message = str(error)[:MAX_ERROR_CHARS]
        failure = Failure(self.name, self.log.application, notification_id, topic, originator_id, version,
                          type(error).__name__, message, attempts=1)
        try:
            with self.pool.connection() as conn:
                recorded = conn.execute(
                    "INSERT INTO projection_failures AS f (projection, application, position, topic, originator_id, "
                    "originator_version, error_type, error_message) "
                    "SELECT %(name)s, %(app)s, %(position)s, %(topic)s, %(originator)s, %(version)s, %(type)s, "
                    "%(message)s "
                    "WHERE EXISTS (SELECT 1 FROM projection_tracking WHERE projection = %(name)s "
                    "AND application = %(app)s AND position < %(position)s) "
                    "ON CONFLICT (projection, application) DO UPDATE SET "
                    "attempts = CASE WHEN f.position = excluded.position THEN f.attempts + 1 ELSE 1 END, "
                    "first_seen_at = CASE WHEN f.position = excluded.position THEN f.first_seen_at ELSE now() END, "
                    "last_seen_at = now(), position = excluded.position, topic = excluded.topic, "
                    "originator_id = excluded.originator_id, originator_version = excluded.originator_version, "
                    "error_type = excluded.error_type, error_message = excluded.error_message "
                    f"RETURNING {_FAILURE_COLUMNS}",
                    {"name": self.name, "app": self.log.application, "position": notification_id, "topic": topic,
                     "originator": originator_id, "version": version, "type": failure.error_type, "message": message},
                ).fetchone()
        except Exception:
            log.exception("projection %s: could not record its failure on event %s", self.name, notification_id)
            return failure
        return Failure(*recorded) if recorded is not None else failure

    def _bring_dependencies_forward(self) -> int:
        """Make the views this projection reads at least as current as the page it will process.

        Done before this projector's transaction opens, so no connection is held while
        waiting for another; the page is then bounded by the head seen here.
        """
        with self.pool.connection() as conn:
            bound = conn.execute(self._head).fetchone()[0]
        for dependency in self.after:
            dependency.reach(bound)
        return int(bound)

    def reach(self, position: int) -> None:
        """Project until at least ``position`` of the log is processed (waiting for other holders)."""
        while self.lag()[0] < position:
            if not self.step():
                return

    def catch_up(self, progress: Callable[[int], None] | None = None) -> int:
        """Project pages until the log's current head; returns events processed.

        ``progress`` is told the log position reached after each page.
        """
        total = 0
        while done := self.step():
            total += done
            if progress is not None:
                progress(self.position)
        return total

    def lag(self) -> tuple[int, int]:
        """(position, head) of this projector right now."""
        with self.pool.connection() as conn:
            position = conn.execute(
                "SELECT position FROM projection_tracking WHERE projection = %s AND application = %s",
                (self.name, self.log.application),
            ).fetchone()
            head = conn.execute(self._head).fetchone()[0]
        return (position[0] if position else 0), head


_FAILURE_COLUMNS = (
    "projection, application, position, topic, originator_id, originator_version, error_type, error_message, "
    "attempts, first_seen_at, last_seen_at"
)


def failures(pool: ConnectionPool[Any], names: Sequence[str]) -> list[Failure]:
    """Recorded failures of the projections named that are still ahead of them: the stuck views."""
    columns = ", ".join(f"f.{c.strip()}" for c in _FAILURE_COLUMNS.split(","))
    with pool.connection() as conn:
        rows = conn.execute(
            f"SELECT {columns} FROM projection_failures f JOIN projection_tracking t USING (projection, application) "
            "WHERE f.projection = ANY(%s) AND t.position < f.position ORDER BY f.projection, f.application",
            (list(names),),
        ).fetchall()
    return [Failure(*row) for row in rows]


def install(pool: ConnectionPool[Any], projectors: Sequence[Projector]) -> list[str]:
    """Create tracking and view tables; reset views whose version changed. Returns the reset."""
    reset: list[str] = []
    with pool.connection() as conn, conn.transaction():
        for statement in TRACKING_DDL:
            conn.execute(statement)
        views = {p.name: p.projection.view for p in projectors}
        for name, view in views.items():
            row = conn.execute(
                "SELECT version FROM projection_versions WHERE projection = %s FOR UPDATE", (name,)
            ).fetchone()
            if row is not None and row[0] != view.version:
                _drop_view(conn, name, view.tables)
                reset.append(name)
            for statement in view.ddl:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO projection_versions VALUES (%s, %s) "
                "ON CONFLICT (projection) DO UPDATE SET version = excluded.version",
                (name, view.version),
            )
        for projector in projectors:
            conn.execute(
                "INSERT INTO projection_tracking (projection, application) VALUES (%s, %s) "
                "ON CONFLICT DO NOTHING",
                (projector.name, projector.log.application),
            )
    return reset


def rebuild(pool: ConnectionPool[Any], projectors: Sequence[Projector]) -> None:
    """Drop the projectors' views and rewind them; the next catch-up replays the log."""
    with pool.connection() as conn, conn.transaction():
        for projector in projectors:
            _drop_view(conn, projector.name, projector.projection.view.tables)
            for statement in projector.projection.view.ddl:
                conn.execute(statement)


def _drop_view(conn: Any, name: str, tables: Sequence[str]) -> None:
    # Take the tracking rows first, in the order projectors do, so a running projector
    # finishes its page before the tables go and nobody deadlocks.
    conn.execute("SELECT 1 FROM projection_tracking WHERE projection = %s FOR UPDATE", (name,))
    conn.execute("DELETE FROM projection_failures WHERE projection = %s", (name,))
    for table in tables:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(table)))
    conn.execute(
        "UPDATE projection_tracking SET position = 0, updated_at = now() WHERE projection = %s",
        (name,),
    )
