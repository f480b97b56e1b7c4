"""model: serve your own scikit-learn or CatBoost model, without writing Python."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from udfcollection.columns import FieldColumns
from udfcollection.points import Point
from udfcollection.spec import FLAG, STRING, UDF, InitError, Option, Options

ON_ERROR_HELP = ("A point whose model inputs are missing or not numbers: 'pass' it on "
                 "with the not-evaluated outputs (0 / ''), 'drop' it, or 'fail' the task. "
                 "Logged, rate-limited. (An error inside the model itself passes the "
                 "point on unchanged.)")


def _output_kind(model) -> str:
    """Field type of the prediction: 'double' for a regressor, else by the class labels."""
    if not model.is_classifier:
        return "double"
    classes = model.classes
    if all(type(c) is bool for c in classes):
        return "bool"
    if all(type(c) is int for c in classes):
        return "int"
    if all(type(c) in (int, float) for c in classes):
        return "double"
    return "string"


_EMPTY = {"double": 0.0, "int": 0, "bool": False, "string": ""}
_CONVERT = {"double": float, "int": int, "bool": bool, "string": str}


class ModelUDF(UDF):
    name = "model"
    summary = "Serve your own scikit-learn or CatBoost model: one prediction per point."
    description = """\
Scores every point with a model you trained yourself, without writing Python: a scikit-learn
estimator or pipeline saved with pickle or joblib, or a CatBoost model saved with
`save_model` (.cbm). The model is loaded once, at task start, only from the path given in
`model`; a missing, unreadable or invalid file fails the task's start with a message naming it.
`shipped:wind_turbine` and `shipped:weld` serve the models shipped with kapudf (hash-checked).

- Inputs are read by field name (double or int fields): the `feature` options in the model's
  input order, or by default the model's own feature names (scikit-learn `feature_names_in_`,
  set when it was fitted on a pandas DataFrame; CatBoost `feature_names_`). A model fitted on a
  plain matrix has no names: then `feature` is required.
- Output: the prediction in field `as` (a regressor's value as a float; a classifier's label as
  a string, int, float or bool like its classes). With `proba`, a classifier also emits each
  class probability as `<as>_<class>`.
- Every point is emitted with all its fields and tags. A point missing a feature, or with a
  string, bool, NaN or infinite value in one, is handled by `onError`: by default ('pass') it
  goes on with empty outputs (0, '' or FALSE, probabilities 0.0) and a rate-limited warning.
- All points already received are scored in one model call (vectorised), in order.

Security: unpickling runs code stored in the file, so a pickle must come from someone you
trust. kapudf refuses a model file (or its directory) that another user can write, naming the
path and the chmod that fixes it. CatBoost .cbm files hold no code."""
    example_measurement = "machine"
    example_group_by = ("machine",)
    options = (
        Option("model", STRING,
               "Path of the model file (scikit-learn pickle/joblib or CatBoost .cbm), or "
               "shipped:NAME for a model shipped with kapudf (shipped:weld).",
               required=True, example="/var/lib/kapudf/model.joblib",
               check=lambda v: None if v.strip() else "must not be empty"),
        Option("feature", STRING,
               "Input field, in the model's input order; repeat for each input. Default: the "
               "model's own feature names.", repeatable=True, example="temperature"),
        Option("as", STRING, "Output field for the prediction.", default="prediction",
               example="prediction", check=lambda v: None if v else "must not be empty"),
        Option("proba", FLAG,
               "Also emit each class probability as <as>_<class> (classifiers only)."),
    )
    example_options: ClassVar[dict] = {"model": "/var/lib/kapudf/model.joblib"}
    output_fields = ("prediction",)
    emits = ("every input point with the model's prediction added (and class probabilities "
             "with proba)")
    on_error_default = "pass"
    on_error_help = ON_ERROR_HELP
    heavy = True

    @classmethod
    def validate(cls, opts: Options) -> list[str]:
        dup = sorted({f for f in opts.feature if opts.feature.count(f) > 1})
        if dup:
            return [f"option feature: {', '.join(map(repr, dup))} given more than once"]
        return []

    def setup(self) -> None:
        import numpy as np

        from udfcollection.ml.inputs import BadInputPolicy
        from udfcollection.ml.loading import load_model_option
        from udfcollection.ml.manifest import ModelError

        o = self.opts
        try:
            m = load_model_option(o.model, self.log)
        except ModelError as exc:
            raise InitError(str(exc)) from None
        features = list(o.feature) or list(m.feature_names or [])
        if not features:
            n = f"its {m.n_features} inputs" if m.n_features else "its inputs"
            raise InitError(f"model {m.path} has no feature names (it was fitted on a plain "
                            f"matrix); name {n} in order with .feature('a').feature('b')...")
        if m.n_features is not None and len(features) != m.n_features:
            raise InitError(f"model {m.path} takes {m.n_features} inputs, but "
                            f"{len(features)} feature(s) were given: {', '.join(features)}")
        if o.proba and not m.has_proba:
            raise InitError(f"option proba: model {m.path} is a {m.describe()} without class "
                            "probabilities")
        self.model = m
        self.features = features
        self.kind = _output_kind(m)
        self.convert = _CONVERT[self.kind]
        self.labels = (np.array([self.convert(c) for c in m.classes], dtype=object)
                       if m.is_classifier else None)
        self.out = o.as_
        self.proba_fields = ([f"{o.as_}_{c}" for c in m.classes] if o.proba else [])
        self.not_evaluated: dict[str, Any] = {self.out: _EMPTY[self.kind]}
        for f in self.proba_fields:
            self.not_evaluated[f] = 0.0
        self.bad = BadInputPolicy(o.on_error, self.log)
        self.log.info("model %s (%s), features: %s", m.path, m.describe(), ", ".join(features))

    def column_inputs(self) -> tuple[str, ...]:
        return tuple(self.features)

    def process_many(self, points: Sequence[Point], states: list) -> FieldColumns:
        """All points already read, in order, scored in one model call (one for the class
        probabilities too when `proba` is set; a multiclass CatBoost classifier's class is then
        read off its probabilities instead of a second call)."""
        import numpy as np

        from udfcollection.ml.inputs import first_not_finite, read_matrix

        names = self.features
        X, problems = read_matrix(points, names)
        finite = np.isfinite(X).all(axis=1)
        n = len(points)
        m = self.model
        pf = self.proba_fields
        proba = np.zeros((n, len(pf)))
        # A regressor's prediction is a double column; class labels are kept as Python
        # values of the output kind (an object column).
        pred = (np.zeros(n) if self.labels is None
                else np.full(n, self.not_evaluated[self.out], dtype=object))
        if finite.any():
            Xf = X[finite]
            at = np.flatnonzero(finite)
            if pf:
                proba[at] = m.predict_proba(Xf)
            if self.labels is None:
                pred[at] = m.predict(Xf)
            elif pf and m.kind == "catboost" and len(self.labels) > 2:
                # A multiclass CatBoost class is its most probable one (a binary model may
                # carry its own probability threshold: that one is asked).
                pred[at] = self.labels[proba[at].argmax(axis=1)]
            else:
                convert = self.convert
                pred[at] = [convert(v) for v in m.predict(Xf).tolist()]
        others: dict[int, object] = {}
        for i in np.flatnonzero(~finite).tolist():
            reason = problems.get(i) or first_not_finite(names, X[i].tolist())
            others[i] = self.bad.handle(points[i], reason, self.not_evaluated)
        return FieldColumns(points, (self.out, *pf), (pred, *proba.T), others)
