"""threshold's algorithm, in-process through the real UDFHandler (udfcollection.offline)."""

from __future__ import annotations

import math
import random

import pytest

from udfcollection.agent.runtime import FatalError
from udfcollection.lineprotocol import LPPoint
from udfcollection.offline import InitFailed, OfflineRunner, run
from udfcollection.udfs.threshold import Threshold

S = 1_000_000_000
T0 = 1_600_000_000 * S


def wire(*pairs):
    decl = {o.name: o for o in Threshold.all_options()}
    return [(n, [] if decl[n].type == "flag" else [(decl[n].type, v)]) for n, v in pairs]


def pts(values, field="temperature", tags=None):
    return [LPPoint("sensors", dict(tags or {"room": "a"}), {field: v, "i": i}, T0 + i * S)
            for i, v in enumerate(values)]


def indices(out):
    return [p.fields["i"] for p in out.points]


def test_classic_temperature_filter_forwards_below_20_or_above_25():
    vals = [18.0, 20.0, 22.5, 25.0, 26.0, 19.99, 25.01]
    out = run(Threshold, pts(vals), wire(("field", "temperature"), ("low", 20.0),
                                        ("high", 25.0)))
    assert indices(out) == [0, 4, 5, 6]
    # forwarded unchanged: same fields, tags, name, time
    assert out.points[0] == pts(vals)[0]


@pytest.mark.parametrize("bounds", [(("low", -1.0),), (("high", 1.0),),
                                    (("low", -1.0), ("high", 1.0))])
def test_modes_partition_the_stream_and_annotate_agrees(bounds):
    rng = random.Random(len(bounds))
    vals = [rng.choice([rng.uniform(-2, 2), rng.randint(-2, 2), -1.0, 1.0]) for _ in range(400)]
    low = dict(bounds).get("low", -math.inf)
    high = dict(bounds).get("high", math.inf)
    expect_out = [i for i, v in enumerate(vals) if v < low or v > high]
    base = [("field", "temperature"), *bounds]
    outside = indices(run(Threshold, pts(vals), wire(*base)))
    inside = indices(run(Threshold, pts(vals), wire(*base, ("mode", "inside"))))
    annotated = run(Threshold, pts(vals), wire(*base, ("mode", "annotate"), ("as", "st")))
    assert outside == expect_out
    assert sorted(outside + inside) == list(range(len(vals)))
    assert [p.fields["st"] for p in annotated.points] == [
        1.0 if i in set(expect_out) else 0.0 for i in range(len(vals))]


def test_annotate_default_field_name_and_values_are_floats():
    out = run(Threshold, pts([1, 50]), wire(("field", "temperature"), ("high", 10.0),
                                           ("mode", "annotate")))
    assert [p.fields["anomaly_status"] for p in out.points] == [0.0, 1.0]
    assert all(type(p.fields["anomaly_status"]) is float for p in out.points)
    assert out.points[1].fields["temperature"] == 50  # the original field is kept


def test_infinities_are_values_nan_is_not():
    vals = [math.inf, -math.inf, math.nan, 5.0]
    out = run(Threshold, pts(vals), wire(("field", "temperature"), ("low", 0.0),
                                        ("high", 10.0), ("mode", "annotate")))
    assert [(p.fields["i"], p.fields["anomaly_status"]) for p in out.points] == [
        (0, 1.0), (1, 1.0), (3, 0.0)]


@pytest.mark.parametrize("bad", [None, "hot", True])
def test_missing_or_non_numeric_field_follows_on_error(bad):
    points = pts([30.0, 31.0])
    if bad is None:
        points.insert(1, LPPoint("sensors", {}, {"other": 1.0, "i": 9}, T0))
    else:
        points.insert(1, LPPoint("sensors", {}, {"temperature": bad, "i": 9}, T0))
    opts = [("field", "temperature"), ("high", 25.0)]
    assert indices(run(Threshold, points, wire(*opts))) == [0, 1]
    assert indices(run(Threshold, points, wire(*opts, ("onError", "pass")))) == [0, 9, 1]
    with pytest.raises(FatalError, match="temperature"):
        run(Threshold, points, wire(*opts, ("onError", "fail")))


def test_grouping_does_not_change_the_verdicts():
    points = pts([1, 30], tags={"room": "a"}) + pts([30, 1], tags={"room": "b"})
    out = run(Threshold, points, wire(("field", "temperature"), ("high", 25.0)),
              group_by=["room"])
    assert [(p.tags["room"], p.fields["temperature"]) for p in out.points] == [
        ("a", 30), ("b", 30)]


def test_stateless_snapshot_is_empty():
    runner = OfflineRunner(Threshold, wire(("field", "temperature"), ("low", 1.0)))
    runner.feed_stream(pts([0.0]))
    assert runner.snapshot() == b""


@pytest.mark.parametrize(("options", "message"), [
    ([("field", "t")], "at least one of low or high"),
    ([("field", "t"), ("low", 5.0), ("high", 1.0)], "low .* must not be above option high"),
    ([("field", "t"), ("low", 1.0), ("mode", "outsde")], "did you mean 'outside'"),
    ([("field", "t"), ("low", math.nan)], "low: must be a number"),
    ([("low", 1.0)], "missing required option field"),
    ([("field", "t"), ("low", 1.0), ("as", "")], "as: must not be empty"),
])
def test_bad_options_are_refused_naming_the_option(options, message):
    with pytest.raises(InitFailed, match=message):
        OfflineRunner(Threshold, wire(*options))


def test_low_given_as_int_is_a_type_error():
    with pytest.raises(InitFailed, match="low: expected DOUBLE, got INT"):
        OfflineRunner(Threshold, [("field", [("string", "t")]), ("low", [("int", 20)])])


def test_low_equal_to_high_is_a_single_value_band():
    out = run(Threshold, pts([4.9, 5.0, 5.1]), wire(("field", "temperature"), ("low", 5.0),
                                                   ("high", 5.0), ("mode", "inside")))
    assert indices(out) == [1]
