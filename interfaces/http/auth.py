"""Bearer-key authentication and body limits, applied to every routed /api/v1 request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

import falcon

from domain.errors import Unauthenticated
from interfaces.http.wire import read_body

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Authentication:
    """Resolves ``Authorization: Bearer <key>`` to the key's organization.

    Like Lago, the scheme word is not checked: the second whitespace-separated token is
    the key. Resources marked ``public = True`` (health, the OpenAPI document) skip it.
    """

    def __init__(self, authenticate: Callable[[str], UUID], max_body_bytes: int) -> None:
        self._authenticate = authenticate
        self._max_body_bytes = max_body_bytes

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: Any, params: dict[str, Any]) -> None:
        if resource is None:
            return
        if not getattr(resource, "public", False):
            parts = (req.get_header("Authorization") or "").split()
            if len(parts) < 2:
                raise Unauthenticated("missing API key")
            req.context.organization_id = self._authenticate(parts[1])
        req.context.body = read_body(req, self._max_body_bytes) if req.method in _BODY_METHODS else b""
