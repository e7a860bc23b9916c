"""The Postgres event store: immutable at the database level, migrated once."""

from __future__ import annotations

from typing import cast
from uuid import UUID, uuid4

import falcon.testing
import psycopg
import pytest
from eventsourcing.persistence import StoredEvent

from domain.api_key import IssuedKey
from domain.sequence import Sequence
from interfaces.billing_recorder import BillingRecorder
from interfaces.store import NotMigrated, Store, migrate, open_store
from tests.conftest import bearer, database_in


@pytest.mark.parametrize("table", ["billing_events", "metering_events"])
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE {} SET topic = 'tampered'",
        "UPDATE {} SET state = ''::bytea WHERE false",
        "DELETE FROM {}",
        "TRUNCATE {}",
    ],
)
def test_stored_events_cannot_be_changed_or_removed(
    database_url: str, client: falcon.testing.TestClient, org: IssuedKey, table: str, statement: str
) -> None:
    """UPDATE, DELETE and TRUNCATE on either events table fail, even when they would touch no row."""
    sent = client.simulate_post("/api/v1/events", headers=bearer(org),
                                json={"event": {"transaction_id": "t1", "code": "calls", "external_subscription_id": "s"}})
    assert sent.status_code == 200, sent.text
    digest = f"SELECT count(*), md5(string_agg(state::text, '' ORDER BY notification_id)) FROM {table}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        before = conn.execute(digest).fetchone()

        with pytest.raises(psycopg.errors.RestrictViolation, match="stored events are immutable"):
            conn.execute(statement.format(table))

        after = conn.execute(digest).fetchone()
    assert before == after and before[0] > 0


def test_migrate_is_idempotent(database_url: str, store: Store, org: IssuedKey) -> None:
    """Running migrate on a live database changes nothing and keeps every event."""
    with psycopg.connect(database_url) as conn:
        before = conn.execute("SELECT count(*) FROM billing_events").fetchone()[0]

    assert migrate(database_url) == []
    assert migrate(database_url) == []

    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM billing_events").fetchone()[0] == before
    assert store.billing.authenticate(org.secret) == org.organization_id


def test_processes_refuse_an_unmigrated_database(postgres_server: str) -> None:
    """Long-running processes never create tables; they say what to run instead."""
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS tally_unmigrated")
        conn.execute("CREATE DATABASE tally_unmigrated")
    try:
        with pytest.raises(NotMigrated, match="tally migrate"):
            open_store(database_in(postgres_server, "tally_unmigrated"))
        with psycopg.connect(database_in(postgres_server, "tally_unmigrated")) as conn:
            assert conn.execute("SELECT to_regclass('billing_events')").fetchone()[0] is None
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS tally_unmigrated WITH (FORCE)")


def test_billing_reads_many_aggregates_in_one_query_from_their_latest_snapshots(store: Store, org: IssuedKey) -> None:
    """Each aggregate's events in order; from snapshots, its latest snapshot first and only the events after it."""
    billing = store.billing
    long, short = Sequence.start(org.organization_id, "long"), Sequence.start(org.organization_id, "short")
    for _ in range(120):
        long.take()
    short.take()
    billing.save(long, short)  # 121 and 2 events in one insert; the long one is snapshotted at 50 and 100
    recorder = cast(BillingRecorder, billing.recorder)

    everything = recorder.select_aggregates([long.id, short.id])
    recent = recorder.select_aggregates([short.id, long.id, uuid4()], from_snapshots=True)

    for found in (everything, recent):
        assert [e.originator_id for e in found] == sorted(e.originator_id for e in found)  # one aggregate after another
    assert _versions(everything) == {long.id: [(v, False) for v in range(1, 122)], short.id: [(1, False), (2, False)]}
    assert _versions(recent) == {long.id: [(100, True), *((v, False) for v in range(101, 122))],
                                 short.id: [(1, False), (2, False)]}


def _versions(events: list[StoredEvent]) -> dict[UUID, list[tuple[int, bool]]]:
    """Each aggregate's (version, is a snapshot), in the order read."""
    found: dict[UUID, list[tuple[int, bool]]] = {}
    for event in events:
        found.setdefault(event.originator_id, []).append((event.originator_version, event.topic.endswith("Snapshot")))
    return found
