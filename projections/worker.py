"""The projection worker: follows every log, woken by LISTEN/NOTIFY, polling as a fallback.

A projector that fails is retried with a backoff of its own while the others keep going
(docs/adr/0026-poison-events-stop-one-view-not-the-world.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

from projections.runner import ProjectionFailed, Projector

log = logging.getLogger(__name__)

RETRY_CHANNEL = "tally_projections_retry"  # payload: a projection's name, or empty for all


@dataclass
class _Backoff:
    """When a failed projector is next tried, and the wait after that."""

    delay: float
    due: float


def run(
    projectors: Sequence[Projector],
    conninfo: str,
    stop: threading.Event,
    idle_seconds: float = 1.0,
    retry_seconds: float = 2.0,
    after_round: Callable[[], object] | None = None,
    max_retry_seconds: float = 60.0,
) -> None:
    """Keep every projector at its log's head until ``stop`` is set.

    A projector that raises is logged and skipped until its retry is due: ``retry_seconds``
    after the first failure, doubling up to ``max_retry_seconds``. Its page rolled back, so
    nothing half-written stays behind, and the others keep going at full speed. A NOTIFY on
    ``RETRY_CHANNEL`` makes retries due now. ``after_round`` runs after every round
    (pay-in-advance charges are invoiced there, as events arrive).
    """
    channels = sorted({p.log.channel for p in projectors} | {RETRY_CHANNEL})
    backoff: dict[Projector, _Backoff] = {}
    with psycopg.connect(conninfo, autocommit=True, application_name="tally-worker-listen") as listener:
        for channel in channels:
            listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        while not stop.is_set():
            progressed = _catch_up(projectors, stop, backoff, retry_seconds, max_retry_seconds)
            if after_round is not None:
                try:
                    after_round()
                except Exception:
                    log.exception("after-round work failed; retrying next round")
            if not progressed:
                timeout = idle_seconds
                if backoff:
                    timeout = max(min(timeout, min(b.due for b in backoff.values()) - time.monotonic()), 0.0)
                for notify in listener.notifies(timeout=timeout, stop_after=1):
                    if notify.channel == RETRY_CHANNEL:
                        _retry_now(backoff, notify.payload)


def _catch_up(projectors: Sequence[Projector], stop: threading.Event, backoff: dict[Projector, _Backoff],
              retry_seconds: float, max_retry_seconds: float) -> bool:
    """One round over the projectors not waiting for a retry; True when any made progress."""
    progressed = False
    for projector in projectors:
        if stop.is_set():
            break
        waiting = backoff.get(projector)
        if waiting is not None and time.monotonic() < waiting.due:
            continue
        try:
            done = projector.step()
        except Exception as error:
            delay = retry_seconds if waiting is None else min(waiting.delay * 2, max_retry_seconds)
            backoff[projector] = _Backoff(delay, time.monotonic() + delay)
            what = str(error) if isinstance(error, ProjectionFailed) else f"projection {projector.name} failed"
            # The traceback once; every retry after it, one line.
            log.error("%s; retrying in %gs", what, delay, exc_info=waiting is None)
            continue
        if waiting is not None:
            del backoff[projector]
            log.warning("projection %s of %s moves again", projector.name, projector.log.application)
        progressed = progressed or bool(done)
    return progressed


def _retry_now(backoff: dict[Projector, _Backoff], name: str) -> None:
    """An operator asked (``tally projections retry``): failed projectors are tried next round."""
    for projector in [p for p in backoff if not name or p.name == name]:
        del backoff[projector]  # a failure after this starts the backoff over
