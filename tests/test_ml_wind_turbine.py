"""wind_turbine's algorithm, in-process through the real UDFHandler (udfcollection.offline).

Expected values are reasoned from the power curve's plateau (speeds >= 13.01 m/s, where the
shipped curve, like T1's Theoretical_Power_Curve, is exactly 3600 kW) or from a user model
with a known formula (power = 100 * speed), so every number below can be checked by hand.
"""

from __future__ import annotations

import itertools
import math
import pickle

import numpy as np
import pytest

from udfcollection.lineprotocol import LPPoint
from udfcollection.ml.data import WIND_T1, wind_points
from udfcollection.ml.manifest import read_manifest, shipped_models_dir
from udfcollection.offline import InitFailed, OfflineRunner, run
from udfcollection.udfs.wind_turbine import WindState, WindTurbine, level, slope

S = 600_000_000_000
T0 = 1_600_000_000_000_000_000
PLATEAU = 3600.0


def opts(**kw):
    decl = {o.name: o for o in WindTurbine.all_options()}
    return [(k, [(decl[k].type, v)]) for k, v in kw.items()]


def pts(pairs, turbine="A", speed="wind_speed", power="grid_active_power"):
    return [LPPoint("turbine", {"turbine": turbine}, {speed: s, power: w}, T0 + i * S)
            for i, (s, w) in enumerate(pairs)]


def statuses(out):
    return [p.fields["anomaly_status"] for p in out.points]


def linear_model(tmp_path):
    """A scikit-learn regressor with a known formula: expected power = 100 * speed."""
    from sklearn.linear_model import LinearRegression

    x = np.arange(1.0, 30.0).reshape(-1, 1)
    m = LinearRegression().fit(x, 100.0 * x.ravel())
    path = tmp_path / "linear.pkl"
    path.write_bytes(pickle.dumps(m))
    path.chmod(0o644)
    return str(path)


# --- pieces -----------------------------------------------------------------------------------

def test_slope_is_least_squares_and_zero_without_speed_change():
    assert slope([1.0, 2.0, 3.0], [10.0, 30.0, 50.0]) == pytest.approx(20.0)
    assert slope([15.0, 15.0, 16.0], [2400.0, 1800.0, 3000.0]) == pytest.approx(900.0)
    assert slope([20.0, 21.0, 25.0], [3000.0, 3000.0, 1200.0]) == pytest.approx(-5400 / 14)
    assert slope([7.0, 7.0, 7.0], [1.0, 2.0, 3.0]) == 0.0
    assert slope([5.0], [100.0]) == 0.0


@pytest.mark.parametrize(("error", "status"), [
    (0.1500001, 0.3), (0.2999999, 0.3), (0.3, 0.6), (0.5999999, 0.6), (0.6, 1.0), (7.0, 1.0)])
def test_levels_low_medium_high(error, status):
    assert level(error) == status


# --- gating -----------------------------------------------------------------------------------

def test_cut_in_cut_out_and_min_power_are_not_evaluated_with_zero_outputs():
    # cutIn 3 and cutOut 25 exclusive/inclusive as specified: speed <= cutIn and speed > cutOut
    # are out, speed == cutOut is in; power < minPower is out, power == minPower is in.
    pairs = [(3.0, 3000.0), (3.0001, 3000.0), (25.0, 3000.0), (25.0001, 3000.0),
             (20.0, 49.99), (20.0, 50.0), (math.nan, 3000.0), (20.0, math.nan)]
    out = run(WindTurbine, pts(pairs), opts(cutOut=25.0, confirm=100))
    evaluated = [p.fields["expected_power"] != 0.0 for p in out.points]
    assert evaluated == [False, True, True, False, False, True, False, False]
    for p, ev in zip(out.points, evaluated, strict=True):
        assert set(p.fields) >= {"anomaly_status", "expected_power", "power_error"}
        if not ev:
            assert (p.fields["anomaly_status"], p.fields["expected_power"],
                    p.fields["power_error"]) == (0.0, 0.0, 0.0)
    # speed 25, power 3000 on the plateau: error (3600 - 3000) / 3000
    assert out.points[2].fields["power_error"] == pytest.approx(0.2)
    # power exactly minPower: (3600 - 50) / 50
    assert out.points[5].fields["power_error"] == pytest.approx(71.0)


def test_every_point_keeps_its_fields_and_tags():
    p = LPPoint("turbine", {"turbine": "A", "site": "north"},
                {"wind_speed": 15.0, "grid_active_power": 3000.0, "rpm": 14, "ok": True,
                 "note": "x"}, T0)
    out = run(WindTurbine, [p], opts(cutOut=25.0))
    q = out.points[0]
    assert q.tags == p.tags and q.name == p.name and q.time == p.time
    assert {k: q.fields[k] for k in p.fields} == p.fields


# --- confirmation -------------------------------------------------------------------------------

def test_confirmation_needs_confirm_consecutive_evaluated_candidates():
    # errors 0.2 (candidate) except 3500 (0.029, not): C C n C C C -> confirmed only at the 6th
    pairs = [(15.0, 3000.0), (15.0, 3000.0), (15.0, 3500.0), (15.0, 3000.0), (15.0, 3000.0),
             (15.0, 3000.0)]
    assert statuses(run(WindTurbine, pts(pairs), opts(cutOut=25.0))) == [0.0] * 5 + [0.3]
    assert statuses(run(WindTurbine, pts(pairs), opts(cutOut=25.0, confirm=2))) == [
        0.0, 0.3, 0.0, 0.0, 0.3, 0.3]
    assert statuses(run(WindTurbine, pts(pairs), opts(cutOut=25.0, confirm=1))) == [
        0.3, 0.3, 0.0, 0.3, 0.3, 0.3]


def test_threshold_is_strict():
    # error exactly 0.2 with threshold 0.2 is not a candidate
    pairs = [(15.0, 3000.0)] * 3
    assert statuses(run(WindTurbine, pts(pairs), opts(cutOut=25.0, threshold=0.2))) == [0.0] * 3
    assert statuses(run(WindTurbine, pts(pairs), opts(cutOut=25.0, threshold=0.19))) == [
        0.0, 0.0, 0.3]


def test_slope_rejection_counts_as_a_non_candidate():
    # 15/1000, 16/1300, 17/1600: slope 300 > 200 -> rejected; then three candidates at one
    # speed confirm again. maxSlope 400 accepts the steep window.
    pairs = [(15.0, 1000.0), (16.0, 1300.0), (17.0, 1600.0), (17.0, 1000.0), (17.0, 1000.0),
             (17.0, 1000.0)]
    assert statuses(run(WindTurbine, pts(pairs), opts(cutOut=25.0))) == [
        0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    assert statuses(run(WindTurbine, pts(pairs), opts(cutOut=25.0, maxSlope=400.0))) == [
        0.0, 0.0, 1.0, 1.0, 1.0, 1.0]


def test_not_evaluated_points_do_not_break_a_run_unless_asked():
    pairs = [(15.0, 3000.0), (2.0, 10.0), (15.0, 3000.0), (15.0, 40.0), (15.0, 3000.0),
             (15.0, 3000.0)]
    assert statuses(run(WindTurbine, pts(pairs), opts(cutOut=25.0))) == [
        0.0, 0.0, 0.0, 0.0, 0.3, 0.3]
    assert statuses(run(WindTurbine, pts(pairs), opts(cutOut=25.0, notEvaluatedBreaks=True))
                    ) == [0.0] * 6


def test_groups_have_their_own_windows():
    a = pts([(15.0, 3000.0)] * 3, turbine="A")
    b = pts([(15.0, 3000.0)] * 3, turbine="B")
    mixed = sorted(a[:2] + b[:1] + a[2:] + b[1:], key=lambda p: p.time)
    out = run(WindTurbine, mixed, opts(cutOut=25.0), ["turbine"])
    got = {(p.tags["turbine"], p.time): p.fields["anomaly_status"] for p in out.points}
    # each turbine confirms at its own third candidate
    assert got[("A", T0 + 2 * S)] == 0.3 and got[("B", T0 + 2 * S)] == 0.3
    assert [v for k, v in sorted(got.items()) if k[1] < T0 + 2 * S] == [0.0] * 4
    # ungrouped, the same points form one window: confirmed from the third point on
    flat = run(WindTurbine, mixed, opts(cutOut=25.0))
    assert statuses(flat) == [0.0, 0.0, 0.3, 0.3, 0.3, 0.3]


def test_snapshot_restore_mid_window_continues_the_run():
    pairs = [(15.0, 3000.0)] * 4
    whole = statuses(run(WindTurbine, pts(pairs), opts(cutOut=25.0), ["turbine"]))
    first = OfflineRunner(WindTurbine, opts(cutOut=25.0))
    first.feed_stream(pts(pairs)[:2], ["turbine"])
    snap = first.snapshot()
    head = statuses(first.finish())
    second = OfflineRunner(WindTurbine, opts(cutOut=25.0))
    assert second.restore(snap)
    second.feed_stream(pts(pairs)[2:], ["turbine"])
    tail = statuses(second.finish())
    assert head + tail == whole == [0.0, 0.0, 0.3, 0.3]
    # without the snapshot the second half starts a fresh window
    fresh = OfflineRunner(WindTurbine, opts(cutOut=25.0))
    fresh.feed_stream(pts(pairs)[2:], ["turbine"])
    assert statuses(fresh.finish()) == [0.0, 0.0]


def test_state_json_round_trip_and_rejects_garbage():
    st = WindState(window=[[True, 15.0, 3000.0], [False, 16.0, 3500.0]])
    assert WindState.from_json(st.to_json()).window == st.window
    for bad in ({}, {"window": 3}, {"window": [[1, 2]]}, {"window": [["x", 1.0, 2.0]]}):
        with pytest.raises(ValueError):
            WindState.from_json(bad)


# --- inputs -----------------------------------------------------------------------------------

def test_fields_are_found_by_name_whatever_their_order_or_number_type():
    a = LPPoint("t", {}, {"grid_active_power": 3000, "zz": 1.0, "wind_speed": 15.0}, T0)
    b = LPPoint("t", {}, {"aa": "x", "wind_speed": 15, "grid_active_power": 3000.0}, T0 + S)
    out = run(WindTurbine, [a, b], opts(cutOut=25.0))
    assert [p.fields["power_error"] for p in out.points] == [pytest.approx(0.2)] * 2


def test_missing_or_non_numeric_inputs_follow_on_error():
    good = (15.0, 3000.0)
    points = pts([good, good, good])
    points.insert(1, LPPoint("turbine", {"turbine": "A"}, {"wind_speed": 15.0}, T0 + S // 2))
    points.insert(2, LPPoint("turbine", {"turbine": "A"},
                             {"wind_speed": True, "grid_active_power": 3000.0}, T0 + S // 3))
    passed = run(WindTurbine, points, opts(cutOut=25.0))  # default onError: pass
    assert len(passed.points) == 5
    assert statuses(passed) == [0.0, 0.0, 0.0, 0.0, 0.3]  # bad points do not touch the window
    assert passed.points[1].fields == {"wind_speed": 15.0, "anomaly_status": 0.0,
                                       "expected_power": 0.0, "power_error": 0.0}
    dropped = run(WindTurbine, points, opts(cutOut=25.0, onError="drop"))
    assert statuses(dropped) == [0.0, 0.0, 0.3]
    assert WindTurbine.on_error_default == "pass"


def test_fail_policy_stops_the_task():
    from udfcollection.agent.runtime import FatalError

    points = [LPPoint("turbine", {}, {"wind_speed": 15.0}, T0)]
    with pytest.raises(FatalError, match="grid_active_power"):
        run(WindTurbine, points, opts(onError="fail"))


# --- model --------------------------------------------------------------------------------------

def test_own_model_is_used_for_expected_power(tmp_path):
    model = linear_model(tmp_path)
    # expected = 100 * speed: 8 m/s -> 800 kW; power 400 -> error 1.0 -> HIGH once confirmed;
    # 5 m/s -> 500 kW, power 480: error 0.04, not a candidate
    pairs = [(8.0, 400.0), (8.0, 400.0), (8.0, 400.0), (5.0, 480.0)]
    out = run(WindTurbine, pts(pairs), opts(model=model))
    assert [p.fields["expected_power"] for p in out.points] == pytest.approx(
        [800.0, 800.0, 800.0, 500.0])
    assert statuses(out) == [0.0, 0.0, 1.0, 0.0]


def test_init_errors_name_the_problem(tmp_path):
    with pytest.raises(InitFailed, match=r"cutOut \(3\.0\) must be above option cutIn"):
        OfflineRunner(WindTurbine, opts(cutIn=3.0, cutOut=3.0))
    missing = tmp_path / "nope.pkl"
    with pytest.raises(InitFailed, match=f"cannot read model {missing}: no such file"):
        OfflineRunner(WindTurbine, opts(model=str(missing)))
    from sklearn.linear_model import LogisticRegression

    clf = tmp_path / "clf.pkl"
    clf.write_bytes(pickle.dumps(LogisticRegression().fit([[1.0], [2.0]], [0, 1])))
    clf.chmod(0o644)
    with pytest.raises(InitFailed, match="is a classifier"):
        OfflineRunner(WindTurbine, opts(model=str(clf)))


# --- the T1 data set ----------------------------------------------------------------------------

@pytest.mark.slow
def test_t1_streamed_in_time_order_counts(capsys):
    """T1 (grid_activepower as power) through the UDF with the shipped model; the counts are
    printed and must equal the manifest's. The published window variant must be within 1% of
    the published detector's 2,189 (676 / 913 / 600), which used its own random forest."""
    from udfcollection.ml.train_wind import REFERENCE, stream_counts

    points = wind_points(WIND_T1)
    assert len(points) == 50_530
    assert all(a.time < b.time for a, b in itertools.pairwise(points))
    default = stream_counts(points)
    published = stream_counts(points, opts(notEvaluatedBreaks=True))
    with capsys.disabled():
        for label, c in (("default", default), ("notEvaluatedBreaks", published)):
            print(f"\nT1 wind_turbine ({label}): {c['flagged']} flagged of {c['points']} "
                  f"({c['low']} LOW / {c['medium']} MEDIUM / {c['high']} HIGH), "
                  f"{c['evaluated']} evaluated")
    metrics = read_manifest(shipped_models_dir())["models"]["wind_turbine"]["metrics"]
    assert metrics["t1_stream_default"] == default
    assert metrics["t1_stream_not_evaluated_breaks"] == published
    for key in ("flagged", "low", "medium", "high"):
        assert abs(published[key] - REFERENCE[key]) <= 0.01 * REFERENCE[key], key
    # skipping not-evaluated points can only keep runs alive: never fewer anomalies
    assert default["flagged"] >= published["flagged"]
    assert default["emitted"] == default["points"] == 50_530
