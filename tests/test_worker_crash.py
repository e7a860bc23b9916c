"""A projection worker killed with SIGKILL mid-page, then restarted, leaves the view exact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psycopg
import pytest

from interfaces.store import Store
from projections import runner
from tests.conftest import ROOT, wait_until
from tests.test_projections import many_changes, organizations, tracking, view_rows

pytestmark = pytest.mark.slow


def _start_worker(database_url: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": database_url, "TALLY_PROJECTION_PAGE_SIZE": "250", "TALLY_LOG_LEVEL": "WARNING"}
    return subprocess.Popen([sys.executable, "-m", "interfaces.cli", "worker"], cwd=ROOT, env=env)


def _writing_page_open(database_url: str) -> bool:
    """The worker has a transaction open that has already written rows of a page."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        return bool(conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tally-worker' "
            "AND datname = current_database() AND backend_xid IS NOT NULL"
        ).fetchone()[0])


def test_sigkill_mid_page_then_restart_gives_the_rebuilt_view(store: Store, database_url: str) -> None:
    """Kill -9 while a page is half-written: the page rolls back, the restart redoes it, no row twice."""
    many_changes(store, organizations=120, changes=120)
    projector = organizations(store)
    _, head = projector.lag()

    worker = _start_worker(database_url)
    try:
        wait_until(lambda: _writing_page_open(database_url) and tracking(database_url) > 0, timeout=60, interval=0.002)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
    killed_at = tracking(database_url)
    assert 0 < killed_at < head, "the kill must land mid-log"
    wait_until(lambda: not _writing_page_open(database_url), timeout=30)
    assert tracking(database_url) == killed_at, "the interrupted page left no position behind"

    restarted = _start_worker(database_url)
    try:
        wait_until(lambda: tracking(database_url) == head, timeout=120, interval=0.05)
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(20)
    assert restarted.returncode == 0
    live = view_rows(database_url)

    runner.rebuild(store.pool, store.projectors)
    projector.catch_up()

    assert len(live) == 120
    assert view_rows(database_url) == live
