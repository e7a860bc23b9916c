"""The embedded Postgres (pgserver) used when DATABASE_URL is unset (docs/adr/0007)."""

from __future__ import annotations

import warnings
from pathlib import Path


def start(data_dir: Path, *, throwaway: bool = False) -> str:
    """Start (or join) the server keeping its data in ``data_dir``; returns its URL.

    The server stops when the last process that started or joined it exits; with
    ``throwaway`` its data directory is deleted then too.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import pgserver

        data_dir.parent.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(data_dir, cleanup_mode="delete" if throwaway else "stop")
    return server.get_uri()
