"""Stock-agent scripts run unchanged by `kapudf run script.py`, driven over the real wire.

The scripts live in tests/compat_scripts/ and are written the way scripts for Kapacitor's
Python agent are (kapacitor.udf.agent, udf_pb2 messages, write_response), in both field-access
styles. Expected values are worked out by hand in each test.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from udfcollection.testing import (
    WireClient,
    begin_request,
    end_request,
    info_request,
    init_request,
    keepalive_request,
    point_request,
    restore_request,
    snapshot_request,
)

SCRIPTS = Path(__file__).resolve().parent / "compat_scripts"


def run(script: str, *args: str, env: dict[str, str] | None = None) -> WireClient:
    return WireClient([sys.executable, "-m", "udfcollection", "run", str(SCRIPTS / script),
                       *args], env=env)


def value_type_names(resp) -> dict[str, list[int]]:
    return {k: list(v.valueTypes) for k, v in resp.info.options.items()}


MOVAVG_OPTS = [("field", [("string", "value")]), ("size", [("int", 3)])]


def test_moving_avg_map_style_stream() -> None:
    with run("moving_avg.py") as c:
        info = c.request(info_request())
        assert info.info.wants == 0 and info.info.provides == 0  # STREAM -> STREAM
        assert value_type_names(info) == {"field": [3], "size": [1], "as": [3]}
        assert c.request(init_request(MOVAVG_OPTS)).init.success
        # Two groups interleaved; each keeps its own window of 3.
        reqs = []
        for i, v in enumerate([1.0, 10.0, 2.0, 20.0, 3.0, 30.0, 4.0, 40.0]):
            host = "a" if i % 2 == 0 else "b"
            reqs.append(point_request(i, {"value": v, "other": 7.0}, name="cpu",
                                      tags={"host": host, "dc": "x"}, group_by=["host"]))
        c.send_many(reqs)
        out = [c.recv() for _ in reqs]
        avgs = [(r.point.tags["host"], r.point.fieldsDouble["avg"]) for r in out]
        # a: 1, (1+2)/2, (1+2+3)/3, (2+3+4)/3 ; b: the same times ten.
        assert avgs == [("a", 1.0), ("b", 10.0), ("a", 1.5), ("b", 15.0), ("a", 2.0),
                        ("b", 20.0), ("a", 3.0), ("b", 30.0)]
        first = out[0].point
        assert dict(first.fieldsDouble) == {"avg": 1.0}  # the script clears other fields
        assert first.name == "cpu" and first.group == "host=a"
        assert list(first.dimensions) == ["host"]
        assert dict(first.tags) == {"host": "a", "dc": "x"}
        c.close_input()
        assert c.recv_all() == []
        assert c.wait() == 0


def test_moving_avg_reads_an_integer_field() -> None:
    with run("moving_avg.py") as c:
        assert c.request(init_request(MOVAVG_OPTS)).init.success
        c.send_many([point_request(1, {"value": 4}), point_request(2, {"value": 8})])
        assert [c.recv().point.fieldsDouble["avg"] for _ in range(2)] == [4.0, 6.0]


def test_moving_avg_init_error_reaches_kapacitor() -> None:
    with run("moving_avg.py") as c:
        resp = c.request(init_request([("size", [("int", 0)])]))
        assert not resp.init.success
        assert "must supply field" in resp.init.error and "size must be > 0" in resp.init.error


def test_str_snapshot_is_stored_and_restores_in_a_new_process() -> None:
    with run("moving_avg.py") as c:
        assert c.request(init_request(MOVAVG_OPTS)).init.success
        c.send_many([point_request(i, {"value": float(i)}) for i in (1, 2, 3, 4)])
        assert [c.recv().point.fieldsDouble["avg"] for _ in range(4)] == [1.0, 1.5, 2.0, 3.0]
        snap = c.request(snapshot_request())
        assert snap.WhichOneof("message") == "snapshot"
        # The script assigns json.dumps(...), a str: it arrives as its UTF-8 bytes.
        saved = json.loads(snap.snapshot.snapshot)
        assert saved == {"": {"size": 3, "values": [2.0, 3.0, 4.0]}}
    with run("moving_avg.py") as c:
        assert c.request(init_request(MOVAVG_OPTS)).init.success
        restored = c.request(restore_request(snap.snapshot.snapshot))
        assert restored.restore.success
        c.send(point_request(5, {"value": 5.0}))
        assert c.recv().point.fieldsDouble["avg"] == 4.0  # (3 + 4 + 5) / 3


def test_script_arguments_and_its_own_logging() -> None:
    with run("moving_avg.py", "first", "second") as c:
        c.close_input()
        c.recv_all()
        assert c.wait() == 0
        err = c.stderr_text()
    # The script's logging.basicConfig format applies, and it saw its own argv.
    assert "INFO:moving_avg: starting agent, argv=['first', 'second']" in err
    assert "INFO:moving_avg: agent finished" in err


def test_old_entry_style_stream() -> None:
    with run("scale_entries.py") as c:
        info = c.request(info_request())
        assert value_type_names(info) == {"factor": [2], "mark": [3]}
        assert c.request(init_request([("factor", [("double", 2.5)]),
                                       ("mark", [("string", "x2.5")])])).init.success
        c.send(point_request(7, {"a": 2.0, "n": 4, "s": "text"}, name="m",
                             tags={"host": "h1"}, group_by=["host"]))
        p = c.recv().point
        assert dict(p.fieldsDouble) == {"a": 5.0, "n": 10.0}
        assert dict(p.fieldsInt) == {} and dict(p.fieldsString) == {}
        assert dict(p.tags) == {"host": "h1", "scaled": "x2.5"}
        assert p.time == 7 and p.group == "host=h1" and list(p.dimensions) == ["host"]


def test_old_entry_style_init_error() -> None:
    with run("scale_entries.py") as c:
        resp = c.request(init_request([("mark", [("string", "m")])]))
        assert not resp.init.success and resp.init.error == "factor is required"


def test_missing_snapshot_answers_empty_and_the_stream_goes_on() -> None:
    with run("scale_entries.py") as c:
        assert c.request(init_request([("factor", [("double", 3.0)])])).init.success
        snap = c.request(snapshot_request())
        assert snap.WhichOneof("message") == "snapshot" and snap.snapshot.snapshot == b""
        assert c.request(point_request(1, {"v": 1.0})).point.fieldsDouble["v"] == 3.0
        c.close_input()
        c.recv_all()
        assert c.wait() == 0
        assert "answering an empty snapshot" in c.stderr_text()


def test_batch_map_style_outliers() -> None:
    values = [10.0] * 9 + [100.0]
    with run("batch_outliers.py") as c:
        info = c.request(info_request())
        assert info.info.wants == 1 and info.info.provides == 1  # BATCH -> BATCH
        assert c.request(init_request([("field", [("string", "v")]),
                                       ("sigmas", [("double", 2.0)])])).init.success
        reqs = [begin_request("m", "host=a", {"host": "a"}, size=10)]
        for i, v in enumerate(values):
            r = point_request(100 + i, {"v": v}, tags={"host": "a"}, group_by=["host"])
            r.point.name = ""
            reqs.append(r)
        reqs.append(end_request("m", "host=a", {"host": "a"}, tmax=109))
        c.send_many(reqs)
        out = c.recv_until("end")
        # mean 19, population sd 27: only 100 is more than 2 sd (54) away.
        assert [r.WhichOneof("message") for r in out] == ["begin", "point", "end"]
        assert out[0].begin.size == 1 and out[0].begin.group == "host=a"
        assert out[1].point.fieldsDouble["v"] == 100.0 and out[1].point.time == 109
        assert out[2].end.tmax == 109 and dict(out[2].end.tags) == {"host": "a"}
        # Its snapshot() sets '' (a str): an empty snapshot, not an error.
        snap = c.request(snapshot_request())
        assert snap.WhichOneof("message") == "snapshot" and snap.snapshot.snapshot == b""


def test_batch_entry_style_summary() -> None:
    with run("batch_summary_entries.py") as c:
        info = c.request(info_request())
        assert value_type_names(info) == {"prefix": [3]}
        assert c.request(init_request([("prefix", [("string", "avg_")])])).init.success
        pts = [point_request(1, {"a": 1.0, "b": 10.0}, tags={"k": "v"}, group_by=["k"]),
               point_request(2, {"a": 2.0, "b": 20.0}, tags={"k": "v"}, group_by=["k"]),
               point_request(3, {"a": 6.0, "b": 30.0}, tags={"k": "v"}, group_by=["k"])]
        c.send_many([begin_request("m", "k=v", {"k": "v"}, size=3), *pts,
                     end_request("m", "k=v", {"k": "v"}, tmax=3)])
        out = c.recv_until("end")
        assert [r.WhichOneof("message") for r in out] == ["begin", "point", "end"]
        assert dict(out[0].begin.tags) == {"k": "v"} and out[0].begin.size == 1
        p = out[1].point
        assert dict(p.fieldsDouble) == {"avg_a": 3.0, "avg_b": 20.0}
        assert dict(p.fieldsInt) == {"count": 3}
        assert p.time == 3 and dict(p.tags) == {"k": "v"}
        # Its snapshot() returns None: an empty snapshot, not an error.
        snap = c.request(snapshot_request())
        assert snap.WhichOneof("message") == "snapshot" and snap.snapshot.snapshot == b""


def test_output_is_flushed_without_python_u_and_keepalives_answered() -> None:
    # Each answer arrives while stdin stays open: nothing waits for a buffer to fill.
    with run("moving_avg.py") as c:
        assert c.request(keepalive_request(11)).keepalive.time == 11
        assert c.request(init_request(MOVAVG_OPTS)).init.success
        assert c.request(point_request(1, {"value": 2.0})).point.fieldsDouble["avg"] == 2.0
        assert c.request(keepalive_request(12)).keepalive.time == 12


def test_bare_imports_next_to_vendored_copies() -> None:
    # vendored/agent.py and vendored/udf_pb2.py raise if imported: kapudf's must be used.
    with run("vendored/echo.py") as c:
        assert c.request(init_request()).init.success
        p = c.request(point_request(1, {"v": 1.0}, tags={"h": "x"})).point
        assert dict(p.tags) == {"h": "x", "via": "bare-imports"}


def test_a_real_kapacitor_package_is_not_hidden() -> None:
    site = str(SCRIPTS / "fake_site")
    old = os.environ.get("PYTHONPATH")
    env = {"PYTHONPATH": site + (os.pathsep + old if old else "")}
    with run("uses_kapacitor_client.py", env=env) as c:
        assert c.request(init_request()).init.success
        p = c.request(point_request(1, {"v": 1.0})).point
        assert p.fieldsString["client"] == "real kapacitor.client"


@pytest.mark.parametrize("script", ["moving_avg.py", "scale_entries.py", "batch_outliers.py",
                                    "batch_summary_entries.py", "faulty.py"])
def test_info_then_close_as_at_kapacitord_start(script: str) -> None:
    # kapacitord sends only Info, then closes stdin; the script must answer and exit cleanly.
    with run(script) as c:
        resp = c.request(info_request(), timeout=10)
        assert resp.WhichOneof("message") == "info"
        c.close_input()
        assert c.recv_all() == []
        assert c.wait() == 0
