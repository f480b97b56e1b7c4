"""What each UDF does with malformed data: the behaviour its description documents.

In-process, through the real handler (onError policy, groups, batches). Expected outputs are
worked out from each UDF's description, case by case, in the comments. Survival of the same
abuse over the real wire, for every UDF, is test_malformed_inputs.py.
"""

from __future__ import annotations

import math

import pytest

from udfcollection import registry
from udfcollection.lineprotocol import LPPoint
from udfcollection.offline import OfflineRunner
from udfcollection.protocol import udf_pb2
from udfcollection.testing import point_request

S = 1_000_000_000
MISSING = object()
MB = "m" * (1 << 20)


def pts(values, field="value", start=1, host="a"):
    """One point per value at times start, start+1, ... seconds (MISSING: no such field)."""
    out = []
    for i, v in enumerate(values):
        fields = {"other": 1.0} if v is MISSING else {field: v, "other": 1.0}
        out.append(LPPoint("m", {"host": host}, fields, (start + i) * S))
    return out


def run_stream(name, options, points, group_by=("host",)):
    runner = OfflineRunner(registry.get(name), options)
    runner.feed_stream(points, group_by)
    out = runner.finish()
    assert out.errors == []
    return out.points, runner.handler.points_dropped


def same_value(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


# --- edge_detect ------------------------------------------------------------------------------

def test_edge_detect_malformed_values():
    values = ["up", MISSING, "up", "", "", math.nan, math.nan, math.inf, -math.inf, MB, MB,
              True, 1, 1.0, "up"]
    points = pts(values)
    # Out of order (time 0, after t=15) and the same point again (duplicate timestamp).
    points.append(LPPoint("m", {"host": "a"}, {"value": "down"}, 0))
    points.append(LPPoint("m", {"host": "a"}, {"value": "down"}, 0))
    out, dropped = run_stream("edge_detect", [("field", [("string", "value")])], points)
    # From the description: the first point is emitted; a missing field is dropped and leaves
    # the state alone (so t=3 'up' is no change); '' is a value; NaN equals NaN; +inf and -inf
    # are values; a bool never equals a number; int 1 equals float 1.0; out-of-order points
    # are compared in arrival order and get a negative duration; a repeat is no change.
    expected = [  # (time s, value, previous, duration s)
        (1, "up", None, None), (4, "", "up", 3.0), (6, math.nan, "", 2.0),
        (8, math.inf, math.nan, 2.0), (9, -math.inf, math.inf, 1.0), (10, MB, -math.inf, 1.0),
        (12, True, MB, 2.0), (13, 1, True, 1.0), (15, "up", 1, 2.0), (0, "down", "up", -15.0),
    ]
    assert dropped == 1
    assert len(out) == len(expected), [(p.time // S, p.fields.get("value")) for p in out]
    for p, (t, v, prev, dur) in zip(out, expected, strict=True):
        assert p.time == t * S
        assert same_value(p.fields["value"], v), (t, p.fields["value"])
        if prev is None:
            assert "previous" not in p.fields and "duration" not in p.fields
        else:
            assert same_value(p.fields["previous"], prev), (t, p.fields["previous"])
            assert p.fields["duration"] == dur
        assert p.tags == {"host": "a"}


def test_edge_detect_huge_tag_set_is_carried():
    tags = {f"t{i:04d}": "v" * 20 for i in range(1000)}
    points = [LPPoint("m", {**tags, "host": "a"}, {"value": v}, i * S)
              for i, v in enumerate(["a", "b"])]
    out, dropped = run_stream("edge_detect", [("field", [("string", "value")])], points)
    assert dropped == 0 and len(out) == 2
    assert all(len(p.tags) == 1001 for p in out)


# --- moving_avg -------------------------------------------------------------------------------

def test_moving_avg_malformed_values():
    values = [1, MISSING, "x", "", True, math.nan, math.inf, -math.inf, 3.0]
    points = pts(values)
    points.append(LPPoint("m", {"host": "a"}, {"value": 2.0}, 9 * S))  # duplicate timestamp
    points.append(LPPoint("m", {"host": "a"}, {"value": 5}, 0))  # out of order
    out, dropped = run_stream("moving_avg", [("field", [("string", "value")]),
                                             ("size", [("int", 2)])], points)
    # Missing, string, empty string, bool, NaN, +-inf: dropped, window unchanged (6+1 points).
    # size mode looks at arrival order only: 1 -> 1; 3 -> (1+3)/2; 2 -> (3+2)/2; 5 -> (2+5)/2.
    assert dropped == 7
    assert [(p.time // S, p.fields) for p in out] == [
        (1, {"avg": 1.0}), (9, {"avg": 2.0}), (9, {"avg": 2.5}), (0, {"avg": 3.5})]


def test_moving_avg_period_late_point_outside_window_is_handled_by_on_error():
    points = [LPPoint("m", {"host": "a"}, {"value": v}, t * S)
              for t, v in [(100, 1.0), (160, 3.0), (10, 50.0), (150, 2.0)]]
    out, dropped = run_stream("moving_avg", [("field", [("string", "value")]),
                                             ("period", [("duration", 60 * S)])], points)
    # period 60 s: window (t-60, t]. 100 -> 1; 160 -> only 160 is later than 100 -> 3;
    # 10 is older than the whole window: dropped; 150 is late but inside (100, 160]: (3+2)/2.
    assert dropped == 1
    assert [(p.time // S, p.fields["avg"]) for p in out] == [(100, 1.0), (160, 3.0),
                                                              (150, 2.5)]


# --- threshold --------------------------------------------------------------------------------

def test_threshold_malformed_values():
    values = [5.0, 11.0, math.inf, -math.inf, math.nan, "x", "", True, MISSING, 1e308, 10, 11]
    out, dropped = run_stream("threshold", [("field", [("string", "value")]),
                                            ("high", [("double", 10.0)])], pts(values))
    # Band (-inf, 10]: outside are 11.0, +inf, 1e308 and the int 11 (10 is on the bound:
    # inside). -inf is inside an open lower band. NaN, strings, bool and missing: dropped.
    assert dropped == 5
    assert [p.time // S for p in out] == [2, 3, 10, 12]
    assert all(p.fields["other"] == 1.0 for p in out)  # forwarded unchanged


# --- outliers (batch) -------------------------------------------------------------------------

def begin(size, group="host=a", tags=None):
    return udf_pb2.Request(begin=udf_pb2.BeginBatch(name="m", group=group, size=size,
                                                   tags=tags or {"host": "a"}))


def end(tmax=0, group="host=a", tags=None):
    return udf_pb2.Request(end=udf_pb2.EndBatch(name="m", group=group, tmax=tmax,
                                               tags=tags or {"host": "a"}))


def bpoint(t, value):
    fields = {} if value is MISSING else {"value": value}
    fields["other"] = 1
    r = point_request(t * S, fields, tags={"host": "a"}, group_by=["host"])
    r.point.name = ""  # Kapacitor sends batch points without a name
    return r


def run_batches(requests, options=(("field", [("string", "value")]),)):
    runner = OfflineRunner(registry.get("outliers"), list(options))
    runner.feed_requests(requests)
    out = runner.finish()
    assert out.errors == []
    return out.batches, runner.handler.points_dropped


def test_outliers_malformed_values_and_a_lying_size_hint(caplog):
    values = [4, 1, 100.0, math.nan, math.inf, "x", MISSING, 3, 2, True, -math.inf]
    reqs = [begin(1000), *[bpoint(i, v) for i, v in enumerate(values)], end(10 * S)]
    batches, _ = run_batches(reqs)
    # Quartiles over the usable values only, 1 2 3 4 100 (sorted): Q1 = x[1] = 2,
    # Q3 = x[3] = 4, IQR 2, fences -1 and 7: 100 is the one outlier. NaN, +-inf, string,
    # missing and bool: dropped (6). The size hint (1000) is ignored; the answer announces 1.
    # outliers drops them itself (one log line per batch), not through the handler.
    assert "6 point(s) of batch group=host=a" in caplog.text
    assert len(batches) == 1
    b, points, e = batches[0]
    assert b.size == 1 and [p.fields["value"] for p in points] == [100.0]
    assert e.tmax == 10 * S and dict(e.tags) == {"host": "a"}


def test_outliers_batch_framing_abuse():
    reqs = [
        end(5 * S),  # EndBatch without BeginBatch: answered with an empty batch
        begin(0), bpoint(1, 1.0), bpoint(2, 50.0), bpoint(3, 2.0), bpoint(4, 3.0),
        bpoint(5, 2.0),
        # BeginBatch while a batch is open: the open batch is processed first
        begin(2), bpoint(6, 7.0), end(6 * S),
        bpoint(7, 9.0), bpoint(8, 9.0), end(8 * S),  # points without BeginBatch
        begin(-3), end(0),  # nonsense size hint, empty batch
    ]
    batches, dropped = run_batches(reqs)
    assert dropped == 0
    # 1: empty. 2: 1 50 2 3 2 -> sorted 1 2 2 3 50, Q1 2, Q3 3, fences 0.5 and 4.5: 50.
    # 3: the single point 7 (IQR 0, no outlier). 4: 9 9, none. 5: empty.
    assert [[p.fields["value"] for p in pts_] for _b, pts_, _e in batches] == [
        [], [50.0], [], [], []]
    assert [b.size for b, _p, _e in batches] == [0, 1, 0, 0, 0]


def test_outliers_keeps_input_order_for_out_of_order_points():
    values = [(5, 100.0), (1, 1.0), (3, -100.0), (2, 2.0), (4, 3.0), (6, 2.0), (7, 1.0)]
    reqs = [begin(len(values)), *[bpoint(t, v) for t, v in values], end(7 * S)]
    batches, _ = run_batches(reqs, (("field", [("string", "value")]),
                                    ("mode", [("string", "annotate")])))
    _b, points, _e = batches[0]
    # Annotate keeps every point in arrival order; 1 1 2 2 3 100 -100 -> sorted -100 1 1 2 2 3
    # 100, Q1 at h=1.5: 1, Q3 at h=4.5: 2.5, fences -1.25 and 4.75: 100 and -100 are outliers.
    assert [p.time // S for p in points] == [5, 1, 3, 2, 4, 6, 7]
    assert [p.fields["outlier"] for p in points] == [1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]


# --- documented in every description ----------------------------------------------------------

@pytest.mark.parametrize("name", registry.names())
def test_description_documents_malformed_input(name):
    """Each UDF's description says what happens to a point whose field is missing or of the
    wrong type, and to NaN."""
    d = registry.get(name).description.lower()
    assert "missing" in d, f"{name}: description does not say what a missing field does"
    assert "nan" in d, f"{name}: description does not say what NaN does"
    assert "string" in d or "type" in d, f"{name}: nothing on mistyped fields"
    assert "onerror" in d, f"{name}: description does not point to onError"
