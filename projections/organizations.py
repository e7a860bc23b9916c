"""The organizations read model: settings as of the latest event, for GET /organizations."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from functools import singledispatchmethod
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.persistence import Tracking
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from domain.organization import Organization, OrganizationSettings
from projections.freshness import Freshness
from projections.projection import Projection, View


@dataclass(frozen=True)
class OrganizationRecord:
    """One organization as the API shows it."""

    id: UUID
    name: str
    slug: str
    settings: OrganizationSettings
    created_at: datetime
    updated_at: datetime


class OrganizationsView(View):
    tables = ("organizations",)
    ddl = (
        """
        CREATE TABLE IF NOT EXISTS organizations (
            id uuid PRIMARY KEY,
            name text NOT NULL,
            slug text NOT NULL UNIQUE,
            settings jsonb NOT NULL,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            position bigint NOT NULL
        )
        """,
    )

    def created(self, event: Organization.Created, tracking: Tracking) -> None:
        self.cursor.execute(
            "INSERT INTO organizations VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (
                event.originator_id,
                event.name,
                event.slug,
                Jsonb(dataclasses.asdict(event.settings)),
                event.timestamp,
                event.timestamp,
                tracking.notification_id,
            ),
        )

    def settings_changed(self, event: Organization.SettingsChanged, tracking: Tracking) -> None:
        self.cursor.execute(
            "UPDATE organizations SET settings = %s, updated_at = %s, position = %s WHERE id = %s",
            (
                Jsonb(dataclasses.asdict(event.settings)),
                event.timestamp,
                tracking.notification_id,
                event.originator_id,
            ),
        )


    def renamed(self, event: Organization.Renamed, tracking: Tracking) -> None:
        self.cursor.execute(
            "UPDATE organizations SET name = %s, updated_at = %s, position = %s WHERE id = %s",
            (event.name, event.timestamp, tracking.notification_id, event.originator_id),
        )


class Organizations(Projection[OrganizationsView]):
    name = "organizations"

    @singledispatchmethod
    def process_event(self, event: Any, tracking: Tracking) -> None:
        """Other events do not change organizations."""

    @process_event.register
    def _(self, event: Organization.Created, tracking: Tracking) -> None:
        self.view.created(event, tracking)

    @process_event.register
    def _(self, event: Organization.SettingsChanged, tracking: Tracking) -> None:
        self.view.settings_changed(event, tracking)

    @process_event.register
    def _(self, event: Organization.Renamed, tracking: Tracking) -> None:
        self.view.renamed(event, tracking)


class OrganizationsReader:
    """Queries the organizations view, fresh as of the call; scoped to one organization."""

    def __init__(self, pool: ConnectionPool[Any], freshness: Freshness) -> None:
        self._pool = pool
        self._freshness = freshness

    def count(self) -> int:
        """How many organizations this instance has (for first-run setup, not tenant-scoped)."""
        self._freshness.wait([Organizations.name])
        with self._pool.connection() as conn:
            return conn.execute("SELECT count(*) FROM organizations").fetchone()[0]

    def get(self, organization_id: UUID) -> OrganizationRecord | None:
        self._freshness.wait([Organizations.name])
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT id, name, slug, settings, created_at, updated_at FROM organizations WHERE id = %s",
                (organization_id,),
            ).fetchone()
        if row is None:
            return None
        id_, name, slug, settings, created_at, updated_at = row
        return OrganizationRecord(
            id=id_,
            name=name,
            slug=slug,
            settings=msgspec.convert(settings, OrganizationSettings),
            created_at=created_at,
            updated_at=updated_at,
        )
