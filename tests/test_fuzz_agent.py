"""Fuzzing the agent with random and mutated frame streams built from a valid session.

Every input must end in one of two ways, and which one is decided here independently of the
agent, from the bytes alone (see `expected_outcome`):
- clean: every message processed, every management request answered in order, exit code 0;
- corrupt: exactly one ErrorResponse, as the last frame, after the answers to everything that
  came before the corruption, and exit code 1.
Never a hang, never a partial frame on the output.

Most examples run in-process through the real Connection reader thread and the real protocol
loop (many examples, fast); a smaller number run through a real `kapudf run edge_detect`
subprocess over pipes, which adds stdout/stderr separation, process exit and timing.
"""

from __future__ import annotations

import io
import random
import time
from pathlib import Path

import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from kapudf_test_udfs import ColumnScaler  # tests/support
from reference_framing import reference_decode
from regressions.streams import STREAMS  # tests/regressions

from udfcollection.agent.connection import Connection, FrameWriter
from udfcollection.agent.runtime import serve
from udfcollection.agent.udf_handler import UDFHandler
from udfcollection.protocol import udf_pb2
from udfcollection.protocol.framing import FrameSplitter, encode_frame
from udfcollection.testing import (
    WireClient,
    info_request,
    init_request,
    kapudf_command,
    keepalive_request,
    point_request,
    restore_request,
    snapshot_request,
)
from udfcollection.udfs.edge_detect import EdgeDetect

MANAGEMENT = ("info", "init", "snapshot", "restore")


def session_requests() -> list[udf_pb2.Request]:
    """A plausible Kapacitor conversation with edge_detect."""
    reqs = [info_request(), init_request([("field", [("string", "value")])]),
            keepalive_request(1)]
    values = ["up", "up", "down", "down", "up", 1, 1.0, True, "up"]
    for i, v in enumerate(values):
        reqs.append(point_request(1_000_000_000 * i, {"value": v, "n": i},
                                  tags={"host": "ab"[i % 2]}, group_by=["host"]))
    reqs += [snapshot_request(), keepalive_request(2),
             restore_request(b'{"format":"kapudf-snapshot"}')]
    reqs.append(point_request(99_000_000_000, {"value": "down"}, tags={"host": "a"},
                              group_by=["host"]))
    return reqs


SESSION = [r.SerializeToString() for r in session_requests()]
SESSION_BYTES = b"".join(encode_frame(b) for b in SESSION)


# --- the independent oracle ------------------------------------------------------------------

def split_reference(data: bytes) -> tuple[list[bytes], bool]:
    """Frames of `data` and whether the framing is corrupt (bad varint, over-long length, or
    input ending inside a frame), by the reference decoder."""
    frames, _offsets, error_at, leftover = reference_decode(data)
    return frames, error_at is not None or leftover > 0


def expected_outcome(data: bytes) -> tuple[list[str], int, int, bool]:
    """(kinds of management requests the agent must answer, in order; the least and the most
    keepalive answers; whether the stream must end in an ErrorResponse).

    The reader thread answers keepalives as it reads, ahead of the handler, so keepalives that
    follow an undecodable message may or may not be answered before the agent stops: anything
    between those before the bad message and all those in well-framed input is correct.
    """
    frames, corrupt = split_reference(data)
    answers: list[str] = []
    ka_before = ka_all = 0
    bad = False
    for body in frames:
        try:
            req = udf_pb2.Request.FromString(body)
            kind = req.WhichOneof("message")
        except DecodeError:
            kind = None
        if kind == "keepalive":
            ka_all += 1
            ka_before += not bad
        elif kind is None:
            bad = True
        elif kind in MANAGEMENT and not bad:
            answers.append(kind)
    return answers, ka_before, ka_all, corrupt or bad


def check_output(data: bytes, out: bytes, code: int) -> list[udf_pb2.Response]:
    sp = FrameSplitter()
    frames, _ = sp.feed(bytes(out))
    assert sp.pending == 0, "output ends inside a frame"
    responses = [udf_pb2.Response.FromString(f) for f in frames]
    kinds = [r.WhichOneof("message") for r in responses]
    answers, ka_min, ka_max, corrupt = expected_outcome(data)
    errors = [i for i, k in enumerate(kinds) if k == "error"]
    if corrupt:
        assert errors == [len(kinds) - 1], (
            f"want one ErrorResponse, last; got errors at {errors} of {len(kinds)} frames")
        assert code == 1
        assert "corrupt input" in responses[-1].error.error
    else:
        assert errors == [], responses[errors[0]].error.error if errors else ""
        assert code == 0
    assert [k for k in kinds if k in MANAGEMENT] == answers
    assert ka_min <= kinds.count("keepalive") <= ka_max
    return responses


# --- mutations --------------------------------------------------------------------------------

@st.composite
def mutated_stream(draw) -> bytes:
    frames = list(SESSION)
    for _ in range(draw(st.integers(0, 2))):
        op = draw(st.sampled_from(["dup", "drop", "swap", "garbage_body", "none"]))
        i = draw(st.integers(0, len(frames) - 1))
        if op == "dup":
            frames.insert(i, frames[i])
        elif op == "drop" and len(frames) > 1:
            frames.pop(i)
        elif op == "swap":
            j = draw(st.integers(0, len(frames) - 1))
            frames[i], frames[j] = frames[j], frames[i]
        elif op == "garbage_body":
            frames[i] = draw(st.binary(max_size=64))
    data = bytearray(b"".join(encode_frame(f) for f in frames))
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "none"]))
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 8))]
        elif op == "truncate":
            del data[pos:]
    return bytes(data)


streams = st.one_of(mutated_stream(), st.binary(max_size=200))


# --- in-process -------------------------------------------------------------------------------

def run_in_process(data: bytes, seed: int, udf=EdgeDetect) -> tuple[bytes, int]:
    rng = random.Random(seed)
    src = io.BytesIO(data)

    def read(_n: int) -> bytes:
        # Reads of random sizes, as a pipe delivers them.
        return src.read(rng.choice([1, 2, 3, 7, 64, 4096]))

    out = bytearray()
    writer = FrameWriter(out.extend)
    conn = Connection(read, writer, heartbeat=30.0).start()
    code = serve(conn, UDFHandler(udf))
    writer.flush()
    return bytes(out), code


@settings(max_examples=400, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(streams, st.integers(0, 1000))
@example(SESSION_BYTES, 0)
@example(b"", 0)
@example(SESSION_BYTES[:-1], 1)  # input ends inside the last frame
@example(encode_frame(b"") + SESSION_BYTES, 2)  # an empty Request: no message type
@example(SESSION_BYTES + b"\xff\xff\xff\xff\xff\xff", 3)  # 6-byte varint after good frames
def test_in_process(data, seed):
    out, code = run_in_process(data, seed)
    check_output(data, out, code)


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(streams, st.integers(0, 1000))
@example(SESSION_BYTES, 0)
@example(SESSION_BYTES[:-1], 1)
def test_in_process_column_path(data, seed):
    """The same streams through a UDF on the column path (PointBlock in, FieldColumns out)."""
    out, code = run_in_process(data, seed, ColumnScaler)
    check_output(data, out, code)


def test_valid_session_answers_everything():
    out, code = run_in_process(SESSION_BYTES, 0)
    responses = check_output(SESSION_BYTES, out, code)
    kinds = [r.WhichOneof("message") for r in responses]
    assert kinds.count("info") == 1 and kinds.count("init") == 1
    init = next(r for r in responses if r.WhichOneof("message") == "init")
    assert init.init.success
    # Group a: up, down, up, 1 (int), up; group b: up, down, 1.0, True -> edges by hand:
    # a: up(first) down up 1 up -> 5 emitted, then the final 'down' -> 6;
    # b: up(first) down 1.0 True -> 4.
    points = [r.point for r in responses if r.WhichOneof("message") == "point"]
    assert len(points) == 10


# --- over the wire ----------------------------------------------------------------------------

WIRE_EXAMPLES = 25


def wire_session(cmd: list[str], data: bytes, what: str) -> tuple[int, str]:
    """Send `data` to a started agent, close its input, check what came back; returns (exit
    code, stderr)."""
    with WireClient(cmd) as client:
        # Wait until the agent is up so the deadline below measures the agent, not start-up.
        assert client.request(info_request(), timeout=20).WhichOneof("message") == "info"
        client.send_raw(data)
        client.close_input()
        t0 = time.monotonic()
        responses = client.recv_all(timeout=10)
        code = client.wait(10)
        elapsed = time.monotonic() - t0
        stderr = client.stderr_text()
    # Re-encoding is exact here because recv_all already checked the raw stream ends on a
    # frame boundary; check_output re-splits it.
    out = b"".join(encode_frame(r.SerializeToString()) for r in responses)
    check_output(data, out, code)
    assert elapsed < 3.0, f"{what} took {elapsed:.2f}s to finish after input closed"
    assert "Traceback" not in stderr, stderr[-2000:]
    return code, stderr


@settings(max_examples=WIRE_EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(streams)
@example(SESSION_BYTES[:-3])
@example(b"\x00" + b"\xff" * 12)
def test_over_the_wire(data):
    code, stderr = wire_session(kapudf_command("run", "edge_detect"), data, "agent")
    if code:
        assert stderr.count("corrupt input") == 1, stderr


def test_nothing_follows_the_error_response():
    """Regression: the reader thread kept answering keepalives read after a bad message, so a
    keepalive answer could follow the ErrorResponse. Kapacitor stops at the error; nothing may
    come after it."""
    data = SESSION_BYTES + encode_frame(b"\xff") + encode_frame(
        keepalive_request(7).SerializeToString()) * 3000
    src = io.BytesIO(data)
    out = bytearray()
    writer = FrameWriter(out.extend)
    conn = Connection(lambda _n: src.read(16), writer, heartbeat=30.0).start()
    code = serve(conn, UDFHandler(EdgeDetect))
    writer.flush()
    conn._thread.join(10)
    assert not conn._thread.is_alive()
    responses = check_output(data, bytes(out), code)
    assert responses[-1].WhichOneof("message") == "error"


def test_nothing_follows_the_error_response_over_the_wire():
    data = SESSION_BYTES + encode_frame(b"\xff") + encode_frame(
        keepalive_request(7).SerializeToString()) * 20000
    with WireClient.for_udf("edge_detect") as client:
        client.send_raw(data)
        client.close_input()
        responses = client.recv_all(timeout=10)
        code = client.wait(10)
    assert code == 1
    kinds = [r.WhichOneof("message") for r in responses]
    assert kinds.count("error") == 1
    assert kinds[-1] == "error", kinds[kinds.index("error"):][:5]


def test_huge_length_prefix_then_eof_allocates_nothing_up_front():
    """A prefix claiming 60 MiB: the agent holds only what arrived, and at EOF answers with
    one ErrorResponse and exits 1 within a second."""
    import psutil

    from udfcollection.protocol.framing import encode_varint

    with WireClient.for_udf("edge_detect") as client:
        assert client.request(info_request(), timeout=20).WhichOneof("message") == "info"
        agent = psutil.Process(client.proc.pid)
        before = agent.memory_info().rss
        client.send_raw(encode_varint(60 << 20) + b"\x8a" * 1000)
        time.sleep(0.3)
        grown = agent.memory_info().rss - before
        t0 = time.monotonic()
        client.close_input()
        responses = client.recv_all(timeout=10)
        code = client.wait(10)
        elapsed = time.monotonic() - t0
    assert grown < 8 * 2**20, f"RSS grew {grown / 2**20:.1f} MiB on a 60 MiB length prefix"
    assert [r.WhichOneof("message") for r in responses] == ["error"]
    assert "input ended inside a frame" in responses[0].error.error
    assert code == 1
    assert elapsed < 1.0, f"{elapsed:.2f}s from end of input to exit"


# --- the compatibility runner: a stock-agent script on kapudf's core ----------------------------

COMPAT_SCRIPT = Path(__file__).resolve().parent / "compat_scripts" / "moving_avg.py"


def compat_session() -> bytes:
    reqs = [info_request(),
            init_request([("field", [("string", "value")]), ("size", [("int", 3)])]),
            keepalive_request(1)]
    for i in range(8):
        reqs.append(point_request(1_000_000_000 * i, {"value": float(i % 3)},
                                  tags={"host": "ab"[i % 2]}, group_by=["host"]))
    reqs += [snapshot_request(), keepalive_request(2), restore_request(b'{"host=a": [1.0]}'),
             point_request(99_000_000_000, {"value": 5.0}, tags={"host": "a"},
                           group_by=["host"])]
    return b"".join(encode_frame(r.SerializeToString()) for r in reqs)


COMPAT_BYTES = compat_session()


@st.composite
def compat_stream(draw) -> bytes:
    data = bytearray(COMPAT_BYTES)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if not data:
            break
        if op == "flip":
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 8))]
        else:
            del data[pos:]
    return bytes(data)


@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(compat_stream())
@example(COMPAT_BYTES)
@example(COMPAT_BYTES[:-2])
def test_compat_runner_over_the_wire(data):
    wire_session(kapudf_command("run", str(COMPAT_SCRIPT)), data, "compat runner")


# --- inputs that once failed ------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(STREAMS))
def test_regression_stream(name):
    data = STREAMS[name]()
    with WireClient.for_udf("edge_detect") as client:
        client.send_raw(data)
        client.close_input()
        responses = client.recv_all(timeout=10)
        code = client.wait(10)
        stderr = client.stderr_text()
    out = b"".join(encode_frame(r.SerializeToString()) for r in responses)
    check_output(data, out, code)
    assert "Traceback" not in stderr, stderr[-2000:]
    if name.startswith("restore"):
        # The point after the unusable snapshot is processed as a group's first point.
        points = [r.point for r in responses if r.WhichOneof("message") == "point"]
        assert points and points[0].time == 10, name
