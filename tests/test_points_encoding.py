"""Point.to_bytes: the appended-entries fast path must decode to exactly what the message
path (`to_request`) gives, for any point and any added fields, and agree with what upb itself
serialises, so Kapacitor reads the same point whichever path produced it."""

from __future__ import annotations

import math

from hypothesis import example, given, settings
from hypothesis import strategies as st

from udfcollection.points import Point
from udfcollection.protocol import udf_pb2

keys = st.sampled_from(["a", "v", "anomaly_status", "weld_class", "x" * 200, "é", ""])
values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1),
    st.integers(min_value=1 << 63, max_value=1 << 70),  # out of int64: must not be encoded
    st.booleans(),
    st.text(max_size=300),
)


@st.composite
def points(draw):
    req = udf_pb2.Request()
    p = req.point
    p.time = draw(st.integers(min_value=0, max_value=1 << 62))
    p.name = draw(st.sampled_from(["cpu", "weld", "m" * 300]))
    p.group = draw(st.sampled_from(["", "host=a"]))
    p.tags.update(draw(st.dictionaries(keys, st.text(max_size=5), max_size=3)))
    own = st.one_of(st.floats(allow_nan=False), st.integers(-5, 5), st.text(max_size=5),
                    st.booleans())
    for key, value in draw(st.dictionaries(keys, own, max_size=4)).items():
        if isinstance(value, bool):
            p.fieldsBool[key] = value
        elif isinstance(value, int):
            p.fieldsInt[key] = value
        elif isinstance(value, float):
            p.fieldsDouble[key] = value
        else:
            p.fieldsString[key] = value
    return req


def same(a: udf_pb2.Request, b: udf_pb2.Request) -> bool:
    """Message equality, with NaN equal to NaN (a NaN field is never == itself)."""
    if a == b:
        return True
    fa, fb = dict(a.point.fieldsDouble), dict(b.point.fieldsDouble)
    if fa.keys() != fb.keys() or any(
            not (x == fb[k] or (math.isnan(x) and math.isnan(fb[k]))) for k, x in fa.items()):
        return False
    a2, b2 = udf_pb2.Request(), udf_pb2.Request()
    a2.CopyFrom(a)
    b2.CopyFrom(b)
    a2.point.ClearField("fieldsDouble")
    b2.point.ClearField("fieldsDouble")
    return a2 == b2


def _req(**doubles) -> udf_pb2.Request:
    req = udf_pb2.Request()
    req.point.fieldsDouble.update(doubles)
    return req


@settings(max_examples=400, deadline=None)
@given(points(), st.dictionaries(keys, values, max_size=4))
# A double field gaining a value of another type, and one gaining a new float.
@example(_req(a=1.0), {"a": "text"})
@example(_req(a=1.0), {"a": True})
@example(_req(a=1.0), {"a": 3})
@example(_req(a=1.0), {"a": 2.5})
def test_to_bytes_decodes_to_what_to_request_gives(req, fields):
    fast_req, slow_req = udf_pb2.Request(), udf_pb2.Request()
    fast_req.CopyFrom(req)
    slow_req.CopyFrom(req)
    fast, slow = Point(fast_req.point, fast_req), Point(slow_req.point, slow_req)
    fast.emit(fields)
    slow.emit(fields)
    try:
        expected = slow.to_request()
    except (TypeError, ValueError):  # e.g. an int beyond int64: both paths must refuse it
        try:
            fast.to_bytes()
        except (TypeError, ValueError):
            return
        raise AssertionError("to_bytes accepted what to_request refuses") from None
    got = udf_pb2.Request.FromString(fast.to_bytes())
    assert same(got, expected)
    # Kapacitor is given one type per field name: never a key in two typed maps.
    p = got.point
    names = [*p.fieldsDouble, *p.fieldsInt, *p.fieldsString, *p.fieldsBool]
    assert len(names) == len(set(names))


def test_fast_path_is_taken_for_the_ml_udfs_outputs():
    """Guards the speed-up itself: an all-double point gaining floats and a str is encoded by
    appending (the bytes start with the point's own serialisation)."""
    req = udf_pb2.Request()
    req.point.fieldsDouble.update({"Pressure": 1.5, "Feed": 2.0})
    req.point.tags["run"] = "r1"
    own = req.point.SerializeToString()
    p = Point(req.point, req)
    p.emit({"defect_probability": 0.25, "weld_class": "good", "anomaly_status": 0.0})
    body = p.to_bytes()
    assert own in body
    assert dict(udf_pb2.Request.FromString(body).point.fieldsString) == {"weld_class": "good"}
