"""Kapacitor-style duration literals (`10s`, `1m30s`, `500ms`, `1h`) to and from nanoseconds."""

from __future__ import annotations

import re

_UNITS = {
    "ns": 1,
    "u": 1_000,
    "us": 1_000,
    "µ": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
    "w": 7 * 86_400_000_000_000,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|µ|u|ms|s|m|h|d|w)")


def parse_duration(text: str) -> int:
    """Parse a duration literal to int nanoseconds. `0` alone is allowed. Raises ValueError."""
    s = text.strip()
    if s in ("0", "0s"):
        return 0
    neg = s.startswith("-")
    if neg:
        s = s[1:]
    pos = 0
    total = 0.0
    for m in _PART.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        raise ValueError(f"not a duration: {text!r} (examples: 10s, 500ms, 1m30s, 2h)")
    ns = round(total)
    return -ns if neg else ns


def format_duration(ns: int) -> str:
    """Format nanoseconds as the shortest exact literal Kapacitor accepts (`90s` -> `1m30s`)."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    for unit, size in (("ms", 1_000_000), ("us", 1_000)):
        if ns < 1_000_000_000 and ns % size == 0:
            return f"{sign}{ns // size}{unit}"
    if ns % 1_000_000_000:
        return f"{sign}{ns}ns"
    secs = ns // 1_000_000_000
    out = []
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if secs >= size:
            out.append(f"{secs // size}{unit}")
            secs %= size
    return sign + "".join(out)
