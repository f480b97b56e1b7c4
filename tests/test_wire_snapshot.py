"""Snapshot and restore over the real wire: mid-stream snapshots resume exactly, and restores
that cannot be read start fresh with success=true (a failing restore would fail the task at
every start, forever)."""

from __future__ import annotations

import json

import pytest

from udfcollection.testing import (
    data_output,
    init_request,
    point_request,
    restore_request,
    snapshot_request,
)

EDGE_OPTS = [("field", [("string", "state")]), ("hold", [("duration", 3 * 10**9)])]
# Two hosts interleaved; with hold=3s a new state must persist 3 s of point time to count.
STATES = ["up", "up", "down", "down", "up", "down", "down", "down", "down", "up", "up", "up"]
EDGE_POINTS = [point_request(i * 10**9, {"state": s}, tags={"host": h}, group_by=["host"])
               for i, s in enumerate(STATES) for h in ("a", "b")]
COUNTER = "kapudf_test_udfs:Counter"
COUNTER_OPTS = [("field", [("string", "v")])]


def _run(wire, name, opts, points, restore=None, snapshot=False):
    c = wire(name)
    assert c.request(init_request(opts)).init.success
    if restore is not None:
        resp = c.request(restore_request(restore))
        assert resp.restore.success, resp
    c.send_many(points)
    snap = None
    out = []
    if snapshot:
        c.send(snapshot_request())
        out = c.recv_until("snapshot")
        snap = out[-1].snapshot.snapshot
    c.close_input()
    out += c.recv_all()
    assert c.wait() == 0
    return data_output(out), snap, c.stderr_text()


@pytest.mark.parametrize(("name", "opts", "points"), [
    ("edge_detect", EDGE_OPTS, EDGE_POINTS),
    (COUNTER, COUNTER_OPTS, [point_request(i, {"v": float(i)}, tags={"g": str(i % 3)},
                                           group_by=["g"]) for i in range(30)]),
])
@pytest.mark.parametrize("cut", [1, 7, 13])
def test_snapshot_restore_mid_stream_equals_uninterrupted(wire, name, opts, points, cut):
    whole, _, _ = _run(wire, name, opts, points)
    first, snap, _ = _run(wire, name, opts, points[:cut], snapshot=True)
    assert snap  # stateful UDFs with groups seen always produce a snapshot
    second, _, _ = _run(wire, name, opts, points[cut:], restore=snap)
    assert first + second == whole
    assert whole  # the comparison is not vacuous


def test_edge_detect_hold_state_survives_restore(wire):
    # Worked out from edge_detect's documented hold semantics, independently of any run:
    # host a is 'up' at t=0..1 (t=0 emitted: emitFirst), 'down' at t=2..3 (held 1 s of the 3 s
    # needed), 'up' at t=4 (flap back: dropped), 'down' from t=5. The snapshot is taken after
    # t=6, while 'down' is held. After restore, t=8 confirms it (3 s after t=5), so the point
    # emitted is the one of t=5, which the new process only knows from the snapshot.
    pts = [point_request(i * 10**9, {"state": s}, tags={"host": "a"}, group_by=["host"])
           for i, s in enumerate(STATES)]
    first, snap, _ = _run(wire, "edge_detect", EDGE_OPTS, pts[:7], snapshot=True)
    assert [json.loads(x)["point"].get("time", "0") for x in first] == ["0"]  # 0 is omitted
    doc = json.loads(snap)
    assert doc["udf"] == "edge_detect" and [g[0] for g in doc["groups"]] == ["host=a"]
    second, _, _ = _run(wire, "edge_detect", EDGE_OPTS, pts[7:], restore=snap)
    emitted = [json.loads(x)["point"] for x in second]
    assert [p["time"] for p in emitted] == [str(5 * 10**9)]
    assert emitted[0]["fieldsString"] == {"state": "down", "previous": "up"}
    assert emitted[0]["fieldsDouble"] == {"duration": 5.0}  # 'up' lasted from t=0 to t=5


def test_snapshot_of_fresh_instance_is_empty(wire):
    c = wire("edge_detect")
    assert c.request(init_request([("field", [("string", "v")])])).init.success
    assert c.request(snapshot_request()).snapshot.snapshot == b""


def _edge_snapshot(wire) -> bytes:
    _, snap, _ = _run(wire, "edge_detect", [("field", [("string", "state")])],
                      [point_request(0, {"state": "up"}, tags={"host": "a"},
                                     group_by=["host"])], snapshot=True)
    return snap


def _patched(snap: bytes, **changes) -> bytes:
    doc = json.loads(snap)
    doc.update(changes)
    return json.dumps(doc).encode()


def _counter_snapshot(wire) -> bytes:
    _, snap, _ = _run(wire, COUNTER, COUNTER_OPTS, [point_request(0, {"v": 1.0})],
                      snapshot=True)
    return snap


@pytest.mark.parametrize(("make", "reason"), [
    (lambda w: b"\x00\x01garbage\xff", "not a kapudf snapshot (invalid JSON"),
    (lambda w: b'{"some": "other json"}', "not a kapudf snapshot (no format marker)"),
    (_counter_snapshot, "snapshot belongs to UDF 'test_counter', not 'edge_detect'"),
    (lambda w: _patched(_edge_snapshot(w), state_version=99),
     "edge_detect state version 99 is not supported"),
    (lambda w: _patched(_edge_snapshot(w), version=2), "snapshot format version 2"),
    (lambda w: _patched(_edge_snapshot(w), groups=[["host=a", {"stable": 5}]]),
     "snapshot group 'host=a'"),
])
def test_unreadable_restore_warns_and_starts_fresh(wire, make, reason):
    data = make(wire)
    # The same point that was seen before the snapshot: after a fresh start it is the first
    # point of its group again, so emitFirst emits it.
    out, _, stderr = _run(wire, "edge_detect", [("field", [("string", "state")])],
                          [point_request(5, {"state": "up"}, tags={"host": "a"},
                                         group_by=["host"])], restore=data)
    assert len(out) == 1 and json.loads(out[0])["point"]["time"] == "5"
    warnings = [ln for ln in stderr.splitlines() if ln.startswith("WARNING ")]
    assert any("cannot restore snapshot" in ln and reason in ln and "starting with fresh state"
               in ln for ln in warnings), stderr


def test_good_restore_is_used(wire):
    # Control for the test above: the untouched snapshot does restore, so the same point is
    # no change and nothing is emitted.
    out, _, stderr = _run(wire, "edge_detect", [("field", [("string", "state")])],
                          [point_request(5, {"state": "up"}, tags={"host": "a"},
                                         group_by=["host"])], restore=_edge_snapshot(wire))
    assert out == []
    assert "restored state of 1 group(s)" in stderr
