"""SIGKILL the API during a batch load: every event that got a 200 is in the store afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import httpx
import psycopg
import pytest

from domain.api_key import IssuedKey
from domain.usage_event import usage_event_id
from tests.conftest import ROOT, free_port, wait_until

pytestmark = pytest.mark.slow


def test_every_acknowledged_event_survives_a_kill(database_url: str, org: IssuedKey) -> None:
    """Four clients send batches of 100 until the whole API process group is killed with SIGKILL."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "TALLY_WEB_WORKERS": "2", "TALLY_WEB_THREADS": "4",
           "TALLY_LOG_LEVEL": "warning"}
    api = subprocess.Popen([sys.executable, "-m", "interfaces.cli", "api", "--bind", f"127.0.0.1:{port}"],
                           cwd=ROOT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    acknowledged: list[str] = []
    stop = threading.Event()

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def client(number: int) -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {org.secret}"}, timeout=10) as http:
            batch = 0
            while not stop.is_set():
                ids = [f"c{number}-b{batch}-e{n}" for n in range(100)]
                body = {"events": [{"transaction_id": t, "external_subscription_id": "sub", "code": "calls"} for t in ids]}
                try:
                    if http.post("/api/v1/events/batch", json=body).status_code == 200:
                        acknowledged.extend(ids)
                except httpx.HTTPError:
                    return
                batch += 1

    try:
        wait_until(healthy, timeout=30, interval=0.1)
        clients = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for thread in clients:
            thread.start()
        wait_until(lambda: len(acknowledged) >= 3000, timeout=60, interval=0.01)
        os.killpg(api.pid, signal.SIGKILL)
        stop.set()
        for thread in clients:
            thread.join(15)
    finally:
        stop.set()
        if api.poll() is None:
            os.killpg(api.pid, signal.SIGKILL)
        api.wait(10)

    expected = {usage_event_id(org.organization_id, "sub", t) for t in acknowledged}
    with psycopg.connect(database_url) as conn:
        stored = {row[0] for row in conn.execute(
            "SELECT originator_id FROM metering_events WHERE originator_id = ANY(%s)", (list(expected),)).fetchall()}
        total = conn.execute("SELECT count(*) FROM metering_events").fetchone()[0]
    print(f"acknowledged {len(expected)}, stored {total}, acknowledged but missing {len(expected - stored)}")
    assert len(expected) >= 3000
    assert stored == expected
