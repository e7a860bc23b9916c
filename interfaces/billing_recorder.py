"""The Billing log's recorder: inserts as the Metering log's does, and reads many aggregates in one query.

A batch of period closes (docs/adr/0020) loads a hundred subscriptions, their customers and
their number sequences; one query each would be most of the batch's time. Billing asks for
``select_aggregates`` when its recorder has it and loads one aggregate at a time otherwise.
The batch's save, hundreds of events, goes through one database function call (ADR 0016):
the library's pipeline-mode insert of that much data hung, the server waiting on the client.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.utils import retry
from psycopg import sql

from interfaces.metering_recorder import MeteringRecorder


class BillingRecorder(MeteringRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        schema = sql.Identifier(self.datastore.schema)
        events = sql.Identifier(self.events_table_name)
        # The library's factory names an application's tables <name>_events and <name>_snapshots.
        snapshots = sql.Identifier(self.events_table_name.removesuffix("_events") + "_snapshots")
        self._select_all = sql.SQL(
            "SELECT originator_id, originator_version, topic, state FROM {schema}.{events} "
            "WHERE originator_id = ANY(%(ids)s) ORDER BY originator_id, originator_version"
        ).format(schema=schema, events=events)
        self._select_after_snapshots = sql.SQL(
            "WITH latest AS (SELECT DISTINCT ON (originator_id) originator_id, originator_version, topic, state "
            "  FROM {schema}.{snapshots} WHERE originator_id = ANY(%(ids)s) ORDER BY originator_id, originator_version DESC) "
            "SELECT originator_id, originator_version, topic, state FROM ("
            "  SELECT originator_id, originator_version, topic, state, 0 AS kind FROM latest "
            "  UNION ALL "
            "  SELECT e.originator_id, e.originator_version, e.topic, e.state, 1 FROM {schema}.{events} e "
            "  LEFT JOIN latest l ON l.originator_id = e.originator_id "
            "  WHERE e.originator_id = ANY(%(ids)s) AND e.originator_version > coalesce(l.originator_version, 0)"
            ") found ORDER BY originator_id, kind, originator_version"
        ).format(schema=schema, events=events, snapshots=snapshots)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_aggregates(self, originator_ids: Sequence[UUID], *, from_snapshots: bool = False) -> list[StoredEvent]:
        """The stored events of every aggregate named, each aggregate's in version order; ``from_snapshots``:
        each one's latest snapshot (if any) first, then only the events after it."""
        if not originator_ids:
            return []
        statement = self._select_after_snapshots if from_snapshots else self._select_all
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, {"ids": list(originator_ids)})
            return [StoredEvent(originator_id=row["originator_id"], originator_version=row["originator_version"],
                                topic=row["topic"], state=bytes(row["state"])) for row in curs.fetchall()]
