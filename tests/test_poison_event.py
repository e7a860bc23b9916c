"""An event a projection fails on stops that one view, visibly, and nothing else (ADR 0026)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from functools import singledispatchmethod
from typing import Any
from uuid import UUID

import falcon.testing
import psycopg
import pytest
from eventsourcing.persistence import Tracking

from domain.add_on import AddOn
from interfaces.http.app import create_app
from interfaces.store import Store
from projections import runner, worker
from projections.catalog import AddOns, AddOnsView
from projections.projection import Projection, View
from projections.runner import ProjectionFailed, Projector
from tests.conftest import bearer, tally, wait_until

pytestmark = pytest.mark.slow

POISON = "Poison"


class PoisonedAddOns(AddOns):  # type: ignore[misc, valid-type]
    """The add-ons projection with a bug: while ``broken`` it fails on an add-on named Poison."""

    name = "add_ons"
    broken = True

    def process_event(self, event: Any, tracking: Tracking) -> None:  # type: ignore[override]
        if type(self).broken and getattr(getattr(event, "definition", None), "name", None) == POISON:
            raise ValueError(f"cannot project add-on {POISON!r}")
        super().process_event(event, tracking)


class MarksView(View):
    """A view that buffers its page and writes it at the end, like usage and the ledger."""

    tables = ("poison_test_marks",)
    ddl = ("CREATE TABLE IF NOT EXISTS poison_test_marks (position bigint PRIMARY KEY, name text NOT NULL)",)
    fail_in = ""  # "handler" or "flush": where the Poison mark fails

    def __init__(self) -> None:
        super().__init__()
        self.buffer: list[tuple[int, str]] = []

    def add(self, position: int, name: str) -> None:
        if self.fail_in == "handler" and name == POISON:
            raise ValueError("cannot mark Poison")
        self.buffer.append((position, name))

    def flush(self) -> None:
        if self.fail_in == "flush" and any(name == POISON for _, name in self.buffer):
            raise ValueError("cannot write the Poison mark")
        if self.buffer:
            self.cursor.executemany("INSERT INTO poison_test_marks VALUES (%s, %s)", self.buffer)
        self.buffer.clear()

    def discard(self) -> None:
        self.buffer.clear()


class Marks(Projection[MarksView]):
    """One row per add-on defined, written at the page's end."""

    name = "poison_test_marks"

    @singledispatchmethod
    def process_event(self, event: Any, tracking: Tracking) -> None:
        """Other events leave no mark."""

    @process_event.register(AddOn.Defined)
    def _(self, event: Any, tracking: Tracking) -> None:
        self.view.add(tracking.notification_id, event.definition.name)


@pytest.fixture
def broken() -> Iterator[type[PoisonedAddOns]]:
    PoisonedAddOns.broken = True
    yield PoisonedAddOns
    PoisonedAddOns.broken = True


def _add_ons(store: Store, organization_id: UUID, *names: str) -> list[UUID]:
    return [store.billing.create_add_on(organization_id, {"name": name, "code": name.lower(), "amount_cents": 100,
                                                          "amount_currency": "EUR"}) for name in names]


def _position_of(url: str, originator_id: UUID, table: str = "billing_events") -> int:
    """Notification id of the first event of ``originator_id``."""
    with psycopg.connect(url) as conn:
        return int(conn.execute(f"SELECT min(notification_id) FROM {table} WHERE originator_id = %s",
                                (originator_id,)).fetchone()[0])


def _failures(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT projection, application, position, topic, originator_id, error_type, error_message, attempts, "
            "first_seen_at, last_seen_at FROM projection_failures ORDER BY projection").fetchall()


def _tracking(url: str, projection: str) -> int:
    with psycopg.connect(url) as conn:
        return int(conn.execute("SELECT position FROM projection_tracking WHERE projection = %s AND application = "
                                "'Billing'", (projection,)).fetchone()[0])


def _poisoned(store: Store, page_size: int = 1000) -> tuple[Projector, list[Projector]]:
    """A poisoned add-ons projector, and every projector with it in the real one's place."""
    real = next(p for p in store.projectors if p.name == "add_ons")
    poisoned = Projector(PoisonedAddOns(AddOnsView()), real.log, store.pool, page_size)
    return poisoned, [poisoned if p is real else p for p in store.projectors]


def test_the_failure_names_the_exact_event_within_a_page(store: Store, database_url: str,
                                                         broken: type[PoisonedAddOns]) -> None:
    """Five add-ons in one page, the third poison: the failure is that event; the two before it commit."""
    organization = store.billing.create_organization("Acme").organization_id
    ids = _add_ons(store, organization, "First", "Second", POISON, "Fourth", "Fifth")
    projector, _ = _poisoned(store, page_size=100)

    with pytest.raises(ProjectionFailed) as failed:
        projector.step()
    with pytest.raises(ProjectionFailed):
        projector.step()

    poison = _position_of(database_url, ids[2])
    [(name, application, position, topic, originator, error_type, message, attempts, first, last)] = \
        _failures(database_url)
    assert failed.value.failure.position == poison
    assert (name, application, position, originator) == ("add_ons", "Billing", poison, ids[2])
    assert topic == "domain.add_on:AddOn.Defined"
    assert (error_type, message) == ("ValueError", "cannot project add-on 'Poison'")
    assert attempts == 2 and first < last
    assert _tracking(database_url, "add_ons") == _position_of(database_url, ids[1])


@pytest.mark.parametrize("fail_in", ["handler", "flush"])
def test_a_view_writing_its_page_at_the_end_fails_on_the_exact_event_and_keeps_nothing_twice(
        store: Store, database_url: str, fail_in: str) -> None:
    """Whether the handler or the page's final write fails, the failure is the poison event's, and once
    fixed every event is written exactly once (the failed attempt's buffer was discarded)."""
    organization = store.billing.create_organization("Acme").organization_id
    ids = _add_ons(store, organization, "First", "Second", POISON, "Fourth")
    log = next(p for p in store.projectors if p.name == "add_ons").log
    projector = Projector(Marks(MarksView()), log, store.pool, page_size=100)
    runner.install(store.pool, [projector])
    projector.projection.view.fail_in = fail_in

    with pytest.raises(ProjectionFailed) as failed:
        projector.step()

    assert failed.value.failure.position == _position_of(database_url, ids[2])
    assert failed.value.failure.error == "ValueError: " + ("cannot mark Poison" if fail_in == "handler"
                                                           else "cannot write the Poison mark")
    projector.projection.view.fail_in = ""
    projector.catch_up()
    with psycopg.connect(database_url) as conn:
        marks = conn.execute("SELECT position, name FROM poison_test_marks ORDER BY position").fetchall()
    assert marks == [(_position_of(database_url, i), n) for i, n in zip(ids, ["First", "Second", POISON, "Fourth"],
                                                                        strict=True)]
    assert _failures(database_url) == []


def test_a_poison_event_stops_its_view_only_until_fixed_and_loses_nothing(
        store: Store, database_url: str, broken: type[PoisonedAddOns]) -> None:
    """The worker keeps the other views at the head while one is stuck; /health and `tally projections
    status` name it, its reads fail fast; once fixed it resumes from the event, nothing lost or skipped."""
    issued = store.billing.create_organization("Acme")
    organization = issued.organization_id
    api = falcon.testing.TestClient(create_app(store.billing, store.metering, store.readers, max_body_bytes=1 << 16))
    _, projectors = _poisoned(store)
    stop = threading.Event()
    running = threading.Thread(target=worker.run, args=(projectors, database_url, stop),
                               kwargs={"idle_seconds": 0.1, "retry_seconds": 0.2, "max_retry_seconds": 0.5})
    running.start()
    try:
        before = _add_ons(store, organization, "Before one", "Before two")
        [poison] = _add_ons(store, organization, POISON)
        after = _add_ons(store, organization, "After one", "After two")
        store.billing.update_organization(organization, {"timezone": "Europe/Paris"})
        wait_until(lambda: bool(_failures(database_url)), timeout=30)
        others = [p for p in store.projectors if p.name != "add_ons"]
        wait_until(lambda: all(p.lag()[0] == p.lag()[1] for p in others), timeout=30)

        position = _position_of(database_url, poison)
        assert _position_of(database_url, before[1]) <= _tracking(database_url, "add_ons") < position
        health = api.simulate_get("/health")
        assert health.status_code == 503 and health.json["message"] == "Unhealthy"
        [stuck] = health.json["projections_stuck"]
        assert {k: stuck[k] for k in ("projection", "application", "position", "topic", "error")} == {
            "projection": "add_ons", "application": "Billing", "position": position,
            "topic": "domain.add_on:AddOn.Defined", "error": "ValueError: cannot project add-on 'Poison'"}
        assert stuck["attempts"] >= 1 and stuck["since"].endswith("Z")
        assert health.json["projections_lag"]["organizations"] == 0
        started = time.monotonic()
        read = api.simulate_get("/api/v1/add_ons", headers=bearer(issued))
        assert read.status_code == 503 and read.json["projections"] == ["add_ons"]
        assert read.json["code"] == "projections_stuck" and "Poison" not in read.text
        assert time.monotonic() - started < 2, "a read of a stuck view fails at once, not after the read bound"
        assert api.simulate_get("/api/v1/organizations", headers=bearer(issued)).json["organization"]["timezone"] \
            == "Europe/Paris"
        status = tally("projections", "status", env={"DATABASE_URL": database_url})
        assert status.returncode == 1
        assert f"add_ons: STUCK at event {position} of Billing (domain.add_on:AddOn.Defined, originator {poison}" \
            in status.stdout and "ValueError: cannot project add-on 'Poison'" in status.stdout
        assert status.stderr.startswith("tally: stuck on an event they fail on: add_ons;")
        assert status.stderr.count("\n") == 1

        broken.broken = False
        retried = tally("projections", "retry", "add_ons", env={"DATABASE_URL": database_url})
        assert retried.returncode == 0, retried.stderr
        late = _add_ons(store, organization, "Later")
        wait_until(lambda: not _failures(database_url) and _tracking(database_url, "add_ons") >= _position_of(
            database_url, late[0]), timeout=30)
    finally:
        stop.set()
        running.join(10)

    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT id, key FROM add_ons WHERE organization_id = %s ORDER BY position",
                            (organization,)).fetchall()
    assert rows == list(zip([*before, poison, *after, *late],
                            ["before one", "before two", "poison", "after one", "after two", "later"], strict=True))
    assert api.simulate_get("/health").status_code == 200
    assert tally("projections", "status", env={"DATABASE_URL": database_url}).returncode == 0
    listed = api.simulate_get("/api/v1/add_ons", headers=bearer(issued))
    assert listed.status_code == 200 and len(listed.json["add_ons"]) == 6
