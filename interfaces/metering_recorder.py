"""The Metering log's recorder: the library's, inserting through one database function.

The library inserts in pipeline mode, whose wait loop spins in Python (holding the GIL)
while Postgres commits, and sends an array of a composite type that psycopg formats value
by value. Here one call of a function migrate creates takes the same EXCLUSIVE table lock
and sends the same NOTIFY the library relies on (ADR 0004), inserts from four plain arrays
in binary format, and commits: one round trip per group of events (ADR 0016).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg import sql


class MeteringRecorder(PostgresApplicationRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        schema = sql.Identifier(self.datastore.schema)
        function = sql.Identifier(f"tally_insert_{self.events_table_name}")
        self.sql_create_statements.append(sql.SQL(
            "CREATE OR REPLACE FUNCTION {schema}.{function}(ids uuid[], versions int8[], topics text[], states bytea[]) "
            "RETURNS SETOF bigint LANGUAGE plpgsql AS $body$ "
            "BEGIN "
            "SET LOCAL lock_timeout = '{timeout}s'; "
            "LOCK TABLE {schema}.{table} IN EXCLUSIVE MODE; "
            "NOTIFY {channel}; "
            "RETURN QUERY INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(ids, versions, topics, states) RETURNING notification_id; "
            "END $body$"
        ).format(
            schema=schema, function=function, timeout=sql.SQL(str(int(self.datastore.lock_timeout))),
            table=sql.Identifier(self.events_table_name), channel=sql.Identifier(self.channel_name),
        ))
        self._insert = sql.SQL("SELECT * FROM {}.{}(%b, %b, %b, %b)").format(schema, function)

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        if not stored_events:
            return []
        with self.datastore.get_connection() as conn, conn.cursor() as curs:  # autocommit: the call is the transaction
            curs.execute(self._insert, (
                [e.originator_id for e in stored_events],
                [e.originator_version for e in stored_events],
                [e.topic for e in stored_events],
                [e.state for e in stored_events],
            ))
            return [row[0] if isinstance(row, tuple) else next(iter(row.values())) for row in curs.fetchall()]
