"""Closes billing periods: every boundary that has passed is invoiced, once, catching up after downtime.

Each close is a command on the subscription with a deterministic invoice id, so a second
scheduler, a retry or a pass after a crash mid-close adds nothing (docs/adr/0019). Drafts whose
grace period is over are refreshed and finalized in the same pass.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from application.invoicing import Invoicing, InvoicingPass

log = logging.getLogger(__name__)


class ClosePeriods:
    name = "close_periods"

    def __init__(self, invoicing: Invoicing, clock: Callable[[], datetime]) -> None:
        self._invoicing = invoicing
        self._clock = clock

    def __call__(self) -> InvoicingPass:
        done = self._invoicing.run_due(self._clock())
        if done.invoices or done.finalized or done.failed:
            log.info("invoiced %d period(s), %d start(s), %d termination(s); finalized %d draft(s); %d failed",
                     done.closed, done.started, done.finished, done.finalized, done.failed)
        if done.failed:
            raise RuntimeError(f"{done.failed} invoicing step(s) failed; the next pass retries them")
        return done
