"""GET /health (database, projection lag and stuck views, no auth) and GET /ready, as Lago exposes them."""

from __future__ import annotations

import logging
from importlib import metadata

import falcon

from interfaces.http.openapi import Operation
from interfaces.http.wire import respond, timestamp
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
    operations = (Operation("GET", path, "Database reachable; projection lag per view", "health", authenticated=False, errors=(500, 503)),)

    def __init__(self, freshness: Freshness) -> None:
        self._freshness = freshness

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        body: dict[str, object] = {"version": _version()}
        try:
            lags = self._freshness.lags()
            stuck = self._freshness.stuck()
        except Exception:
            log.exception("health check failed")
            respond(resp, {**body, "message": "Unhealthy"}, falcon.HTTP_500)
            return
        if stuck:  # a view stopped on an event it fails on: reads of it answer 503 until it moves
            respond(resp, {**body, "message": "Unhealthy", "projections_lag": lags, "projections_stuck": [
                {"projection": f.projection, "application": f.application, "position": f.position, "topic": f.topic,
                 "error": f.error, "attempts": f.attempts,
                 "since": timestamp(f.first_seen_at)}
                for f in stuck]}, falcon.HTTP_503)
            return
        respond(resp, {**body, "message": "Success", "projections_lag": lags})


class ReadyResource:
    path = "/ready"
    public = True
    operations = (Operation("GET", path, "The API process accepts requests", "health", authenticated=False, errors=()),)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        respond(resp, {"status": "ok"})
