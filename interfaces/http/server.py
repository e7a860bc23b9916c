"""Gunicorn serving the Falcon app; each worker opens its own store after the fork.

Requests gunicorn refuses before the app sees them (a request line, header count or header
size over the limits below, a malformed request) are answered in Lago's error shape too.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.http.errors import LimitRequestHeaders, LimitRequestLine
from gunicorn.workers.gthread import ThreadWorker

from interfaces.http.app import DEFAULT_MAX_BODY_BYTES, create_app
from interfaces.store import open_store


# What gunicorn reads before the app: a longer request line gets 414, more or larger headers 431.
LIMIT_REQUEST_LINE = 8190  # bytes of method, URI (with its query) and version: gunicorn's maximum
LIMIT_REQUEST_FIELDS = 100  # headers per request
LIMIT_REQUEST_FIELD_SIZE = 8190  # bytes of one header line

_STATUS_LINE = re.compile(rb"^HTTP/1\.[01] (\d{3}) ")


class _Sent:
    """Stands in for the client socket while gunicorn writes its own error page, to learn its status."""

    def __init__(self) -> None:
        self.data = bytearray()

    def gettimeout(self) -> float:
        return 0.0

    def sendall(self, data: bytes) -> None:
        self.data += data


class LagoErrorsWorker(ThreadWorker):  # type: ignore[misc]
    """The gthread worker, answering the requests gunicorn itself refuses with a Lago error body
    (``{"status", "error", "code"}``, JSON) instead of its HTML page, keeping gunicorn's status."""

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        sent = _Sent()
        super().handle_error(req, sent, addr, exc)  # gunicorn's status choice and its logging
        matched = _STATUS_LINE.match(bytes(sent.data))
        status = int(matched.group(1)) if matched else 500
        try:
            client.sendall(_lago_error(status, _code(status, exc)))
        except Exception:
            self.log.debug("Failed to send error message.")

def _code(status: int, exc: BaseException) -> str:
    if isinstance(exc, LimitRequestLine):
        return "request_line_too_long"
    if isinstance(exc, LimitRequestHeaders):
        return "headers_too_large"
    if status == 500:
        return "internal_error"
    return "bad_request" if status == 400 else HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")


def _lago_error(status: int, code: str) -> bytes:
    reason = HTTPStatus(status).phrase
    body = json.dumps({"status": status, "error": reason, "code": code}, separators=(",", ":")).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, factory: Callable[[], Any], options: dict[str, Any]) -> None:
        self._factory = factory
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            if key in self.cfg.settings:  # settings newer than the installed gunicorn are skipped
                self.cfg.set(key, value)

    def load(self) -> Any:
        return self._factory()


def serve(url: str, bind: str) -> None:
    """Serve the API on ``bind`` until signalled (TALLY_WEB_WORKERS × TALLY_WEB_THREADS)."""
    workers = int(os.environ.get("TALLY_WEB_WORKERS", "2"))
    threads = int(os.environ.get("TALLY_WEB_THREADS", "8"))
    max_body = int(os.environ.get("TALLY_MAX_BODY_BYTES", str(DEFAULT_MAX_BODY_BYTES)))

    def factory() -> Any:
        store = open_store(url, role="api", pool_size=threads + 2)
        return create_app(store.billing, store.metering, store.readers, max_body_bytes=max_body, cache_listens_to=url)

    options = {
        "bind": bind,
        "workers": workers,
        "worker_class": LagoErrorsWorker,
        "threads": threads,
        "keepalive": 5,
        "timeout": 30,
        "graceful_timeout": 10,
        "limit_request_line": LIMIT_REQUEST_LINE,
        "limit_request_fields": LIMIT_REQUEST_FIELDS,
        "limit_request_field_size": LIMIT_REQUEST_FIELD_SIZE,
        "proc_name": "tally-api",
        # One shared $HOME/.gunicorn/gunicorn.ctl would collide between two Tally servers.
        "control_socket_disable": True,
        "errorlog": "-",
        "accesslog": "-" if os.environ.get("TALLY_ACCESS_LOG") else None,
        "loglevel": os.environ.get("TALLY_LOG_LEVEL", "info").lower(),
    }
    _Gunicorn(factory, options).run()
