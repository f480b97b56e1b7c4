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


# --- the README's "Writing a UDF" example is real --------------------------------------

def _readme_blocks() -> tuple[str, str]:
    from kapudf_testkit import REPO

    text = (REPO / "README.md").read_text(encoding="utf-8")
    dev = text[text.index("<!-- section: development -->"):
               text.index("<!-- /section: development -->")]
    example = dev[dev.index("<!-- dev-example -->"):dev.index("<!-- /dev-example -->")]
    module = example.split("```python\n", 1)[1].split("```", 1)[0]
    wire_snippet = dev.split("```python\nfrom udfcollection.testing import WireClient", 1)[1]
    wire_snippet = "from udfcollection.testing import WireClient" + wire_snippet.split("```")[0]
    return module, wire_snippet


@pytest.fixture
def readme_udf(tmp_path, monkeypatch):
    module, _ = _readme_blocks()
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "rate.py").write_text(module)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    import importlib

    yield importlib.import_module("mypkg.rate")
    for name in ("mypkg.rate", "mypkg"):
        sys.modules.pop(name, None)


def test_readme_example_udf_conforms(readme_udf):
    pts = [LPPoint("net", {"host": h}, {"bytes_recv": b}, t * 10**9)
           for t, h, b in [(0, "a", 0), (0, "b", 50), (2, "a", 300), (3, "b", 80),
                           (4, "a", 700), (5, "b", 80)]]
    report = check_udf(readme_udf.Rate, pts, {"field": "bytes_recv"}, ("host",))
    assert report.passed == list(CHECKS) and report.target == "mypkg.rate:Rate"
    assert report.output_count == 4  # every point but the first of each host


def test_readme_example_udf_computes_rates(readme_udf, tmp_path):
    from kapudf_testkit import run_cli

    lp = tmp_path / "net.lp"
    lp.write_text("net,host=a bytes_recv=0i 0\nnet,host=a bytes_recv=300i 2000000000\n"
                  "net,host=a bytes_recv=700i 4000000000\n")
    proc = run_cli("test", "mypkg.rate:Rate", "--input", str(lp), "-o", "field=bytes_recv",
                   "-o", "scale=8.0", "--group-by", "host", env={"PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    # (300 - 0) B / 2 s * 8 = 1200 bit/s; (700 - 300) / 2 * 8 = 1600.
    rates = [float(ln.split("rate=")[1].split(",")[0].split(" ")[0])
             for ln in proc.stdout.splitlines()]
    assert rates == [1200.0, 1600.0]


def test_readme_wire_snippet_runs(readme_udf):
    _, snippet = _readme_blocks()
    exec(compile(snippet, "README.md", "exec"), {})
