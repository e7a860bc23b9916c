"""The scheduler process: runs every job each minute, or one pass with ``--once``.

Jobs are idempotent commands (a second run, or a second scheduler, does nothing new), so
a missed or repeated tick costs nothing but time.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from apscheduler.schedulers.blocking import BlockingScheduler

log = logging.getLogger(__name__)


class Job(Protocol):
    name: str

    def __call__(self) -> None: ...


def run_pass(jobs: Sequence[Job]) -> int:
    """Run every job once; returns how many failed (each failure is logged, others still run)."""
    failed = 0
    for job in jobs:
        try:
            job()
        except Exception:
            failed += 1
            log.exception("scheduler job %s failed", job.name)
    return failed


def run(jobs: Sequence[Job], *, interval_seconds: int = 60) -> None:
    """Run all jobs now and then every ``interval_seconds`` until SIGTERM or SIGINT."""
    scheduler = BlockingScheduler(timezone=UTC)
    scheduler.add_job(
        run_pass,
        "interval",
        args=[jobs],
        seconds=interval_seconds,
        next_run_time=datetime.now(UTC),
        max_instances=1,
        coalesce=True,
        id="pass",
    )
    stop: Callable[..., Any] = lambda *_: scheduler.shutdown(wait=False)  # noqa: E731
    signal.signal(signal.SIGTERM, stop)
    log.info("scheduler started: %s every %ss", ", ".join(j.name for j in jobs) or "no jobs", interval_seconds)
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        pass
