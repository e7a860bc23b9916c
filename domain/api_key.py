"""API keys: shown once, stored only as a hash, each belonging to one organization.

See docs/adr/0005-api-keys-stored-as-hashes.md. The key's aggregate id derives from the
hash of its secret, so authenticating is one lookup by primary key and the secret itself
is never written anywhere.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.errors import NotFound, Unauthenticated
from domain.identity import TALLY_NAMESPACE

SECRET_PREFIX = "tly_"


class ApiKeyNotFound(NotFound):
    resource = "api_key"


class InvalidApiKey(Unauthenticated):
    """The presented key is unknown or revoked."""


@dataclass(frozen=True)
class IssuedKey:
    """A freshly issued key: the only moment its secret exists outside the caller."""

    key_id: UUID
    organization_id: UUID
    secret: str


def new_secret() -> str:
    """256 random bits, URL-safe, with a prefix secret scanners can recognise."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """SHA-256 is enough: the secret has 256 bits of entropy, so nothing is guessable."""
    return hashlib.sha256(secret.encode()).hexdigest()


def key_id_for(secret: str) -> UUID:
    """The aggregate id of the key with this secret."""
    return ApiKey.create_id(hash_secret(secret))


class ApiKey(Aggregate):
    """One credential of one organization; revocation is final."""

    @staticmethod
    def create_id(secret_hash: str) -> UUID:
        return uuid5(TALLY_NAMESPACE, f"api_key\x1f{secret_hash}")

    @event("Issued")
    def __init__(self, secret_hash: str, organization_id: UUID, name: str) -> None:
        self.secret_hash = secret_hash
        self.organization_id = organization_id
        self.name = name
        self.is_revoked = False

    def revoke(self) -> None:
        if not self.is_revoked:
            self._revoked()

    @event("Revoked")
    def _revoked(self) -> None:
        self.is_revoked = True

    def authorize(self) -> UUID:
        """The organization this key acts for, unless it was revoked."""
        if self.is_revoked:
            raise InvalidApiKey("API key revoked")
        return self.organization_id
