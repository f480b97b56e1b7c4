"""The `model` UDF (bring your own model) and the rules for loading a user's model file.

Models here are tiny real scikit-learn / CatBoost models fitted on data with a known answer, so
the expected predictions follow from the data, not from running the UDF.
"""

from __future__ import annotations

import os
import pickle
from typing import ClassVar

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import LinearRegression, LogisticRegression

from udfcollection.lineprotocol import LPPoint
from udfcollection.offline import InitFailed, OfflineRunner, run
from udfcollection.udfs.model import ModelUDF

T0 = 1_700_000_000_000_000_000
S = 1_000_000_000


def opts(**kw):
    decl = {o.name: o for o in ModelUDF.all_options()}
    out = []
    for k, v in kw.items():
        name = "as" if k == "as_" else k
        if decl[name].type == "flag":
            out.append((name, []))
        elif isinstance(v, list):
            out += [(name, [(decl[name].type, x)]) for x in v]
        else:
            out.append((name, [(decl[name].type, v)]))
    return out


def save(path, obj, mode=0o644, how="pickle"):
    if how == "joblib":
        joblib.dump(obj, path)
    else:
        path.write_bytes(pickle.dumps(obj))
    path.chmod(mode)
    return str(path)


def plane(tmp_path, frame=True):
    """y = 2a + 3b + 1, fitted exactly; with frame=True it knows its feature names a, b."""
    X = pd.DataFrame({"a": [0.0, 1.0, 0.0, 2.0, 5.0], "b": [0.0, 0.0, 1.0, 1.0, 3.0]})
    y = 2 * X["a"] + 3 * X["b"] + 1
    m = LinearRegression().fit(X if frame else X.to_numpy(), y)
    return save(tmp_path / "plane.pkl", m)


def pts(rows, tags=None):
    return [LPPoint("m", dict(tags or {"host": "h"}), dict(r), T0 + i * S)
            for i, r in enumerate(rows)]


class CountingRegressor(BaseEstimator, RegressorMixin):
    """Predicts 10 * x and counts its predict calls (a real estimator, not a mock)."""

    calls: ClassVar[list[int]] = []

    def fit(self, X, y):
        self.n_features_in_ = 1
        return self

    def predict(self, X):
        CountingRegressor.calls.append(len(X))
        return 10.0 * np.asarray(X)[:, 0]


# --- predictions -------------------------------------------------------------------------------

def test_regressor_uses_its_own_feature_names(tmp_path):
    model = plane(tmp_path)
    # map order differs per point; b=4, a=1 -> 2 + 12 + 1 = 15
    rows = [{"b": 4.0, "a": 1.0, "x": "keep"}, {"a": 3, "b": 0.5}, {"zz": 1.0, "a": -1.0, "b": 0.0}]
    out = run(ModelUDF, pts(rows), opts(model=model))
    assert [p.fields["prediction"] for p in out.points] == pytest.approx([15.0, 8.5, -1.0])
    assert out.points[0].fields["x"] == "keep" and out.points[0].tags == {"host": "h"}


def test_feature_option_maps_fields_in_model_input_order(tmp_path):
    model = plane(tmp_path, frame=False)  # no names: inputs are given in order
    rows = [{"speed": 1.0, "load": 4.0}]
    out = run(ModelUDF, pts(rows), opts(model=model, feature=["speed", "load"], as_="y"))
    assert out.points[0].fields["y"] == pytest.approx(15.0)
    swapped = run(ModelUDF, pts(rows), opts(model=model, feature=["load", "speed"], as_="y"))
    assert swapped.points[0].fields["y"] == pytest.approx(2 * 4 + 3 * 1 + 1)


def test_classifier_labels_and_probabilities(tmp_path):
    X = pd.DataFrame({"t": [10.0, 12.0, 14.0, 30.0, 32.0, 34.0]})
    y = ["cold", "cold", "cold", "hot", "hot", "hot"]
    clf = LogisticRegression().fit(X, y)
    model = save(tmp_path / "clf.joblib", clf, how="joblib")
    out = run(ModelUDF, pts([{"t": 11.0}, {"t": 33.0}]), opts(model=model, as_="state",
                                                             proba=True))
    a, b = out.points
    assert (a.fields["state"], b.fields["state"]) == ("cold", "hot")
    for p in (a, b):
        assert p.fields["state_cold"] + p.fields["state_hot"] == pytest.approx(1.0)
    assert a.fields["state_cold"] > 0.5 > b.fields["state_cold"]
    want = clf.predict_proba(pd.DataFrame({"t": [11.0, 33.0]}))
    assert [a.fields["state_hot"], b.fields["state_hot"]] == pytest.approx(list(want[:, 1]))


def test_integer_labels_are_int_fields_and_replace_a_same_named_input(tmp_path):
    X = pd.DataFrame({"v": [0.0, 1.0, 2.0, 8.0, 9.0, 10.0]})
    model = save(tmp_path / "c.pkl", LogisticRegression().fit(X, [0, 0, 0, 1, 1, 1]))
    # the input already has a string field named like the output: the output replaces it
    out = run(ModelUDF, pts([{"v": 9.5, "prediction": "stale"}, {"v": 0.5}]),
              opts(model=model))
    assert [p.fields["prediction"] for p in out.points] == [1, 0]
    assert all(type(p.fields["prediction"]) is int for p in out.points)


def test_catboost_cbm_regressor(tmp_path):
    from catboost import CatBoostRegressor

    X = pd.DataFrame({"a": np.arange(40.0), "b": np.arange(40.0) % 4})
    m = CatBoostRegressor(iterations=30, depth=3, random_seed=0, verbose=0,
                          allow_writing_files=False, thread_count=1)
    m.fit(X, X["a"] * 2)
    # any extension: CatBoost files are recognised by their header, never unpickled
    path = tmp_path / "reg.model"
    m.save_model(str(path))
    out = run(ModelUDF, pts([{"a": 10.0, "b": 2.0}, {"b": 1.0, "a": 30.0}]),
              opts(model=str(path)))
    want = m.predict(pd.DataFrame({"a": [10.0, 30.0], "b": [2.0, 1.0]}))
    assert [p.fields["prediction"] for p in out.points] == pytest.approx(list(want))


def test_all_points_already_read_are_scored_in_one_call_in_order(tmp_path):
    model = save(tmp_path / "count.pkl", CountingRegressor().fit(None, None))
    runner = OfflineRunner(ModelUDF, opts(model=model, feature=["x"]))
    rows = [{"x": float(i)} for i in range(1000)]
    CountingRegressor.calls.clear()
    from udfcollection.offline import to_request

    for p in pts(rows):  # the agent hands over everything read before it drains
        runner.feed_point(to_request(p, ()))
    out = runner.finish()
    assert CountingRegressor.calls == [1000]
    assert [p.fields["prediction"] for p in out.points] == [10.0 * i for i in range(1000)]


def test_bad_inputs_follow_on_error(tmp_path):
    model = plane(tmp_path)
    rows = [{"a": 1.0, "b": 1.0}, {"a": 1.0}, {"a": "x", "b": 1.0}, {"a": float("inf"), "b": 1.0},
            {"a": 0.0, "b": 0.0}]
    passed = run(ModelUDF, pts(rows), opts(model=model))
    assert [p.fields["prediction"] for p in passed.points] == pytest.approx(
        [6.0, 0.0, 0.0, 0.0, 1.0])
    dropped = run(ModelUDF, pts(rows), opts(model=model, onError="drop"))
    assert [p.fields["prediction"] for p in dropped.points] == pytest.approx([6.0, 1.0])


# --- init errors --------------------------------------------------------------------------------

def test_init_errors(tmp_path):
    nameless = plane(tmp_path, frame=False)
    with pytest.raises(InitFailed, match=r"has no feature names .* name its 2 inputs"):
        OfflineRunner(ModelUDF, opts(model=nameless))
    with pytest.raises(InitFailed, match="takes 2 inputs, but 1 feature"):
        OfflineRunner(ModelUDF, opts(model=nameless, feature=["a"]))
    with pytest.raises(InitFailed, match=r"proba: model .* without class probabilities"):
        OfflineRunner(ModelUDF, opts(model=nameless, feature=["a", "b"], proba=True))
    with pytest.raises(InitFailed, match="'a' given more than once"):
        OfflineRunner(ModelUDF, opts(model=nameless, feature=["a", "a"]))
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"definitely not a model")
    garbage.chmod(0o644)
    with pytest.raises(InitFailed, match=f"cannot load model {garbage}: not a scikit-learn"):
        OfflineRunner(ModelUDF, opts(model=str(garbage)))
    not_model = save(tmp_path / "dict.pkl", {"weights": [1, 2]})
    with pytest.raises(InitFailed, match=r"holds a builtins\.dict, not an estimator"):
        OfflineRunner(ModelUDF, opts(model=not_model))
    with pytest.raises(InitFailed, match="is a directory"):
        OfflineRunner(ModelUDF, opts(model=str(tmp_path)))
    with pytest.raises(InitFailed, match=f"cannot read model {tmp_path / 'none.pkl'}: no such"):
        OfflineRunner(ModelUDF, opts(model=str(tmp_path / "none.pkl")))


# --- who may have written the file ---------------------------------------------------------------

class Boom:
    """Unpickling this runs code: it creates the file named in `marker`."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_world_writable_pickle_is_refused_before_it_is_loaded(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(Boom(str(marker))))
    path.chmod(0o666)
    with pytest.raises(InitFailed) as info:
        OfflineRunner(ModelUDF, opts(model=str(path)))
    msg = str(info.value)
    assert f"model file {path} is writable by group and others (mode 0666)" in msg
    assert f"chmod go-w {path}" in msg
    assert not marker.exists()  # refused before unpickling
    # the same file, made private, is loaded: and then its code does run (which is why the
    # check exists), after which it is refused for not being a model
    path.chmod(0o644)
    with pytest.raises(InitFailed, match="not an estimator"):
        OfflineRunner(ModelUDF, opts(model=str(path)))
    assert marker.exists()


def test_group_writable_file_and_directory_are_refused(tmp_path):
    model = plane(tmp_path)
    os.chmod(model, 0o664)
    with pytest.raises(InitFailed, match=r"writable by group \(mode 0664\)"):
        OfflineRunner(ModelUDF, opts(model=model))
    os.chmod(model, 0o644)
    shared = tmp_path / "shared"
    shared.mkdir()
    inside = shared / "plane.pkl"
    os.replace(model, inside)
    shared.chmod(0o777)
    with pytest.raises(InitFailed) as info:
        OfflineRunner(ModelUDF, opts(model=str(inside)))
    assert f"in directory {shared}, which is writable by group and others" in str(info.value)
    assert f"chmod go-w {shared}" in str(info.value)
    # a sticky directory (like /tmp) lets only the owner replace the file: accepted
    shared.chmod(0o1777)
    OfflineRunner(ModelUDF, opts(model=str(inside)))


def test_symlink_is_checked_at_its_target(tmp_path):
    model = plane(tmp_path)
    link = tmp_path / "link.pkl"
    link.symlink_to(model)
    OfflineRunner(ModelUDF, opts(model=str(link)))
    os.chmod(model, 0o646)
    with pytest.raises(InitFailed, match=f"model file {model} is writable by others"):
        OfflineRunner(ModelUDF, opts(model=str(link)))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the file to another user")
def test_file_owned_by_another_user_is_refused(tmp_path):
    model = plane(tmp_path)
    os.chown(model, 4321, 4321)
    with pytest.raises(InitFailed, match=r"is owned by uid 4321, not by this user"):
        OfflineRunner(ModelUDF, opts(model=model))


def test_catboost_file_is_checked_too(tmp_path):
    from catboost import CatBoostRegressor

    m = CatBoostRegressor(iterations=5, verbose=0, allow_writing_files=False)
    m.fit(pd.DataFrame({"a": np.arange(10.0)}), np.arange(10.0))
    path = tmp_path / "m.cbm"
    m.save_model(str(path))
    path.chmod(0o666)
    with pytest.raises(InitFailed, match="writable by group and others"):
        OfflineRunner(ModelUDF, opts(model=str(path)))


def test_shipped_models_can_be_served(tmp_path):
    out = run(ModelUDF, pts([{"wind_speed": 20.0}]),
              opts(model="shipped:wind_turbine", feature=["wind_speed"]))
    assert out.points[0].fields["prediction"] == 3600.0  # the power curve's plateau
    with pytest.raises(InitFailed, match="lists no model 'nope'"):
        OfflineRunner(ModelUDF, opts(model="shipped:nope"))


def test_catboost_classes_with_and_without_proba_are_what_catboost_predicts(tmp_path):
    """With `proba`, a multiclass CatBoost model's class is read off its probabilities (one
    call); a binary one may carry its own probability threshold, so CatBoost is asked. Either
    way the class is the one CatBoost's own predict gives."""
    from catboost import CatBoostClassifier

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 3, 300)
    rows = [{"x": float(v)} for v in x]
    for labels in (["low", "high"], ["low", "mid", "high"]):
        y = [labels[min(int(v * len(labels) / 3), len(labels) - 1)] for v in x]
        clf = CatBoostClassifier(iterations=20, depth=2, random_seed=0, verbose=False,
                                 thread_count=1).fit(pd.DataFrame({"x": x}), y)
        if len(labels) == 2:
            clf.set_probability_threshold(0.9)  # the class is no longer the likelier one
        path = str(tmp_path / f"clf{len(labels)}.cbm")
        clf.save_model(path)
        os.chmod(path, 0o644)
        want = [str(c) for c in np.asarray(clf.predict(pd.DataFrame({"x": x}))).reshape(-1)]
        for proba in (True, False):
            kw = {"proba": True} if proba else {}
            out = run(ModelUDF, pts(rows), opts(model=path, feature=["x"], **kw))
            assert [p.fields["prediction"] for p in out.points] == want, (labels, proba)
