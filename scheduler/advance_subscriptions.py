"""Moves subscriptions on in time and carries deletions through, as Lago's background jobs do.

Pending subscriptions start, ending ones end, subscriptions of deleted plans end, and plans
lose the charges of deleted metrics.

Every command is idempotent and time-stamped with the instant it was due, not the instant the
scheduler got to it, so a pass after downtime catches up exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from domain.application import Billing
from domain.errors import BillingError
from projections.subscriptions import SubscriptionsReader

log = logging.getLogger(__name__)


class AdvanceSubscriptions:
    name = "advance_subscriptions"

    def __init__(self, billing: Billing, subscriptions: SubscriptionsReader, clock: Callable[[], datetime]) -> None:
        self._billing = billing
        self._subscriptions = subscriptions
        self._clock = clock

    def __call__(self) -> int:
        """One pass; returns how many subscriptions changed."""
        now = self._clock()
        due = self._subscriptions.due(now)
        changed = 0
        for command, ids in (
            (self._billing.activate_subscription, due.to_activate),
            (self._billing.end_subscription, due.to_end),
            (self._billing.end_orphaned_subscription, due.on_deleted_plans),
            (self._billing.drop_charges_of_deleted_metrics, due.plans_with_deleted_metrics),
        ):
            for aggregate_id in ids:
                try:
                    changed += bool(command(aggregate_id, now))
                except BillingError as error:  # another scheduler got there first, or the state moved on
                    log.info("%s left as is: %s", aggregate_id, error)
        return changed
