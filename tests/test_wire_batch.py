"""Batches over the real wire, with a test-only batch UDF (tests/support/kapudf_test_udfs.py).

Kapacitor sends BeginBatch, points (no name, database or retention policy), EndBatch; a UDF that
provides batches answers BeginBatch (size = points it emits), its points, then EndBatch, with
name, group and tags of the input batch.
"""

from __future__ import annotations

from udfcollection.protocol import udf_pb2
from udfcollection.testing import (
    begin_request,
    end_request,
    init_request,
    point_request,
)

TOPN = "kapudf_test_udfs:TopN"


def kinds(responses):
    return [r.WhichOneof("message") for r in responses]


def batch(host: str, values: list[float], t0: int, size_hint: int | None = None):
    tags = {"host": host}
    group = f"host={host}"
    reqs = [begin_request("cpu", group, tags, size=len(values) if size_hint is None
                          else size_hint)]
    for i, v in enumerate(values):
        r = point_request(t0 + i, {"value": v}, tags=tags, group_by=["host"])
        r.point.name = ""  # as Kapacitor sends batch points
        reqs.append(r)
    reqs.append(end_request("cpu", group, tags, tmax=t0 + 100))
    return reqs


def start(wire, n: int):
    c = wire(TOPN)
    assert c.request(init_request([("field", [("string", "value")]), ("n", [("int", n)])])
                     ).init.success
    return c


def test_batch_in_batch_out(wire):
    c = start(wire, 2)
    c.send_many(batch("a", [3.0, 9.0, 1.0, 7.0], 1000) + batch("b", [5.0], 2000)
                + batch("a", [4.0, 2.0, 8.0], 3000))
    c.close_input()
    out = c.recv_all()
    assert c.wait() == 0
    assert kinds(out) == ["begin", "point", "point", "end",
                          "begin", "point", "end",
                          "begin", "point", "point", "end"]
    b1, b2, b3 = out[0].begin, out[4].begin, out[7].begin
    assert (b1.name, b1.group, dict(b1.tags), b1.size) == ("cpu", "host=a", {"host": "a"}, 2)
    assert (b2.group, b2.size) == ("host=b", 1)
    assert (b3.group, b3.size) == ("host=a", 2)
    # The two largest of each batch, in time order: 9 (t=1001) and 7 (t=1003); then 5; then
    # 4 (t=3000) and 8 (t=3002). batch_no counts batches per group (state).
    pts = [(r.point.time, r.point.fieldsDouble["value"], r.point.fieldsInt["batch_no"])
           for r in out if r.HasField("point")]
    assert pts == [(1001, 9.0, 1), (1003, 7.0, 1), (2000, 5.0, 1), (3000, 4.0, 2),
                   (3002, 8.0, 2)]
    for r in out:
        if r.HasField("point"):
            assert dict(r.point.tags)["host"] in ("a", "b")
    e1 = out[3].end
    assert (e1.name, e1.group, dict(e1.tags), e1.tmax) == ("cpu", "host=a", {"host": "a"}, 1100)


def test_size_hint_that_lies_is_ignored(wire):
    c = start(wire, 5)
    c.send_many(batch("a", [1.0, 2.0, 3.0], 0, size_hint=100))
    c.close_input()
    out = c.recv_all()
    assert kinds(out) == ["begin", "point", "point", "point", "end"]
    assert out[0].begin.size == 3


def test_empty_answer_is_still_a_batch(wire):
    c = start(wire, 0)
    c.send_many(batch("a", [1.0, 2.0], 0))
    c.close_input()
    out = c.recv_all()
    assert kinds(out) == ["begin", "end"]
    assert out[0].begin.size == 0


def test_end_of_input_inside_a_batch_processes_the_partial_batch(wire):
    c = start(wire, 1)
    c.send_many(batch("a", [1.0, 6.0, 2.0], 0)[:-1])  # no EndBatch
    c.close_input()
    out = c.recv_all()
    assert c.wait() == 0
    assert kinds(out) == ["begin", "point", "end"]
    assert out[1].point.fieldsDouble["value"] == 6.0
    assert out[2].end.tmax == 2  # the latest point time (t=0,1,2): no EndBatch said otherwise
    assert "input ended inside a batch" in c.stderr_text()


def test_end_batch_without_begin_is_answered_with_an_empty_batch(wire):
    c = start(wire, 1)
    c.send(end_request("cpu", "host=a", {"host": "a"}, tmax=5))
    c.close_input()
    out = c.recv_all()
    assert kinds(out) == ["begin", "end"]
    assert c.wait() == 0
    assert "EndBatch without BeginBatch" in c.stderr_text()


def test_batch_to_stream(wire):
    c = wire("kapudf_test_udfs:BatchToStream")
    assert c.request(init_request()).init.success
    c.send_many(batch("a", [1.0, 2.0, 3.0], 0) + batch("b", [1.0], 50))
    c.close_input()
    out = c.recv_all()
    assert kinds(out) == ["point", "point"]
    assert [(r.point.time, r.point.fieldsInt["count"], dict(r.point.tags)) for r in out] == [
        (100, 3, {"host": "a"}), (150, 1, {"host": "b"})]
    assert all(r.point.name == "cpu" for r in out)


def test_stream_udf_ignores_batch_frames_with_a_warning(wire):
    c = wire("edge_detect")
    assert c.request(init_request([("field", [("string", "value")])])).init.success
    c.send_many(batch("a", [1.0], 0))
    c.close_input()
    out = c.recv_all()
    # The point inside is still a point to a stream UDF; the batch frames are not echoed.
    assert kinds(out) == ["point"]
    assert c.wait() == 0
    assert "BeginBatch received by a stream UDF" in c.stderr_text()
    assert isinstance(out[0], udf_pb2.Response)
