"""weld: classify welding sensor readings as a good weld or one of eleven defect kinds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from udfcollection.columns import FieldColumns
from udfcollection.points import Point
from udfcollection.spec import DOUBLE, STRING, UDF, InitError, Option

FEATURES = ("Pressure", "CO2 Weld Flow", "Feed", "Primary Weld Current", "Wire Consumed",
            "Secondary Weld Voltage")
CURRENT = "Primary Weld Current"
NOT_EVALUATED: dict[str, Any] = {"defect_probability": 0.0, "weld_class": "",
                                 "anomaly_status": 0.0}

ON_ERROR_HELP = ("A point whose model inputs are missing or not numbers: 'pass' it on "
                 "with the not-evaluated outputs (0 / ''), 'drop' it, or 'fail' the task. "
                 "Logged, rate-limited. (An error inside the model itself passes the "
                 "point on unchanged.)")


def good_class(classes: list, declared: str | None = None) -> Any:
    """The class label meaning a good weld: the manifest's `good_class` for the shipped model,
    else the one label starting with 'good' (case-insensitive)."""
    if declared is not None and declared in classes:
        return declared
    goods = [c for c in classes if str(c).strip().lower().startswith("good")]
    if len(goods) != 1:
        return None
    return goods[0]


class Weld(UDF):
    name = "weld"
    summary = "Score welding sensor readings: defect probability and most likely defect kind."
    description = """\
Scores each reading of a welding cell (MIG/MAG sensors: `Pressure`, `CO2 Weld Flow`, `Feed`,
`Primary Weld Current`, `Wire Consumed`, `Secondary Weld Voltage`) with a multiclass CatBoost
model that knows a good weld and eleven defect kinds: burnthrough, crater cracks, excessive
convexity, excessive penetration, lack of fusion, overlap, two kinds of porosity with excessive
penetration, spatter, undercut and warping.

- Only readings while welding are evaluated: `Primary Weld Current` > `minCurrent`. Others
  (the torch idling) are emitted with `defect_probability` 0.0, `weld_class` '' and
  `anomaly_status` 0.0. This is not an error.
- Evaluated readings get `defect_probability` = 1 - P(good weld), `weld_class` = the most
  likely class name (e.g. 'good_weld', 'porosity_w_ep'), and `anomaly_status` 1.0 when
  `defect_probability` > `threshold`, else 0.0.
- Features are looked up by field name (double or int fields). A reading missing one, or with
  a string, bool or NaN in one, is handled by `onError`: by default ('pass') it goes on with
  the not-evaluated outputs and a rate-limited warning.
- Every reading is emitted with all its fields and tags; stateless, so grouping does not matter.
- All readings already received are scored in one model call.

The shipped model's held-out accuracy, good-weld false-positive rate and defect recall are in
models/manifest.json and the README. Give your own CatBoost .cbm or scikit-learn classifier
with `model` (its classes must include exactly one whose name starts with 'good'; its own
feature names are used when it has them); retrain with `kapudf train weld --data DIR`."""
    example_measurement = "weld_sensors"
    example_group_by = ("station",)
    options = (
        Option("minCurrent", DOUBLE,
               "Readings with Primary Weld Current at or below this are not evaluated (idle).",
               default=50.0, example=50.0),
        Option("threshold", DOUBLE,
               "anomaly_status is 1.0 when defect_probability is above this.",
               default=0.5, min=0.0, max=1.0, example=0.5),
        Option("model", STRING,
               "Path of your own classifier (CatBoost .cbm, or scikit-learn pickle/joblib); "
               "'' uses the shipped model. A pickle runs code when loaded: the file must not "
               "be writable by other users.", default="", example="/var/lib/kapudf/weld.cbm"),
    )
    example_options: ClassVar[dict] = {"threshold": 0.5}
    output_fields = ("defect_probability", "weld_class", "anomaly_status")
    emits = ("every input point with defect_probability, weld_class and anomaly_status (1.0 "
             "for a likely defect) added")
    on_error_default = "pass"
    on_error_help = ON_ERROR_HELP
    heavy = True

    def setup(self) -> None:
        import numpy as np

        from udfcollection.ml.inputs import BadInputPolicy
        from udfcollection.ml.loading import load_model_option, load_shipped
        from udfcollection.ml.manifest import ModelError

        o = self.opts
        try:
            m = load_model_option(o.model, self.log) if o.model else load_shipped("weld", self.log)
        except ModelError as exc:
            raise InitError(str(exc)) from None
        if not m.has_proba:
            raise InitError(f"model {m.path} is a {m.describe()} without class probabilities; "
                            "weld needs a classifier with predict_proba")
        self.good = good_class(m.classes, m.entry.get("good_class"))
        if self.good is None:
            raise InitError(f"model {m.path}: cannot tell which class is a good weld; its "
                            f"classes are {', '.join(map(str, m.classes))} (exactly one must "
                            "start with 'good')")
        self.features: tuple[str, ...] = tuple(m.feature_names or FEATURES)
        if m.n_features is not None and m.n_features != len(self.features):
            raise InitError(f"model {m.path} takes {m.n_features} inputs but has no feature "
                            f"names; weld feeds the {len(FEATURES)} standard ones: "
                            + ", ".join(FEATURES))
        if CURRENT not in self.features:
            self.features = (*self.features, CURRENT)  # the gate needs it even if the model not
        self.current_col = self.features.index(CURRENT)
        self.model = m
        self.n_model_features = m.n_features or len(FEATURES)
        self.good_index = m.classes.index(self.good)
        self.class_names = [str(c) for c in m.classes]
        # weld_class by index: 0 is '' (not evaluated), c + 1 is class c
        self.labels = np.array(["", *self.class_names], dtype=object)
        self.bad = BadInputPolicy(o.on_error, self.log)
        self.log.info("weld model: %s (%s), features: %s", m.path, m.describe(),
                      ", ".join(self.features[: self.n_model_features]))

    def column_inputs(self) -> tuple[str, ...]:
        return tuple(self.features)

    def process_many(self, points: Sequence[Point], states: list) -> FieldColumns:
        """All points already read, in order, scored in one model call."""
        import numpy as np

        from udfcollection.ml.inputs import first_not_finite, read_matrix

        min_current = self.opts.min_current
        n_model = self.n_model_features
        X, problems = read_matrix(points, self.features)
        with np.errstate(invalid="ignore"):
            welding = X[:, self.current_col] > min_current  # NaN current: not welding
        finite = np.isfinite(X[:, :n_model]).all(axis=1)
        scored = welding & finite
        n = len(points)
        defect = np.zeros(n)
        status = np.zeros(n)
        label = np.zeros(n, dtype=np.intp)  # 0: '' (not evaluated), c + 1: class c
        if scored.any():
            proba = self.model.predict_proba(X[scored, :n_model])
            defect[scored] = np.clip(1.0 - proba[:, self.good_index], 0.0, 1.0)
            label[scored] = proba.argmax(axis=1) + 1
            status[scored] = defect[scored] > self.opts.threshold
        others: dict[int, object] = {}
        for i in np.flatnonzero(welding & ~finite).tolist():
            reason = first_not_finite(self.features, X[i].tolist())
            others[i] = self.bad.handle(points[i], reason, NOT_EVALUATED)
        for i, reason in problems.items():
            # An idle reading is not evaluated even when other inputs are unusable.
            current = points[i].number(CURRENT)
            if current is None or current > min_current:
                others[i] = self.bad.handle(points[i], reason, NOT_EVALUATED)
        return FieldColumns(points, ("defect_probability", "weld_class", "anomaly_status"),
                            (defect, self.labels[label], status), others)
