"""`tally up` on a machine with nothing but Python: embedded Postgres, a first key, restarts."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, free_port, wait_until

pytestmark = pytest.mark.slow

KEY = re.compile(r"^\s+(tly_\S+)$", re.M)


class Up:
    """One `tally up` process with its output collected as it runs."""

    def __init__(self, home: Path, port: int) -> None:
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        env.update(TALLY_HOME=str(home), TALLY_WEB_WORKERS="1", TALLY_WEB_THREADS="4", TALLY_LOG_LEVEL="WARNING")
        self.url = f"http://127.0.0.1:{port}"
        self.output = ""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "interfaces.cli", "up", "--bind", f"127.0.0.1:{port}"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        threading.Thread(target=self._collect, daemon=True).start()

    def _collect(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output += line

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(60)


def test_up_serves_a_first_key_and_keeps_it_across_restarts(tmp_path: Path) -> None:
    """First start prints a key that works; after stop and start the same key still works."""
    port = free_port()
    first = Up(tmp_path / ".tally", port)
    try:
        wait_until(first.healthy, timeout=90, interval=0.2)
        [key] = KEY.findall(first.output)
        authorized = httpx.get(f"{first.url}/api/v1/organizations", headers={"Authorization": f"Bearer {key}"})
        anonymous = httpx.get(f"{first.url}/api/v1/organizations")
    finally:
        assert first.stop() == 0
    assert authorized.status_code == 200 and authorized.json()["organization"]["name"] == "Default"
    assert anonymous.status_code == 401 and anonymous.json() == {"status": 401, "error": "Unauthorized"}
    assert (tmp_path / ".tally" / "pg" / "PG_VERSION").exists()

    second = Up(tmp_path / ".tally", port)
    try:
        wait_until(second.healthy, timeout=90, interval=0.2)
        again = httpx.get(f"{second.url}/api/v1/organizations", headers={"Authorization": f"Bearer {key}"})
    finally:
        assert second.stop() == 0
    assert again.status_code == 200 and again.json() == authorized.json()
    assert KEY.findall(second.output) == []
    assert "organizations exist" in second.output
