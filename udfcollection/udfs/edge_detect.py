"""edge_detect: emit a point only when a watched value changes (state-change detection)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, ClassVar

from udfcollection.points import Point
from udfcollection.protocol import udf_pb2
from udfcollection.spec import (
    BOOL,
    DOUBLE,
    DURATION,
    STRING,
    UDF,
    Option,
    PointError,
    UDFState,
)


@dataclass(slots=True)
class EdgeState(UDFState):
    stable: list | None = None  # watched values of the current state
    since: int | None = None  # time of the current state's first point
    cand: list | None = None  # values of a new state still being held
    cand_time: int | None = None
    cand_point: Point | None = None  # first point of the held state, emitted if it persists

    def to_json(self) -> Any:
        cp = None
        if self.cand_point is not None:
            cp = base64.b64encode(self.cand_point.to_request().SerializeToString()).decode()
        return {"stable": self.stable, "since": self.since, "cand": self.cand,
                "cand_time": self.cand_time, "cand_point": cp}

    @classmethod
    def from_json(cls, data: Any) -> EdgeState:
        """Rebuild a group's state, checking every field: a snapshot that passed here can
        never make a later point fail (anything else is reported and the task starts fresh)."""
        if not isinstance(data, dict):
            raise ValueError("group state is not an object")
        unknown = set(data) - {"stable", "since", "cand", "cand_time", "cand_point"}
        if unknown:
            raise ValueError(f"unknown state field(s) {sorted(unknown)}")
        stable, cand = data.get("stable"), data.get("cand")
        since, cand_time, cp = data.get("since"), data.get("cand_time"), data.get("cand_point")
        for key, v in (("stable", stable), ("cand", cand)):
            if v is not None and not (isinstance(v, list) and v and all(
                    type(x) in _SCALARS for x in v)):
                raise ValueError(f"{key} is not a list of field values")
        for key, v in (("since", since), ("cand_time", cand_time)):
            if v is not None and type(v) is not int:
                raise ValueError(f"{key} is not a time in integer nanoseconds")
        if stable is None and cand is not None:
            raise ValueError("a held value without a current state")
        point = None
        if cand is None:
            if cand_time is not None or cp is not None:
                raise ValueError("cand_time/cand_point without a held value")
        else:
            if cand_time is None or not isinstance(cp, str):
                raise ValueError("a held value needs cand_time and cand_point")
            req = udf_pb2.Request.FromString(base64.b64decode(cp, validate=True))
            if req.WhichOneof("message") != "point":
                raise ValueError("cand_point does not hold a point")
            point = Point(req.point, req)
        return cls(stable=stable, since=since, cand=cand, cand_time=cand_time, cand_point=point)


_SCALARS = (str, int, float, bool)


def _is_num(v: Any) -> bool:
    t = type(v)
    return t is float or t is int


def same(a: Any, b: Any, tolerance: float) -> bool:
    """Whether two watched values count as the same state. Numbers compare by value (int 1
    equals float 1.0) within `tolerance`; NaN equals NaN; bools and strings compare exactly and
    never equal a number."""
    if _is_num(a) and _is_num(b):
        if a == b:
            return True
        if a != a or b != b:  # NaN: same only if both are NaN
            return a != a and b != b
        return abs(a - b) <= tolerance
    if type(a) is not type(b):
        return False
    return a == b


class EdgeDetect(UDF):
    name = "edge_detect"
    summary = "Emit a point only when a watched field changes value (state changes, edges)."
    description = """\
Forwards a point only when the value of the watched field differs from the previous state of
the same group: a SHOWTIME/TRAINING status polled every minute becomes one point per change.
Works on string, int, float and bool fields; int 1 and float 1.0 are equal, a bool never
equals a number. With several `field` options, any watched field changing counts.

- The first point of a group counts as a change when `emitFirst` is TRUE (no previous/duration
  fields are added to it).
- `tolerance` sets a dead band for numbers: a move of at most `tolerance` from the current
  state's value is not a change (drift is measured against the state, not the last point).
- `hold` debounces: a new value must persist for that long, in point time, before it counts.
  The point emitted is the first point of the new state; a flap back to the old value within
  `hold` is suppressed. A new state is confirmed by a later point, so the last state change of
  a stream that stops within `hold` is never emitted.
- The emitted point keeps all its fields and tags and gains `previousAs` (the previous value)
  and `durationAs` (seconds the previous state lasted).
- A point missing a watched field is handled by `onError` (default: dropped and logged) and
  does not change the state. NaN, +inf, -inf and the empty string are values like any
  other (NaN equals NaN). Out-of-order points are compared in arrival order; `durationAs` may
  then be negative; a repeated point (same time and value) is no change.
- State (per group) survives snapshot/restore."""
    example_measurement = "adsl_connection"
    example_group_by = ("host",)
    options = (
        Option("field", STRING, "Field to watch; repeat the option to watch several.",
               required=True, repeatable=True, example="value"),
        Option("emitFirst", BOOL, "Emit the first point of each group.", default=True,
               example=True),
        Option("tolerance", DOUBLE, "Numeric changes no larger than this are ignored.",
               default=0.0, min=0.0, example=0.5),
        Option("hold", DURATION, "How long a new value must persist before it counts.",
               default=0, min=0, example=60_000_000_000),
        Option("previousAs", STRING,
               "Output field for the previous value ('' omits it; several watched fields give "
               "<previousAs>_<field>).", default="previous", example="previous"),
        Option("durationAs", STRING,
               "Output field for how long the previous state lasted, in seconds ('' omits it).",
               default="duration", example="duration"),
    )
    example_options: ClassVar[dict] = {"field": "value"}
    output_fields = ("previous", "duration")
    emits = ("the first point of each new state with all its fields, plus `previous` (the value "
             "before) and `duration` (seconds the previous state lasted)")
    State = EdgeState
    state_version = 1

    def setup(self) -> None:
        o = self.opts
        self.fields: list[str] = list(o.field)
        self.single = self.fields[0] if len(self.fields) == 1 else None
        self.tol = float(o.tolerance)
        self.hold = int(o.hold)
        self.prev_names = (
            [] if not o.previous_as
            else [o.previous_as] if self.single
            else [f"{o.previous_as}_{f}" for f in self.fields]
        )

    def _values(self, point: Point) -> list:
        out = []
        for f in self.fields:
            v = point.get(f, _MISSING)
            if v is _MISSING:
                raise PointError(f"watched field {f!r} is missing")
            out.append(v)
        return out

    def _same(self, a: list, b: list) -> bool:
        tol = self.tol
        return all(same(x, y, tol) for x, y in zip(a, b, strict=True))

    def _emit(self, point: Point, prev: list, prev_since: int | None) -> Point:
        extra: dict[str, Any] = {}
        for name, v in zip(self.prev_names, prev, strict=False):
            extra[name] = v
        if self.opts.duration_as and prev_since is not None:
            extra[self.opts.duration_as] = (point.time - prev_since) / 1e9
        return point.emit(extra)

    def process(self, point: Point, state: EdgeState) -> Point | None:
        stable = state.stable
        if self.single is not None:
            v = point.get(self.single, _MISSING)
            if v is _MISSING:
                raise PointError(f"watched field {self.single!r} is missing")
            if stable is not None and len(stable) == 1:
                # Fast path for the common case, an unchanged value; `same` settles the rest
                # (int vs float, tolerance, NaN).
                s = stable[0]
                if (v == s and type(v) is type(s)) or same(v, s, self.tol):
                    if state.cand is not None:
                        state.cand = state.cand_time = state.cand_point = None
                    return None
            values = [v]
        else:
            values = self._values(point)
        if stable is None or len(stable) != len(values):
            # The group's first point; or state restored from a task that watched a different
            # number of fields, which cannot be compared and is started over.
            state.stable = values
            state.since = point.time
            state.cand = state.cand_time = state.cand_point = None
            return point.emit({}) if self.opts.emit_first else None
        if self._same(values, stable):
            # Back to (or still in) the current state: any held flap is dropped.
            if state.cand is not None:
                state.cand = state.cand_time = state.cand_point = None
            return None
        if self.hold <= 0:
            out = self._emit(point, stable, state.since)
            state.stable = values
            state.since = point.time
            return out
        cand = state.cand
        if cand is None or len(cand) != len(values) or not self._same(values, cand):
            # A (different) new value starts being held. Keep a copy of its first point.
            state.cand = values
            state.cand_time = point.time
            req = udf_pb2.Request()
            req.point.CopyFrom(point.pb)
            state.cand_point = Point(req.point, req)
            return None
        if point.time - state.cand_time >= self.hold:
            first = state.cand_point
            out = self._emit(first, stable, state.since)
            state.stable = state.cand
            state.since = state.cand_time
            state.cand = state.cand_time = state.cand_point = None
            return out
        return None


_MISSING = object()
