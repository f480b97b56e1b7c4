"""Logging for UDF processes: stderr only, one line per record, a level word first.

Kapacitor turns every stderr line of a UDF process into one `msg="UDF log"` entry, so a record
that spans lines (a traceback) would be shredded into many entries; records are folded onto one
line instead.
"""

from __future__ import annotations

import logging
import os
import sys
import time

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "warn": logging.WARNING, "error": logging.ERROR}


class OneLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text.replace("\r", "").replace("\n", " | ")


_configured = False


def default_level() -> int:
    """Level from KAPUDF_LOG_LEVEL (debug, info, warning, error); info when unset or unknown."""
    return LEVELS.get(os.environ.get("KAPUDF_LOG_LEVEL", "info").strip().lower(), logging.INFO)


def setup_logging(stream=None) -> None:
    """Send all logging to stderr (or `stream`) as single lines. Idempotent."""
    global _configured
    root = logging.getLogger()
    if _configured:
        return
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(OneLineFormatter("%(levelname)s %(name)s: %(message)s"))
    root.handlers[:] = [handler]
    # The root level filters library noise; UDF loggers set their own level (a task's .debug()).
    root.setLevel(default_level())
    logging.getLogger("udfcollection").setLevel(default_level())
    _configured = True


def warn_if_slow_protobuf() -> None:
    """Warn once on stderr when protobuf runs on its pure-Python backend (several times slower)."""
    try:
        from google.protobuf.internal import api_implementation
    except ImportError:  # pragma: no cover
        return
    if api_implementation.Type() == "python":
        logging.getLogger("udfcollection").warning(
            "protobuf is using its slow pure-Python backend; install a protobuf wheel for this "
            "platform (pip install --force-reinstall protobuf) for several times the throughput"
        )


class RateLimiter:
    """Lets at most `burst` messages per key through in each `window` seconds and counts the rest,
    so one bad field in a fast stream cannot flood Kapacitor's log."""

    def __init__(self, burst: int = 5, window: float = 60.0):
        self.burst = burst
        self.window = window
        self._state: dict[str, list] = {}

    def allow(self, key: str) -> tuple[bool, int]:
        """Returns (allowed, suppressed_since_last_allowed)."""
        now = time.monotonic()
        st = self._state.get(key)
        if st is None or now - st[0] >= self.window:
            suppressed = st[2] if st else 0
            if len(self._state) > 1000:
                self._state.clear()
            self._state[key] = [now, 1, 0]
            return True, suppressed
        if st[1] < self.burst:
            st[1] += 1
            return True, 0
        st[2] += 1
        return False, 0
