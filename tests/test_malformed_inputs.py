"""Malformed data through every catalogue UDF, over the real wire.

For each UDF in the registry, one `kapudf run NAME` process gets the UDF's first golden case
(its options and input, so the points are of the right shape), then a barrage of malformed
variants of that input: each field missing, of the wrong type, NaN, infinite, an empty string,
a 1 MB string; a huge tag set; an empty measurement; extreme, out-of-order and duplicate
timestamps; for batch UDFs also batches whose size hint lies, EndBatch without BeginBatch, a
BeginBatch inside an open batch and points outside any batch.

What every UDF must do with all of it, whatever its algorithm: keep the task alive (no
ErrorResponse, exit 0 at end of input, keepalives answered), write nothing but whole frames,
answer every batch with one well-formed batch whose BeginBatch size is the number of points in
it, compute no NaN or infinite value of its own (InfluxDB cannot store them, and a write that
contains one is rejected whole), and log each problem on one stderr line. What each UDF does
with a given malformed point (drop, pass, treat as a value) is its documented behaviour, tested
in test_malformed_behaviour.py.
"""

from __future__ import annotations

import copy
import math

import pytest
from kapudf_testkit import case_dirs, read_case, support_env  # tests/support, via conftest

from udfcollection import registry
from udfcollection.offline import requests_for
from udfcollection.protocol import udf_pb2
from udfcollection.spec import BATCH
from udfcollection.testing import (
    WireClient,
    init_request,
    keepalive_request,
)

MB_STRING = "x" * (1 << 20)


def weird_values():
    return [("empty string", ""), ("text", "not a number"), ("bool", True), ("int", 7),
            ("NaN", math.nan), ("+inf", math.inf), ("-inf", -math.inf), ("huge", 1e308),
            ("negative zero", -0.0), ("1 MB string", MB_STRING)]


def set_field(pb: udf_pb2.Point, key: str, value) -> None:
    for m in (pb.fieldsDouble, pb.fieldsInt, pb.fieldsString, pb.fieldsBool):
        if key in m:
            del m[key]
    if isinstance(value, bool):
        pb.fieldsBool[key] = value
    elif isinstance(value, int):
        pb.fieldsInt[key] = value
    elif isinstance(value, float):
        pb.fieldsDouble[key] = value
    else:
        pb.fieldsString[key] = value


def field_names(pb: udf_pb2.Point) -> list[str]:
    return [*pb.fieldsDouble, *pb.fieldsInt, *pb.fieldsString, *pb.fieldsBool]


def malformed_points(template: udf_pb2.Request) -> list[tuple[str, udf_pb2.Request]]:
    """Variants of one valid point request, each broken in one way."""
    out = []

    def variant(label, change):
        r = copy.deepcopy(template)
        change(r.point)
        out.append((label, r))

    for f in field_names(template.point):
        variant(f"{f} missing", lambda pb, f=f: [m.pop(f, None) for m in (
            pb.fieldsDouble, pb.fieldsInt, pb.fieldsString, pb.fieldsBool)])
        for label, value in weird_values():
            variant(f"{f} {label}", lambda pb, f=f, v=value: set_field(pb, f, v))
    variant("no fields at all", lambda pb: [m.clear() for m in (
        pb.fieldsDouble, pb.fieldsInt, pb.fieldsString, pb.fieldsBool)])
    variant("extra 1 MB string field", lambda pb: set_field(pb, "blob", MB_STRING))
    variant("1000 extra tags", lambda pb: pb.tags.update(
        {f"tag{i:04d}": f"value{i}" * 10 for i in range(1000)}))
    variant("1 MB tag value", lambda pb: pb.tags.update({"big": MB_STRING}))
    variant("empty measurement", lambda pb: setattr(pb, "name", ""))
    variant("time 0", lambda pb: setattr(pb, "time", 0))
    variant("negative time", lambda pb: setattr(pb, "time", -1_000_000_000))
    variant("max time", lambda pb: setattr(pb, "time", 2**63 - 1))
    variant("min time", lambda pb: setattr(pb, "time", -(2**63)))
    variant("out of order", lambda pb: setattr(pb, "time", pb.time - 10**12))
    variant("duplicate", lambda pb: None)
    variant("duplicate again", lambda pb: None)
    return out


def first_case(name: str):
    dirs = case_dirs(name)
    if not dirs:
        pytest.skip(f"{name} has no golden case to take a point shape from")
    return read_case(dirs[0])


def stream_session(case, cls) -> tuple[list[udf_pb2.Request], list[str]]:
    valid = list(requests_for(cls, case.points, case.group_by))
    template = next(r for r in valid if r.WhichOneof("message") == "point")
    reqs, labels = list(valid), []
    for label, r in malformed_points(template):
        reqs.append(r)
        labels.append(label)
        reqs.append(copy.deepcopy(template))  # a valid point after each broken one
    return reqs, labels


def begin(group="", size=0, tags=None) -> udf_pb2.Request:
    r = udf_pb2.Request()
    r.begin.name = "m"
    r.begin.group = group
    r.begin.size = size
    r.begin.tags.update(tags or {})
    return r


def end(group="", tmax=0, tags=None) -> udf_pb2.Request:
    r = udf_pb2.Request()
    r.end.name = "m"
    r.end.group = group
    r.end.tmax = tmax
    r.end.tags.update(tags or {})
    return r


def batch_session(case, cls) -> tuple[list[udf_pb2.Request], int]:
    """Valid batches, then abusive ones. Returns the requests and how many EndBatch they
    hold (each must be answered by exactly one output batch)."""
    valid = list(requests_for(cls, case.points, case.group_by))
    pts = [r for r in valid if r.WhichOneof("message") == "point"]
    template = pts[0]
    g = template.point.group
    reqs = list(valid)
    # Malformed points inside otherwise good batches.
    for _label, bad in malformed_points(template):
        reqs += [begin(g, len(pts) + 1), *copy.deepcopy(pts), bad, end(g, template.point.time)]
    reqs += [begin(g, 1000), *copy.deepcopy(pts[:2]), end(g)]  # size hint too big
    reqs += [begin(g, 0), *copy.deepcopy(pts), end(g)]  # no size hint
    reqs += [begin(g, -5), *copy.deepcopy(pts), end(g)]  # nonsense size hint
    reqs += [begin(g, 2), *copy.deepcopy(pts), end(g)]  # too small
    reqs += [begin(g, 0), end(g)]  # empty batch
    reqs += [end(g)]  # EndBatch without BeginBatch
    reqs += [begin(g, 3), *copy.deepcopy(pts[:2]), begin(g, 3), *copy.deepcopy(pts[:2]),
             end(g)]  # BeginBatch inside an open batch: the open one is closed first
    reqs += [*copy.deepcopy(pts[:3]), end(g)]  # points with no BeginBatch
    reqs += [begin(g, 1, {f"t{i}": "v" * 50 for i in range(1000)}), copy.deepcopy(pts[0]),
             end(g, tags={f"t{i}": "v" * 50 for i in range(1000)})]  # huge batch tag set
    ends = sum(1 for r in reqs if r.WhichOneof("message") == "end")
    # The second BeginBatch of the nested pair and points-without-begin produce batches too:
    ends += 1
    return reqs, ends


def check_batches(responses: list[udf_pb2.Response]) -> int:
    """Output batches are well formed: BeginBatch, points, EndBatch, never nested, size equal
    to the points sent. Returns how many."""
    n = 0
    open_begin = None
    count = 0
    for r in responses:
        kind = r.WhichOneof("message")
        if kind == "begin":
            assert open_begin is None, "BeginBatch inside an open output batch"
            open_begin, count = r.begin, 0
        elif kind == "point":
            assert open_begin is not None, "output point outside a batch"
            count += 1
        elif kind == "end":
            assert open_begin is not None, "EndBatch without BeginBatch in the output"
            assert open_begin.size == count, (
                f"BeginBatch announced {open_begin.size} points, {count} followed")
            open_begin = None
            n += 1
    assert open_begin is None, "output ended inside a batch"
    return n


# Output fields that carry an input value as it came (so NaN in, NaN out), by UDF.
CARRIED = {"edge_detect": ("previous",)}


def computed_fields_finite(name: str, req_fields: set[str], responses) -> None:
    carried = CARRIED.get(name, ())
    for r in responses:
        if r.WhichOneof("message") != "point":
            continue
        for k, v in r.point.fieldsDouble.items():
            if k in req_fields or k.startswith(carried):
                continue  # an input value passed on as it came
            assert math.isfinite(v), f"computed field {k}={v} is not finite"


# UDF name -> reason, for a bug this test has found and that is not fixed yet (strict xfail).
KNOWN_BUGS: dict[str, str] = {}


def udf_params():
    return [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[n]))
            if n in KNOWN_BUGS else n for n in registry.names()]


@pytest.mark.parametrize("name", udf_params())
def test_malformed_inputs_never_kill_the_task(name):
    cls = registry.get(name)
    case = first_case(name)
    if cls.wants == BATCH:
        reqs, ends = batch_session(case, cls)
    else:
        reqs, _labels = stream_session(case, cls)
    input_fields = set()
    for r in reqs:
        if r.WhichOneof("message") == "point":
            input_fields.update(field_names(r.point))
    with WireClient.for_udf(name, env=support_env()) as client:
        init = client.request(init_request(case.options), timeout=60)
        assert init.init.success, init.init.error
        client.send_many(reqs, timeout=120)
        ka = client.request(keepalive_request(12345), timeout=60)
        responses = []
        while ka.WhichOneof("message") != "keepalive":
            responses.append(ka)
            ka = client.recv(timeout=60)
        client.close_input()
        responses += client.recv_all(timeout=120)
        code = client.wait(30)
        stderr = client.stderr_text()
    kinds = [r.WhichOneof("message") for r in responses]
    assert "error" not in kinds, next(r.error.error for r in responses
                                      if r.WhichOneof("message") == "error")
    assert code == 0, stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    computed_fields_finite(name, input_fields, responses)
    if cls.wants == BATCH:
        assert check_batches(responses) == ends
    # Logs stay one line per record even with 1 MB values in the points: every line starts
    # with a level word and no line is absurdly long (a 1 MB value must not be dumped).
    for line in stderr.splitlines():
        assert line.split(" ", 1)[0] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), line
        assert len(line) < 20_000, f"log line of {len(line)} characters: {line[:200]}..."
