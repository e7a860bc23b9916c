"""Deterministic aggregate ids: uniqueness and tenant scoping come from the event store.

See docs/adr/0003-deterministic-aggregate-ids.md. An aggregate that is unique per key (an
organization's slug, a customer's external id in an organization, a usage event's
transaction id in a subscription) gets ``uuid5`` of that key. Creating it twice then fails
on the store's (originator_id, version) primary key, and one organization can never address
another's aggregate, because the organization id is part of every derived id.
"""

from __future__ import annotations

import re
import unicodedata
from uuid import UUID, uuid5

TALLY_NAMESPACE = UUID("6f1d2a43-35c3-5f0e-9d1b-7a4c1f0e2b10")

_SLUG_SEPARATORS = re.compile(r"[^a-z0-9]+")


def organization_id(slug: str) -> UUID:
    """The id of the organization with this slug, unique per Tally instance."""
    return uuid5(TALLY_NAMESPACE, f"organization\x1f{slug}")


def scoped_id(organization_id: UUID, kind: str, key: str) -> UUID:
    """The id of the ``kind`` aggregate known by ``key`` inside one organization."""
    return uuid5(organization_id, f"{kind}\x1f{key}")


def slugify(name: str) -> str:
    """A lower-case ASCII slug for a display name ('' when nothing ASCII survives)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return _SLUG_SEPARATORS.sub("-", ascii_name.lower()).strip("-")
