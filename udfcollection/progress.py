"""A progress bar on stderr for long offline runs, shown only to a person watching a terminal.

Logs and pipes never get it: when the stream is not a terminal, or the work is small, `Progress`
does nothing at all.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

T = TypeVar("T")

MIN_ITEMS = 50_000  # below this a run takes well under a second or two: no bar


class Progress:
    """Counts items of a known total and redraws one line (`\\r`) at most `interval` seconds
    apart. `enabled` is decided once: the stream is a tty and `total >= min_items`."""

    def __init__(self, total: int, label: str = "points", stream: TextIO | None = None,
                 min_items: int = MIN_ITEMS, interval: float = 0.1, width: int = 30):
        self.stream = stream if stream is not None else sys.stderr
        self.total = total
        self.label = label
        self.interval = interval
        self.width = width
        self.done = 0
        isatty = getattr(self.stream, "isatty", None)
        self.enabled = bool(isatty and isatty()) and total >= min_items
        self._start = time.monotonic()
        self._last = 0.0
        self._drawn = False

    def advance(self, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last >= self.interval or self.done >= self.total:
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        frac = min(1.0, self.done / self.total) if self.total else 1.0
        filled = int(frac * self.width)
        rate = self.done / max(now - self._start, 1e-9)
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r[{bar}] {self.done:,}/{self.total:,} {self.label} "
                          f"({rate:,.0f}/s)")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """Erase the bar so the next line starts clean."""
        if self._drawn:
            self.stream.write("\r" + " " * (self.width + 60) + "\r")
            self.stream.flush()
            self._drawn = False

    def wrap(self, items: Iterable[T], count=lambda item: 1) -> Iterator[T]:
        """Yield `items`, advancing by `count(item)` for each."""
        try:
            for item in items:
                yield item
                self.advance(count(item))
        finally:
            self.close()
