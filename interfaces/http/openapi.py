"""Our OpenAPI 3.1 document, generated from the same declarations that route requests.

Each resource lists its ``Operation``s; ``create_app`` routes them and this module turns
them, and the msgspec Structs they name, into ``GET /api/v1/openapi.json``. A route that
exists is therefore documented, and a documented body is the one we decode and encode.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import msgspec

from interfaces.http.wire import Body

REF = "#/components/schemas/{name}"


@dataclass(frozen=True)
class Param:
    name: str
    description: str
    type: str = "string"
    required: bool = False
    array: bool = False


PAGINATION = (
    Param("page", "Page number, from 1.", "integer"),
    Param("per_page", "Items per page (default 100, at most 1000).", "integer"),
)


@dataclass(frozen=True)
class Operation:
    """One method on one path, as routed and as documented."""

    method: str
    path: str
    summary: str
    tag: str
    response: type[msgspec.Struct] | None = None
    root: str | None = None
    request: Body[Any] | None = None
    listed: bool = False
    query: tuple[Param, ...] = ()
    authenticated: bool = True
    extension: bool = False
    errors: tuple[int, ...] = (401, 422)


class ErrorBody(msgspec.Struct):
    """Lago's error format: status, reason phrase, machine code, per-field codes."""

    status: int
    error: str
    code: str | msgspec.UnsetType = msgspec.UNSET
    error_details: dict[str, list[str]] | msgspec.UnsetType = msgspec.UNSET


class PaginationMeta(msgspec.Struct):
    current_page: int
    next_page: int | None
    prev_page: int | None
    total_pages: int
    total_count: int


def _ref(struct: type) -> dict[str, str]:
    return {"$ref": REF.format(name=struct.__name__)}


def _envelope(root: str, schema: dict[str, Any], listed: bool) -> dict[str, Any]:
    if listed:
        return {
            "type": "object",
            "required": [root, "meta"],
            "properties": {root: {"type": "array", "items": schema}, "meta": _ref(PaginationMeta)},
        }
    return {"type": "object", "required": [root], "properties": {root: schema}}


def _parameters(op: Operation) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", op.path)
    ]
    for q in op.query:
        schema: dict[str, Any] = {"type": q.type}
        if q.array:
            schema = {"type": "array", "items": schema}
        params.append(
            {"name": q.name + ("[]" if q.array else ""), "in": "query", "required": q.required,
             "description": q.description, "schema": schema}
        )
    return params


def _operation(op: Operation) -> dict[str, Any]:
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
        doc["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _envelope(op.request.root, _ref(op.request.struct), False)}},
        }
    if op.response is not None and op.root is not None:
        schema = _envelope(op.root, _ref(op.response), op.listed)
        doc["responses"]["200"] = {"description": "OK", "content": {"application/json": {"schema": schema}}}
    else:
        doc["responses"]["200"] = {"description": "OK"}
    codes = set(op.errors) | ({400} if op.request is not None else set())
    if not op.authenticated:
        codes.discard(401)
    for code in sorted(codes):
        doc["responses"][str(code)] = {
            "description": "Error",
            "content": {"application/json": {"schema": _ref(ErrorBody)}},
        }
    return doc


def document(operations: list[Operation]) -> dict[str, Any]:
    """The OpenAPI 3.1 document for these operations."""
    structs: set[type] = {ErrorBody, PaginationMeta}
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        if op.response is not None:
            structs.add(op.response)
        if op.request is not None:
            structs.add(op.request.struct)
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    _, components = msgspec.json.schema_components(sorted(structs, key=lambda s: s.__name__), ref_template=REF)
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
