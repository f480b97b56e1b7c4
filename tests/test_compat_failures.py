"""The failure modes that kill a task under the stock Python agent, with a stock-style script
under `kapudf run script.py`: handler exceptions, slow handlers, stray prints, odd snapshots,
failing init/restore, broken batches, and `--strict` restoring the stock behaviour.

tests/compat_scripts/faulty.py misbehaves on request through its options.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from udfcollection.testing import (
    WireClient,
    begin_request,
    end_request,
    init_request,
    keepalive_request,
    point_request,
    restore_request,
    snapshot_request,
)

SCRIPTS = Path(__file__).resolve().parent / "compat_scripts"
FAULTY = str(SCRIPTS / "faulty.py")


def faulty(*args: str, before: tuple[str, ...] = ()) -> WireClient:
    return WireClient([sys.executable, "-m", "udfcollection", "run", *before, FAULTY, *args])


def kinds(responses) -> list[str]:
    return [r.WhichOneof("message") for r in responses]


def test_point_exception_is_logged_and_the_stream_continues() -> None:
    with faulty() as c:
        assert c.request(init_request([("failEvery", [("int", 3)])])).init.success
        c.send_many([point_request(i, {"v": float(i)}) for i in range(1, 8)])
        c.close_input()
        out = c.recv_all()
        assert c.wait() == 0
        # Points 3 and 6 raise; the others are echoed with their sequence number.
        assert [r.point.fieldsInt["n"] for r in out] == [1, 2, 4, 5, 7]
        err = c.stderr_text()
    errors = [line for line in err.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 2
    assert "point() raised ValueError: point 3 is cursed at faulty.py:" in errors[0]
    assert "the point was dropped and the stream continues" in errors[0]
    assert "Traceback" in errors[0]  # the traceback is folded into the one line


@pytest.mark.parametrize("placement", ["before", "after"])
def test_strict_stops_at_the_first_exception_like_the_stock_agent(placement: str) -> None:
    before, after = (("--strict",), ()) if placement == "before" else ((), ("--strict",))
    with faulty(*after, before=before) as c:
        assert c.request(init_request([("failEvery", [("int", 2)])])).init.success
        c.send_many([point_request(i, {"v": 1.0}) for i in range(1, 5)])
        out = c.recv_all()
        assert kinds(out) == ["point", "error"]
        assert out[1].error.error == "error processing request of type point: point 2 is cursed"
        assert c.wait() == 1


def test_keepalives_are_answered_while_the_handler_sleeps() -> None:
    with faulty() as c:
        # Each point takes 2 s, far longer than the keepalive answers may wait.
        assert c.request(init_request([("sleep", [("duration", 2_000_000_000)])])).init.success
        c.send(point_request(1, {"v": 1.0}))
        time.sleep(0.2)  # the handler is now inside its sleep
        sent = time.monotonic()
        resp = c.request(keepalive_request(77), timeout=1.5)
        assert resp.keepalive.time == 77
        assert time.monotonic() - sent < 1.5  # generous: answered long before the point
        assert c.recv(timeout=5).point.fieldsInt["n"] == 1


def test_a_stray_print_does_not_reach_the_protocol_stream() -> None:
    with faulty() as c:
        assert c.request(init_request([("chatty", [])])).init.success
        c.send_many([point_request(i, {"v": 1.0}) for i in (1, 2)])
        c.close_input()
        out = c.recv_all()  # would raise on a non-frame byte
        assert [r.point.fieldsInt["n"] for r in out] == [1, 2]
        assert c.wait() == 0
        assert "chatty: point number 2" in c.stderr_text()


def test_output_written_from_a_scripts_own_thread_goes_out_at_once() -> None:
    with faulty() as c:
        assert c.request(init_request([("fromThread", [])])).init.success
        c.send(point_request(1, {"v": 1.0}))
        # Nothing more is sent and stdin stays open: only an immediate flush delivers it.
        assert c.recv(timeout=5).point.fieldsInt["n"] == 1
        assert c.request(keepalive_request(5)).keepalive.time == 5


@pytest.mark.parametrize("mode", ["missing", "none", "str", "raise"])
def test_bad_snapshots_answer_empty_instead_of_dying(mode: str) -> None:
    with faulty() as c:
        assert c.request(init_request([("snapshot", [("string", mode)])])).init.success
        snap = c.request(snapshot_request())
        assert snap.WhichOneof("message") == "snapshot"
        assert snap.snapshot.snapshot == b""
        # Still alive and processing.
        assert c.request(point_request(1, {"v": 1.0})).point.fieldsInt["n"] == 1
        c.close_input()
        c.recv_all()
        assert c.wait() == 0


def test_json_snapshot_round_trips_through_restore() -> None:
    with faulty() as c:
        assert c.request(init_request([("snapshot", [("string", "json")])])).init.success
        c.send_many([point_request(i, {"v": 1.0}) for i in (1, 2, 3)])
        assert [c.recv().point.fieldsInt["n"] for _ in range(3)] == [1, 2, 3]
        data = c.request(snapshot_request()).snapshot.snapshot
        assert json.loads(data) == {"points": 3}
    with faulty() as c:
        assert c.request(init_request()).init.success
        assert c.request(restore_request(data)).restore.success
        assert c.request(point_request(4, {"v": 1.0})).point.fieldsInt["n"] == 4


def test_init_exception_fails_the_init_with_its_text() -> None:
    with faulty() as c:
        resp = c.request(init_request([("failInit", [])]))
        assert resp.WhichOneof("message") == "init" and not resp.init.success
        assert resp.init.error == "init failed: RuntimeError: init exploded on purpose"


@pytest.mark.parametrize("strict", [False, True])
def test_restore_exception(strict: bool) -> None:
    before = ("--strict",) if strict else ()
    with faulty(before=before) as c:
        assert c.request(init_request([("failRestore", [])])).init.success
        resp = c.request(restore_request(b'{"points": 5}'))
        assert resp.WhichOneof("message") == "restore"
        if strict:
            assert not resp.restore.success
            assert resp.restore.error == "restore failed: ValueError: restore exploded on purpose"
        else:
            # A failed restore would fail the task at every start; start empty instead.
            assert resp.restore.success
            assert c.request(point_request(1, {"v": 1.0})).point.fieldsInt["n"] == 1


def batch(tmax: int, group: str = "") -> list:
    return [begin_request("m", group, size=2), point_request(tmax - 1, {"v": 1.0}),
            point_request(tmax, {"v": 2.0}), end_request("m", group, tmax=tmax)]


def test_failed_begin_batch_drops_that_batch_only() -> None:
    with faulty("batch") as c:
        assert c.request(init_request([("failBegin", [("int", 1)])])).init.success
        c.send_many(batch(10) + batch(20))
        c.close_input()
        out = c.recv_all()
        assert c.wait() == 0
        # Batch 1 is dropped whole (its points never reach the script); batch 2 comes through.
        assert kinds(out) == ["begin", "point", "end"]
        assert out[1].point.fieldsInt["batch"] == 2 and out[2].end.tmax == 20
        assert "begin_batch() raised RuntimeError: begin_batch exploded on batch 1" in \
            c.stderr_text()


def test_failed_end_batch_closes_the_output_batch() -> None:
    with faulty("batch") as c:
        assert c.request(init_request([("failEnd", [("int", 1)])])).init.success
        c.send_many(batch(10, "g=1") + batch(20, "g=1"))
        c.close_input()
        out = c.recv_all()
        assert c.wait() == 0
        # The script wrote begin and a point, then raised: kapudf closes the batch with an
        # EndBatch copied from the input's, and the next batch is whole.
        assert kinds(out) == ["begin", "point", "end", "begin", "point", "end"]
        assert out[2].end.tmax == 10 and out[2].end.group == "g=1"
        assert out[4].point.fieldsInt["batch"] == 2 and out[5].end.tmax == 20


def test_strict_batch_failure_sends_an_error_response() -> None:
    with faulty("batch", before=("--strict",)) as c:
        assert c.request(init_request([("failBegin", [("int", 1)])])).init.success
        c.send_many(batch(10))
        out = c.recv_all()
        assert kinds(out) == ["error"]
        assert out[0].error.error == ("error processing request of type begin: "
                                      "begin_batch exploded on batch 1")
        assert c.wait() == 1


def test_missing_script_is_a_usage_error(cli) -> None:
    proc = cli("run", str(SCRIPTS / "no_such_script.py"))
    assert proc.returncode == 2
    assert "no such agent script" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_script_that_fails_to_import_exits_1_with_one_line(tmp_path) -> None:
    script = tmp_path / "broken.py"
    script.write_text("from kapacitor.udf.agent import Agent\nraise RuntimeError('boom')\n")
    with WireClient([sys.executable, "-m", "udfcollection", "run", str(script)]) as c:
        c.close_input()
        assert c.recv_all() == []
        assert c.wait() == 1
        err = c.stderr_text()
    lines = [line for line in err.splitlines() if "broken.py failed" in line]
    assert len(lines) == 1 and "RuntimeError: boom" in lines[0]


def test_a_script_that_starts_no_agent_is_reported(tmp_path) -> None:
    script = tmp_path / "not_a_udf.py"
    script.write_text("print('hello from a script')\n")
    with WireClient([sys.executable, "-m", "udfcollection", "run", str(script)]) as c:
        c.close_input()
        assert c.recv_all() == []
        assert c.raw_out == b""  # the print went to stderr, not the protocol stream
        assert c.wait() == 0
        err = c.stderr_text()
    assert "hello from a script" in err
    assert "finished without starting an Agent" in err
