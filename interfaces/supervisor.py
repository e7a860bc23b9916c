"""``tally up``: API, projection worker and scheduler as child processes of one command.

A child that dies is restarted with a growing pause (a stuck or crashed background process
must never go unnoticed, nor stay down); SIGINT or SIGTERM stops them all.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from types import FrameType

log = logging.getLogger(__name__)

MAX_PAUSE_SECONDS = 30.0


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = field(default=0.0)

    def start(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(self.argv, env=env)
        self.started_at = time.monotonic()


def supervise(url: str, bind: str) -> int:
    """Run the three processes until signalled; returns the exit status."""
    env = {**os.environ, "DATABASE_URL": url}
    cli = [sys.executable, "-m", "interfaces.cli"]
    children = [
        Child("api", [*cli, "api", "--bind", bind]),
        Child("worker", [*cli, "worker"]),
        Child("scheduler", [*cli, "scheduler"]),
    ]
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for child in children:
        child.start(env)
    while not stopping:
        time.sleep(0.2)
        for child in children:
            assert child.process is not None
            code = child.process.poll()
            if code is None or stopping:
                continue
            ran_for = time.monotonic() - child.started_at
            child.restarts = 0 if ran_for > 60 else child.restarts + 1
            pause = min(2.0 ** child.restarts, MAX_PAUSE_SECONDS)
            log.error("%s exited with status %s; restarting in %.0fs", child.name, code, pause)
            time.sleep(pause)
            if not stopping:
                child.start(env)
    for child in children:
        if child.process and child.process.poll() is None:
            child.process.terminate()
    deadline = time.monotonic() + 15
    for child in children:
        if child.process is None:
            continue
        try:
            child.process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            child.process.kill()
    return 0
