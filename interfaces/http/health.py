"""GET /health (database and projection lag, no auth) and GET /ready, as Lago exposes them."""

from __future__ import annotations

import logging
from importlib import metadata

import falcon

from interfaces.http.openapi import Operation
from interfaces.http.wire import respond
from projections.freshness import Freshness

log = logging.getLogger(__name__)


def _version() -> str:
    try:
        return metadata.version("tally")
    except metadata.PackageNotFoundError:
        return "0.0.0"


class HealthResource:
    path = "/health"
    public = True
    operations = (Operation("GET", path, "Database reachable; projection lag per view", "health", authenticated=False, errors=(500,)),)

    def __init__(self, freshness: Freshness) -> None:
        self._freshness = freshness

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        body: dict[str, object] = {"version": _version()}
        try:
            lags = self._freshness.lags()
        except Exception:
            log.exception("health check failed")
            respond(resp, {**body, "message": "Unhealthy"}, falcon.HTTP_500)
            return
        respond(resp, {**body, "message": "Success", "projections_lag": lags})


class ReadyResource:
    path = "/ready"
    public = True
    operations = (Operation("GET", path, "The API process accepts requests", "health", authenticated=False, errors=()),)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        respond(resp, {"status": "ok"})
