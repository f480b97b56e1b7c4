"""threshold: classify each point as inside or outside a [low, high] band."""

from __future__ import annotations

from typing import ClassVar

from udfcollection.points import Point
from udfcollection.spec import DOUBLE, STRING, UDF, Option, Options, PointError

MODES = ("outside", "inside", "annotate")


class Threshold(UDF):
    name = "threshold"
    summary = "Forward points outside (or inside) a [low, high] band, or mark every point."
    description = """\
Classifies each point by one numeric field against the band [low, high] (both bounds belong
to the band): a value is outside when it is below `low` or above `high`. Give `low`, `high`
or both; with only one bound the band is open on the other side.

- `mode` 'outside' (default) forwards only points outside the band, unchanged: the classic
  "temperature below 20 or above 25" filter.
- `mode` 'inside' forwards only points inside the band, unchanged.
- `mode` 'annotate' forwards every point with the field `as` added: 1.0 outside, 0.0 inside.

Int and float values are both compared as numbers; +inf and -inf are ordinary values (outside
any finite band). A point whose field is missing, a string or a bool, or NaN (which is neither
inside nor outside) is handled by `onError` (default: dropped and logged). Stateless: every
point is judged alone, so order, time and grouping do not matter and output keeps the input's
tags and group."""
    example_measurement = "sensors"
    example_group_by = ("location",)
    options = (
        Option("field", STRING, "Numeric field to compare.", required=True,
               example="temperature"),
        Option("low", DOUBLE, "Lower bound of the band (give low, high or both).",
               example=20.0),
        Option("high", DOUBLE, "Upper bound of the band (give low, high or both).",
               example=25.0),
        Option("mode", STRING, "'outside': forward points outside the band; 'inside': forward "
               "points inside it; 'annotate': forward all points with the `as` field.",
               default="outside", choices=MODES, example="outside"),
        Option("as", STRING, "Output field in annotate mode: 1.0 outside the band, 0.0 inside.",
               default="anomaly_status", example="anomaly_status",
               check=lambda v: None if v else "must not be empty"),
    )
    example_options: ClassVar[dict] = {"field": "temperature", "low": 20.0, "high": 25.0}
    output_fields = ("anomaly_status",)
    emits = ("the points outside the band, unchanged (`mode` 'inside': the points inside it; "
             "'annotate': every point plus `anomaly_status`, 1.0 outside and 0.0 inside)")

    @classmethod
    def validate(cls, opts: Options) -> list[str]:
        low, high = opts.low, opts.high
        errors = []
        if low is None and high is None:
            errors.append("give at least one of low or high, e.g. .low(20.0).high(25.0)")
        for name, v in (("low", low), ("high", high)):
            if v is not None and v != v:
                errors.append(f"option {name}: must be a number, not NaN")
        if low is not None and high is not None and low > high:
            errors.append(f"option low ({low!r}) must not be above option high ({high!r})")
        return errors

    def setup(self) -> None:
        o = self.opts
        self.field: str = o.field
        # Missing bounds become infinities so the comparison needs no None checks.
        self.low = float("-inf") if o.low is None else float(o.low)
        self.high = float("inf") if o.high is None else float(o.high)
        self.mode: str = o.mode
        self.out: str = o.as_

    def process(self, point: Point, state: None) -> Point | None:
        v = point.number(self.field)
        if v is None or v != v:
            kind = point.field_type(self.field)
            if kind is None:
                raise PointError(f"field {self.field!r} is missing")
            if v is None:
                raise PointError(f"field {self.field!r} is a {kind}, expected a number")
            raise PointError(f"field {self.field!r} is NaN: neither inside nor outside")
        outside = v < self.low or v > self.high
        mode = self.mode
        if mode == "outside":
            return point.emit() if outside else None
        if mode == "inside":
            return None if outside else point.emit()
        return point.emit({self.out: 1.0 if outside else 0.0})
