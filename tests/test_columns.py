"""Column-wise input and output (udfcollection.columns): what FieldColumns writes must decode
to exactly what emitting each point's row the ordinary way gives, for any points and outputs,
whether the points come as a list of Points or as a PointBlock the agent filled; PointBlock
(filled by the agent's own loop) must read inputs exactly as `read_matrix` does from
Points."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_points_encoding import keys, points, same

from udfcollection.columns import FieldColumns, PointBlock
from udfcollection.ml.inputs import read_matrix
from udfcollection.points import Point
from udfcollection.protocol import udf_pb2
from udfcollection.protocol.framing import FrameSplitter
from udfcollection.spec import PointError

loose_values = st.one_of(
    st.floats(allow_nan=False),
    st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1),
    st.integers(min_value=1 << 63, max_value=1 << 70),  # beyond int64: never appended
    st.booleans(),
    st.sampled_from(["", "good", "porosity", "é" * 100]),
)


def decode_frame(frame: bytes) -> udf_pb2.Response:
    frames, _ = FrameSplitter().feed(frame)
    assert len(frames) == 1, "one whole frame, its length prefix exact"
    return udf_pb2.Response.FromString(frames[0])


def block_of(reqs: list[udf_pb2.Request], names: tuple[str, ...]) -> PointBlock:
    """A PointBlock filled by the agent's own loop (the handler's point_run) from the frames
    of `reqs`, for a UDF reading `names` that keeps per-group state."""
    from udfcollection.agent.connection import FrameWriter
    from udfcollection.agent.udf_handler import UDFHandler
    from udfcollection.offline import make_init
    from udfcollection.spec import UDF
    from udfcollection.udfs.wind_turbine import WindState

    class Reader(UDF):
        name = "reader"
        summary = description = "test"
        State = WindState

        def column_inputs(self):
            return names

        def process_many(self, points, states):  # never reached: the block is not drained
            raise AssertionError

    handler = UDFHandler(Reader)
    assert handler.init(make_init([])).init.success
    frames = [r.SerializeToString() for r in reqs]
    assert handler.point_run(frames, [0] * len(frames), 0,
                             FrameWriter(bytearray().extend)) == len(frames)
    return handler._pending


def expected_output(req: udf_pb2.Request, row: dict) -> udf_pb2.Request:
    copy = udf_pb2.Request()
    copy.CopyFrom(req)
    return Point(copy.point, copy).emit(row).to_request()


@st.composite
def columns_case(draw):
    reqs = draw(st.lists(points(), min_size=1, max_size=6))
    n = len(reqs)
    names = draw(st.lists(keys, min_size=1, max_size=4, unique=True))
    cols = []
    for _ in names:
        if draw(st.booleans()):
            cols.append(np.array(draw(st.lists(st.floats(), min_size=n, max_size=n)),
                                 dtype=float))
        else:
            cols.append(draw(st.lists(loose_values, min_size=n, max_size=n)))
    others = draw(st.sets(st.integers(0, n - 1)))
    return reqs, names, cols, others


@settings(max_examples=300, deadline=None)
@given(columns_case(), st.booleans())
def test_encoded_frames_decode_to_what_emitting_each_row_gives(case, as_block):
    reqs, names, cols, other_rows = case
    pts = (block_of(reqs, ()) if as_block else
           [Point((c := udf_pb2.Request.FromString(r.SerializeToString())).point, c,
                  r.point.SerializeToString()) for r in reqs])
    others = {i: PointError("bad input") for i in other_rows}
    fc = FieldColumns(pts, names, cols, others)
    frames = fc.encode()
    assert len(frames) == len(reqs)
    for i, (req, frame) in enumerate(zip(reqs, frames, strict=True)):
        if i in others:
            assert frame is None
            assert fc[i] is others[i]
            continue
        row = fc.row(i)
        try:
            want = expected_output(req, row)
        except (TypeError, ValueError):  # beyond int64: the general path refuses it too
            assert frame is None
            continue
        if frame is None:
            continue  # written by the general path: exact by construction
        got = decode_frame(frame)
        assert got.WhichOneof("message") == "point"
        as_req = udf_pb2.Request()
        as_req.point.CopyFrom(got.point)
        assert same(as_req, want)
        p = got.point
        field_names = [*p.fieldsDouble, *p.fieldsInt, *p.fieldsString, *p.fieldsBool]
        assert len(field_names) == len(set(field_names)), "a key in two typed maps"


def _weld_like(i: int) -> udf_pb2.Request:
    req = udf_pb2.Request()
    p = req.point
    p.time = 1_700_000_000_000_000_000 + i
    p.name = "weld"
    p.group = "run=r1"
    p.dimensions.append("run")
    p.tags["run"] = "r1"
    p.fieldsDouble.update({"Pressure": 1.5 + i, "Feed": 2.0})
    return req


def test_the_fast_path_is_taken_for_double_only_points():
    """Guards the speed-up itself: double-only points with float and str outputs are all
    written from the columns, each frame holding the point's bytes as received."""
    reqs = [_weld_like(i) for i in range(5)]
    block = block_of(reqs, ("Pressure", "Feed"))
    fc = FieldColumns(block, ("defect_probability", "weld_class"),
                      (np.linspace(0, 1, 5), ["good", "good", "spatter", "good", ""]))
    frames = fc.encode()
    assert all(f is not None for f in frames)
    for req, frame in zip(reqs, frames, strict=True):
        assert req.point.SerializeToString() in frame
    assert decode_frame(frames[2]).point.fieldsString["weld_class"] == "spatter"


def test_points_that_cannot_be_appended_exactly_take_the_general_path():
    mixed = _weld_like(0)
    mixed.point.fieldsInt["defect_probability"] = 3  # an output name in another typed map
    clash = _weld_like(1)
    clash.point.fieldsDouble["weld_class"] = 1.0  # a str output over a double field
    plain = _weld_like(2)
    block = block_of([mixed, clash, plain], ())
    fc = FieldColumns(block, ("defect_probability", "weld_class"),
                      (np.array([0.5, 0.5, 0.5]), ["good", "good", "good"]))
    frames = fc.encode()
    assert frames[0] is None and frames[1] is None and frames[2] is not None
    # ... and the general path gives one type per field name.
    out = fc[0].to_request().point
    assert dict(out.fieldsDouble)["defect_probability"] == 0.5
    assert "defect_probability" not in out.fieldsInt
    out = fc[1].to_request().point
    assert out.fieldsString["weld_class"] == "good" and "weld_class" not in out.fieldsDouble


def test_an_emitted_point_is_not_written_from_the_columns():
    block = block_of([_weld_like(0), _weld_like(1)], ())
    block[1].emit({"extra": 1.0})  # the UDF changed it after all
    fc = FieldColumns(block, ("anomaly_status",), (np.zeros(2),))
    frames = fc.encode()
    assert frames[0] is not None and frames[1] is None


def test_columns_must_match_the_points():
    with pytest.raises(ValueError, match="column 'a' has 1 values for 2 points"):
        FieldColumns([Point(udf_pb2.Point())] * 2, ("a",), (np.zeros(1),))
    with pytest.raises(ValueError, match="2 names for 1 columns"):
        FieldColumns([Point(udf_pb2.Point())], ("a", "b"), (np.zeros(1),))


@settings(max_examples=200, deadline=None)
@given(st.lists(points(), min_size=1, max_size=6),
       st.lists(keys, min_size=1, max_size=3, unique=True))
def test_point_block_reads_inputs_as_read_matrix_does_from_points(reqs, names):
    names = tuple(names)
    block = block_of(reqs, names)
    plain = [Point(r.point, r) for r in reqs]
    got_x, got_problems = read_matrix(block, names)
    want_x, want_problems = read_matrix(plain, list(names))  # a list: read point by point
    assert got_problems == want_problems
    assert got_x.shape == want_x.shape == (len(reqs), len(names))
    assert np.array_equal(got_x, want_x, equal_nan=True)
    # A point is made on access from the bytes it arrived as, equal to what was sent.
    for i, r in enumerate(reqs):
        assert block[i].pb == r.point
        assert block[i] is block[i]
    assert [p.time for p in block[1:]] == [r.point.time for r in reqs[1:]]
    assert block.groups == [r.point.group for r in reqs]
    has_other_types = [bool(r.point.fieldsInt or r.point.fieldsString or r.point.fieldsBool)
                       for r in reqs]
    assert block.mixed == {i for i, m in enumerate(has_other_types) if m}


def test_point_block_problems_name_the_input():
    req = _weld_like(0)
    del req.point.fieldsDouble["Feed"]
    req.point.fieldsString["Feed"] = "fast"
    block = block_of([req, _weld_like(1)], ("Pressure", "Feed"))
    x, problems = block.matrix()
    assert problems == {0: "input field 'Feed' is a string, not a number"}
    assert math.isnan(x[0, 0]) and math.isnan(x[0, 1])
    assert x[1].tolist() == [2.5, 2.0]


def _ml_cases():
    from udfcollection.ml.data import WELD_DIR, WIND_T1, weld_points, weld_run_files, wind_points
    from udfcollection.udfs.model import ModelUDF
    from udfcollection.udfs.weld import Weld
    from udfcollection.udfs.wind_turbine import WindTurbine

    wind = wind_points(WIND_T1)[:3000]
    weld = [p for f in weld_run_files(WELD_DIR)[:4] for p in weld_points(f)]
    return [
        pytest.param(WindTurbine, wind, [], ("turbine",), id="wind_turbine"),
        pytest.param(Weld, weld, [], ("run",), id="weld"),
        pytest.param(ModelUDF, weld, [("model", [("string", "shipped:weld")]), ("proba", [])],
                     ("run",), id="model"),
    ]


@pytest.mark.parametrize(("cls", "lp_points", "options", "group_by"), _ml_cases())
def test_ml_udfs_write_the_same_points_as_one_point_at_a_time(cls, lp_points, options,
                                                              group_by):
    """The agent's column path (undecoded frames into a PointBlock, FieldColumns out) against
    the same UDF handed one Point at a time and emitting the ordinary way."""
    from udfcollection.agent.connection import FrameWriter
    from udfcollection.agent.udf_handler import UDFHandler
    from udfcollection.offline import make_init, to_request

    frames = [to_request(p, group_by).SerializeToString() for p in lp_points]

    def run(handler_cls) -> list[udf_pb2.Response]:
        handler = UDFHandler(handler_cls)
        assert handler.init(make_init(options)).init.success
        written = bytearray()
        out = FrameWriter(written.extend)
        if handler.point_run is not None:
            i = 0
            while i < len(frames):
                i = handler.point_run(frames, [0] * len(frames), i, out)
        else:
            for f in frames:
                handler.point(udf_pb2.Request.FromString(f), out)
        handler.drain(out)
        out.flush()
        got, _ = FrameSplitter().feed(bytes(written))
        return [udf_pb2.Response.FromString(f) for f in got]

    vectorised = cls.process_many

    def process(self, point, state):  # one point per call, emitted the ordinary way
        out = vectorised(self, [point], [state])[0]
        if isinstance(out, Exception):
            raise out
        return out

    one_at_a_time = type(f"OneByOne{cls.__name__}", (cls,), {"process_many": None,
                                                             "process": process})
    columns, single = run(cls), run(one_at_a_time)
    assert len(columns) == len(single) == len(frames)
    assert columns == single


def test_loose_float_columns_with_nan_are_encoded():
    block = block_of([_weld_like(0), _weld_like(1)], ())
    fc = FieldColumns(block, ("score",), ([float("nan"), 1.5],))
    got = [decode_frame(f).point.fieldsDouble["score"] for f in fc.encode()]
    assert math.isnan(got[0]) and got[1] == 1.5


def test_a_column_value_of_no_field_type_is_handled_by_on_error_for_that_point():
    """A bad value in one row must not stop the stream: that point goes to onError (here
    'pass': unchanged), the others are written."""
    from udfcollection.agent.connection import FrameWriter
    from udfcollection.agent.udf_handler import UDFHandler
    from udfcollection.offline import make_init
    from udfcollection.spec import UDF

    class Labeller(UDF):
        name = "labeller"
        summary = "test"
        description = "test"
        on_error_default = "pass"

        def column_inputs(self):
            return ("Pressure",)

        def process_many(self, points, states):
            return FieldColumns(points, ("label",), (["ok", ["not", "a", "value"], "ok"],))

    handler = UDFHandler(Labeller)
    assert handler.init(make_init([])).init.success
    written = bytearray()
    out = FrameWriter(written.extend)
    frames = [_weld_like(i).SerializeToString() for i in range(3)]
    handler.point_run(frames, [0] * 3, 0, out)
    handler.drain(out)
    out.flush()
    got, _ = FrameSplitter().feed(bytes(written))
    labels = [dict(udf_pb2.Response.FromString(f).point.fieldsString) for f in got]
    assert labels == [{"label": "ok"}, {}, {"label": "ok"}]
    assert handler.points_dropped == 1


def test_reading_inputs_leaves_a_callers_request_unchanged():
    """The agent reads inputs in a way that inserts missing keys into the message it reads
    (then drops it): a Request handed in already decoded must be read from a copy."""
    from udfcollection.agent.connection import FrameWriter
    from udfcollection.agent.udf_handler import UDFHandler
    from udfcollection.offline import make_init
    from udfcollection.udfs.weld import Weld

    handler = UDFHandler(Weld)
    assert handler.init(make_init([])).init.success
    req = _weld_like(0)  # lacks four of weld's six inputs
    before = req.SerializeToString()
    handler.point(req, FrameWriter(bytearray().extend))
    assert req.SerializeToString() == before
    _, problems = handler._pending.matrix()
    assert problems == {0: "input field 'CO2 Weld Flow' is missing"}
