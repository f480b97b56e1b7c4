"""A UDF that takes 5 s per point must not get its task killed, nor make the agent balloon.

Kapacitor kills a UDF that answers nothing for `timeout`, and keeps writing data without
waiting for replies. The agent's reader thread answers keepalives while the handler is busy,
and stops reading once its bounded queue is full (back-pressure through the pipe), sending a
keepalive answer on its own while it waits. These tests drive a real `kapudf run` over pipes
with test-only UDFs defined here and loaded as `test_faults_slow_handler:Class`.
"""

from __future__ import annotations

import itertools
import os
import select
import threading
import time
from pathlib import Path

import psutil
import pytest

from udfcollection.agent.connection import MAX_BUFFERED, READ_SIZE
from udfcollection.protocol import udf_pb2
from udfcollection.protocol.framing import encode_frame
from udfcollection.spec import DURATION, UDF, Option
from udfcollection.testing import (
    WireClient,
    init_request,
    kapudf_command,
    keepalive_request,
    point_request,
)

TESTS = Path(__file__).resolve().parent


class SleepyUDF(UDF):
    """Sleeps `sleep` per point (a model stuck on I/O), then passes the point on."""

    name = "sleepy"
    summary = "Test only: sleeps per point."
    options = (Option("sleep", DURATION, "Time to sleep per point.", default=5_000_000_000),)

    def process(self, point, state):
        time.sleep(self.opts.sleep / 1e9)
        return point.emit({})


class SpinUDF(UDF):
    """Burns CPU in pure Python for `spin` per point (a slow pure-Python model)."""

    name = "spin"
    summary = "Test only: busy loop per point."
    options = (Option("spin", DURATION, "CPU time to burn per point.", default=2_000_000_000),)

    def process(self, point, state):
        end = time.monotonic() + self.opts.spin / 1e9
        x = 0
        while time.monotonic() < end:
            x += 1
        return point.emit({"loops": x})


def client_for(cls_name: str) -> WireClient:
    env = {"PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return WireClient(kapudf_command("run", f"test_faults_slow_handler:{cls_name}"), env=env)


FAULTY_SCRIPT = TESTS / "compat_scripts" / "faulty.py"


def sleeper(kind: str) -> tuple[WireClient, udf_pb2.Request]:
    """A handler sleeping 5 s per point: a catalogue-style UDF, or a stock-agent script run
    unchanged by the compatibility runner. Returns the client and its init request."""
    if kind == "udf":
        return client_for("SleepyUDF"), init_request()
    return (WireClient(kapudf_command("run", str(FAULTY_SCRIPT))),
            init_request([("sleep", [("duration", 5_000_000_000)])]))


SLEEPERS = ["udf", "stock script"]


def keepalive_latencies(client: WireClient, n: int, start_id: int) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.monotonic()
        resp = client.request(keepalive_request(start_id + i), timeout=5)
        out.append(time.monotonic() - t0)
        assert resp.WhichOneof("message") == "keepalive"
        assert resp.keepalive.time == start_id + i
        time.sleep(0.05)
    return out


@pytest.mark.parametrize("kind", SLEEPERS)
def test_keepalives_answered_within_100ms_while_handler_sleeps_5s(kind):
    client, init = sleeper(kind)
    with client:
        assert client.request(init, timeout=20).init.success
        keepalive_latencies(client, 3, 1)  # warm up: the agent is up and idle
        client.send(point_request(1, {"v": 1.0}))
        time.sleep(0.3)  # the handler is now inside its 5 s sleep
        t_blocked = time.monotonic()
        lat = keepalive_latencies(client, 20, 100)
        assert time.monotonic() - t_blocked < 4.5, "measurements ran past the handler's sleep"
        print(f"keepalive latency while sleeping: max {max(lat) * 1e3:.1f} ms")
        assert max(lat) < 0.1, f"keepalive latencies while busy: {[round(x, 3) for x in lat]}"
        # Nothing but keepalive answers so far: the point is still being slept on (the point
        # coming out afterwards is test_slow_handler_is_not_killed_by_end_of_input's part).
        client.poll(0.0)
        assert client.proc.poll() is None


def test_keepalives_answered_while_handler_burns_cpu():
    """Pure-Python work holds the GIL between switch intervals; the reader thread still gets
    its turn quickly enough."""
    with client_for("SpinUDF") as client:
        assert client.request(init_request(), timeout=20).init.success
        keepalive_latencies(client, 3, 1)
        client.send(point_request(1, {"v": 1.0}))
        time.sleep(0.2)
        lat = keepalive_latencies(client, 10, 100)
        print(f"keepalive latency while spinning: max {max(lat) * 1e3:.1f} ms")
        assert max(lat) < 0.1, f"keepalive latencies while spinning: {[round(x, 3) for x in lat]}"
        out = client.recv(timeout=10)
        assert out.WhichOneof("message") == "point" and out.point.fieldsInt["loops"] > 0


@pytest.mark.parametrize("kind", SLEEPERS)
def test_back_pressure_bounds_memory_and_heartbeats_keep_task_alive(kind):
    point = encode_frame(point_request(1, {"v": 1.0, "pad": "x" * 200},
                                       tags={"host": "a"}).SerializeToString())
    block = point * (65536 // len(point))
    client, init = sleeper(kind)
    with client:
        assert client.request(init, timeout=20).init.success
        # Kapacitor sends keepalives from the start; the heartbeat echoes the last one seen.
        assert client.request(keepalive_request(42), timeout=5).keepalive.time == 42
        agent = psutil.Process(client.proc.pid)
        base_rss = agent.memory_info().rss
        written = [0]
        stop = threading.Event()
        fd = client.proc.stdin.fileno()

        def write_forever() -> None:
            # Writes that stall once the agent stops reading, like Kapacitor's (the fd may be
            # non-blocking: wait for it to become writable instead of failing).
            try:
                while not stop.is_set():
                    view = memoryview(block)
                    while view and not stop.is_set():
                        if not select.select([], [fd], [], 0.05)[1]:
                            continue
                        try:
                            n = os.write(fd, view)
                        except BlockingIOError:
                            continue
                        written[0] += n
                        view = view[n:]
            except OSError:
                pass

        writer = threading.Thread(target=write_forever, daemon=True)
        writer.start()
        arrivals = []
        t_end = time.monotonic() + 4.0
        peak_rss = base_rss
        while time.monotonic() < t_end:
            try:
                resp = client.recv(timeout=0.1)
            except AssertionError:  # WireError: nothing within 0.1 s
                resp = None
            if resp is not None:
                arrivals.append((time.monotonic(), resp.WhichOneof("message"),
                                 resp.keepalive.time))
            peak_rss = max(peak_rss, agent.memory_info().rss)
        accepted = written[0]
        stop.set()
        client.kill()
        writer.join(5)

    # The agent stopped taking input: it reads ahead at most MAX_BUFFERED bytes plus one read,
    # and the pipe holds a little more. Without back-pressure it would have read hundreds of MiB.
    print(f"accepted {accepted / 2**20:.2f} MiB, RSS +{(peak_rss - base_rss) / 2**20:.1f} MiB, "
          f"responses {[(round(t - arrivals[0][0], 2), k) for t, k, _ in arrivals]}")
    bound = MAX_BUFFERED + READ_SIZE + 2**20
    assert accepted < bound, f"agent accepted {accepted / 2**20:.1f} MiB while stuck"
    assert peak_rss - base_rss < 32 * 2**20, (
        f"agent RSS grew {(peak_rss - base_rss) / 2**20:.1f} MiB under back-pressure")
    # Heartbeats: keepalive answers (echoing the last keepalive seen) at least every second,
    # so a Kapacitor timeout of even 2 s is never reached while the handler is stuck.
    beats = [t for t, kind, ka in arrivals if kind == "keepalive" and ka == 42]
    assert len(beats) >= 4, arrivals
    gaps = [b - a for a, b in itertools.pairwise(beats)]
    assert max(gaps) < 1.0, f"gaps between heartbeats: {[round(g, 2) for g in gaps]}"


def test_slow_handler_is_not_killed_by_end_of_input():
    """Input closes while points are still being processed: all are processed, then exit 0."""
    with client_for("SleepyUDF") as client:
        init = client.request(init_request([("sleep", [("duration", 300_000_000)])]),
                              timeout=20)
        assert init.init.success
        client.send_many([point_request(t, {"v": float(t)}) for t in range(1, 6)])
        client.close_input()
        out = client.recv_all(timeout=15)
        assert client.wait(10) == 0
    assert [r.point.time for r in out if r.WhichOneof("message") == "point"] == [1, 2, 3, 4, 5]


_ = udf_pb2  # the Response type of recv() results
