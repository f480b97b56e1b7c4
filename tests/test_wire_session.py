"""`kapudf run` over the real wire: Info, Init good and bad, points, end of input, logging and
stdout hygiene. Every test drives a real subprocess exactly as Kapacitor would."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from udfcollection.lineprotocol import parse_lines
from udfcollection.offline import to_request
from udfcollection.protocol import udf_pb2
from udfcollection.testing import (
    LEVEL_WORDS,
    info_request,
    init_request,
    point_request,
)

REPO = Path(__file__).resolve().parents[1]
COUNTER = "kapudf_test_udfs:Counter"
PB_TYPE = {"bool": udf_pb2.BOOL, "int": udf_pb2.INT, "double": udf_pb2.DOUBLE,
           "string": udf_pb2.STRING, "duration": udf_pb2.DURATION}


def level_lines_only(text: str) -> None:
    for line in text.splitlines():
        assert line.split(" ", 1)[0] in LEVEL_WORDS, f"stderr line without level word: {line!r}"


def kinds(responses):
    return [r.WhichOneof("message") for r in responses]


# --- Info ---------------------------------------------------------------------------------

def test_info_matches_the_counter_declaration(wire):
    c = wire(COUNTER)
    t0 = time.monotonic()
    resp = c.request(info_request(), timeout=10)
    assert time.monotonic() - t0 < 10  # kapacitord gives up on Info after its timeout
    info = resp.info
    assert info.wants == udf_pb2.STREAM and info.provides == udf_pb2.STREAM
    got = {k: list(v.valueTypes) for k, v in info.options.items()}
    # Written out from the declaration in tests/support/kapudf_test_udfs.py, plus the three
    # options every UDF takes (debug is a flag: zero value types).
    assert got == {
        "field": [udf_pb2.STRING], "every": [udf_pb2.INT], "scale": [udf_pb2.DOUBLE],
        "window": [udf_pb2.DURATION], "label": [udf_pb2.STRING], "chatty": [udf_pb2.BOOL],
        "tag": [udf_pb2.STRING], "debug": [], "onError": [udf_pb2.STRING],
        "maxGroups": [udf_pb2.INT],
    }
    # Kapacitor closes stdin after Info at daemon start: the process must exit cleanly.
    c.close_input()
    assert c.recv_all() == []
    assert c.wait() == 0


@pytest.mark.parametrize("name", ["edge_detect", "kapudf_test_udfs:TopN"])
def test_info_edges_and_types_for_catalogue_and_batch_udfs(wire, name):
    from udfcollection import registry

    cls = registry.get(name)
    info = wire(name).request(info_request()).info
    edge = {"stream": udf_pb2.STREAM, "batch": udf_pb2.BATCH}
    assert (info.wants, info.provides) == (edge[cls.wants], edge[cls.provides])
    assert {k: list(v.valueTypes) for k, v in info.options.items()} == {
        o.name: [] if o.type == "flag" else [PB_TYPE[o.type]] for o in cls.all_options()}


# --- Init ---------------------------------------------------------------------------------

def test_init_good(wire):
    c = wire(COUNTER)
    resp = c.request(init_request([("field", [("string", "value")]), ("every", [("int", 2)]),
                                   ("window", [("duration", 10**9)]), ("debug", [])]))
    assert resp.init.success and resp.init.error == ""


def test_init_bad_reports_every_error_at_once_each_naming_the_option(wire):
    c = wire(COUNTER)
    resp = c.request(init_request([
        ("evry", [("int", 2)]),                               # unknown, close to `every`
        ("scale", [("int", 2)]),                              # INT where DOUBLE is declared
        ("window", [("duration", -5)]),                       # below min 0s
        ("label", [("string", "plain")]), ("label", [("string", "fancy")]),  # repeated
        ("debug", [("bool", True)]),                          # a flag given a value
        # `field` (required) is missing
    ]))
    assert not resp.init.success
    err = resp.init.error
    assert err.startswith("test_counter: ")
    for words in ("unknown option evry (did you mean every?)",
                  "option scale: expected DOUBLE, got INT",
                  "option window: must be >= 0s",
                  "option label: given more than once",
                  "option debug: is a flag",
                  "missing required option field"):
        assert words in err
    # The failure is an InitResponse, never an ErrorResponse, and the process stays healthy.
    c.close_input()
    assert c.recv_all() == []
    assert c.wait() == 0
    assert "init failed" in c.stderr_text()


# --- points -------------------------------------------------------------------------------

def test_points_adsl_acceptance_over_the_wire(wire):
    """Issue 2's acceptance stream reduces to exactly the rows it marks with *."""
    marked = [1514979051065000000, 1514979141070000000, 1514979231065000000,
              1514979681040000000, 1514980041020000000, 1514980221010000000]
    with open(REPO / "examples" / "adsl_connection.lp", encoding="utf-8") as fh:
        points = list(parse_lines(fh))
    c = wire("edge_detect")
    assert c.request(init_request([("field", [("string", "value")])])).init.success
    reqs = [to_request(p, ["host"], database="telegraf", rp="autogen") for p in points]
    c.send_many(reqs)
    c.close_input()
    out = c.recv_all()
    assert c.wait() == 0
    assert kinds(out) == ["point"] * len(marked)
    assert [r.point.time for r in out] == marked
    first, second = out[0].point, out[1].point
    # Name, database, retention policy, group, dimensions and tags travel to the output.
    assert (first.name, first.database, first.retentionPolicy) == (
        "adsl_connection", "telegraf", "autogen")
    assert first.group == "host=router1" and list(first.dimensions) == ["host"]
    assert dict(first.tags) == {"host": "router1"}
    assert dict(first.fieldsString) == {"value": "SHOWTIME"}
    assert dict(second.fieldsString) == {"value": "TRAINING", "previous": "SHOWTIME"}
    # TRAINING at ...141070000000 follows SHOWTIME from ...051065000000: 90.005 s.
    assert second.fieldsDouble["duration"] == pytest.approx(90.005)


def test_points_per_group_state(wire):
    c = wire(COUNTER)
    assert c.request(init_request([("field", [("string", "v")]), ("every", [("int", 2)])])
                     ).init.success
    seq = [("a", 1), ("b", 10), ("a", 2), ("a", 3), ("b", 20), ("a", 4)]
    c.send_many([point_request(i, {"v": v}, tags={"host": h}, group_by=["host"])
                 for i, (h, v) in enumerate(seq)])
    c.close_input()
    out = [r.point for r in c.recv_all()]
    # every=2: the 2nd and 4th point of a (sums 3 and 10), the 2nd of b (sum 30), in order.
    assert [(p.time, p.tags["host"], p.fieldsInt["count"], p.fieldsDouble["sum"])
            for p in out] == [(2, "a", 2, 3.0), (4, "b", 2, 30.0), (5, "a", 4, 10.0)]
    assert c.wait() == 0


def test_output_does_not_wait_for_more_input(wire):
    # A vectorised UDF holds points for a block call: they must still come out as soon as the
    # input runs dry, not when the next point (maybe minutes later) arrives.
    c = wire("kapudf_test_udfs:Doubler")
    assert c.request(init_request()).init.success
    c.send(point_request(7, {"value": 21}))
    resp = c.recv(timeout=5)
    assert resp.point.time == 7 and resp.point.fieldsDouble["double"] == 42.0


def test_end_of_input_flushes_everything_and_exits_zero(wire):
    c = wire("kapudf_test_udfs:Doubler")
    n = 3000
    c.send_many([init_request()] + [point_request(i, {"value": i}) for i in range(n)])
    c.close_input()
    out = c.recv_all()
    assert kinds(out) == ["init"] + ["point"] * n
    assert [r.point.fieldsDouble["double"] for r in out[1:]] == [2.0 * i for i in range(n)]
    assert c.wait() == 0


def test_data_before_init_is_ignored_with_a_warning(wire):
    c = wire("edge_detect")
    c.send(point_request(1, {"value": 1}))
    c.close_input()
    assert c.recv_all() == []
    assert c.wait() == 0
    assert "WARNING" in c.stderr_text() and "before a successful init" in c.stderr_text()


# --- logging ------------------------------------------------------------------------------

def _counter_run(wire, options, env=None) -> str:
    c = wire(COUNTER, env=env)
    base = [("field", [("string", "v")]), ("chatty", [("bool", True)])]
    assert c.request(init_request(base + options)).init.success
    c.send_many([point_request(i, {"v": 1}) for i in range(3)])
    c.close_input()
    assert len(c.recv_all()) == 3
    assert c.wait() == 0
    return c.stderr_text()


def test_debug_flag_turns_on_debug_lines(wire):
    quiet = _counter_run(wire, [])
    loud = _counter_run(wire, [("debug", [])])
    assert "DEBUG" not in quiet
    debug_lines = [ln for ln in loud.splitlines() if ln.startswith("DEBUG ")]
    assert any("point 3 of group" in ln for ln in debug_lines)
    assert any("init ok" in ln for ln in debug_lines)
    level_lines_only(loud)


def test_log_level_environment_sets_the_default(wire):
    text = _counter_run(wire, [], env={"KAPUDF_LOG_LEVEL": "debug"})
    assert any(ln.startswith("DEBUG ") and "point 2 of group" in ln for ln in text.splitlines())


def test_multi_line_messages_stay_on_one_line(wire):
    c = wire("kapudf_test_udfs:Boom")
    assert c.request(init_request([("debug", [])])).init.success  # tracebacks logged at DEBUG
    c.send_many([point_request(1, {"value": -1.0}), point_request(2, {"value": 0})])
    c.close_input()
    assert c.recv_all() == []
    assert c.wait() == 0
    text = c.stderr_text()
    level_lines_only(text)
    assert any("negative value" in ln and "second line of the message" in ln
               for ln in text.splitlines())
    assert any("Traceback" in ln and ln.startswith("DEBUG ") for ln in text.splitlines())


# --- stdout hygiene -----------------------------------------------------------------------

def test_stdout_carries_only_frames_when_udf_code_prints(wire):
    c = wire("kapudf_test_udfs:Printer")
    assert c.request(init_request()).init.success
    c.send_many([point_request(i, {"value": i}) for i in range(5)])
    c.close_input()
    out = c.recv_all()  # raises if anything but whole Response frames came out
    assert kinds(out) == ["point"] * 5
    assert c.wait() == 0
    err = c.stderr_text()
    for text in ("printed during setup", "print() for point 4", "sys.stdout.write",
                 "raw write to fd 1", "WARNING some.library: library log line"):
        assert text in err


def test_stdout_carries_only_frames_when_a_udf_module_prints_at_import(wire):
    c = wire("kapudf_test_printing:ImportPrinter")
    assert c.request(info_request()).WhichOneof("message") == "info"
    assert c.request(init_request()).init.success
    c.send(point_request(1, {"value": 1}))
    c.close_input()
    assert kinds(c.recv_all()) == ["point"]
    assert c.wait() == 0
    assert "print() at import time" in c.stderr_text()
    assert "raw write to fd 1 at import time" in c.stderr_text()
