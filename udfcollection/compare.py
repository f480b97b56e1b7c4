"""Compare a UDF's output with expected points (`kapudf test --expect FILE.lp`).

Points match when they have the same timestamp, measurement, tags, field names, field types and
values; floats match within a relative tolerance `rtol` (NaN matches NaN). Order does not matter
among points of one timestamp (a UDF may emit several groups' points for one time in any order);
it does not matter across timestamps either, since points are matched by their time.

Unmatched points of the same timestamp, measurement and tags are paired up and reported field by
field; the rest are reported as missing (expected, not produced) or unexpected (produced, not
expected).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from udfcollection.lineprotocol import LPPoint, format_point, format_value
from udfcollection.outputs import rfc3339

Value = float | int | str | bool


def _type_name(v: Value) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    return "string"


def values_match(expected: Value, actual: Value, rtol: float = 1e-9) -> bool:
    if _type_name(expected) != _type_name(actual):
        return False
    if isinstance(expected, float):
        assert isinstance(actual, float)
        if math.isnan(expected) or math.isnan(actual):
            return math.isnan(expected) and math.isnan(actual)
        return math.isclose(expected, actual, rel_tol=rtol, abs_tol=0.0)
    return expected == actual


def field_differences(expected: LPPoint, actual: LPPoint, rtol: float = 1e-9) -> list[str]:
    """One readable line per field that differs between two points of the same series."""
    out = []
    for k in sorted(set(expected.fields) | set(actual.fields)):
        if k not in actual.fields:
            out.append(f"{k}: missing from output (expected {format_value(expected.fields[k])})")
        elif k not in expected.fields:
            out.append(f"{k}: not expected (output has {format_value(actual.fields[k])})")
        else:
            e, a = expected.fields[k], actual.fields[k]
            if values_match(e, a, rtol):
                continue
            if _type_name(e) != _type_name(a):
                out.append(f"{k}: expected {_type_name(e)} {format_value(e)}, got "
                           f"{_type_name(a)} {format_value(a)}")
            elif isinstance(e, float) and isinstance(a, float) and math.isfinite(e) \
                    and math.isfinite(a):
                rel = abs(a - e) / max(abs(e), abs(a))
                out.append(f"{k}: expected {format_value(e)}, got {format_value(a)} "
                           f"(relative difference {rel:.3g} > rtol {rtol:g})")
            else:
                out.append(f"{k}: expected {format_value(e)}, got {format_value(a)}")
    return out


@dataclass
class Comparison:
    expected_count: int
    actual_count: int
    rtol: float
    matched: int = 0
    differing: list[tuple[LPPoint, LPPoint, list[str]]] = field(default_factory=list)
    missing: list[LPPoint] = field(default_factory=list)
    unexpected: list[LPPoint] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.differing or self.missing or self.unexpected)

    def report(self, source: str = "expected", limit: int = 30) -> str:
        """A readable report: one OK line, or a FAIL line followed by the differences in time
        order (`~` differing point with its fields, `-` missing, `+` unexpected)."""
        if self.ok:
            return f"OK: all {self.expected_count} points match {source} (rtol {self.rtol:g})"
        parts = [f"{self.matched} match"]
        if self.differing:
            parts.append(f"{len(self.differing)} differ")
        if self.missing:
            parts.append(f"{len(self.missing)} missing")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected")
        lines = [f"FAIL: output ({self.actual_count} points) differs from {source} "
                 f"({self.expected_count} points): {', '.join(parts)} (rtol {self.rtol:g})"]
        items: list[tuple[int, int, list[str]]] = []
        for e, _a, diffs in self.differing:
            items.append((e.time, 0, [f"~ {rfc3339(e.time)} {_series(e)}"]
                          + [f"    {d}" for d in diffs]))
        for p in self.missing:
            items.append((p.time, 1, [f"- {format_point(p)}    (expected, not in output)"]))
        for p in self.unexpected:
            items.append((p.time, 2, [f"+ {format_point(p)}    (in output, not expected)"]))
        items.sort(key=lambda it: (it[0], it[1]))
        for _t, _k, block in items[:limit]:
            lines.extend("  " + b for b in block)
        if len(items) > limit:
            lines.append(f"  ... and {len(items) - limit} more differences")
        return "\n".join(lines)


def _series(p: LPPoint) -> str:
    return ",".join([p.name, *(f"{k}={p.tags[k]}" for k in sorted(p.tags))])


def _key(p: LPPoint) -> tuple:
    return (p.name, tuple(sorted(p.tags.items())))


def compare(actual: Sequence[LPPoint], expected: Sequence[LPPoint],
            rtol: float = 1e-9) -> Comparison:
    result = Comparison(len(expected), len(actual), rtol)
    by_time: dict[int, tuple[list[LPPoint], list[LPPoint]]] = defaultdict(lambda: ([], []))
    for p in expected:
        by_time[p.time][0].append(p)
    for p in actual:
        by_time[p.time][1].append(p)
    for t in sorted(by_time):
        exp, act = by_time[t]
        left: list[LPPoint] = []
        remaining = list(act)
        for e in exp:
            for i, a in enumerate(remaining):
                if _key(a) == _key(e) and not field_differences(e, a, rtol):
                    result.matched += 1
                    del remaining[i]
                    break
            else:
                left.append(e)
        # Pair what is left by series, so a changed value reads as one differing point.
        for e in left:
            for i, a in enumerate(remaining):
                if _key(a) == _key(e):
                    result.differing.append((e, a, field_differences(e, a, rtol)))
                    del remaining[i]
                    break
            else:
                result.missing.append(e)
        result.unexpected.extend(remaining)
    return result
