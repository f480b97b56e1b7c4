"""The public conformance suite (`udfcollection.testing.check_udf`) over the whole catalogue,
each UDF fed its first golden case, plus proof that every check can fail."""

from __future__ import annotations

import sys

import kapudf_test_udfs as t
import pytest
from kapudf_testkit import case_dirs, read_case, support_env

from udfcollection import registry
from udfcollection.lineprotocol import LPPoint
from udfcollection.testing import (
    CHECKS,
    ConformanceError,
    WireClient,
    WireError,
    check_udf,
    info_request,
)


@pytest.mark.parametrize("name", registry.names())
def test_catalogue_udf_conforms(name):
    dirs = case_dirs(name)
    if not dirs:
        pytest.fail(f"{name} has no golden case under tests/cases/{name}/: every catalogue UDF "
                    "needs at least one (options, input.lp, expected.lp)")
    case = read_case(dirs[0])
    report = check_udf(registry.get(name), case.points, case.options, case.group_by)
    assert report.passed == list(CHECKS)
    assert report.target == name  # started exactly as kapacitor.conf starts it


def _stream(n=12, groups=("a", "b")):
    return [LPPoint("m", {"host": groups[i % len(groups)]}, {"value": float(i % 5)}, 1000 * i)
            for i in range(n)]


def test_third_party_stream_udf_conforms():
    report = check_udf(t.Counter, _stream(), {"field": "value", "every": 2, "tag": ["host"]},
                       ("host",))
    assert report.passed == list(CHECKS)
    assert report.target == "kapudf_test_udfs:Counter"
    # every=2 over 6 points per group: points 2, 4, 6 of each group are emitted.
    assert report.output_count == 6


def test_third_party_batch_udf_conforms():
    # One group gives a single batch, so check_udf doubles the input to split it mid-stream:
    # two batches, each answered with BeginBatch, its 2 largest points, EndBatch.
    report = check_udf(t.TopN, _stream(10, groups=("a",)),
                       [("field", [("string", "value")]), ("n", [("int", 2)])], ("host",))
    assert report.passed == list(CHECKS)
    assert report.output_count == 2 * 4


@pytest.mark.parametrize(("cls", "checks", "failing", "words"), [
    (t.Undescribed, None, "declaration", "summary"),
    (t.NoExample, ("declaration",), "declaration", "no example"),
    (t.Forgetful, ("snapshot_restore",), "snapshot_restore", "differs"),
    (t.Dice, ("deterministic",), "deterministic", "different output"),
    (t.Noisy, ("log_lines",), "log_lines", "free text on stderr"),
])
def test_each_check_can_fail(cls, checks, failing, words):
    opts = {"field": "value"} if cls is t.NoExample else {}
    with pytest.raises(ConformanceError) as info:
        check_udf(cls, _stream(6), opts, ("host",), checks=checks)
    assert info.value.check == failing
    assert words in str(info.value)
    assert isinstance(info.value, AssertionError)


def test_frames_only_detection_catches_stray_stdout():
    # What check_udf relies on for `frames_only`: any non-frame byte on stdout is an error.
    code = "import sys; sys.stdout.write('hello from a stray print\\n'); sys.stdout.flush()"
    with WireClient([sys.executable, "-c", code], env=support_env()) as c, \
            pytest.raises(WireError):
        c.recv_all(10)


def test_info_check_sees_a_udf_that_cannot_start():
    # Started by import path: a class defined in a function cannot be loaded by a new process.
    class Local(t.Counter):
        pass

    with pytest.raises(ValueError, match="top level"):
        check_udf(Local, _stream(), {"field": "value"}, checks=("info",))


def test_check_names_are_validated():
    with pytest.raises(ValueError, match="unknown checks"):
        check_udf(t.Counter, _stream(), {"field": "value"}, checks=("speed",))


def test_info_request_round_trips_for_test_udf():
    # The info check compares against the declaration itself; sanity-check the pieces here.
    with WireClient.for_udf("kapudf_test_udfs:TopN", env=support_env()) as c:
        resp = c.request(info_request())
        assert resp.info.wants == resp.info.provides == 1  # BATCH
