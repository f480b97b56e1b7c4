"""wind_turbine: flag a turbine producing less power than its power curve predicts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from udfcollection.columns import FieldColumns
from udfcollection.points import Point
from udfcollection.spec import BOOL, DOUBLE, INT, STRING, UDF, InitError, Option, Options, UDFState

NOT_EVALUATED: dict[str, float] = {"anomaly_status": 0.0, "expected_power": 0.0,
                                   "power_error": 0.0}

ON_ERROR_HELP = ("A point whose model inputs are missing or not numbers: 'pass' it on "
                 "with the not-evaluated outputs (0 / ''), 'drop' it, or 'fail' the task. "
                 "Logged, rate-limited. (An error inside the model itself passes the "
                 "point on unchanged.)")


@dataclass
class WindState(UDFState):
    # The group's last `confirm` evaluated points, oldest first: [candidate, speed, power].
    window: list = field(default_factory=list)

    @classmethod
    def from_json(cls, data: Any) -> WindState:
        if not isinstance(data, dict) or not isinstance(data.get("window"), list):
            raise ValueError("wind_turbine state needs a 'window' list")
        window = []
        for item in data["window"]:
            if (not isinstance(item, list) or len(item) != 3 or not isinstance(item[0], bool)
                    or not all(isinstance(x, int | float) for x in item[1:])):
                raise ValueError(f"bad window entry {item!r}")
            window.append([item[0], float(item[1]), float(item[2])])
        return cls(window=window)


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys on xs; 0.0 when all xs are equal (no speed change at all, so
    the fit cannot explain the power gap by speed; scikit-learn's LinearRegression, which the
    published detector uses, also answers 0 there)."""
    n = len(xs)
    mx = sum(xs) / n
    my = sum(ys) / n
    sxx = sum((x - mx) * (x - mx) for x in xs)
    if sxx == 0.0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def level(error: float) -> float:
    """anomaly_status of a confirmed anomaly: 0.3 LOW, 0.6 MEDIUM, 1.0 HIGH."""
    if error < 0.3:
        return 0.3
    if error < 0.6:
        return 0.6
    return 1.0


class WindTurbine(UDF):
    name = "wind_turbine"
    summary = "Flag turbine output below its power curve, confirmed over consecutive points."
    description = """\
Compares a wind turbine's active power with the power its power curve (a model of power from
wind speed) predicts, and flags sustained under-production. Per group (one group per turbine:
use groupBy), for each point in arrival order:

- Not evaluated (`anomaly_status` 0.0, `expected_power` 0.0, `power_error` 0.0) when speed or
  power is NaN, power is infinite, speed <= `cutIn` (so also -inf), speed > `cutOut` (so also
  +inf), or power < `minPower`: the turbine is not in its normal producing range, so there is
  nothing to compare. This is not an error.
- Otherwise `expected_power` = model(speed), `power_error` = (expected - power) / power, and the
  point is a candidate when `power_error` > `threshold`.
- An anomaly is confirmed when the group's last `confirm` evaluated points (this one included)
  were all candidates and a straight-line fit of power on speed over them has |slope| <
  `maxSlope`. A steep fit means power is following speed along the curve's steep part rather
  than falling short of it; the point then counts as a non-candidate, so a new run of `confirm`
  candidates is needed.
- A confirmed anomaly gets `anomaly_status` 0.3 (LOW) when error < 0.3, 0.6 (MEDIUM) when
  error < 0.6, else 1.0 (HIGH); every other point 0.0.

Every point is emitted with all its fields and tags plus `anomaly_status`, `expected_power` and
`power_error`. Not-evaluated points do not break a run of candidates unless
`notEvaluatedBreaks` is set (the published detector's behaviour, which it resets on every
point outside the producing range). A point whose speed or power field is missing, or a string
or bool, is handled by `onError`: by default ('pass') it goes on with the not-evaluated outputs
and a rate-limited warning. The window of each group survives snapshot/restore.

Model: the shipped power curve (scikit-learn isotonic regression of T1.csv's
Theoretical_Power_Curve on wind_speed, see models/manifest.json), or your own scikit-learn
regressor (pickle/joblib) or CatBoost model with one input, wind speed, via `model`. Retrain
with `kapudf train wind_turbine --data your.csv`."""
    example_measurement = "turbine"
    example_group_by = ("turbine",)
    options = (
        Option("speedField", STRING, "Field holding the wind speed (m/s).",
               default="wind_speed", example="wind_speed"),
        Option("powerField", STRING, "Field holding the active power (kW).",
               default="grid_active_power", example="grid_active_power"),
        Option("cutIn", DOUBLE, "Points at or below this wind speed are not evaluated.",
               default=3.0, min=0.0, example=3.0),
        Option("cutOut", DOUBLE, "Points above this wind speed are not evaluated.",
               default=14.0, min=0.0, example=14.0),
        Option("minPower", DOUBLE, "Points producing less than this power are not evaluated.",
               default=50.0, min=0.0, min_exclusive=True, example=50.0),
        Option("threshold", DOUBLE,
               "Relative shortfall (expected - power) / power above which a point is a "
               "candidate.", default=0.15, min=0.0, example=0.15),
        Option("confirm", INT, "Consecutive evaluated candidates needed to confirm an anomaly.",
               default=3, min=1, max=1000, example=3),
        Option("maxSlope", DOUBLE,
               "Largest |slope| (kW per m/s) of the power-on-speed fit over the confirming "
               "points for the anomaly to stand.", default=200.0, min=0.0, example=200.0),
        Option("notEvaluatedBreaks", BOOL,
               "Let a not-evaluated point break a run of candidates (as the published "
               "detector does).", default=False, example=False),
        Option("model", STRING,
               "Path of your own power-curve model (scikit-learn pickle/joblib or CatBoost "
               ".cbm, one input: wind speed); '' uses the shipped model. A pickle runs code "
               "when loaded: the file must not be writable by other users.",
               default="", example="/var/lib/kapudf/power_curve.pkl"),
    )
    example_options: ClassVar[dict] = {"speedField": "wind_speed",
                                       "powerField": "grid_active_power"}
    output_fields = ("anomaly_status", "expected_power", "power_error")
    emits = ("every input point with anomaly_status (0.0, or 0.3/0.6/1.0 for a confirmed "
             "LOW/MEDIUM/HIGH anomaly), expected_power and power_error added")
    on_error_default = "pass"
    on_error_help = ON_ERROR_HELP
    heavy = True
    State = WindState
    state_version = 1

    @classmethod
    def validate(cls, opts: Options) -> list[str]:
        if opts.cut_out <= opts.cut_in:
            return [f"option cutOut ({opts.cut_out!r}) must be above option cutIn "
                    f"({opts.cut_in!r})"]
        return []

    def setup(self) -> None:
        from udfcollection.ml.inputs import BadInputPolicy
        from udfcollection.ml.loading import load_model_option, load_shipped
        from udfcollection.ml.manifest import ModelError

        o = self.opts
        try:
            self.model = load_model_option(o.model, self.log) if o.model else load_shipped(
                "wind_turbine", self.log)
        except ModelError as exc:
            raise InitError(str(exc)) from None
        m = self.model
        if m.is_classifier:
            raise InitError(f"model {m.path} is a classifier ({m.describe()}); wind_turbine "
                            "needs a regressor predicting power from wind speed")
        if m.n_features not in (None, 1):
            raise InitError(f"model {m.path} takes {m.n_features} inputs; wind_turbine's model "
                            "takes one, the wind speed")
        self.log.info("power curve model: %s (%s)", m.path, m.describe())
        self.bad = BadInputPolicy(o.on_error, self.log)
        self.speed_field: str = o.speed_field
        self.power_field: str = o.power_field

    def column_inputs(self) -> tuple[str, ...]:
        return (self.speed_field, self.power_field)

    def process_many(self, points: Sequence[Point], states: list[WindState]) -> FieldColumns:
        """All points already read, in order: one model call for every evaluated point, then
        the per-group confirmation logic in arrival order over the evaluated points."""
        import numpy as np

        from udfcollection.ml.inputs import read_matrix

        o = self.opts
        X, problems = read_matrix(points, self.column_inputs())
        speed, power = X[:, 0], X[:, 1]
        # NaN compares False, so NaN speed or power (and a missing input, read as NaN) is
        # "not evaluated" here; an infinite power would make power_error NaN, which InfluxDB
        # refuses to store.
        with np.errstate(invalid="ignore"):
            evaluated = ((speed > o.cut_in) & (speed <= o.cut_out) & (power >= o.min_power)
                         & np.isfinite(power))
        n = len(points)
        expected = np.zeros(n)
        error = np.zeros(n)
        status = np.zeros(n)
        if evaluated.any():
            # The model runs before any state changes: if it raises, the handler may retry
            # points one by one without a window having been advanced twice.
            expected[evaluated] = self.model.predict(speed[evaluated].reshape(-1, 1))
            error[evaluated] = (expected[evaluated] - power[evaluated]) / power[evaluated]
        others = {i: self.bad.handle(points[i], reason, NOT_EVALUATED)
                  for i, reason in problems.items()}
        if o.not_evaluated_breaks:
            visit = [i for i in range(n) if i not in problems] if problems else range(n)
        else:
            visit = np.flatnonzero(evaluated).tolist()  # the others leave windows alone
        self._confirm(states, visit, evaluated, error, speed, power, status)
        return FieldColumns(points, ("anomaly_status", "expected_power", "power_error"),
                            (status, expected, error), others)

    def _confirm(self, states: list[WindState], visit, evaluated, error, speed, power,
                 status) -> None:
        """Advance the windows of the points `visit` (indices, in arrival order) and set
        `status` where an anomaly is confirmed."""
        o = self.opts
        confirm, max_slope = o.confirm, o.max_slope
        ev_l, err_l = evaluated.tolist(), error.tolist()
        cand_l = (error > o.threshold).tolist()  # False wherever not evaluated (error 0)
        speed_l, power_l = speed.tolist(), power.tolist()
        for i in visit:
            window = states[i].window
            if not ev_l[i]:
                _push(window, [False, 0.0, 0.0], confirm)
                continue
            entry = [cand_l[i], speed_l[i], power_l[i]]
            _push(window, entry, confirm)
            if entry[0] and len(window) == confirm and all(x[0] for x in window):
                if abs(slope([x[1] for x in window], [x[2] for x in window])) < max_slope:
                    status[i] = level(err_l[i])
                else:
                    entry[0] = False


def _push(window: list, entry: list, size: int) -> None:
    window.append(entry)
    if len(window) > size:
        del window[: len(window) - size]
