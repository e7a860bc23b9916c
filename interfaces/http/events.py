"""Usage events over Lago's API (reference §2.5): ingest one or a batch, list, show.

Every 200 means the event is committed in the Metering log (unlike Lago's asynchronous
path). Concurrent requests, single events and batches alike, are group-committed; a batch
stays all or nothing. Beyond Lago, ``GET /events/{transaction_id}`` says whether
and where the event counts, or why it does not.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import falcon
import msgspec

from domain.errors import NotFound, ValidationFailed
from domain.usage_event import MetricExpression, UsageEvent, to_json
from interfaces.billing_cache import BillingCache
from interfaces.group_commit import GroupCommitter
from interfaces.http.customers import list_param
from interfaces.http.openapi import PAGINATION, Envelope, Operation, Param
from interfaces.http.wire import BadRequest, PageRequest, respond
from projections.documents import DocumentReader
from projections.events import EventsReader, Explanation, StoredUsageEvent

MAX_BATCH = 100


class EventInput(msgspec.Struct, kw_only=True):
    """Loose on purpose: the domain names each wrong field in Lago's codes."""

    transaction_id: Any = None
    external_subscription_id: Any = None
    code: Any = None
    timestamp: Any = None
    properties: msgspec.Raw = msgspec.Raw(b"null")  # kept as sent: exact numbers, no re-encoding
    precise_total_amount_cents: Any = None


class EventFields(msgspec.Struct, kw_only=True):
    """One event as documented; ``EventInput`` decodes it loosely so the domain can name each wrong field."""

    transaction_id: str
    code: str
    external_subscription_id: str | None = None
    timestamp: int | float | str | None = None
    properties: dict[str, Any] = msgspec.field(default_factory=dict)
    precise_total_amount_cents: str | int | float | None = None


class SingleEnvelope(msgspec.Struct):
    event: EventInput | None = None


class BatchEnvelope(msgspec.Struct):
    events: list[EventInput] | None = None


class EventObject(msgspec.Struct):
    lago_id: str
    transaction_id: str
    lago_customer_id: str | None
    code: str
    timestamp: str
    precise_total_amount_cents: str | None
    properties: dict[str, Any]
    lago_subscription_id: str | None
    external_subscription_id: str | None
    created_at: str


class BillingExplanation(msgspec.Struct):
    """Tally's answer to "is this event billed?": where it counts, or why it does not."""

    status: str
    reason: str | None
    counts_for: list[dict[str, Any]]


class ExplainedEventObject(EventObject):
    billing: BillingExplanation | None = None


# Floats decode as Decimal: event numbers stay exactly as sent.
_decode_single = msgspec.json.Decoder(SingleEnvelope, float_hook=Decimal).decode
_decode_batch = msgspec.json.Decoder(BatchEnvelope, float_hook=Decimal).decode


def milliseconds(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _raw(properties: Any) -> Any:
    """Properties written back exactly as stored: numbers keep every digit."""
    return msgspec.Raw((properties if isinstance(properties, str) else to_json(properties or {})).encode())


def present_new(event: UsageEvent.Recorded) -> EventObject:
    return EventObject(
        lago_id=str(event.originator_id), transaction_id=event.transaction_id, lago_customer_id=None, code=event.code,
        timestamp=milliseconds(event.occurred_at),
        precise_total_amount_cents=None if event.precise_total_amount_cents is None else format(event.precise_total_amount_cents, "f"),
        properties=_raw(event.properties),
        lago_subscription_id=None, external_subscription_id=event.external_subscription_id,
        created_at=milliseconds(event.timestamp),
    )


def present_stored(event: StoredUsageEvent, explanation: Explanation | None = None) -> ExplainedEventObject:
    return ExplainedEventObject(
        lago_id=str(event.id), transaction_id=event.transaction_id,
        lago_customer_id=str(explanation.customer_id) if explanation and explanation.customer_id else None,
        code=event.code, timestamp=milliseconds(event.occurred_at),
        precise_total_amount_cents=None if event.precise_total_amount_cents is None else format(event.precise_total_amount_cents, "f"),
        properties=_raw(event.properties),
        lago_subscription_id=str(explanation.subscription_id) if explanation and explanation.subscription_id else None,
        external_subscription_id=event.external_subscription_id, created_at=milliseconds(event.received_at),
        billing=None if explanation is None else BillingExplanation(
            status="billed" if explanation.counts_for else "not_billed",
            reason=explanation.reason, counts_for=[dict(c) for c in explanation.counts_for],
        ),
    )


class Ingestion:
    """Turns request bodies into usage events: checks, metric expressions, receive time."""

    def __init__(self, metrics: DocumentReader[Any], cache: BillingCache, clock: Callable[[], datetime]) -> None:
        self._metrics = metrics
        self._cache = cache
        self._clock = clock

    def expressions(self, organization_id: UUID) -> Mapping[str, MetricExpression]:
        return self._cache.get(("expressions", organization_id), lambda: self._load(organization_id))

    def _load(self, organization_id: UUID) -> dict[str, MetricExpression]:
        from domain.expression import compile_expression

        documents, _ = self._metrics.page(organization_id, 0, 10_000)
        return {
            d.data.code: MetricExpression(d.data.field_name, compile_expression(d.data.expression))
            for d in documents
            if d.data.expression and d.data.field_name
        }

    def receive(self, organization_id: UUID, raw: EventInput, expressions: Mapping[str, MetricExpression]) -> UsageEvent.Recorded:
        fields = {f: getattr(raw, f) for f in raw.__struct_fields__}
        fields["properties"] = bytes(raw.properties) if bytes(raw.properties) != b"null" else None
        return UsageEvent.receive(organization_id, fields, received_at=self._clock(), expressions=expressions)


def _decode(decode: Callable[[bytes], Any], body: bytes, root: str) -> Any:
    try:
        envelope = decode(body)
    except msgspec.ValidationError as error:
        raise BadRequest(f"param is missing or the value is empty or invalid: {root} ({error})") from None
    except msgspec.DecodeError as error:
        raise BadRequest(f"malformed JSON: {error}") from None
    value = getattr(envelope, root)
    if value is None:
        raise BadRequest(f"param is missing or the value is empty or invalid: {root}")
    return value


class EventCollection:
    path = "/api/v1/events"
    operations = (
        Operation("POST", path, "Ingest one usage event (durable before the 200)", "events", EventObject, "event",
                  request=Envelope("event", EventFields)),
        Operation("GET", path, "List usage events, newest first", "events", EventObject, "events", listed=True,
                  query=PAGINATION + (
                      Param("code", "Metric code."),
                      Param("external_subscription_id", "Subscription external id."),
                      Param("timestamp_from", "Events at or after this ISO time."),
                      Param("timestamp_to", "Events at or before this ISO time."),
                  ), errors=(422,)),
    )

    def __init__(self, ingestion: Ingestion, committer: GroupCommitter, events: EventsReader) -> None:
        self._ingestion = ingestion
        self._committer = committer
        self._events = events

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        raw = _decode(_decode_single, req.context.body, "event")
        organization_id = req.context.organization_id
        expressions = self._ingestion.expressions(organization_id)
        event = self._ingestion.receive(organization_id, raw, expressions)
        if self._committer.store([event]):
            raise ValidationFailed({"transaction_id": ["value_already_exist"]})
        respond(resp, {"event": present_new(event)})

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        page = PageRequest.of(req)
        found, total = self._events.page(
            req.context.organization_id, page.offset, page.per_page,
            code=req.get_param("code"), external_subscription_id=req.get_param("external_subscription_id"),
            since=_time(req, "timestamp_from"), until=_time(req, "timestamp_to"),
        )
        respond(resp, {"events": [present_stored(e) for e in found], "meta": page.meta(total)})


def _time(req: falcon.Request, name: str) -> datetime | None:
    raw = req.get_param(name)
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationFailed({name: ["invalid_date"]}) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class EventBatch:
    path = "/api/v1/events/batch"
    operations = (
        Operation("POST", path, "Ingest up to 100 usage events in one transaction, all or nothing", "events",
                  EventObject, "events", request=Envelope("events", EventFields, many=True), many=True,
                  item_errors=True),
    )

    def __init__(self, ingestion: Ingestion, committer: GroupCommitter) -> None:
        self._ingestion = ingestion
        self._committer = committer

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        raws = _decode(_decode_batch, req.context.body, "events")
        if not raws:
            raise ValidationFailed({"events": ["no_events"]})
        if len(raws) > MAX_BATCH:
            raise ValidationFailed({"events": ["too_many_events"]})
        organization_id = req.context.organization_id
        expressions = self._ingestion.expressions(organization_id)
        errors: dict[str, Any] = {}
        events: list[UsageEvent.Recorded] = []
        seen: dict[UUID, int] = {}
        for index, raw in enumerate(raws):
            try:
                event = self._ingestion.receive(organization_id, raw, expressions)
            except ValidationFailed as refused:
                errors[str(index)] = refused.details
                continue
            if event.originator_id in seen:
                errors[str(index)] = {"transaction_id": ["value_already_exist"]}
                continue
            seen[event.originator_id] = index
            events.append(event)
        if errors:
            raise ValidationFailed(errors)
        repeated = self._committer.store(events)
        if repeated:
            raise ValidationFailed({str(seen[i]): {"transaction_id": ["value_already_exist"]} for i in sorted(repeated, key=seen.__getitem__)})
        respond(resp, {"events": [present_new(e) for e in events]})


class EventMember:
    path = "/api/v1/events/{transaction_id}"
    operations = (
        Operation("GET", path, "Retrieve an event by transaction id, with whether and where it is billed", "events",
                  ExplainedEventObject, "event", errors=(),
                  query=(Param("external_subscription_id", "When the transaction id is used by several subscriptions."),)),
    )

    def __init__(self, events: EventsReader, clock: Callable[[], datetime]) -> None:
        self._events = events
        self._clock = clock

    def on_get(self, req: falcon.Request, resp: falcon.Response, transaction_id: str) -> None:
        found = self._events.by_transaction(req.context.organization_id, transaction_id,
                                            req.get_param("external_subscription_id"))
        if found is None:
            raise NotFound("event", transaction_id)
        respond(resp, {"event": present_stored(found, self._events.explain(found))})


__all__ = ["EventBatch", "EventCollection", "EventMember", "Ingestion", "list_param"]
