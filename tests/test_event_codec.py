"""Stored event state is plain JSON that decodes back into the annotated types."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import JSONTranscoder

from domain.organization import Organization, OrganizationSettings
from interfaces.event_codec import MsgspecMapper


class Meter(Aggregate):
    @event("Read")
    def __init__(self, quantity: Decimal, at: datetime, account: UUID, tags: tuple[str, ...], note: str | None) -> None:
        self.quantity = quantity


class Versioned(Aggregate):
    class Started(Aggregate.Created):
        class_version = 2
        unit: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["unit"] = "unit"

    @event(Started)
    def __init__(self, unit: str) -> None:
        self.unit = unit


def _mapper() -> MsgspecMapper:
    return MsgspecMapper(transcoder=JSONTranscoder())


def test_state_is_plain_json_and_round_trips_exact_types() -> None:
    """Decimal, datetime, UUID and tuples come back as themselves, not as strings."""
    account = uuid4()
    at = datetime(2026, 3, 1, 5, 0, 0, 123456, tzinfo=UTC)
    original = Meter(quantity=Decimal("12.3400"), at=at, account=account, tags=("a", "b"), note=None)
    [created] = original.collect_events()

    stored = _mapper().to_stored_event(created)
    restored = _mapper().to_domain_event(stored)

    plain = json.loads(stored.state)
    assert plain["quantity"] == "12.3400" and plain["account"] == str(account)
    assert restored.quantity == Decimal("12.3400")
    assert restored.at == at and restored.account == account and restored.tags == ("a", "b")
    assert vars(restored) == vars(created)


def test_nested_value_objects_round_trip() -> None:
    """Dataclass settings inside an event decode back into dataclasses."""
    organization = Organization.register(name="A", slug="a", settings=OrganizationSettings(document_number_prefix="A-1"))
    [created] = organization.collect_events()

    restored = _mapper().to_domain_event(_mapper().to_stored_event(created))

    assert restored.settings == created.settings


def test_older_event_versions_are_upcast_before_decoding() -> None:
    """An event stored under class version 1 gains the fields version 2 added."""
    [started] = Versioned(unit="kg").collect_events()
    stored = _mapper().to_stored_event(started)
    state = json.loads(stored.state)
    del state["unit"], state["class_version"]
    old = type(stored)(stored.originator_id, stored.originator_version, stored.topic, json.dumps(state).encode())

    restored = _mapper().to_domain_event(old)

    assert restored.unit == "unit"
