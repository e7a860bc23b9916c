"""Read-your-writes: a read waits, bounded, until its views include every acknowledged write.

At the start of a read we note each log's head: every write acknowledged before the read
began is at or below it. If a view is behind its head we project the missing pages inline
when no other process holds them (SKIP LOCKED), else poll briefly while the worker does.

A hot read may instead fetch that state in the same statement as its data
(``state_column``, then ``settle``): one snapshot holds both, so when the views cover the
heads in it, the data read beside them is current, and the check cost no round trip.

A read that a view stuck on a failed event cannot serve fails at once, naming it, instead of
waiting out the bound (docs/adr/0026-poison-events-stop-one-view-not-the-world.md).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from psycopg import sql
from psycopg_pool import ConnectionPool

from projections import runner
from projections.runner import Failure, ProjectionFailed, Projector


class ProjectionsBehind(Exception):
    """The views did not catch up within the bound, or are stuck on a failed event (``stuck``);
    served as 503, never as stale data. ``code`` tells the two apart."""

    def __init__(self, names: Sequence[str], timeout: float, stuck: Sequence[Failure] = ()) -> None:
        self.names = list(names)
        self.stuck = list(stuck)
        self.code = "projections_stuck" if self.stuck else "projections_behind"
        if self.stuck:
            super().__init__("; ".join(f.describe() for f in self.stuck))
        else:
            super().__init__(f"projections {', '.join(names)} still behind after {timeout:g}s")


@dataclass
class ReadScope:
    """One read-only request's view of the logs: heads when it first asked, views known to cover them."""

    heads: dict[str, int] = field(default_factory=dict)
    targets: dict[str, int] = field(default_factory=dict)
    fresh: set[str] = field(default_factory=set)
    loaded: bool = False

    def load(self, state: Iterable[tuple[str, int, int]]) -> None:
        for key, position, head in state:
            self.heads[key.split("/")[1]] = head
            self.targets[key] = head
            if position >= head:
                self.fresh.add(key)
        self.loaded = True


_scope: ContextVar[ReadScope | None] = ContextVar("tally_read_scope", default=None)


class Freshness:
    """Makes reads wait for the views they use to reach the log heads seen at their start."""

    def __init__(self, pool: ConnectionPool[Any], projectors: Sequence[Projector], timeout: float = 5.0) -> None:
        self._pool = pool
        self._projectors = {p.name + "/" + p.log.application: p for p in projectors}
        self._timeout = timeout
        self._all = frozenset(p.name for p in projectors)

    def state_column(self) -> sql.Composable:
        """A scalar subquery giving every view's position and its log's head, to select beside data."""
        return sql.SQL("(SELECT jsonb_agg(jsonb_build_array(s.projection, s.application, s.position, s.head)) FROM ({}) s)").format(
            self._query(self._all)
        )

    def settle(self, names: Iterable[str], state: Sequence[Sequence[Any]] | None) -> bool:
        """Given ``state_column``'s value, read in the same statement as some data: True when the
        views named covered every acknowledged write in it (the data is current); else the
        caller ``wait``s and reads again."""
        rows = [(f"{projection}/{application}", int(position), int(head)) for projection, application, position, head in state or ()]
        scope = _scope.get()
        if scope is not None and not scope.loaded:
            scope.load(rows)
        wanted = frozenset(names)
        keys = {key for key, _, _ in rows if key.split("/")[0] in wanted}
        for key, position, head in rows:
            target = scope.targets.get(key, head) if scope is not None else head
            if key in keys and position < target:
                return False
        if scope is not None:
            scope.fresh |= keys
        return True

    @contextmanager
    def read_scope(self) -> Iterator[ReadScope]:
        """For a request that writes nothing: one state, read at its first freshness question
        (or with its first data), answers every later one (heads cannot matter to it beyond
        those seen by then, and every write acknowledged before it began is below them)."""
        scope = ReadScope()
        token = _scope.set(scope)
        try:
            yield scope
        finally:
            _scope.reset(token)

    def caught_up(self, names: Iterable[str]) -> bool:
        """``wait``, answering False instead of raising when the views stay behind (or are stuck)."""
        try:
            self.wait(names)
        except ProjectionsBehind:
            return False
        return True

    def wait(self, names: Iterable[str]) -> None:
        wanted = frozenset(names)
        if not wanted:
            return
        scope = _scope.get()
        if scope is not None:
            if not scope.loaded:
                scope.load(self._state(self._all))
            keys = {k for k in self._projectors if k.split("/")[0] in wanted}
            targets = {k: scope.targets[k] for k in keys - scope.fresh if k in scope.targets}
            if targets:
                self._catch_up(wanted, targets)
            scope.fresh |= keys
            return
        targets = {key: head for key, position, head in self._state(wanted) if position < head}
        if targets:
            self._catch_up(wanted, targets)

    def _catch_up(self, wanted: frozenset[str], targets: dict[str, int]) -> None:
        """Project inline what no one else is projecting; poll while others do; give up at the bound."""
        deadline = time.monotonic() + self._timeout
        delay = 0.0005
        stuck = [f for f in runner.failures(self._pool, sorted(wanted))
                 if f.position <= targets.get(f"{f.projection}/{f.application}", 0)]
        if stuck:
            raise ProjectionsBehind(sorted({f.projection for f in stuck}), self._timeout, stuck)
        while True:
            for key in targets:
                try:
                    self._projectors[key].step(wait=False)
                except ProjectionFailed as failed:
                    raise ProjectionsBehind([failed.failure.projection], self._timeout, [failed.failure]) from failed
            state = self._state(wanted)
            targets = {key: targets[key] for key, position, _ in state if key in targets and position < targets[key]}
            if not targets:
                return
            if time.monotonic() > deadline:
                raise ProjectionsBehind(sorted({k.split("/")[0] for k in targets}), self._timeout)
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def stuck(self) -> list[Failure]:
        """Views stuck on an event they failed on, with that event and the error."""
        return runner.failures(self._pool, sorted(self._all))

    def heads(self) -> dict[str, int]:
        """Each log's last notification id now."""
        return {key.split("/")[1]: head for key, _, head in self._state(self._all)}

    def lags(self) -> dict[str, int]:
        """Events each projection still has to process, summed over the logs it follows."""
        lags: dict[str, int] = {}
        for key, position, head in self._state(self._all):
            name = key.split("/")[0]
            lags[name] = lags.get(name, 0) + max(head - position, 0)
        return lags

    def _state(self, wanted: frozenset[str]) -> list[tuple[str, int, int]]:
        query = self._query(wanted)
        with self._pool.connection() as conn:
            rows = conn.execute(query).fetchall()
        return [(f"{projection}/{application}", position, head) for projection, application, position, head in rows]

    @lru_cache(maxsize=64)  # noqa: B019 - one entry per distinct set of views, for the process lifetime
    def _query(self, wanted: frozenset[str]) -> sql.Composed:
        logs = {p.log.application: p.log.table for p in self._projectors.values() if p.name in wanted}
        heads = sql.SQL(" UNION ALL ").join(
            sql.SQL("SELECT {}::text, (SELECT coalesce(max(notification_id), 0) FROM {})").format(
                sql.Literal(application), sql.Identifier(table)
            )
            for application, table in sorted(logs.items())
        )
        return sql.SQL(
            "WITH heads(application, head) AS ({}) "
            "SELECT t.projection, t.application, t.position, h.head "
            "FROM projection_tracking t JOIN heads h USING (application) "
            "WHERE t.projection = ANY({}::text[])"
        ).format(heads, sql.Literal(sorted(wanted)))
