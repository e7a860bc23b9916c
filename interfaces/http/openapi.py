"""Our OpenAPI 3.1 document, generated from the same declarations that route requests.

Each resource lists its ``Operation``s; ``create_app`` routes them and this module turns
them, and the msgspec Structs they name, into ``GET /api/v1/openapi.json``. A route that
exists is therefore documented, and a documented body is the one we decode and encode.
Statuses every operation of a kind can answer (401 without a key, 422 for a parameter refused
at the edge, 413 for a body over the limit, 503 when views lag) are added here, once; an
operation declares only its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import msgspec

from interfaces.http.wire import Body

REF = "#/components/schemas/{name}"
JSON_TYPE = "application/json"
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})

_REASONS = {
    400: "Bad request: the body is not UTF-8 JSON, nests too deep, or its envelope is missing or empty",
    401: "Unauthorized: no valid API key",
    404: "Not found",
    405: "Not allowed in the current state of the object",
    409: "Conflict: the write lost a race with another write to the same object",
    413: "Request body larger than the configured limit (`limit_bytes`)",
    414: "Request line (path and query) longer than the HTTP server's limit (`request_line_too_long`)",
    431: "Too many headers, or a header line too long for the HTTP server (`headers_too_large`)",
    422: "Validation errors, per field (parameters included: text with NUL, numbers out of bounds)",
    500: "Unhealthy: the database cannot be reached",
    503: "The views this request reads are behind (`projections_behind`, retry after `Retry-After`) or stuck",
}


@dataclass(frozen=True)
class Param:
    name: str
    description: str
    type: str = "string"
    required: bool = False
    array: bool = False
    minimum: int | None = None
    values: tuple[str, ...] = ()  # the accepted values


PAGINATION = (
    Param("page", "Page number, from 1.", "integer", minimum=1),
    Param("per_page", "Items per page (default 100, at most 1000; more is read as 1000).", "integer", minimum=1),
)


@dataclass(frozen=True)
class Envelope:
    """A request body as documented: ``{root: struct}`` (``{root: [struct, ...]}`` when ``many``),
    or the struct itself at the top level when ``root`` is None. ``Body`` decoders document themselves."""

    root: str | None
    struct: type[msgspec.Struct]
    many: bool = False


@dataclass(frozen=True)
class Operation:
    """One method on one path, as routed and as documented.

    ``root`` names the response envelope's key: ``listed`` puts a page of ``response`` under it
    with a ``meta`` block, ``many`` a plain list; without ``root`` the body is ``response`` itself.
    ``changes`` (default: any method but GET) says the operation records something, so a
    concurrent write can make it answer 409. ``item_errors``: a 422 names fields per item index.
    """

    method: str
    path: str
    summary: str
    tag: str
    response: type[msgspec.Struct] | None = None
    root: str | None = None
    request: Body[Any] | Envelope | None = None
    listed: bool = False
    query: tuple[Param, ...] = ()
    authenticated: bool = True
    extension: bool = False
    errors: tuple[int, ...] = (401, 422)
    many: bool = False
    content_type: str = JSON_TYPE
    changes: bool | None = None
    item_errors: bool = False

    @property
    def statuses(self) -> list[int]:
        """Every error status this operation can answer: its own and those of its kind."""
        codes = set(self.errors)
        if re.search(r"{\w+}", self.path):
            codes.add(404)
        if self.request is not None:
            codes |= {400, 404, 422}  # a body may name another object by code or id (a tax, a plan): 404 when unknown
        if self.authenticated:
            # Every path and query value is checked at the edge (422), every body too (400, 413).
            codes |= {401, 422, 503}
            if self.method in WRITES:
                codes |= {400, 413}
            if self.method in WRITES if self.changes is None else self.changes:
                codes.add(409)
        else:
            codes.discard(401)
        codes |= {414, 431}  # the HTTP server's own limits, answered before any route (interfaces/http/server.py)
        return sorted(codes)


class ErrorBody(msgspec.Struct):
    """Lago's error format: status, reason phrase, machine code, per-field codes.

    ``limit_bytes`` comes with a 413, ``projections`` (the views still behind) with a 503.
    """

    status: int
    error: str
    code: str | msgspec.UnsetType = msgspec.UNSET
    error_details: dict[str, list[str]] | msgspec.UnsetType = msgspec.UNSET
    limit_bytes: int | msgspec.UnsetType = msgspec.UNSET
    projections: list[str] | msgspec.UnsetType = msgspec.UNSET


class ItemErrorBody(msgspec.Struct):
    """A refused batch: ``error_details`` maps each refused item's index to its per-field codes,
    or, for the batch as a whole, a field to its codes (``{"events": ["too_many_events"]}``)."""

    status: int
    error: str
    code: str | msgspec.UnsetType = msgspec.UNSET
    error_details: dict[str, dict[str, list[str]] | list[str]] | msgspec.UnsetType = msgspec.UNSET


class PaginationMeta(msgspec.Struct):
    current_page: int
    next_page: int | None
    prev_page: int | None
    total_pages: int
    total_count: int


Refs = dict[type, dict[str, Any]]  # each Struct's $ref, as msgspec names it (qualified when two share a name)


def _envelope(root: str | None, schema: dict[str, Any], refs: Refs, listed: bool = False,
              many: bool = False) -> dict[str, Any]:
    if root is None:
        return schema
    if listed:
        return {
            "type": "object",
            "required": [root, "meta"],
            "properties": {root: {"type": "array", "items": schema}, "meta": refs[PaginationMeta]},
        }
    if many:
        schema = {"type": "array", "items": schema}
    return {"type": "object", "required": [root], "properties": {root: schema}}


def _parameters(op: Operation) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", op.path)
    ]
    for q in op.query:
        schema: dict[str, Any] = {"type": q.type}
        if q.minimum is not None:
            schema["minimum"] = q.minimum
        if q.values:
            schema["enum"] = list(q.values)
        if q.array:
            schema = {"type": "array", "items": schema}
        params.append(
            {"name": q.name + ("[]" if q.array else ""), "in": "query", "required": q.required,
             "description": q.description, "schema": schema}
        )
    return params


def _request_body(request: Body[Any] | Envelope, refs: Refs) -> dict[str, Any]:
    many = isinstance(request, Envelope) and request.many
    schema = _envelope(request.root, refs[request.struct], refs, many=many)
    return {"required": True, "content": {JSON_TYPE: {"schema": schema}}}


def _operation(op: Operation, refs: Refs) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "summary": op.summary,
        "tags": [op.tag],
        "operationId": re.sub(r"\W+", "_", f"{op.method}_{op.path}").strip("_").lower(),
        "parameters": _parameters(op),
        "responses": {},
    }
    if op.extension:
        doc["x-tally-extension"] = True
    if not op.authenticated:
        doc["security"] = []
    if op.request is not None:
        doc["requestBody"] = _request_body(op.request, refs)
    if op.response is not None:
        schema = _envelope(op.root, refs[op.response], refs, op.listed, op.many)
        doc["responses"]["200"] = {"description": "OK", "content": {op.content_type: {"schema": schema}}}
    elif op.content_type != JSON_TYPE:
        doc["responses"]["200"] = {"description": "OK", "content": {op.content_type: {"schema": {}}}}
    else:
        doc["responses"]["200"] = {"description": "OK"}
    for code in op.statuses:
        schema = refs[ItemErrorBody if code == 422 and op.item_errors else ErrorBody]
        if code == 500 or not op.authenticated:  # a health check's own report, not an error body
            schema = {"type": "object"}
        doc["responses"][str(code)] = {"description": _REASONS.get(code, "Error"), "content": {JSON_TYPE: {"schema": schema}}}
    return doc


def document(operations: list[Operation]) -> dict[str, Any]:
    """The OpenAPI 3.1 document for these operations."""
    structs: set[type] = {ErrorBody, ItemErrorBody, PaginationMeta}
    for op in operations:
        if op.response is not None:
            structs.add(op.response)
        if op.request is not None:
            structs.add(op.request.struct)
    ordered = sorted(structs, key=lambda s: (s.__name__, s.__module__))
    schemas, components = msgspec.json.schema_components(ordered, ref_template=REF)
    refs = dict(zip(ordered, schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, refs)
    try:
        version = metadata.version("tally")
    except metadata.PackageNotFoundError:
        version = "0.0.0"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tally API",
            "version": version,
            "description": (
                "Usage-based billing, wire-compatible with Lago's API v1. "
                "Operations marked x-tally-extension are Tally's own."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": components,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }
