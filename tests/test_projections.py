"""Projections commit a page of events with their position: exactly once, resumable, rebuildable."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest

from domain.api_key import IssuedKey
from interfaces.store import Store
from projections import runner
from projections.freshness import Freshness, ProjectionsBehind
from projections.organizations import Organizations, OrganizationsView
from projections.runner import ProjectionFailed, Projector


def view_rows(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT id, name, slug, settings, created_at, updated_at, position FROM organizations ORDER BY id"
        ).fetchall()


def tracking(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT position FROM projection_tracking WHERE projection = 'organizations'").fetchone()[0]


def organizations(store: Store) -> Projector:
    """The organizations projector, the one these tests watch."""
    return next(p for p in store.projectors if p.name == "organizations")


def many_changes(store: Store, organizations: int, changes: int) -> None:
    """Write organizations × changes settings events, a whole organization per save."""
    zones = ["UTC", "Europe/Paris", "Asia/Tokyo", "America/Los_Angeles"]
    for n in range(organizations):
        issued = store.billing.create_organization(f"Bulk {n}")
        organization = store.billing.organization(issued.organization_id)
        for c in range(changes):
            organization.change_settings(organization.settings.amended({"timezone": zones[c % 4], "net_payment_term": c}))
        store.billing.save(organization)


def test_a_page_is_projected_with_its_position_in_one_transaction(store: Store, database_url: str) -> None:
    """After a page the view and the tracking position move together, to the page's end."""
    many_changes(store, organizations=3, changes=5)
    projector = organizations(store)
    projector.page_size = 4

    assert projector.step() == 4

    # Events 1-3 open the first organization (Created, its key twice); 4-8 change it. The
    # page holds the four organization events among them, so it ends at event 6.
    assert tracking(database_url) == 6 and len(view_rows(database_url)) == 1
    assert projector.catch_up() > 0
    assert tracking(database_url) == projector.lag()[1]
    assert {row[2]: row[3]["net_payment_term"] for row in view_rows(database_url)} == {f"bulk-{n}": 4 for n in range(3)}


def test_a_failing_page_rolls_back_and_only_the_events_before_the_failure_commit(store: Store, database_url: str) -> None:
    """An error mid-page rolls back every row of the page; the events before the failing one then
    commit as a page of their own, and the projection stays just before the failing event."""
    many_changes(store, organizations=2, changes=3)
    projector = organizations(store)
    with psycopg.connect(database_url) as conn:
        positions = [row[0] for row in conn.execute(
            f"SELECT notification_id FROM {projector.log.table} WHERE topic = ANY(%s) ORDER BY notification_id",
            (list(Organizations.topics()),))]

    class FailingOrganizations(Organizations):
        name = "organizations"
        calls = 0

        def process_event(self, event: Any, tracking: Any) -> None:  # type: ignore[override]
            self.calls += 1
            if self.calls == 5:
                raise RuntimeError("projection bug")
            super().process_event(event, tracking)

    failing = Projector(FailingOrganizations(OrganizationsView()), projector.log, store.pool, page_size=100)

    with pytest.raises(ProjectionFailed) as failed:
        failing.step()

    assert isinstance(failed.value.__cause__, RuntimeError)
    assert failed.value.failure.position == positions[4]
    assert tracking(database_url) == positions[3]
    assert max(row[6] for row in view_rows(database_url)) == positions[3]
    projector.catch_up()
    assert len(view_rows(database_url)) == 2


def test_a_second_projector_skips_a_page_another_holds(store: Store, org: IssuedKey) -> None:
    """Without waiting, a projector steps aside (None) while another process holds the page."""
    projector = organizations(store)
    other = Projector(projector.projection, projector.log, store.pool)
    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with store.pool.connection() as conn, conn.transaction():
            conn.execute("SELECT 1 FROM projection_tracking WHERE projection = 'organizations' FOR UPDATE")
            holding.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(5)
    try:
        assert other.step(wait=False) is None
    finally:
        release.set()
        holder.join()
    assert other.step(wait=False) == 1


def test_reads_wait_for_writes_acknowledged_before_them(store: Store, org: IssuedKey) -> None:
    """Right after a write returns, a read sees it, with no worker running."""
    store.billing.update_organization(org.organization_id, {"timezone": "Asia/Tokyo"})

    record = store.readers.organizations.get(org.organization_id)

    assert record is not None and record.settings.timezone == "Asia/Tokyo"


def test_reads_fail_clearly_when_a_view_cannot_catch_up(store: Store, org: IssuedKey) -> None:
    """A view held by a stuck process yields ProjectionsBehind (503) after the bound, never stale data."""
    freshness = Freshness(store.pool, store.projectors, timeout=0.2)
    with store.pool.connection() as conn, conn.transaction():
        conn.execute("SELECT 1 FROM projection_tracking WHERE projection = 'organizations' FOR UPDATE")

        with pytest.raises(ProjectionsBehind) as behind:
            freshness.wait(["organizations"])

    assert behind.value.names == ["organizations"]


def test_a_rebuilt_view_equals_the_live_one(store: Store, database_url: str) -> None:
    """Drop the view, replay the log: the same rows."""
    many_changes(store, organizations=5, changes=7)
    for projector in store.projectors:
        projector.catch_up()
    live = view_rows(database_url)

    runner.rebuild(store.pool, store.projectors)
    assert view_rows(database_url) == [] and tracking(database_url) == 0
    for projector in store.projectors:
        projector.catch_up()

    assert view_rows(database_url) == live


def test_a_new_view_version_is_reset_for_rebuild_at_migration(store: Store, database_url: str, org: IssuedKey) -> None:
    """Changing a view's schema version makes migrate drop it and rewind its position."""
    for projector in store.projectors:
        projector.catch_up()

    class OrganizationsViewV2(OrganizationsView):
        version = 2

    projector = Projector(Organizations(OrganizationsViewV2()), store.projectors[0].log, store.pool)

    assert runner.install(store.pool, [projector]) == ["organizations"]
    assert tracking(database_url) == 0 and view_rows(database_url) == []
    projector.catch_up()
    assert [row[2] for row in view_rows(database_url)] == [store.billing.organization(org.organization_id).slug]


def test_ignored_events_still_advance_the_position(store: Store, database_url: str, org: IssuedKey) -> None:
    """API-key events are not organization events, yet the position passes them."""
    store.billing.issue_api_key(org.organization_id, "second")
    projector = organizations(store)

    projector.catch_up()

    assert tracking(database_url) == projector.lag()[1] == 5
    assert len(view_rows(database_url)) == 1
