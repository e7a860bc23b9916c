"""CRUD by code, the shape every Lago catalog resource shares: a collection and its members.

``POST /things`` creates, ``GET /things`` lists (newest first, paginated), and
``GET/PUT/DELETE /things/{code}`` show, update and delete. Every write answers with the
object as read back from the view, so a write and the following read agree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import falcon
import msgspec

from domain.errors import NotFound
from interfaces.http.openapi import PAGINATION, Operation, Param
from interfaces.http.wire import Body, PageRequest, given, respond
from projections.documents import Condition, Document, DocumentReader


@dataclass(frozen=True)
class Catalog:
    """How one catalog kind is served: names, bodies, commands and its reader."""

    path: str
    root: str
    plural: str
    tag: str
    body: Body[Any]
    response: type[msgspec.Struct]
    present: Callable[[UUID, Sequence[Document[Any]]], list[msgspec.Struct]]
    reader: DocumentReader[Any]
    missing: type[NotFound]
    create: Callable[[UUID, Mapping[str, Any]], UUID]
    update: Callable[[UUID, str, Mapping[str, Any]], UUID]
    delete: Callable[[UUID, str], UUID]
    filters: Callable[[falcon.Request], Sequence[Condition]] = lambda req: ()
    query: tuple[Param, ...] = field(default=())

    def resources(self) -> list[Any]:
        return [CatalogCollection(self), CatalogMember(self)]

    def show(self, resp: falcon.Response, organization_id: UUID, object_id: UUID) -> None:
        document = self.reader.by_id(organization_id, object_id)
        if document is None:
            raise self.missing(key=object_id)
        respond(resp, {self.root: self.present(organization_id, [document])[0]})


def each(present: Callable[[Document[Any]], msgspec.Struct]) -> Callable[[UUID, Sequence[Document[Any]]], list[msgspec.Struct]]:
    """A batch presenter from a presenter of one document that needs nothing else."""
    return lambda organization_id, documents: [present(d) for d in documents]


class CatalogCollection:
    def __init__(self, catalog: Catalog) -> None:
        self._c = catalog
        self.path = catalog.path
        self.operations = (
            Operation("POST", self.path, f"Create a {catalog.root.replace('_', ' ')}", catalog.tag,
                      catalog.response, catalog.root, request=catalog.body),
            Operation("GET", self.path, f"List {catalog.plural.replace('_', ' ')}", catalog.tag,
                      catalog.response, catalog.plural, listed=True, query=PAGINATION + catalog.query),
        )

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        changes = given(self._c.body.decode(req.context.body))
        self._c.show(resp, req.context.organization_id, self._c.create(req.context.organization_id, changes))

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        page = PageRequest.of(req)
        documents, total = self._c.reader.page(req.context.organization_id, page.offset, page.per_page, self._c.filters(req))
        items = self._c.present(req.context.organization_id, documents)
        respond(resp, {self._c.plural: items, "meta": page.meta(total)})


class CatalogMember:
    def __init__(self, catalog: Catalog) -> None:
        self._c = catalog
        self.path = catalog.path + "/{code}"
        self.operations = (
            Operation("GET", self.path, f"Retrieve a {catalog.root.replace('_', ' ')} by code", catalog.tag,
                      catalog.response, catalog.root, errors=(401, 404)),
            Operation("PUT", self.path, f"Update a {catalog.root.replace('_', ' ')}", catalog.tag,
                      catalog.response, catalog.root, request=catalog.body, errors=(401, 404, 422)),
            Operation("DELETE", self.path, f"Delete a {catalog.root.replace('_', ' ')}", catalog.tag,
                      catalog.response, catalog.root, errors=(401, 404)),
        )

    def on_get(self, req: falcon.Request, resp: falcon.Response, code: str) -> None:
        document = self._c.reader.by_key(req.context.organization_id, code)
        if document is None:
            raise self._c.missing(key=code)
        respond(resp, {self._c.root: self._c.present(req.context.organization_id, [document])[0]})

    def on_put(self, req: falcon.Request, resp: falcon.Response, code: str) -> None:
        changes = given(self._c.body.decode(req.context.body))
        self._c.show(resp, req.context.organization_id, self._c.update(req.context.organization_id, code, changes))

    def on_delete(self, req: falcon.Request, resp: falcon.Response, code: str) -> None:
        self._c.show(resp, req.context.organization_id, self._c.delete(req.context.organization_id, code))
