"""Gunicorn serving the Falcon app; each worker opens its own store after the fork."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication

from interfaces.http.app import DEFAULT_MAX_BODY_BYTES, create_app
from interfaces.store import open_store


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
        "worker_class": "gthread",
        "threads": threads,
        "keepalive": 5,
        "timeout": 30,
        "graceful_timeout": 10,
        "proc_name": "tally-api",
        # One shared $HOME/.gunicorn/gunicorn.ctl would collide between two Tally servers.
        "control_socket_disable": True,
        "errorlog": "-",
        "accesslog": "-" if os.environ.get("TALLY_ACCESS_LOG") else None,
        "loglevel": os.environ.get("TALLY_LOG_LEVEL", "info").lower(),
    }
    _Gunicorn(factory, options).run()
