"""Corrupt input, awkward framing and exceptions in UDF code, over the real wire.

Corrupt input is the one thing that ends the task: exactly one ErrorResponse saying what and
at which byte offset, then a non-zero exit without a traceback. Exceptions in UDF code are data
problems: logged with measurement, group and time, and the stream keeps flowing (onError).
"""

from __future__ import annotations

import time

import pytest
from google.protobuf.internal.encoder import _VarintBytes

from udfcollection.protocol.framing import MAX_FRAME_LEN, encode_frame
from udfcollection.testing import (
    LEVEL_WORDS,
    init_request,
    keepalive_request,
    point_request,
)

COUNTER = "kapudf_test_udfs:Counter"
INIT = init_request([("field", [("string", "v")])])
INIT_BYTES = encode_frame(INIT.SerializeToString())
POINTS = [point_request(i, {"v": 1.0}) for i in range(3)]
POINT_BYTES = b"".join(encode_frame(p.SerializeToString()) for p in POINTS)
GOOD = INIT_BYTES + POINT_BYTES  # the corruption starts at byte len(GOOD)


def kinds(responses):
    return [r.WhichOneof("message") for r in responses]


@pytest.mark.parametrize(("garbage", "close", "words"), [
    (b"\x80\x80\x80\x80\x80\x01", False, "length varint longer than 5 bytes"),
    (_VarintBytes(MAX_FRAME_LEN + 1) + b"xx", False,
     f"frame length {MAX_FRAME_LEN + 1} exceeds the {MAX_FRAME_LEN}-byte limit"),
    (encode_frame(b"\x0a\x05ab"), False, "undecodable message"),     # truncated submessage
    (encode_frame(b"\x8a\x01\x05ab"), False, "undecodable point message"),
    (encode_frame(b"\x32\x00"), False, "no known request type"),      # a Response-only field
    (b"\x10abc", True, "input ended inside a frame (4 bytes of it read)"),
    (b"hello, this is not the protocol\n", True, "input ended inside a frame"),
])
def test_garbage_gives_one_error_response_with_offset_and_exit_1(wire, garbage, close, words):
    c = wire(COUNTER)
    c.send_raw(GOOD + garbage)  # one write: good frames and garbage arrive together
    if close:
        c.close_input()
    out = c.recv_all(timeout=10)
    # Everything before the corruption was processed: init answered, 3 points counted.
    assert kinds(out) == ["init", "point", "point", "point", "error"]
    assert [r.point.fieldsInt["count"]
            for r in out[1:4]] == [1, 2, 3]
    err = out[-1].error.error
    assert words in err
    assert f"at byte offset {len(GOOD)}" in err
    assert c.wait(timeout=10) == 1
    stderr = c.stderr_text()
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert lines and all(ln.split(" ", 1)[0] in LEVEL_WORDS for ln in lines)
    assert any(ln.startswith("ERROR ") and words in ln for ln in lines)


def test_garbage_arriving_in_a_later_read_is_reported_the_same_way(wire):
    c = wire(COUNTER)
    c.send_raw(GOOD)
    assert kinds([c.recv() for _ in range(4)]) == ["init", "point", "point", "point"]
    c.send_raw(b"\xff\xff\xff\xff\xff\xff")
    out = c.recv_all()
    assert kinds(out) == ["error"]
    assert f"byte offset {len(GOOD)}" in out[0].error.error
    assert c.wait() == 1


def test_frames_split_byte_by_byte(wire):
    c = wire(COUNTER)
    stream = GOOD + encode_frame(keepalive_request(99).SerializeToString())
    for i in range(len(stream)):
        c.send_raw(stream[i:i + 1])
        if i % 7 == 0:
            time.sleep(0.001)  # let the reader see partial frames, not one coalesced read
    c.close_input()
    out = c.recv_all()
    assert sorted(kinds(out)) == sorted(["init", "point", "point", "point", "keepalive"])
    assert [r.point.fieldsInt["count"] for r in out if r.HasField("point")] == [1, 2, 3]
    assert [r.keepalive.time for r in out if r.HasField("keepalive")] == [99]
    assert c.wait() == 0


def test_many_frames_per_write(wire):
    c = wire(COUNTER)
    n = 20000
    reqs = [INIT] + [point_request(i, {"v": 2.0}, tags={"g": str(i % 4)}, group_by=["g"])
                     for i in range(n)]
    c.send_many(reqs)
    c.close_input()
    out = c.recv_all(timeout=60)
    assert kinds(out) == ["init"] + ["point"] * n
    # Point i is the (i // 4 + 1)-th of its group: count and sum follow from that alone.
    for i, r in enumerate(out[1:]):
        assert r.point.time == i
        assert r.point.fieldsInt["count"] == i // 4 + 1
        assert r.point.fieldsDouble["sum"] == 2.0 * (i // 4 + 1)
    assert c.wait() == 0


# --- exceptions in UDF code ---------------------------------------------------------------

T0 = 1_600_000_000 * 10**9  # 2020-09-13T12:26:40Z
VALUES = [1.0, 0.0, 2.0, -1.0, 4.0]  # Boom raises ZeroDivisionError on 0, ValueError below 0


def _boom(wire, on_error: str | None):
    c = wire("kapudf_test_udfs:Boom")
    opts = [] if on_error is None else [("onError", [("string", on_error)])]
    assert c.request(init_request(opts)).init.success
    c.send_many([point_request(T0 + i * 10**9, {"value": v}, name="boomy", tags={"host": "a"},
                               group_by=["host"]) for i, v in enumerate(VALUES)])
    c.close_input()
    out = c.recv_all()
    return c, out


def test_exception_in_udf_code_is_logged_and_the_point_dropped_by_default(wire):
    c, out = _boom(wire, None)
    assert kinds(out) == ["point"] * 3
    assert [r.point.fieldsDouble["inv"] for r in out] == [1.0, 0.5, 0.25]
    assert c.wait() == 0
    lines = c.stderr_text().splitlines()
    zero = [ln for ln in lines if "ZeroDivisionError" in ln]
    assert len(zero) == 1
    assert zero[0].startswith("WARNING ") and "point dropped" in zero[0]
    assert "measurement=boomy group=host=a time=2020-09-13T12:26:41Z" in zero[0]
    neg = [ln for ln in lines if "ValueError" in ln]
    assert len(neg) == 1 and "time=2020-09-13T12:26:43Z" in neg[0]
    assert "Traceback" not in c.stderr_text()


def test_on_error_pass_forwards_the_failing_point_unchanged(wire):
    c, out = _boom(wire, "pass")
    assert [r.point.time - T0 for r in out] == [i * 10**9 for i in range(5)]
    assert [dict(r.point.fieldsDouble) for r in out] == [
        {"value": 1.0, "inv": 1.0}, {"value": 0.0}, {"value": 2.0, "inv": 0.5},
        {"value": -1.0}, {"value": 4.0, "inv": 0.25}]
    assert all(r.point.name == "boomy" and r.point.group == "host=a" for r in out)
    assert c.wait() == 0
    assert "point passed on unchanged" in c.stderr_text()


def test_on_error_fail_stops_the_task_with_an_error_response(wire):
    c, out = _boom(wire, "fail")
    assert kinds(out) == ["point", "error"]
    err = out[-1].error.error
    assert "ZeroDivisionError" in err and "onError='fail'" in err
    assert "measurement=boomy group=host=a time=2020-09-13T12:26:41Z" in err
    assert c.wait() == 1
    assert "Traceback" not in c.stderr_text()


def test_repeated_errors_are_rate_limited(wire):
    c = wire("kapudf_test_udfs:Boom")
    assert c.request(init_request()).init.success
    c.send_many([point_request(i, {"value": 0}) for i in range(200)])
    c.close_input()
    assert c.recv_all() == []
    assert c.wait() == 0
    n = sum("ZeroDivisionError" in ln for ln in c.stderr_text().splitlines())
    assert 1 <= n <= 10, n
