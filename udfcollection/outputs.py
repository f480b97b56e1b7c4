"""Write points as line protocol, CSV or JSON lines (`kapudf test --format`).

- `lp`: one line-protocol line per point, nanosecond timestamps (what Kapacitor would write).
- `csv`: a header row `time,measurement,<tags...>,<fields...>` (tags and fields sorted, the union
  over all points), then one row per point; time in RFC 3339 UTC to the nanosecond; a missing
  tag or field is an empty cell.
- `json`: one JSON object per line: `{"time": RFC 3339, "timestamp": int ns, "measurement",
  "tags": {...}, "fields": {...}}`. NaN and infinite floats, which JSON cannot hold, are null.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TextIO

from udfcollection.lineprotocol import LPPoint, format_point

OUTPUT_FORMATS = ("lp", "csv", "json")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def rfc3339(ns: int) -> str:
    """`2018-01-03T11:30:51.065Z`: UTC, fraction to the nanosecond without trailing zeros."""
    secs, frac = divmod(ns, 1_000_000_000)
    try:
        text = (_EPOCH + timedelta(seconds=secs)).strftime("%Y-%m-%dT%H:%M:%S")
    except OverflowError:
        return str(ns)
    if frac:
        text += "." + f"{frac:09d}".rstrip("0")
    return text + "Z"


def format_for_path(path: str) -> str | None:
    low = path.lower()
    for ext, fmt in ((".csv", "csv"), (".json", "json"), (".jsonl", "json"), (".ndjson", "json"),
                     (".lp", "lp"), (".txt", "lp")):
        if low.endswith(ext):
            return fmt
    return None


def _json_value(v: float | int | str | bool) -> float | int | str | bool | None:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def write_points(points: Sequence[LPPoint], fmt: str, out: TextIO) -> None:
    if fmt == "lp":
        for p in points:
            out.write(format_point(p) + "\n")
    elif fmt == "json":
        for p in points:
            obj = {"time": rfc3339(p.time), "timestamp": p.time, "measurement": p.name,
                   "tags": dict(sorted(p.tags.items())),
                   "fields": {k: _json_value(v) for k, v in sorted(p.fields.items())}}
            out.write(json.dumps(obj, ensure_ascii=False) + "\n")
    elif fmt == "csv":
        write_csv(points, out)
    else:
        raise ValueError(f"unknown output format {fmt!r}")


def _union(maps: Iterable[dict]) -> list[str]:
    keys: set[str] = set()
    for m in maps:
        keys.update(m)
    return sorted(keys)


def write_csv(points: Sequence[LPPoint], out: TextIO) -> None:
    tags = _union(p.tags for p in points)
    fields = _union(p.fields for p in points)
    # A tag and a field may share a name in InfluxDB; keep both columns apart.
    clash = set(tags) & set(fields)
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["time", "measurement", *tags, *[f + "_field" if f in clash else f
                                                 for f in fields]])
    for p in points:
        row: list[object] = [rfc3339(p.time), p.name]
        row.extend(p.tags.get(t, "") for t in tags)
        for f in fields:
            v = p.fields.get(f)
            if v is None:
                row.append("")
            elif isinstance(v, bool):
                row.append("true" if v else "false")
            elif isinstance(v, float):
                row.append(repr(v) if math.isfinite(v) else ("NaN" if v != v else
                                                            ("inf" if v > 0 else "-inf")))
            else:
                row.append(v)
        w.writerow(row)
