"""Usage events: what a customer's product reports, recorded exactly as received (semantics §1).

An event is accepted whether or not its metric or subscription exists yet (E3); Tally counts
it as soon as both exist, for every period not yet invoiced. Its id derives from
(organization, external subscription id, transaction id), so a repeat is refused by the
event store's primary key however many senders race (E2, ADR 0003).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain import identity, limits
from domain.errors import Problems
from domain.expression import Expression, ExpressionError

_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
MAX_TIMESTAMP = Decimal(int(limits.LATEST.timestamp()))  # no event later than any period can reach


def usage_event_id(organization_id: UUID, external_subscription_id: str | None, transaction_id: str) -> UUID:
    return identity.scoped_id(organization_id, "usage_event", f"{external_subscription_id or ''}\x1f{transaction_id}")


def parse_properties(text: str) -> dict[str, Any]:
    """An event's properties, numbers kept exact."""
    value = json.loads(text, parse_float=Decimal)
    return value if isinstance(value, dict) else {}


def numeric(value: Any) -> Decimal | None:
    """A property as a number the way Lago reads it: its text must look like ``-12.5`` (A2)."""
    if isinstance(value, bool) or value is None:
        return None
    text = format(value, "f") if isinstance(value, Decimal) else str(value)
    if not _NUMBER.match(text):
        return None
    number = Decimal(text)
    return number if limits.storable_number(number) else None  # beyond what any view holds: skipped too


@dataclass(frozen=True)
class MetricExpression:
    """A metric's expression and the property it fills, for events with that code."""

    field_name: str
    expression: Expression


class UsageEvent(Aggregate):
    """One reported unit of usage; never changed once recorded."""

    @staticmethod
    def create_id(organization_id: UUID, external_subscription_id: str | None, transaction_id: str) -> UUID:
        return usage_event_id(organization_id, external_subscription_id, transaction_id)

    @event("Recorded")
    def __init__(
        self,
        organization_id: UUID,
        transaction_id: str,
        external_subscription_id: str | None,
        code: str,
        occurred_at: datetime,
        properties: str,
        precise_total_amount_cents: Decimal | None,
    ) -> None:
        self.organization_id = organization_id
        self.transaction_id = transaction_id
        self.external_subscription_id = external_subscription_id
        self.code = code
        self.occurred_at = occurred_at
        self.properties = properties
        self.precise_total_amount_cents = precise_total_amount_cents

    @classmethod
    def receive(
        cls,
        organization_id: UUID,
        raw: Mapping[str, Any],
        *,
        received_at: datetime,
        expressions: Mapping[str, MetricExpression],
    ) -> UsageEvent.Recorded:
        """Check one event as sent to the API and evaluate its metric's expression (E1, E6).

        Returns the ``Recorded`` event itself, not an aggregate: a usage event is one fact
        and never changes, and ingestion builds tens of thousands a second.
        """
        problems = Problems()
        transaction_id = raw.get("transaction_id")
        code = raw.get("code")
        problems.check(isinstance(transaction_id, str) and bool(transaction_id), "transaction_id", "value_is_mandatory")
        problems.check(isinstance(code, str) and bool(code), "code", "value_is_mandatory")
        occurred_at = _timestamp(raw.get("timestamp"), received_at, problems)
        precise = _precise(raw.get("precise_total_amount_cents"), problems)
        properties = raw.get("properties") or {}
        if isinstance(properties, str | bytes):
            text = properties.decode() if isinstance(properties, bytes) else properties
            if not text.lstrip().startswith(("{", "null")):
                problems.add("properties", "value_is_invalid")
            properties = text if text.lstrip().startswith("{") else "{}"
        elif not isinstance(properties, Mapping):
            problems.add("properties", "value_is_invalid")
            properties = {}
        external_subscription_id = raw.get("external_subscription_id")
        if external_subscription_id is not None and not isinstance(external_subscription_id, str):
            problems.add("external_subscription_id", "value_is_invalid")
        problems.raise_if_any()
        assert isinstance(transaction_id, str) and isinstance(code, str) and occurred_at is not None
        metric = expressions.get(code)
        if metric is not None:
            properties = parse_properties(properties) if isinstance(properties, str) else dict(properties)
            try:
                properties[metric.field_name] = metric.expression.evaluate(
                    code=code, timestamp=Decimal(str(occurred_at.timestamp())), properties=properties
                )
            except ExpressionError:
                problems.add("expression", "evaluation_failed")
                problems.raise_if_any()
        external = external_subscription_id or None
        return cls.Recorded(
            originator_id=usage_event_id(organization_id, external, transaction_id),
            originator_version=1,
            timestamp=received_at,
            originator_topic=_TOPIC,
            organization_id=organization_id,
            transaction_id=transaction_id,
            external_subscription_id=external,
            code=code,
            occurred_at=occurred_at,
            properties=properties if isinstance(properties, str) else to_json(properties),
            precise_total_amount_cents=precise,
        )


_TOPIC = f"{__name__}:UsageEvent"


def to_json(value: Any) -> str:
    """JSON text of event properties with exact numbers (Decimals written digit for digit)."""
    if isinstance(value, Mapping):
        return "{" + ",".join(json.dumps(str(k), ensure_ascii=False) + ":" + to_json(v) for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    if isinstance(value, Decimal):
        return format(value, "f") if value.is_finite() else "null"
    return json.dumps(value, ensure_ascii=False)


def _timestamp(value: Any, received_at: datetime, problems: Problems) -> datetime | None:
    """Epoch seconds as an integer, a float or a numeric string; absent means now (E1)."""
    if value is None or value == "":
        return received_at
    if isinstance(value, bool):
        problems.add("timestamp", "invalid_format")
        return None
    try:
        seconds = Decimal(str(value)) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        problems.add("timestamp", "invalid_format")
        return None
    if not seconds.is_finite() or not Decimal(0) <= seconds <= MAX_TIMESTAMP:
        problems.add("timestamp", "invalid_format")
        return None
    whole = int(seconds)
    micros = int((seconds - whole) * 1_000_000)
    return datetime.fromtimestamp(whole, UTC).replace(microsecond=micros)


def _precise(value: Any, problems: Problems) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        problems.add("precise_total_amount_cents", "value_is_invalid")
        return None
    if not amount.is_finite():
        problems.add("precise_total_amount_cents", "value_is_invalid")
        return None
    return amount
