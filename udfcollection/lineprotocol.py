"""InfluxDB line protocol: parse into plain points and format them back.

`measurement[,tag=value...] field=value[,field=value...] [timestamp]`; integers end in `i`
(or `u`), strings are double-quoted, booleans are t/true/f/false in any case.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

PRECISION_NS = {"ns": 1, "n": 1, "us": 1_000, "u": 1_000, "ms": 1_000_000,
                "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}


class LineProtocolError(ValueError):
    def __init__(self, message: str, lineno: int | None = None, source: str = ""):
        where = f"{source}:" if source else ""
        where += f"line {lineno}: " if lineno is not None else ""
        super().__init__(where + message)
        self.lineno = lineno


@dataclass
class LPPoint:
    name: str
    tags: dict[str, str] = field(default_factory=dict)
    fields: dict[str, float | int | str | bool] = field(default_factory=dict)
    time: int = 0


def _split_unescaped(s: str, sep: str, quote: bool = False) -> list[str]:
    out, cur, i, inq = [], [], 0, False
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            cur.append(s[i:i + 2])
            i += 2
            continue
        if quote and c == '"':
            inq = not inq
        if c == sep and not inq:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    out.append("".join(cur))
    return out


def _unescape(s: str) -> str:
    if "\\" not in s:
        return s
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 1 < len(s) and s[i + 1] in ' ,="\\':
            out.append(s[i + 1])
            i += 2
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def _field_value(raw: str) -> float | int | str | bool:
    if not raw:
        raise ValueError("empty field value")
    if raw[0] == '"':
        if len(raw) < 2 or raw[-1] != '"':
            raise ValueError(f"unterminated string {raw!r}")
        return raw[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    low = raw.lower()
    if low in ("t", "true"):
        return True
    if low in ("f", "false"):
        return False
    if raw[-1] in "iu":
        return int(raw[:-1])
    return float(raw)


def parse_line(line: str, precision: str = "ns", lineno: int | None = None) -> LPPoint | None:
    """Parse one line; None for blank and comment lines. Raises LineProtocolError."""
    s = line.strip()
    if not s or s.startswith("#"):
        return None
    parts = _split_unescaped(s, " ", quote=True)
    parts = [p for p in parts if p != ""]
    if len(parts) not in (2, 3):
        raise LineProtocolError("expected 'measurement[,tags] fields [time]'", lineno)
    key = _split_unescaped(parts[0], ",")
    name = _unescape(key[0])
    if not name:
        raise LineProtocolError("missing measurement name", lineno)
    tags = {}
    for t in key[1:]:
        kv = _split_unescaped(t, "=")
        if len(kv) != 2 or not kv[0]:
            raise LineProtocolError(f"bad tag {t!r}", lineno)
        tags[_unescape(kv[0])] = _unescape(kv[1])
    fields: dict[str, float | int | str | bool] = {}
    for f in _split_unescaped(parts[1], ",", quote=True):
        kv = _split_unescaped(f, "=", quote=True)
        if len(kv) != 2 or not kv[0]:
            raise LineProtocolError(f"bad field {f!r}", lineno)
        try:
            fields[_unescape(kv[0])] = _field_value(kv[1])
        except ValueError as exc:
            raise LineProtocolError(f"field {kv[0]!r}: {exc}", lineno) from None
    ts = 0
    if len(parts) == 3:
        try:
            ts = int(parts[2]) * PRECISION_NS[precision]
        except (ValueError, KeyError):
            raise LineProtocolError(f"bad timestamp {parts[2]!r}", lineno) from None
    return LPPoint(name, tags, fields, ts)


def parse_lines(lines: Iterable[str], precision: str = "ns", source: str = "") -> Iterator[LPPoint]:
    for n, line in enumerate(lines, 1):
        try:
            p = parse_line(line, precision, n)
        except LineProtocolError as exc:
            raise LineProtocolError(str(exc).split(": ", 1)[-1], n, source) from None
        if p is not None:
            yield p


def _esc_key(s: str) -> str:
    return s.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _esc_name(s: str) -> str:
    return s.replace("\\", "\\\\").replace(",", "\\,").replace(" ", "\\ ")


def format_value(v: float | int | str | bool) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return f"{v}i"
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "+Inf" if v > 0 else "-Inf"
        return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_point(p: LPPoint) -> str:
    key = _esc_name(p.name)
    for k in sorted(p.tags):
        key += f",{_esc_key(k)}={_esc_key(p.tags[k])}"
    fields = ",".join(f"{_esc_key(k)}={format_value(v)}" for k, v in sorted(p.fields.items()))
    return f"{key} {fields} {p.time}"
