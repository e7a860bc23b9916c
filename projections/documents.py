"""Document views: one row per object, its key and filter columns, and its state as JSON.

Catalog objects and customers are read whole and filtered by a few columns; one table per
kind with the state in ``data jsonb`` serves them all. The state is the domain value object
(a frozen dataclass), encoded by msgspec and decoded back into the same type by readers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar
from uuid import UUID

import msgspec
from eventsourcing.persistence import Tracking
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from projections.freshness import Freshness
from projections.projection import View

T = TypeVar("T")

_encode = msgspec.json.Encoder(decimal_format="string").encode


def jsonb(value: Any) -> Jsonb:
    """A value object as jsonb: Decimals as strings, datetimes ISO-8601, UUIDs as text."""
    return Jsonb(value, dumps=lambda v: _encode(v).decode())


class DocumentView(View):
    """The rows of one kind of object. ``columns`` are extra filter columns (name → SQL type)."""

    table: ClassVar[str]
    columns: ClassVar[dict[str, str]] = {}
    aliases: ClassVar[bool] = False  # True: a former key still finds the object (renames)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "table" not in cls.__dict__:
            return
        extra = "".join(f", {name} {kind}" for name, kind in cls.columns.items())
        cls.tables = (cls.table,)
        cls.ddl = (
            f"""
            CREATE TABLE IF NOT EXISTS {cls.table} (
                id uuid PRIMARY KEY,
                organization_id uuid NOT NULL,
                key text NOT NULL,
                keys text[] NOT NULL,
                data jsonb NOT NULL,
                created_at timestamptz NOT NULL,
                updated_at timestamptz NOT NULL,
                deleted_at timestamptz,
                position bigint NOT NULL{extra}
            )
            """,
            f"CREATE INDEX IF NOT EXISTS {cls.table}_by_key ON {cls.table} (organization_id, key) WHERE deleted_at IS NULL",
            f"CREATE INDEX IF NOT EXISTS {cls.table}_by_age ON {cls.table} (organization_id, created_at DESC, id)",
            f"CREATE INDEX IF NOT EXISTS {cls.table}_by_keys ON {cls.table} USING gin (keys)",
        )

    def insert(self, id: UUID, organization_id: UUID, key: str, data: Any, at: datetime, tracking: Tracking, **columns: Any) -> None:
        names = ["id", "organization_id", "key", "keys", "data", "created_at", "updated_at", "position", *columns]
        values = [id, organization_id, key, [key], jsonb(data), at, at, tracking.notification_id, *columns.values()]
        self.cursor.execute(
            sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                sql.Identifier(self.table),
                sql.SQL(", ").join(map(sql.Identifier, names)),
                sql.SQL(", ").join(sql.Placeholder() * len(names)),
            ),
            values,
        )

    def update(self, id: UUID, at: datetime, tracking: Tracking, *, key: str | None = None, data: Any = None, **columns: Any) -> None:
        changes: dict[str, Any] = dict(columns)
        keys = sql.SQL("")
        key_params: list[Any] = []
        if key is not None:
            changes["key"] = key
            # The key is a value: it goes in as a parameter, never into the statement's text.
            keys = sql.SQL(", keys = CASE WHEN %s = ANY(keys) THEN keys ELSE array_append(keys, %s) END")
            key_params = [key, key]
        if data is not None:
            changes["data"] = jsonb(data)
        changes["updated_at"] = at
        changes["position"] = tracking.notification_id
        self.cursor.execute(
            sql.SQL("UPDATE {} SET {}{} WHERE id = %s").format(
                sql.Identifier(self.table),
                sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(name)) for name in changes),
                keys,
            ),
            [*changes.values(), *key_params, id],
        )

    def delete(self, id: UUID, at: datetime, tracking: Tracking) -> None:
        self.update(id, at, tracking, deleted_at=at)


@dataclass(frozen=True)
class Document(Generic[T]):
    """One object as read: its id (Lago's lago_id), key, state and timestamps."""

    id: UUID
    key: str
    keys: list[str]
    data: T
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    extra: dict[str, Any]


Condition = tuple[sql.Composable, Sequence[Any]]


def comparisons(*checks: tuple[str, Any, str]) -> list[Condition]:
    """``column operator value`` conditions for each (column, value, operator) whose value is given."""
    return [(sql.SQL("{} {} %s").format(sql.Identifier(column), sql.SQL(operator)), [value])
            for column, value, operator in checks if value is not None]


class DocumentReader(Generic[T]):
    """Reads one document view, fresh as of the call, always within one organization."""

    def __init__(self, pool: ConnectionPool[Any], freshness: Freshness, projection: str, view: type[DocumentView], kind: type[T]) -> None:
        self._pool = pool
        self._freshness = freshness
        self._projection = projection
        self._table = sql.Identifier(view.table)
        self._extra = list(view.columns)
        self._kind = kind
        self._key_match = sql.SQL("%s = ANY(keys)" if view.aliases else "key = %s")
        columns = ["id", "key", "keys", "data", "created_at", "updated_at", "deleted_at", *self._extra]
        self._select = sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(map(sql.Identifier, columns)), self._table)

    def fresh(self) -> None:
        self._freshness.wait([self._projection])

    def by_key(self, organization_id: UUID, key: str) -> Document[T] | None:
        self.fresh()
        where = sql.SQL("organization_id = %s AND {} AND deleted_at IS NULL").format(self._key_match)
        return self._one(where, [organization_id, key])

    def by_id(self, organization_id: UUID, id: UUID) -> Document[T] | None:
        """Deleted documents included: a DELETE answers with what it deleted."""
        self.fresh()
        return self._one(sql.SQL("organization_id = %s AND id = %s"), [organization_id, id])

    def by_keys(self, organization_id: UUID, keys: Sequence[str]) -> dict[str, Document[T]]:
        """Live documents with these keys; missing keys are simply absent."""
        if not keys:
            return {}
        self.fresh()
        query = self._select + sql.SQL(" WHERE organization_id = %s AND key = ANY(%s) AND deleted_at IS NULL")
        with self._pool.connection() as conn:
            rows = conn.execute(query, [organization_id, list(keys)]).fetchall()
        return {row[1]: self._document(row) for row in rows}

    def many(self, organization_id: UUID, ids: Sequence[UUID]) -> dict[UUID, Document[T]]:
        if not ids:
            return {}
        self.fresh()
        query = self._select + sql.SQL(" WHERE organization_id = %s AND id = ANY(%s)")
        with self._pool.connection() as conn:
            rows = conn.execute(query, [organization_id, list(ids)]).fetchall()
        return {row[0]: self._document(row) for row in rows}

    def page(
        self,
        organization_id: UUID,
        offset: int,
        limit: int,
        conditions: Sequence[Condition] = (),
        include_deleted: bool = False,
    ) -> tuple[list[Document[T]], int]:
        """Newest first, as Lago lists; returns the page and the total count."""
        self.fresh()
        where = [sql.SQL("organization_id = %s")]
        params: list[Any] = [organization_id]
        if not include_deleted:
            where.append(sql.SQL("deleted_at IS NULL"))
        for fragment, values in conditions:
            where.append(fragment)
            params.extend(values)
        clause = sql.SQL(" AND ").join(where)
        with self._pool.connection() as conn:
            total = conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE ").format(self._table) + clause, params).fetchone()[0]
            rows = conn.execute(
                self._select + sql.SQL(" WHERE ") + clause + sql.SQL(" ORDER BY created_at DESC, id LIMIT %s OFFSET %s"),
                [*params, limit, offset],
            ).fetchall()
        return [self._document(row) for row in rows], total

    def matching(self, organization_id: UUID, offset: int, limit: int, **equals: Any) -> tuple[list[Document[T]], int]:
        """A page of documents whose filter columns equal the values given (a list: any of them; None: no filter)."""
        conditions: list[Condition] = []
        for column, value in equals.items():
            if value is None:
                continue
            if column not in self._extra:
                raise ValueError(f"{column} is not a filter column of this view")
            test = sql.SQL("{} = ANY(%s)" if isinstance(value, list) else "{} = %s").format(sql.Identifier(column))
            conditions.append((test, [value]))
        return self.page(organization_id, offset, limit, conditions)

    def _one(self, where: sql.Composable, params: list[Any]) -> Document[T] | None:
        with self._pool.connection() as conn:
            row = conn.execute(self._select + sql.SQL(" WHERE ") + where, params).fetchone()
        return None if row is None else self._document(row)

    def _document(self, row: Sequence[Any]) -> Document[T]:
        id_, key, keys, data, created_at, updated_at, deleted_at, *extra = row
        return Document(
            id=id_,
            key=key,
            keys=list(keys),
            data=msgspec.convert(data, self._kind),
            created_at=created_at,
            updated_at=updated_at,
            deleted_at=deleted_at,
            extra=dict(zip(self._extra, extra, strict=True)),
        )
