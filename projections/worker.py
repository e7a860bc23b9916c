"""The projection worker: follows every log, woken by LISTEN/NOTIFY, polling as a fallback."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

import psycopg
from psycopg import sql

from projections.runner import Projector

log = logging.getLogger(__name__)


def run(
    projectors: Sequence[Projector],
    conninfo: str,
    stop: threading.Event,
    idle_seconds: float = 1.0,
    retry_seconds: float = 2.0,
    after_round: Callable[[], object] | None = None,
) -> None:
    """Keep every projector at its log's head until ``stop`` is set.

    A projector that raises is logged and retried after ``retry_seconds``; its page rolled
    back, so nothing half-written stays behind and the others keep going. ``after_round``
    runs after every round (pay-in-advance charges are invoiced there, as events arrive).
    """
    channels = sorted({p.log.channel for p in projectors})
    with psycopg.connect(conninfo, autocommit=True, application_name="tally-worker-listen") as listener:
        for channel in channels:
            listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        while not stop.is_set():
            progressed = _catch_up(projectors, stop, retry_seconds)
            if after_round is not None:
                try:
                    after_round()
                except Exception:
                    log.exception("after-round work failed; retrying next round")
            if not progressed:
                for _ in listener.notifies(timeout=idle_seconds, stop_after=1):
                    pass


def _catch_up(projectors: Sequence[Projector], stop: threading.Event, retry_seconds: float) -> bool:
    """One round over all projectors; True when any made progress."""
    progressed = False
    for projector in projectors:
        if stop.is_set():
            break
        try:
            done = projector.step()
        except Exception:
            log.exception("projection %s failed; retrying in %ss", projector.name, retry_seconds)
            stop.wait(retry_seconds)
            continue
        progressed = progressed or bool(done)
    return progressed
