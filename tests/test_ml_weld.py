"""weld: gating, class output, feature lookup by name, and the shipped model's metrics.

Scored values are checked against the shipped CatBoost model called directly on the CSV rows
(plain catboost, columns in the model's order, no kapudf code), so the UDF's plumbing (field
lookup by name, gating, output fields) is what is tested, not the model's numbers.
"""

from __future__ import annotations

import csv
import pickle
import random

import numpy as np
import pytest
from kapudf_testkit import CASES, read_case

from udfcollection.lineprotocol import LPPoint
from udfcollection.ml.data import WELD_DIR, weld_class_of, weld_run_files
from udfcollection.ml.manifest import read_manifest, shipped_models_dir
from udfcollection.offline import InitFailed, OfflineRunner, run
from udfcollection.udfs.weld import CURRENT, FEATURES, Weld, good_class

T0 = 1_700_000_000_000_000_000
S = 100_000_000


def opts(**kw):
    decl = {o.name: o for o in Weld.all_options()}
    return [(k, [(decl[k].type, v)]) for k, v in kw.items()]


@pytest.fixture(scope="module")
def catboost_model():
    from catboost import CatBoost

    path, _ = shipped_models_dir(), None
    m = CatBoost()
    m.load_model(str(path / read_manifest(path)["models"]["weld"]["file"]))
    return m


def direct(model, rows):
    """(defect probability, class) per row from plain CatBoost, columns in FEATURES order."""
    proba = model.predict(np.array([[r[k] for k in FEATURES] for r in rows]),
                          prediction_type="Probability")
    classes = list(model.classes_)
    good = classes.index("good_weld")
    return [(1.0 - p[good], classes[int(np.argmax(p))]) for p in proba]


def run_rows(path):
    with path.open(newline="") as fh:
        return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(fh)]


def points_of(rows, shuffle_seed=None, tag="s1"):
    out = []
    rng = random.Random(shuffle_seed)
    for i, r in enumerate(rows):
        keys = list(r)
        if shuffle_seed is not None:
            rng.shuffle(keys)
        out.append(LPPoint("weld", {"station": tag}, {k: r[k] for k in keys}, T0 + i * S))
    return out


def test_scores_match_plain_catboost_whatever_the_field_order(catboost_model):
    rows = []
    for f in weld_run_files(WELD_DIR):
        rows += run_rows(f)[::7]
    welding = [r for r in rows if r[CURRENT] > 50.0]
    want = direct(catboost_model, welding)
    for seed in (None, 1, 2):
        out = run(Weld, points_of(rows, seed))
        assert len(out.points) == len(rows)
        scored = [p for p in out.points if p.fields["weld_class"]]
        assert len(scored) == len(welding)
        for p, (d, cls) in zip(scored, want, strict=True):
            assert p.fields["defect_probability"] == pytest.approx(d, rel=1e-12, abs=1e-15)
            assert p.fields["weld_class"] == cls
            assert p.fields["anomaly_status"] == (1.0 if d > 0.5 else 0.0)


def test_golden_case_values_come_from_plain_catboost(catboost_model):
    """tests/cases/weld/held_out_rows/expected.lp holds CatBoost's own answers for its rows."""
    case = read_case(CASES / "weld" / "held_out_rows")
    from udfcollection.lineprotocol import parse_lines

    with open(case.path / "expected.lp", encoding="utf-8") as fh:
        expected = list(parse_lines(fh, "ns", "expected.lp"))
    welding = [p for p in case.points if p.fields[CURRENT] > 50.0]
    want = direct(catboost_model, [p.fields for p in welding])
    got = [p for p in expected if p.fields["weld_class"]]
    assert len(got) == len(want) == 9
    for p, (d, cls) in zip(got, want, strict=True):
        assert p.fields["defect_probability"] == pytest.approx(d, rel=1e-12)
        assert p.fields["weld_class"] == cls == p.tags["run"]  # held-out rows, true class


def test_gating_on_primary_weld_current():
    base = {"Pressure": 0.2, "CO2 Weld Flow": 4.0, "Feed": 53.0, "Wire Consumed": 1500.0,
            "Secondary Weld Voltage": 20.0}
    currents = [0.0, 50.0, 50.0001, 120.0, float("nan"), 75]
    pts = [LPPoint("weld", {}, {**base, CURRENT: c}, T0 + i * S) for i, c in enumerate(currents)]
    out = run(Weld, pts)
    assert [bool(p.fields["weld_class"]) for p in out.points] == [
        False, False, True, True, False, True]
    for p in out.points:
        if not p.fields["weld_class"]:
            assert (p.fields["defect_probability"], p.fields["anomaly_status"]) == (0.0, 0.0)
    higher = run(Weld, pts, opts(minCurrent=100.0))
    assert [bool(p.fields["weld_class"]) for p in higher.points] == [
        False, False, False, True, False, False]


def test_threshold_option_sets_anomaly_status(catboost_model):
    rows = [r for f in weld_run_files(WELD_DIR) for r in run_rows(f)[::11] if r[CURRENT] > 50]
    want = direct(catboost_model, rows)
    for t in (0.0, 0.5, 0.9, 1.0):
        out = run(Weld, points_of(rows), opts(threshold=t))
        assert [p.fields["anomaly_status"] for p in out.points] == [
            1.0 if d > t else 0.0 for d, _ in want]


def test_outputs_are_always_written_and_inputs_kept():
    p = LPPoint("weld", {"station": "s9", "line": "2"},
                {"Pressure": 0.1, "CO2 Weld Flow": 3.0, "Feed": 50.0, CURRENT: 130.0,
                 "Wire Consumed": 900.0, "Secondary Weld Voltage": 19.0, "operator": "ann",
                 "seam": 4}, T0)
    idle = LPPoint("weld", {"station": "s9"}, {CURRENT: 0.0}, T0 + S)
    out = run(Weld, [p, idle])
    a, b = out.points
    assert a.tags == p.tags and {k: a.fields[k] for k in p.fields} == p.fields
    assert isinstance(a.fields["defect_probability"], float)
    assert a.fields["weld_class"] in read_manifest(shipped_models_dir())["models"]["weld"][
        "classes"]
    assert b.fields == {CURRENT: 0.0, "defect_probability": 0.0, "weld_class": "",
                        "anomaly_status": 0.0}


def test_bad_inputs_follow_on_error():
    ok = {"Pressure": 0.1, "CO2 Weld Flow": 3.0, "Feed": 50.0, CURRENT: 130.0,
          "Wire Consumed": 900.0, "Secondary Weld Voltage": 19.0}
    no_feed = {k: v for k, v in ok.items() if k != "Feed"}
    stringy = {**ok, "Pressure": "high"}
    nan = {**ok, "Pressure": float("nan")}
    idle_no_feed = {**no_feed, CURRENT: 10.0}
    rows = [ok, no_feed, stringy, nan, idle_no_feed]
    pts = [LPPoint("weld", {}, r, T0 + i * S) for i, r in enumerate(rows)]
    passed = run(Weld, pts)
    assert [bool(p.fields["weld_class"]) for p in passed.points] == [True] + [False] * 4
    dropped = run(Weld, pts, opts(onError="drop"))
    # the idle reading is not an error: not evaluated, kept
    assert [p.time for p in dropped.points] == [T0, T0 + 4 * S]
    from udfcollection.agent.runtime import FatalError

    with pytest.raises(FatalError, match="'Feed' is missing"):
        run(Weld, pts, opts(onError="fail"))


def test_vectorised_and_one_at_a_time_agree():
    rows = [r for f in weld_run_files(WELD_DIR) for r in run_rows(f)[::13]]
    pts = points_of(rows, 3)
    together = run(Weld, pts)
    runner = OfflineRunner(Weld, [])
    for p in pts:  # drain after every point: process_many gets one point at a time
        runner.feed_stream([p])
    assert runner.finish().points == together.points


# --- own models ---------------------------------------------------------------------------------

def _own_classifier(tmp_path, labels=("good", "porosity"), names=True):
    import pandas as pd
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(60, 2)), columns=["Feed", CURRENT])
    X[CURRENT] = X[CURRENT] * 10 + 100
    y = np.where(X["Feed"] > 0, labels[1], labels[0])
    clf = RandomForestClassifier(n_estimators=5, random_state=0)
    clf.fit(X if names else X.to_numpy(), y)
    path = tmp_path / "own.pkl"
    path.write_bytes(pickle.dumps(clf))
    path.chmod(0o644)
    return path, clf


def test_own_classifier_with_feature_names(tmp_path):
    path, clf = _own_classifier(tmp_path)
    pts = [LPPoint("weld", {}, {"Feed": f, CURRENT: 100.0}, T0 + i * S)
           for i, f in enumerate([-1.0, 1.0])]
    out = run(Weld, pts, opts(model=str(path)))
    assert [p.fields["weld_class"] for p in out.points] == ["good", "porosity"]
    import pandas as pd

    proba = clf.predict_proba(pd.DataFrame([[-1.0, 100.0], [1.0, 100.0]],
                                           columns=["Feed", CURRENT]))
    good = list(clf.classes_).index("good")
    assert [p.fields["defect_probability"] for p in out.points] == pytest.approx(
        list(1.0 - proba[:, good]))


def test_own_classifier_without_a_good_class_is_refused(tmp_path):
    path, _ = _own_classifier(tmp_path, labels=("ok", "porosity"))
    with pytest.raises(InitFailed, match="cannot tell which class is a good weld; its classes "
                                         "are ok, porosity"):
        OfflineRunner(Weld, opts(model=str(path)))


def test_good_class_rules():
    assert good_class(["a", "good_weld"], "good_weld") == "good_weld"
    assert good_class(["Good Weld", "Burnthrough"]) == "Good Weld"
    assert good_class(["good1", "good2"]) is None
    assert good_class([0, 1]) is None


# --- shipped model metrics and the weld runs ---------------------------------------------------

def test_shipped_model_held_out_metrics_reproduce_and_meet_the_aims():
    """Recompute the held-out metrics of the shipped file on the bundled runs (first 70% of each
    run's welding rows train, last 30% held out) and compare with the manifest."""
    from catboost import CatBoost

    from udfcollection.ml.train_weld import evaluate, split_runs

    d = shipped_models_dir()
    entry = read_manifest(d)["models"]["weld"]
    model = CatBoost()
    model.load_model(str(d / entry["file"]))
    train, test, runs, good = split_runs(WELD_DIR)
    assert good == entry["good_class"] == "good_weld"
    assert len(train) == entry["metrics"]["train_rows"]
    # no held-out row was used for training: each run's held-out rows come after its train rows
    for r in runs:
        assert r["train_rows"] + r["heldout_rows"] == r["welding_rows"]
    m = evaluate(model, test, good)
    for key in ("heldout_accuracy", "good_weld_false_positive_rate", "defect_recall",
                "heldout_rows", "per_class", "confusion"):
        assert m[key] == entry["metrics"][key], key
    assert m["good_weld_false_positive_rate"] <= 0.05
    assert m["defect_recall"] >= 0.90
    assert sorted(entry["classes"]) == sorted(weld_class_of(f) for f in
                                               weld_run_files(WELD_DIR))
    assert len(entry["classes"]) == 12


def test_weld_runs_streamed_through_the_udf(capsys):
    """Every run, all rows in file order, through the real UDF (offline runner): idle rows are
    not evaluated, and each run is mostly recognised as its own class. Counts are printed."""
    from udfcollection.ml.train_weld import stream_runs

    result = stream_runs(WELD_DIR)
    with capsys.disabled():
        print()
        for cls, c in result["runs"].items():
            print(f"weld run {cls}: {c['points']} points, {c['evaluated']} evaluated, "
                  f"{c['flagged']} flagged, mostly {c['most_common_class']}")
    for f in weld_run_files(WELD_DIR):
        rows = run_rows(f)
        c = result["runs"][weld_class_of(f)]
        assert c["points"] == len(rows)
        assert c["evaluated"] == sum(1 for r in rows if r[CURRENT] > 50.0)
        assert c["most_common_class"] == weld_class_of(f)
        if weld_class_of(f) == "good_weld":
            assert c["flagged"] <= 0.05 * c["evaluated"]
        else:
            assert c["flagged"] >= 0.9 * c["evaluated"]
    manifest = read_manifest(shipped_models_dir())["models"]["weld"]["metrics"]
    assert manifest["stream_all_rows"] == result
