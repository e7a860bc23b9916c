"""Per-request groundwork for every routed /api/v1 request: the caller's key, a read scope,
and the body within its size limit, checked at the edge (``interfaces.http.edge``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

import falcon

from domain.errors import Unauthenticated
from interfaces.billing_cache import BillingCache
from interfaces.http.edge import check_body, check_request
from interfaces.http.wire import read_body
from projections.freshness import Freshness

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_READS = frozenset({"GET", "HEAD"})


class Authentication:
    """Resolves ``Authorization: Bearer <key>`` to the key's organization.

    Like Lago, the scheme word is not checked: the second whitespace-separated token is
    the key. Resources marked ``public = True`` (health, the OpenAPI document) skip it.
    A read-only request gets a read scope: one query at its start fixes the log heads
    its answers must include, and serves every freshness check after. Keys are remembered
    until the Billing log changes (docs/adr/0013).
    """

    def __init__(self, authenticate: Callable[[str], UUID], cache: BillingCache, freshness: Freshness,
                 max_body_bytes: int) -> None:
        self._authenticate = authenticate
        self._cache = cache
        self._freshness = freshness
        self._max_body_bytes = max_body_bytes

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict[str, Any]) -> None:
        if resource is None:
            return
        if getattr(resource, "public", False):
            req.context.body = b""
            return
        if req.method in _READS:
            scope = self._freshness.read_scope()
            scope.__enter__()
            req.context.read_scope = scope
        parts = (req.get_header("Authorization") or "").split()
        if len(parts) < 2:
            raise Unauthenticated("missing API key")
        secret = parts[1]
        req.context.organization_id = self._cache.get(("key", secret), lambda: self._authenticate(secret))
        check_request(req, params)
        req.context.body = read_body(req, self._max_body_bytes) if req.method in _BODY_METHODS else b""
        check_body(req.context.body)

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any, succeeded: bool) -> None:
        scope = getattr(req.context, "read_scope", None)
        if scope is not None:
            req.context.read_scope = None
            scope.__exit__(None, None, None)
