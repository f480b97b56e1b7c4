"""moving_avg: the average of a field over the last N points or the last period, per group."""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar

from udfcollection.points import Point
from udfcollection.spec import (
    DURATION,
    INT,
    STRING,
    UDF,
    NumberKernel,
    Option,
    Options,
    PointError,
    UDFState,
)

# The running sum is compensated (Neumaier), so a huge value passing through the window does
# not wipe out the small ones after it; after this many additions (and at least a window's
# worth) it is also recomputed exactly with math.fsum, so nothing piles up over a long-running
# task. Amortised over the window that costs O(1) per point.
_RESUM_MIN = 64


@dataclass(slots=True)
class AverageState(UDFState):
    values: deque = field(default_factory=deque)  # window values, oldest first
    times: deque = field(default_factory=deque)  # their times (period mode only), sorted
    total: float = 0.0  # running sum of `values`, plus `comp`
    comp: float = 0.0  # Neumaier compensation: rounding lost from `total`
    added: int = 0  # additions since `total` was last recomputed exactly

    def to_json(self) -> Any:
        # The running sum goes along so a restored window continues bit for bit as the
        # uninterrupted one would.
        return {"values": list(self.values), "times": list(self.times), "total": self.total,
                "comp": self.comp, "added": self.added}

    @classmethod
    def from_json(cls, data: Any) -> AverageState:
        if not isinstance(data, dict):
            raise ValueError("group state is not an object")
        values, times = data.get("values"), data.get("times", [])
        if not isinstance(values, list) or not isinstance(times, list):
            raise ValueError("values and times must be lists")
        for v in values:
            if type(v) not in (int, float) or not math.isfinite(v):
                raise ValueError(f"window value {v!r} is not a finite number")
        if any(type(t) is not int for t in times):
            raise ValueError("window times must be integers (ns)")
        if times and len(times) != len(values):
            raise ValueError("window times and values differ in length")
        if any(times[i] > times[i + 1] for i in range(len(times) - 1)):
            raise ValueError("window times are not in order")
        state = cls(values=deque(float(v) for v in values), times=deque(times))
        total, comp, added = data.get("total"), data.get("comp"), data.get("added")
        if (type(total) is float and type(comp) is float and type(added) is int
                and math.isfinite(total) and math.isfinite(comp) and added >= 0):
            state.total, state.comp, state.added = total, comp, added
        else:
            state.resum()
        return state

    def resum(self) -> None:
        self.total = math.fsum(self.values)
        self.comp = 0.0
        self.added = 0


def _check_period(o: Options) -> list[str]:
    has_size, has_period = o.size is not None, o.period is not None
    if has_size == has_period:
        which = "both were given" if has_size else "neither was given"
        return [f"give exactly one of size (points, e.g. .size(10)) or period (time, e.g. "
                f".period(5m)); {which}"]
    return []


class MovingAverage(UDF):
    name = "moving_avg"
    summary = "Moving average of a field over the last N points or the last period, per group."
    description = """\
For every input point, emits one point with the input's time, measurement and tags whose only
field is the average (`as`, a float) of `field` over the group's current window, the point
itself included. The window is either:

- `size` N: the last N points of the group in arrival order (time is not looked at). Until N
  points have arrived the average is over the points seen so far.
- `period` P: the points of the group whose time is later than t - P, where t is the newest
  point time seen in that group (the window never moves back in time). A late point that
  still falls inside the window joins it; a point older than the whole window is not averaged
  and is handled by `onError`.

Exactly one of `size` or `period` must be given. Int and float values are both averaged as
numbers. A point whose field is missing, a string or a bool, or NaN or infinite, is handled by
`onError` (default: dropped and logged) and leaves the window unchanged, so one bad reading
cannot turn every later average into NaN. Windows are per group (`groupBy`) and survive
snapshot/restore; a restored window longer than a new, smaller `size` is cut to its newest
points."""
    example_measurement = "cpu"
    example_group_by = ("host",)
    options = (
        Option("field", STRING, "Field to average (int or float values).", required=True,
               example="usage_user"),
        Option("size", INT, "Window length in points (give this or period).", min=1,
               example=10),
        Option("period", DURATION, "Window length in point time (give this or size).",
               min=0, min_exclusive=True, example=300_000_000_000),
        Option("as", STRING, "Name of the output field holding the average.", default="avg",
               example="avg", check=lambda v: None if v else "must not be empty"),
    )
    example_options: ClassVar[dict] = {"field": "usage_user", "size": 10, "as": "avg"}
    output_fields = ("avg",)
    emits = ("one point per input point with the input's time and tags and a single field, `avg` "
             "(the average over the window)")
    State = AverageState
    state_version = 1

    @classmethod
    def validate(cls, opts: Options) -> list[str]:
        return _check_period(opts)

    def setup(self) -> None:
        o = self.opts
        self.field: str = o.field
        self.out: str = o.as_
        self.size: int | None = o.size
        self.period: int | None = o.period
        self.resum_every = max(_RESUM_MIN, self.size or 0)
        self.step = self._step_size if self.period is None else self._step_period

    def number_kernel(self) -> NumberKernel:
        return self.field, self.out, self.step

    def process(self, point: Point, state: AverageState) -> Point:
        v = point.number(self.field)
        if v is None or v - v != 0.0:  # v - v is NaN for NaN and +-inf
            self._reject(point, v)
        return point.emit_only(self.out, self.step(v, point.time, state))

    def _reject(self, point: Point, v: float | None) -> None:
        if v is None:
            kind = point.field_type(self.field)
            if kind is None:
                raise PointError(f"field {self.field!r} is missing")
            raise PointError(f"field {self.field!r} is a {kind}, expected a number")
        raise PointError(f"field {self.field!r} is {v}, not averaged")

    def _refit(self, state: AverageState) -> None:
        """Make a restored window fit this task: a period-mode window starts over, a window
        longer than `size` keeps its newest `size` - 1 values (one is about to be added)."""
        if state.times:
            state.values.clear()
            state.times.clear()
        while len(state.values) >= self.size:
            state.values.popleft()
        state.resum()

    def _step_size(self, v: float, time_ns: int, state: AverageState) -> float:
        """Add finite `v` to a size-mode window; return the new average."""
        # The hot path of the catalogue's busiest UDF: kept flat on purpose.
        values = state.values
        size = self.size
        if state.times or len(values) > size:
            self._refit(state)
        values.append(v)
        s = state.total
        t = s + v
        c = state.comp + ((s - t) + v if abs(s) >= abs(v) else (v - t) + s)
        if len(values) > size:
            x = -values.popleft()
            s = t
            t = s + x
            c += (s - t) + x if abs(s) >= abs(x) else (x - t) + s
        added = state.added + 1
        if added >= self.resum_every:
            state.resum()
        else:
            state.total, state.comp, state.added = t, c, added
        return (state.total + state.comp) / len(values)

    def _step_period(self, v: float, time_ns: int, state: AverageState) -> float:
        """Add finite `v` at `time_ns` to a period-mode window; return the new average."""
        values, times = state.values, state.times
        if len(times) != len(values):  # window from a size-mode snapshot: start over
            values.clear()
            times.clear()
            state.resum()
        if not times or time_ns >= times[-1]:
            times.append(time_ns)
            values.append(v)
        else:
            newest = times[-1]
            if time_ns <= newest - self.period:
                raise PointError(f"point is older than the window (newest point of the group "
                                 f"at {newest} ns, period {self.period} ns): not averaged")
            i = bisect.bisect_right(times, time_ns)
            times.insert(i, time_ns)
            values.insert(i, v)
        cutoff = times[-1] - self.period
        s, c = state.total, state.comp
        t = s + v
        c += (s - t) + v if abs(s) >= abs(v) else (v - t) + s
        s = t
        while times[0] <= cutoff:
            times.popleft()
            x = -values.popleft()
            t = s + x
            c += (s - t) + x if abs(s) >= abs(x) else (x - t) + s
            s = t
        state.total, state.comp = s, c
        state.added += 1
        if state.added >= _RESUM_MIN and state.added >= len(values):
            state.resum()
        return (state.total + state.comp) / len(values)
