"""Reading model inputs from points, and what happens to a point whose inputs are unusable.

Features are looked up by field name (`Point.number`: double or int fields), never by the
order of the point's field maps, which Kapacitor sends in arbitrary order.

A point with a missing or non-numeric input is handled by the task's `onError`:

- `pass` (the ML UDFs' default): the point goes on with its output fields set to their
  not-evaluated values (0 / empty), so downstream nodes always see the same fields; a warning
  is logged (rate-limited).
- `drop`: the point is dropped and logged (rate-limited).
- `fail`: the task stops, as the stock agent would.

Gated points (outside the conditions under which the model is meaningful) are not errors:
they are emitted with the not-evaluated outputs and nothing is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from udfcollection.agent.logs import RateLimiter
from udfcollection.agent.udf_handler import describe_point
from udfcollection.points import Point
from udfcollection.spec import PointError


def input_problem(point: Point, name: str) -> str:
    """Why `point` has no number in field `name`: missing, or of another type."""
    kind = point.field_type(name)
    if kind is None:
        return f"input field {name!r} is missing"
    return f"input field {name!r} is a {kind}, not a number"


def read_matrix(points: Sequence[Point], names: Sequence[str]):
    """The numeric inputs `names` of every point, by field name, as a float64 matrix with one
    row per point (NaN and infinities as sent), and `problems`: point index -> the text saying
    which input is missing or not a number, for points whose row is then all NaN.

    For a PointBlock that read these inputs while decoding (`UDF.column_inputs`), that
    matrix."""
    import numpy as np

    from udfcollection.columns import PointBlock

    if points.__class__ is PointBlock and points.names == tuple(names):
        return points.matrix()

    flat: list[float] = []
    extend = flat.extend
    problems: dict[int, str] = {}
    width = len(names)
    for i, p in enumerate(points):
        # Most inputs are doubles: one map lookup each, made by map() in C (a comprehension
        # costs twice as much per point); ints and problems take the slow path.
        vals = list(map(p._pb.fieldsDouble.get, names))
        if None in vals:
            vals = [p.number(n) for n in names]
            if None in vals:
                problems[i] = input_problem(p, names[vals.index(None)])
                vals = [float("nan")] * width
        extend(vals)
    return np.array(flat, dtype=float).reshape(len(points), width), problems


def first_not_finite(names, row) -> str:
    """'input field NAME is VALUE, not a finite number' for the first non-finite value."""
    for name, v in zip(names, row, strict=False):
        if v != v or v in (float("inf"), float("-inf")):
            return f"input field {name!r} is {v}, not a finite number"
    raise ValueError("every value is finite")


class BadInputPolicy:
    """Applies the onError policy to points whose model inputs are unusable."""

    def __init__(self, policy: str, log: logging.Logger):
        self.policy = policy
        self.log = log
        self._limiter = RateLimiter()

    def handle(self, point: Point, reason: str, not_evaluated: Mapping[str, Any]
               ) -> Point | PointError:
        """The result for this point in a `process_many` list: the point with its
        not-evaluated outputs (pass), or a PointError for the handler to drop or fail on."""
        if self.policy != "pass":
            return PointError(reason)
        allowed, suppressed = self._limiter.allow(reason[:120])
        if allowed:
            more = f" ({suppressed} similar messages suppressed)" if suppressed else ""
            self.log.warning("point passed on as not evaluated: %s (%s)%s", reason,
                             describe_point(point), more)
        return point.emit(dict(not_evaluated))
