"""Stored event state as plain, typed JSON via msgspec (docs/adr/0002-event-state-encoding.md).

The library's JSON transcoder wraps every UUID, Decimal and datetime in ``{"_type_": ..,
"_data_": ..}`` so it can decode without knowing the event class. Here the mapper knows the
class (from the stored topic), so the state is plain JSON that SQL can read
(``convert_from(state, 'UTF8')::jsonb``) and decodes into the annotated types directly.
"""

from __future__ import annotations

import typing
from functools import lru_cache
from typing import Any, ClassVar
from uuid import UUID

import msgspec
from eventsourcing.persistence import Mapper, MapperDeserialisationError, StoredEvent
from eventsourcing.utils import get_topic, resolve_topic

_SKIPPED = frozenset({"originator_id", "originator_version"})
_encode = msgspec.json.Encoder(decimal_format="string").encode
_decode_untyped = msgspec.json.Decoder().decode


class _Shape(typing.NamedTuple):
    struct: type[msgspec.Struct]
    decode: typing.Callable[[bytes], msgspec.Struct]
    names: tuple[str, ...]


@lru_cache(maxsize=None)
def _shape(event_class: type) -> _Shape:
    """A msgspec Struct mirroring the event class's annotated fields, built once per class."""
    hints = typing.get_type_hints(event_class)
    fields = [
        (name, hint)
        for name, hint in hints.items()
        if name not in _SKIPPED and typing.get_origin(hint) is not ClassVar
    ]
    struct = msgspec.defstruct(f"Stored{event_class.__qualname__.replace('.', '')}", fields)
    return _Shape(struct, msgspec.json.Decoder(struct).decode, tuple(name for name, _ in fields))


class MsgspecMapper(Mapper[UUID]):
    """Maps domain events to stored events and back, without the generic transcoder."""

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        state = dict(vars(domain_event))
        originator_id = state.pop("originator_id")
        originator_version = state.pop("originator_version")
        class_version = getattr(type(domain_event), "class_version", 1)
        if class_version > 1:
            state["class_version"] = class_version
        data = _encode(state)
        if self.compressor:
            data = self.compressor.compress(data)
        if self.cipher:
            data = self.cipher.encrypt(data)
        return StoredEvent(
            originator_id=originator_id,
            originator_version=originator_version,
            topic=get_topic(type(domain_event)),
            state=data,
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        event_class = resolve_topic(stored_event.topic)
        data = stored_event.state
        try:
            if self.cipher:
                data = self.cipher.decrypt(data)
            if self.compressor:
                data = self.compressor.decompress(data)
            state = self._decode_state(event_class, data)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            raise MapperDeserialisationError(
                f"cannot decode {stored_event.topic} "
                f"{stored_event.originator_id} v{stored_event.originator_version}: {error}"
            ) from error
        state["originator_id"] = stored_event.originator_id
        state["originator_version"] = stored_event.originator_version
        domain_event = object.__new__(event_class)
        object.__setattr__(domain_event, "__dict__", state)
        return domain_event

    @staticmethod
    def _decode_state(event_class: type, data: bytes) -> dict[str, Any]:
        shape = _shape(event_class)
        class_version = getattr(event_class, "class_version", 1)
        if class_version == 1:
            decoded = shape.decode(data)
        else:
            raw = _decode_untyped(data)
            from_version = raw.pop("class_version", 1)
            while from_version < class_version:
                getattr(event_class, f"upcast_v{from_version}_v{from_version + 1}")(raw)
                from_version += 1
            decoded = msgspec.convert(raw, shape.struct, strict=False)
        return {name: getattr(decoded, name) for name in shape.names}
