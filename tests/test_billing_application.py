"""The Billing service: organizations and API keys, in memory and on Postgres."""

from __future__ import annotations

from uuid import uuid4

from collections.abc import Iterator
from typing import Any

import pytest

from domain.api_key import ApiKeyNotFound, InvalidApiKey, hash_secret
from domain.application import Billing, ConcurrentWrite
from domain.organization import OrganizationAlreadyExists
from domain.sequence import Sequence
from interfaces.store import application_env


@pytest.fixture(params=["memory", "postgres"])
def billing(request: pytest.FixtureRequest) -> Iterator[Billing]:
    if request.param == "memory":
        app = Billing(env={"MAPPER_TOPIC": "interfaces.event_codec:MsgspecMapper"}, new_id=uuid4)
    else:
        app = Billing(env=application_env(request.getfixturevalue("database_url")), new_id=uuid4)
    yield app
    app.close()


def test_a_new_organization_gets_a_key_that_authenticates_it(billing: Billing) -> None:
    """The key printed at creation resolves to the new organization."""
    issued = billing.create_organization("Acme")

    assert billing.authenticate(issued.secret) == issued.organization_id
    assert billing.organization(issued.organization_id).slug == "acme"


def test_a_second_organization_with_the_same_slug_is_refused(billing: Billing) -> None:
    """Slugs are unique per instance because the slug determines the aggregate id."""
    billing.create_organization("Acme")

    with pytest.raises(OrganizationAlreadyExists):
        billing.create_organization("ACME")


def test_a_revoked_key_no_longer_authenticates(billing: Billing) -> None:
    """Revocation is final and immediate."""
    issued = billing.create_organization("Acme")
    spare = billing.issue_api_key(issued.organization_id, "spare")

    billing.revoke_api_key(issued.key_id)

    with pytest.raises(InvalidApiKey):
        billing.authenticate(issued.secret)
    assert billing.authenticate(spare.secret) == issued.organization_id
    assert [(k.name, k.is_revoked) for k in billing.api_keys(issued.organization_id)] == [("default", True), ("spare", False)]


def test_unknown_and_malformed_keys_are_refused(billing: Billing) -> None:
    """Anything but an issued, unrevoked key is refused the same way."""
    billing.create_organization("Acme")

    for secret in ("tly_unknown", "not-even-ours", "", "tly_" + "x" * 500):
        with pytest.raises(InvalidApiKey):
            billing.authenticate(secret)


def test_revoking_an_unknown_key_says_so(billing: Billing) -> None:
    """A key id that was never issued is not found."""
    issued = billing.create_organization("Acme")

    with pytest.raises(ApiKeyNotFound):
        billing.revoke_api_key(issued.organization_id)


def test_the_secret_is_never_stored(billing: Billing) -> None:
    """Only the hash of a key reaches the event log."""
    issued = billing.create_organization("Acme")

    stored = b"".join(n.state for n in billing.recorder.select_notifications(start=1, limit=100))

    assert issued.secret.encode() not in stored
    assert hash_secret(issued.secret).encode() in stored


def test_concurrent_writes_to_one_organization_conflict(billing: Billing) -> None:
    """Two writers holding the same version: the second save is refused, not merged."""
    issued = billing.create_organization("Acme")
    first = billing.organization(issued.organization_id)
    second = billing.organization(issued.organization_id)
    first.change_settings(first.settings.amended({"timezone": "Europe/Paris"}))
    second.change_settings(second.settings.amended({"timezone": "Asia/Tokyo"}))
    billing.save(first)

    with pytest.raises(ConcurrentWrite):
        billing._save(second)

    assert billing.organization(issued.organization_id).settings.timezone == "Europe/Paris"


def test_a_sequence_snapshot_replays_only_the_numbers_since_the_previous_one(billing: Billing) -> None:
    """Every 50th number snapshots the sequence from the last snapshot, not from its first number."""
    issued = billing.create_organization("Acme")
    sequence = Sequence.start(issued.organization_id, "customers")
    read_after: list[int | None] = []
    select_events = billing.recorder.select_events

    def spying(originator_id: Any, **kwargs: Any) -> Any:
        if originator_id == sequence.id:
            read_after.append(kwargs.get("gt"))
        return select_events(originator_id, **kwargs)

    billing.recorder.select_events = spying  # type: ignore[method-assign]
    for _ in range(100):
        sequence.take()
        billing.save(sequence)

    assert read_after == [None, 50]
    assert billing.snapshot_repository.get(sequence.id).last == 100
    assert [s.originator_version for s in billing.snapshots.get(sequence.id)] == [50, 100]
