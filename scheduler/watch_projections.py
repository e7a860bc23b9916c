"""Flags a projection that is behind and made no progress since the previous pass.

Lago users lost billing days to background workers stuck without a sound (lago-issues #12);
a view that stops advancing is said loudly here, and /health shows the lag.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


class WatchProjections:
    name = "watch_projections"

    def __init__(self, lags: Callable[[], dict[str, int]]) -> None:
        self._lags = lags
        self._previous: dict[str, int] = {}

    def __call__(self) -> None:
        lags = self._lags()
        for name, lag in lags.items():
            if lag and self._previous.get(name, 0) and lag >= self._previous[name]:
                log.error("projection %s is stuck: %d events behind and not advancing", name, lag)
        self._previous = lags
