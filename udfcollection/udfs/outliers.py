"""outliers: Tukey's fences on each batch (points far outside the batch's inter-quartile range)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

from udfcollection.points import Batch, Point
from udfcollection.spec import BATCH, DOUBLE, STRING, UDF, Option, PointError

MODES = ("outliers", "annotate")


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """The q-quantile (0 <= q <= 1) of ascending, non-empty `sorted_values` by linear
    interpolation between closest ranks: position h = (n - 1) * q, result
    x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)]). This is Hyndman and Fan's
    definition 7, the default of numpy.quantile, R's quantile and pandas."""
    n = len(sorted_values)
    h = (n - 1) * q
    lo = math.floor(h)
    frac = h - lo
    if frac == 0.0 or lo + 1 >= n:
        return float(sorted_values[lo])
    a, b = sorted_values[lo], sorted_values[lo + 1]
    return a + frac * (b - a)


def tukey_fences(values: Sequence[float], scale: float) -> tuple[float, float]:
    """(lower, upper) fences Q1 - scale*IQR and Q3 + scale*IQR of non-empty finite `values`."""
    s = sorted(values)
    q1, q3 = quantile(s, 0.25), quantile(s, 0.75)
    iqr = q3 - q1
    return q1 - scale * iqr, q3 + scale * iqr


class Outliers(UDF):
    name = "outliers"
    summary = "Tukey's fences per batch: keep (or mark) points far outside the quartiles."
    description = """\
For each batch (one group of one query run), computes the first and third quartiles Q1 and Q3
of `field` over the batch's points and the inter-quartile range IQR = Q3 - Q1. A point is an
outlier when its value is below Q1 - scale*IQR or above Q3 + scale*IQR (a value exactly on a
fence is not an outlier).

Quartiles use linear interpolation between closest ranks (Hyndman and Fan definition 7, the
default of numpy, R and pandas): with the n values sorted, the q-quantile sits at position
h = (n - 1) * q and is x[floor(h)] + (h - floor(h)) * (x[floor(h)+1] - x[floor(h)]).

- `mode` 'outliers' (default) answers each batch with only its outliers, unchanged.
- `mode` 'annotate' answers with every point and the field `as` added: 1.0 for an outlier,
  0.0 otherwise.

Every input batch gets one output batch (BeginBatch with the number of points emitted, the
points in input order, EndBatch), even when it is empty. A batch of one point or of equal
values has no outliers; when the middle half of the sorted values are all equal, IQR is 0
and every value different from them is an outlier, whatever `scale` (it cannot widen a zero
IQR). Int and float values are both used as numbers. Points whose field is missing, a string
or a bool, NaN or infinite take no part in the quartiles and are handled by `onError`: 'drop'
(default) leaves them out of the output (logged once per batch with their count), 'pass'
emits them unchanged, 'fail' stops the task. Batches are independent: no state is kept
between them."""
    wants = BATCH
    provides = BATCH
    example_measurement = "cpu"
    example_group_by = ("host",)
    options = (
        Option("field", STRING, "Numeric field to examine.", required=True,
               example="usage_user"),
        Option("scale", DOUBLE, "Fence distance in IQRs beyond the quartiles (1.5 is Tukey's "
               "'outlier', 3.0 his 'far out').", default=1.5, min=0.0, example=1.5),
        Option("mode", STRING, "'outliers': emit only the outliers; 'annotate': emit every "
               "point with the `as` field.", default="outliers", choices=MODES,
               example="outliers"),
        Option("as", STRING, "Output field in annotate mode: 1.0 for an outlier, 0.0 otherwise.",
               default="outlier", example="outlier",
               check=lambda v: None if v else "must not be empty"),
    )
    example_options: ClassVar[dict] = {"field": "usage_user", "scale": 1.5}
    output_fields = ("outlier",)
    emits = ("one batch per input batch holding its outliers, unchanged (`mode` 'annotate': "
             "every point plus `outlier`, 1.0 or 0.0)")

    def setup(self) -> None:
        o = self.opts
        self.field: str = o.field
        self.scale = float(o.scale)
        self.annotate = o.mode == "annotate"
        self.out: str = o.as_

    def process_batch(self, batch: Batch, state: None) -> list[Point]:
        field = self.field
        points = batch.points
        values: list[float | None] = []  # None: no usable value
        first_problem = ""
        n_bad = 0
        for p in points:
            v = p.number(field)
            if v is None or v - v != 0.0:  # missing, not numeric, NaN or +-inf
                if not n_bad:
                    kind = p.field_type(field)
                    first_problem = ("missing" if kind is None
                                     else f"a {kind}" if v is None else str(v))
                n_bad += 1
                values.append(None)
            else:
                values.append(v)
        if n_bad:
            self._bad_points(batch, n_bad, first_problem)
        finite = [v for v in values if v is not None]
        lower, upper = tukey_fences(finite, self.scale) if finite else (0.0, 0.0)
        pass_bad = self.opts.on_error == "pass"
        annotate, out_field = self.annotate, self.out
        out = []
        for p, v in zip(points, values, strict=True):
            if v is None:
                if pass_bad:
                    out.append(p.emit())
                continue
            hit = v < lower or v > upper
            if annotate:
                out.append(p.emit({out_field: 1.0 if hit else 0.0}))
            elif hit:
                out.append(p.emit())
        return out

    def _bad_points(self, batch: Batch, n: int, first_problem: str) -> None:
        what = (f"{n} point(s) of batch group={batch.group or '-'} have no usable "
                f"{self.field!r} value (first: {first_problem})")
        if self.opts.on_error == "fail":
            raise PointError(what)
        action = "passed on unchanged" if self.opts.on_error == "pass" else "dropped"
        self.log.warning("%s: left out of the quartiles and %s", what, action)
