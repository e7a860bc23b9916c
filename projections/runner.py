"""The projector: one projection over one application's log, one page per transaction.

The library's ProjectionRunner commits once per event (~470 events/s here). This commits a
page of up to ``page_size`` events together with the tracking position, so a crash rolls
the whole page back and a restart resumes from the last committed page: exactly once.
Concurrent projectors of the same projection serialize on the tracking row lock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

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
    CREATE TABLE IF NOT EXISTS projection_versions (
        projection text PRIMARY KEY,
        version integer NOT NULL
    )
    """,
)


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

    def step(self, *, wait: bool = True) -> int | None:
        """Project one page. Returns events processed, or None if another process holds it."""
        lock = self._lock if wait else self._lock + sql.SQL(" SKIP LOCKED")
        bound = self._bring_dependencies_forward() if self.after else None
        with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            rows = dict(cur.execute(lock, (self.name,)).fetchall())
            if self.log.application not in rows or len(rows) < len(self.projection.follows):
                return None
            position = self.position = rows[self.log.application]
            head = cur.execute(self._head).fetchone()[0]
            if bound is not None:
                head = min(head, bound)
            if head <= position:
                return 0
            rows = cur.execute(self._page, (position, head, self._topics, self.page_size)).fetchall()
            end = rows[-1][0] if len(rows) == self.page_size else head
            with self.projection.view.bound(cur):
                for notification_id, originator_id, version, topic, state in rows:
                    event = self.log.mapper.to_domain_event(
                        StoredEvent(originator_id, version, topic, bytes(state))
                    )
                    self.projection.process_event(event, Tracking(self.log.application, notification_id))
            cur.execute(
                "UPDATE projection_tracking SET position = %s, updated_at = now() "
                "WHERE projection = %s AND application = %s",
                (end, self.name, self.log.application),
            )
            cur.execute("SELECT pg_notify(%s, %s)", (PROJECTED_CHANNEL, f"{self.name}:{end}"))
        self.position = end
        return len(rows)

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
    for table in tables:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(table)))
    conn.execute(
        "UPDATE projection_tracking SET position = 0, updated_at = now() WHERE projection = %s",
        (name,),
    )
