"""One handler per error base, each answering in Lago's error body format (reference §1.5)."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import falcon
import msgspec

from domain.errors import (
    BillingError,
    Conflict,
    NotAllowed,
    NotFound,
    RuleViolated,
    Unauthenticated,
    ValidationFailed,
)
from interfaces.http.wire import BadRequest, PayloadTooLarge, field_errors, respond
from projections.freshness import ProjectionsBehind

log = logging.getLogger(__name__)

_FALCON_CODES = {404: "resource_not_found", 405: "not_allowed", 413: "request_too_large"}


def error_body(status: int, code: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"status": status, "error": HTTPStatus(status).phrase}
    if code is not None:
        body["code"] = code
    body.update(extra)
    return body


def _send(resp: falcon.Response, status: int, body: dict[str, Any]) -> None:
    respond(resp, body, falcon.code_to_http_status(status))


def _not_found(req: falcon.Request, resp: falcon.Response, ex: NotFound, params: Any) -> None:
    _send(resp, 404, error_body(404, ex.code))


def _validation(req: falcon.Request, resp: falcon.Response, ex: ValidationFailed, params: Any) -> None:
    _send(resp, 422, error_body(422, "validation_errors", error_details=ex.details))


def _rule(req: falcon.Request, resp: falcon.Response, ex: RuleViolated, params: Any) -> None:
    _send(resp, 422, error_body(422, "validation_errors", error_details={ex.field: [ex.code]}))


def _not_allowed(req: falcon.Request, resp: falcon.Response, ex: NotAllowed, params: Any) -> None:
    _send(resp, 405, error_body(405, ex.code))


def _conflict(req: falcon.Request, resp: falcon.Response, ex: Conflict, params: Any) -> None:
    _send(resp, 409, error_body(409, ex.code))


def _unauthenticated(req: falcon.Request, resp: falcon.Response, ex: Unauthenticated, params: Any) -> None:
    _send(resp, 401, error_body(401))


def _billing(req: falcon.Request, resp: falcon.Response, ex: BillingError, params: Any) -> None:
    _send(resp, 422, error_body(422, "validation_errors", error_details={"base": [ex.code]}))


def _msgspec(req: falcon.Request, resp: falcon.Response, ex: msgspec.ValidationError, params: Any) -> None:
    _send(resp, 422, error_body(422, "validation_errors", error_details=field_errors(ex)))


def _bad_request(req: falcon.Request, resp: falcon.Response, ex: BadRequest, params: Any) -> None:
    _send(resp, 400, {"status": 400, "error": f"BadRequest: {ex.message}", "code": "bad_request"})


def _too_large(req: falcon.Request, resp: falcon.Response, ex: PayloadTooLarge, params: Any) -> None:
    _send(resp, 413, error_body(413, "request_too_large", limit_bytes=ex.limit))


def _behind(req: falcon.Request, resp: falcon.Response, ex: ProjectionsBehind, params: Any) -> None:
    resp.set_header("Retry-After", "1")
    # The failure itself stays out of the body: it may quote another organization's event (ADR 0026).
    _send(resp, 503, error_body(503, ex.code, projections=ex.names))


def _falcon(req: falcon.Request, resp: falcon.Response, ex: falcon.HTTPError, params: Any) -> None:
    status = ex.status_code
    if status == 400:
        _send(resp, 400, {"status": 400, "error": f"BadRequest: {ex.description or ex.title}", "code": "bad_request"})
    else:
        _send(resp, status, error_body(status, _FALCON_CODES.get(status, HTTPStatus(status).phrase.lower().replace(" ", "_"))))
    for name, value in (ex.headers or {}).items():
        resp.set_header(name, value)


def _too_deep(req: falcon.Request, resp: falcon.Response, ex: RecursionError, params: Any) -> None:
    _send(resp, 400, {"status": 400, "error": "BadRequest: the request nests too deep", "code": "bad_request"})


def _unexpected(req: falcon.Request, resp: falcon.Response, ex: Exception, params: Any) -> None:
    log.exception("unhandled error on %s %s", req.method, req.path)
    _send(resp, 500, error_body(500, "internal_error"))


def register(app: falcon.App) -> None:
    """Falcon picks the handler of the most specific class in the exception's MRO."""
    app.add_error_handler(Exception, _unexpected)
    app.add_error_handler(RecursionError, _too_deep)
    app.add_error_handler(falcon.HTTPError, _falcon)
    app.add_error_handler(BillingError, _billing)
    app.add_error_handler(NotFound, _not_found)
    app.add_error_handler(RuleViolated, _rule)
    app.add_error_handler(ValidationFailed, _validation)
    app.add_error_handler(NotAllowed, _not_allowed)
    app.add_error_handler(Conflict, _conflict)
    app.add_error_handler(Unauthenticated, _unauthenticated)
    app.add_error_handler(msgspec.ValidationError, _msgspec)
    app.add_error_handler(BadRequest, _bad_request)
    app.add_error_handler(PayloadTooLarge, _too_large)
    app.add_error_handler(ProjectionsBehind, _behind)
