"""Lago's free-form metadata endpoints of a resource: replace (POST), merge (PATCH), clear (DELETE), drop one key.

The current metadata is read from the write side (the aggregate), so a call sees the one just before it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from uuid import UUID

import falcon
import msgspec

from domain.errors import NotFound, ValidationFailed
from interfaces.http.openapi import Envelope, Operation
from interfaces.http.wire import parse_id, respond

Read = Callable[[UUID, UUID], Mapping[str, str | None]]
Write = Callable[[UUID, UUID, dict[str, str | None]], None]


class MetadataObject(msgspec.Struct):
    metadata: dict[str, str | None]


def _body(req: falcon.Request) -> dict[str, str | None]:
    try:
        raw = msgspec.json.decode(req.context.body or b"{}")
    except msgspec.DecodeError:
        raise ValidationFailed({"metadata": ["value_is_invalid"]}) from None
    metadata = raw.get("metadata") if isinstance(raw, dict) else None
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in metadata.items()):
        raise ValidationFailed({"metadata": ["value_is_invalid"]})
    return metadata


class MetadataResource:
    def __init__(self, resource: str, tag: str, read: Read, write: Write, missing: type[NotFound]) -> None:
        self.path = f"/api/v1/{resource}/{{lago_id}}/metadata"
        self.operations = tuple(
            Operation(method, self.path, summary, tag, MetadataObject, None, errors=(401, 404, 405, 422),
                      request=None if method == "DELETE" else Envelope(None, MetadataObject))
            for method, summary in (("POST", "Replace the metadata"), ("PATCH", "Merge into the metadata"),
                                    ("DELETE", "Remove all metadata")))
        self._read, self._write, self._missing = read, write, missing

    def _id(self, raw: str) -> UUID:
        return parse_id(raw, self._missing)

    def set_metadata(self, req: falcon.Request, resp: falcon.Response, lago_id: str,
             change: Callable[[dict[str, str | None]], dict[str, str | None]]) -> None:
        organization_id, id = req.context.organization_id, self._id(lago_id)
        metadata = change(dict(self._read(organization_id, id)))
        self._write(organization_id, id, metadata)
        respond(resp, {"metadata": metadata})

    def on_post(self, req: falcon.Request, resp: falcon.Response, lago_id: str) -> None:
        given = _body(req)
        self.set_metadata(req, resp, lago_id, lambda _: given)

    def on_patch(self, req: falcon.Request, resp: falcon.Response, lago_id: str) -> None:
        given = _body(req)
        self.set_metadata(req, resp, lago_id, lambda current: {**current, **given})

    def on_delete(self, req: falcon.Request, resp: falcon.Response, lago_id: str) -> None:
        self.set_metadata(req, resp, lago_id, lambda _: {})


class MetadataKeyResource:
    """``DELETE …/metadata/{key}`` only: the collection's other verbs are not routed here (405)."""

    def __init__(self, resource: str, tag: str, read: Read, write: Write, missing: type[NotFound]) -> None:
        self._collection = MetadataResource(resource, tag, read, write, missing)
        self.path = f"/api/v1/{resource}/{{lago_id}}/metadata/{{key}}"
        self.operations = (Operation("DELETE", self.path, "Remove one metadata key", tag, MetadataObject, None,
                                     errors=(401, 404, 405)),)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, lago_id: str, key: str = "") -> None:
        self._collection.set_metadata(req, resp, lago_id, lambda current: {k: v for k, v in current.items() if k != key})


def resources(resource: str, tag: str, read: Read, write: Write, missing: type[NotFound]) -> list[Any]:
    return [MetadataResource(resource, tag, read, write, missing), MetadataKeyResource(resource, tag, read, write, missing)]
