"""outliers' algorithm, in-process through the real UDFHandler (udfcollection.offline).

numpy.quantile (default method 'linear') is the independent reference for the quartiles."""

from __future__ import annotations

import math
import random
import subprocess
import sys

import numpy as np
import pytest

from udfcollection.agent.runtime import FatalError
from udfcollection.lineprotocol import LPPoint
from udfcollection.offline import InitFailed, OfflineRunner, run
from udfcollection.udfs.outliers import Outliers, quantile, tukey_fences

S = 1_000_000_000
T0 = 1_600_000_000 * S


def wire(*pairs):
    decl = {o.name: o for o in Outliers.all_options()}
    return [(n, [] if decl[n].type == "flag" else [(decl[n].type, v)]) for n, v in pairs]


def pts(values, field="v", host="a"):
    return [LPPoint("cpu", {"host": host}, {field: v, "i": i}, T0 + i * S)
            for i, v in enumerate(values)]


def reference_outliers(values, scale):
    q1, q3 = np.quantile(values, [0.25, 0.75])
    lo, hi = q1 - scale * (q3 - q1), q3 + scale * (q3 - q1)
    return [i for i, v in enumerate(values) if v < lo or v > hi]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 10, 11, 101])
def test_quantile_matches_numpy_linear(n):
    rng = random.Random(n)
    values = sorted(rng.uniform(-100, 100) for _ in range(n))
    for q in (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0):
        assert quantile(values, q) == pytest.approx(float(np.quantile(values, q)), rel=1e-12)


def test_fences_by_hand():
    # sorted 1..8: Q1 at position 1.75 -> 2.75, Q3 at 5.25 -> 6.25, IQR 3.5
    assert tukey_fences([8, 1, 7, 2, 6, 3, 5, 4], 1.5) == (2.75 - 5.25, 6.25 + 5.25)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("scale", [0.0, 1.5, 3.0])
def test_outliers_match_reference(seed, scale):
    rng = random.Random(seed)
    n = rng.randint(1, 60)
    values = [rng.gauss(0, 1) if rng.random() > 0.1 else rng.uniform(-20, 20)
              for _ in range(n)]
    out = run(Outliers, pts(values), wire(("field", "v"), ("scale", scale)))
    assert [p.fields["i"] for p in out.points] == reference_outliers(values, scale)


def test_annotate_emits_every_point_in_order_with_flag():
    values = [1, 2, 3, 4, 100, -50]
    out = run(Outliers, pts(values), wire(("field", "v"), ("mode", "annotate"),
                                         ("as", "odd")))
    assert [p.fields["i"] for p in out.points] == list(range(6))
    assert [p.fields["odd"] for p in out.points] == [0.0, 0.0, 0.0, 0.0, 1.0, 1.0]
    assert out.points[4].fields["v"] == 100 and out.points[4].tags == {"host": "a"}


def test_each_batch_is_answered_with_begin_size_points_end():
    runner = OfflineRunner(Outliers, wire(("field", "v")))
    runner.feed_batch(pts([1, 2, 3, 4, 100]), ["host"])
    runner.feed_batch(pts([5, 5, 5], host="b"), ["host"])
    runner.feed_batch([], ["host"], name="cpu")
    out = runner.finish()
    assert len(out.batches) == 3
    (b1, p1, e1), (b2, p2, e2), (b3, p3, e3) = out.batches
    assert e2.group == "host=b" and e3.group == ""
    assert b1.size == 1 and [p.fields["v"] for p in p1] == [100]
    assert b1.group == "host=a" and e1.group == "host=a" and b1.name == "cpu"
    assert e1.tmax == T0 + 4 * S
    assert b2.size == 0 and p2 == [] and b2.group == "host=b"
    assert b3.size == 0 and p3 == []


def test_batches_are_independent():
    # The same values in a second batch are judged by that batch alone.
    runner = OfflineRunner(Outliers, wire(("field", "v")))
    runner.feed_batch(pts([10, 10, 10, 10, 11]), [])
    runner.feed_batch(pts([0, 5, 10, 15, 11]), [])
    sizes = [b.size for b, _, _ in runner.finish().batches]
    assert sizes == [1, 0]


@pytest.mark.parametrize("bad", [None, "x", True, math.nan, math.inf])
def test_unusable_values_are_left_out_of_the_quartiles(bad):
    values = [1, 2, 3, 4, 100]
    points = pts(values)
    fields = {"i": 99} if bad is None else {"v": bad, "i": 99}
    points.insert(2, LPPoint("cpu", {"host": "a"}, fields, T0))
    opts = [("field", "v"), ("mode", "annotate")]
    dropped = run(Outliers, points, wire(*opts)).points
    assert [(p.fields["i"], p.fields["outlier"]) for p in dropped] == [
        (0, 0.0), (1, 0.0), (2, 0.0), (3, 0.0), (4, 1.0)]
    passed = run(Outliers, points, wire(*opts, ("onError", "pass"))).points
    assert [p.fields["i"] for p in passed] == [0, 1, 99, 2, 3, 4]
    assert "outlier" not in passed[2].fields
    with pytest.raises(FatalError, match="no usable 'v' value"):
        run(Outliers, points, wire(*opts, ("onError", "fail")))


def test_batch_of_only_unusable_points():
    out = run(Outliers, pts(["a", "b"]), wire(("field", "v"), ("mode", "annotate")))
    assert out.points == [] and out.batches[0][0].size == 0


@pytest.mark.parametrize(("options", "message"), [
    ([("field", "v"), ("scale", -1.0)], "scale: must be >= 0"),
    ([("field", "v"), ("mode", "annotated")], "did you mean 'annotate'"),
    ([("scale", 1.0)], "missing required option field"),
    ([("field", "v"), ("scale", 2)], "scale: expected DOUBLE, got INT"),
])
def test_bad_options_are_refused_naming_the_option(options, message):
    decl = {o.name: o for o in Outliers.all_options()}
    wired = [(n, [("int" if type(v) is int and decl[n].type == "double" else decl[n].type, v)])
             for n, v in options]
    with pytest.raises(InitFailed, match=message):
        OfflineRunner(Outliers, wired)


def test_module_does_not_import_numpy():
    code = ("import sys, udfcollection.udfs.outliers; "
            "sys.exit(1 if 'numpy' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
