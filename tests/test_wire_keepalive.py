"""Keepalives are answered while the UDF is busy: Kapacitor kills a UDF that answers nothing
for `timeout`, and a point that takes longer than that must not cost the task."""

from __future__ import annotations

import time

from udfcollection.testing import init_request, keepalive_request, point_request

SLEEPY = "kapudf_test_udfs:Sleepy"


def _wait_for(c, kind: str, timeout: float):
    """Receive until a response of `kind`; returns (response, seconds waited, others)."""
    t0 = time.monotonic()
    others = []
    while True:
        r = c.recv(timeout=max(0.01, timeout - (time.monotonic() - t0)))
        if r.WhichOneof("message") == kind:
            return r, time.monotonic() - t0, others
        others.append(r)


def test_keepalive_answered_while_udf_sleeps_two_seconds_per_point(wire):
    c = wire(SLEEPY)
    assert c.request(init_request([("seconds", [("double", 2.0)])])).init.success
    c.send(point_request(1, {"value": 1}))
    time.sleep(0.3)  # the handler is now inside its 2 s sleep
    c.send(keepalive_request(12345))
    resp, waited, before = _wait_for(c, "keepalive", timeout=5)
    assert resp.keepalive.time == 12345
    assert before == []  # answered ahead of the point still being processed
    # Generous bound, well below the ~1.7 s the point has left: the answer did not queue
    # behind the busy handler.
    assert waited < 1.0, f"keepalive took {waited:.2f}s"
    c.send(keepalive_request(12346))
    resp, waited, _ = _wait_for(c, "keepalive", timeout=5)
    assert resp.keepalive.time == 12346 and waited < 1.0
    point, _, _ = _wait_for(c, "point", timeout=10)
    assert point.point.time == 1
    c.close_input()
    assert c.recv_all(timeout=10) == []
    assert c.wait() == 0


def test_keepalive_echoes_time_and_is_answered_before_init(wire):
    c = wire("edge_detect")
    # Kapacitor may send a keepalive at any moment, even before Init.
    assert c.request(keepalive_request(-7)).keepalive.time == -7
    assert c.request(init_request([("field", [("string", "v")])])).init.success
    assert c.request(keepalive_request(2**62)).keepalive.time == 2**62
