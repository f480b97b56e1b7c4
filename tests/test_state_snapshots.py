"""Snapshots: what one release wrote restores in the next; a corrupt one starts fresh.

Kapacitor stores a UDF's snapshot and sends it back at every start of the task; a restore that
fails (`success=false`) fails the task at every start, forever, until the task is deleted. So a
snapshot kapudf cannot use must never fail the restore: it is logged and the UDF starts fresh.

The committed fixtures (tests/fixtures/snapshots/v<N>/<udf>.json, see the README there) are
restored by a real `kapudf run` over the wire and must continue exactly as worked out by hand.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from snapshot_fixtures import load, options_of, points, project

from udfcollection import registry
from udfcollection.compare import compare
from udfcollection.offline import Collector, OfflineRunner, requests_for
from udfcollection.state import SNAPSHOT_VERSION
from udfcollection.testing import (
    WireClient,
    init_request,
    point_request,
    restore_request,
    snapshot_request,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "snapshots"
FIXTURE_FILES = sorted(FIXTURES.glob("v*/*.json"))


def fixture_id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


# --- every release's snapshots restore -------------------------------------------------------

@pytest.mark.parametrize("path", FIXTURE_FILES, ids=fixture_id)
def test_fixture_restores_and_continues_over_the_wire(path):
    fx = load(path)
    if fx["udf"] not in registry.names():
        pytest.fail(f"{fixture_id(path)}: UDF {fx['udf']} is no longer in the catalogue; a "
                    "released snapshot must keep restoring (or the removal be documented)")
    cls = registry.get(fx["udf"])
    doc = json.loads(fx["snapshot"])
    with WireClient.for_udf(fx["udf"]) as client:
        init = client.request(init_request(options_of(fx)), timeout=30)
        assert init.init.success, init.init.error
        restored = client.request(restore_request(fx["snapshot"].encode()), timeout=30)
        assert restored.restore.success, restored.restore.error
        client.send_many(requests_for(cls, points(fx, "continuation"), fx.get("group_by", ())))
        client.close_input()
        responses = client.recv_all(timeout=30)
        assert client.wait(10) == 0
        stderr = client.stderr_text()
    assert f"restored state of {len(doc['groups'])} group(s)" in stderr, stderr
    collector = Collector()
    for r in responses:
        collector.add(r)
    assert collector.output.errors == []
    cmp = compare(project(fx, collector.output.points), points(fx, "expected"), rtol=1e-9)
    assert cmp.ok, cmp.report()


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=fixture_id)
def test_fixture_expectation_matches_an_uninterrupted_run(path):
    """The hand-worked `expected` is also what the same input gives without a restart, so the
    fixture tests the restore, not a change of behaviour."""
    fx = load(path)
    cls = registry.get(fx["udf"])
    runner = OfflineRunner(cls, options_of(fx))
    runner.feed_requests(requests_for(cls, points(fx, "input"), fx.get("group_by", ())))
    before = len(runner.collect().points)
    runner.feed_requests(requests_for(cls, points(fx, "continuation"), fx.get("group_by", ())))
    out = runner.finish().points[before:]
    cmp = compare(project(fx, out), points(fx, "expected"), rtol=1e-9)
    assert cmp.ok, cmp.report()


def stateful_udfs() -> list[str]:
    return [n for n in registry.names() if registry.get(n).State is not None]


@pytest.mark.parametrize("name", stateful_udfs())
def test_every_stateful_udf_has_a_fixture_for_its_current_state(name):
    cls = registry.get(name)
    have = []
    for path in FIXTURE_FILES:
        fx = load(path)
        if fx["udf"] == name:
            doc = json.loads(fx["snapshot"])
            have.append((doc["version"], doc["state_version"]))
    assert (SNAPSHOT_VERSION, cls.state_version) in have, (
        f"{name} has no snapshot fixture for format v{SNAPSHOT_VERSION} / state_version "
        f"{cls.state_version} (have {have}); add tests/fixtures/snapshots/"
        f"v{SNAPSHOT_VERSION}/{name}.json as tests/fixtures/snapshots/README.md describes")


# --- corrupt snapshots start fresh -----------------------------------------------------------

EDGE_FX = load(FIXTURES / "v1" / "edge_detect.json")
EDGE_DOC = json.loads(EDGE_FX["snapshot"])


def _edge_doc_with(**state_changes) -> bytes:
    doc = copy.deepcopy(EDGE_DOC)
    doc["groups"][0][1].update(state_changes)
    return json.dumps(doc).encode()


def _other(**top) -> bytes:
    doc = copy.deepcopy(EDGE_DOC)
    doc.update(top)
    return json.dumps(doc).encode()


CORRUPT = {
    "random bytes": bytes(range(256)) * 3,
    "truncated": EDGE_FX["snapshot"].encode()[:-40],
    "not utf-8": b"\xff\xfe" + EDGE_FX["snapshot"].encode(),
    "json but not a snapshot": b'{"groups": []}',
    "a json list": b"[1, 2, 3]",
    "other udf": _other(udf="moving_avg"),
    "future format": _other(version=SNAPSHOT_VERSION + 1),
    "future state version": _other(state_version=99),
    "groups not a list": _other(groups={"host=a": {}}),
    "group entry malformed": _other(groups=[["host=a"]]),
    "state not an object": _other(groups=[["host=a", [1, 2]]]),
    "unknown state field": _edge_doc_with(extra=1),
    "cand_point not base64": _edge_doc_with(cand_point="%%% not base64 %%%"),
    "cand_point not protobuf": _edge_doc_with(
        cand_point=base64.b64encode(b"\xff\xff\xff\xff").decode()),
    "cand_point not a point": _edge_doc_with(
        cand_point=base64.b64encode(snapshot_request().SerializeToString()).decode()),
    "since is text": _edge_doc_with(since="yesterday"),
    "cand_time is a float": _edge_doc_with(cand_time=1.5),
    "stable is a number": _edge_doc_with(stable=3),
    "stable holds an object": _edge_doc_with(stable=[{"a": 1}]),
    "cand without its point": _edge_doc_with(cand_point=None),
    "deeply nested": b'{"format":"kapudf-snapshot","groups":' + b"[" * 100_000 + b"]" * 100_000
                     + b"}",
}


def test_corrupt_snapshots_start_fresh_over_the_wire():
    """One process per corrupt snapshot would be slow; each is restored in turn into the same
    process (a restore replaces all state), each followed by a point whose output shows whether
    the state is fresh: a fresh group emits its first point (emitFirst)."""
    with WireClient.for_udf("edge_detect") as client:
        init = client.request(init_request(options_of(EDGE_FX)), timeout=30)
        assert init.init.success
        for i, (label, data) in enumerate(CORRUPT.items()):
            # First put good state in place, so "fresh" is observable.
            good = client.request(restore_request(EDGE_FX["snapshot"].encode()), timeout=10)
            assert good.restore.success
            resp = client.request(restore_request(data), timeout=10)
            assert resp.WhichOneof("message") == "restore", label
            assert resp.restore.success, f"{label}: {resp.restore.error}"
            client.send(point_request(1000 + i, {"value": "up"}, tags={"host": "a"},
                                      group_by=["host"]))
            snap = client.request(snapshot_request(), timeout=10)
            kinds_before = snap  # the point's output, if any, came before the snapshot answer
            assert kinds_before.WhichOneof("message") in ("point", "snapshot"), label
            if kinds_before.WhichOneof("message") == "point":
                # Fresh: host=a's first point is emitted.
                assert kinds_before.point.time == 1000 + i, label
                snap = client.recv(timeout=10)
            else:
                pytest.fail(f"{label}: state was not fresh after a corrupt restore (the "
                            "point was treated as a continuation of the old state)")
            groups = json.loads(snap.snapshot.snapshot)["groups"]
            assert [g[0] for g in groups] == ["host=a"], label
        client.close_input()
        assert client.recv_all(timeout=10) == []
        assert client.wait(10) == 0
        stderr = client.stderr_text()
    assert stderr.count("cannot restore snapshot") == len(CORRUPT), stderr
    assert "Traceback" not in stderr


# --- fuzzed snapshots, every stateful UDF ---------------------------------------------------

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                      st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8))
json_value = st.recursive(json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=10)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


def _set(doc, path, new):
    if not path:
        return new
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return doc


def _delete(doc, path):
    if not path:
        return doc
    target = doc
    for key in path[:-1]:
        target = target[key]
    if isinstance(target, dict):
        del target[path[-1]]
    else:
        target.pop(path[-1])
    return doc


@st.composite
def mutated(draw, snapshot: str) -> bytes:
    doc = json.loads(snapshot)
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(doc))
        path = draw(st.sampled_from(paths))
        if draw(st.booleans()) and path:
            doc = _delete(doc, path)
        else:
            doc = _set(doc, path, draw(json_value))
    return json.dumps(doc).encode()


def _fuzz_case(fx_path: Path):
    fx = load(fx_path)
    cls = registry.get(fx["udf"])
    cont = list(requests_for(cls, points(fx, "continuation"), fx.get("group_by", ())))
    fresh = OfflineRunner(cls, options_of(fx))
    fresh.feed_requests(copy.deepcopy(cont))
    fresh.finish()
    return fx, cls, cont, fresh.handler.points_dropped


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=fixture_id)
def test_fuzzed_snapshots_restore_cleanly_or_start_fresh(path):
    """Whatever a snapshot holds, restore succeeds, and the state it leaves is usable: the
    continuation then loses no more points than from fresh state (a half-validated state would
    make every later point of its group fail), and the next snapshot can be written."""
    fx, cls, cont, fresh_dropped = _fuzz_case(path)
    quiet = logging.getLogger("kapudf-fuzz-quiet")
    quiet.setLevel(logging.CRITICAL)

    @settings(max_examples=150, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(mutated(fx["snapshot"]))
    def check(data):
        runner = OfflineRunner(cls, options_of(fx), log=quiet)
        assert runner.restore(data)
        runner.feed_requests(copy.deepcopy(cont))
        out = runner.finish()
        assert out.errors == []
        assert runner.handler.points_dropped <= fresh_dropped, (
            f"restored state broke processing: {runner.handler.points_dropped} points dropped "
            f"(fresh state drops {fresh_dropped}) after restoring {data[:300]!r}")
        again = runner.snapshot()
        if again:
            json.loads(again)  # well-formed
        for p in out.points:
            for v in p.fields.values():
                assert not (isinstance(v, float) and math.isnan(v) and not _nan_ok(fx)), p

    check()


def _nan_ok(fx: dict) -> bool:
    return any("nan" in line.lower() for line in fx["continuation"])
