"""A progress bar for long CLI work, on stderr, redrawn in place when stderr is a terminal."""

from __future__ import annotations

import sys
import time
from types import TracebackType


class Progress:
    def __init__(self, label: str, total: int) -> None:
        self.label = label
        self.total = max(total, 1)
        self.done = 0
        self._tty = sys.stderr.isatty()
        self._started = time.monotonic()
        self._drawn = 0.0

    def __enter__(self) -> Progress:
        self._draw(force=True)
        return self

    def advance(self, amount: int) -> None:
        self.done += amount
        self._draw()

    def reach(self, done: int) -> None:
        self.done = done
        self._draw()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._draw(force=True)
        sys.stderr.write("\n" if self._tty else "")
        sys.stderr.flush()

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._drawn < (0.1 if self._tty else 5.0):
            return
        self._drawn = now
        share = min(self.done / self.total, 1.0)
        rate = self.done / max(now - self._started, 1e-9)
        bar = "#" * int(share * 30)
        line = f"{self.label} [{bar:<30}] {self.done}/{self.total} {share:4.0%} {rate:,.0f}/s"
        sys.stderr.write(("\r" + line) if self._tty else (line + "\n"))
        sys.stderr.flush()
