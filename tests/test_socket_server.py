"""`kapudf serve --socket-dir DIR NAME...` over real Unix sockets: several UDFs from one
process, every connection an independent instance, stale and live socket files, signals, and
socket file permissions."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest
from kapudf_testkit import support_env

from udfcollection.protocol import udf_pb2
from udfcollection.testing import (
    LEVEL_WORDS,
    SocketClient,
    begin_request,
    end_request,
    info_request,
    init_request,
    kapudf_command,
    point_request,
)

EDGE_INIT = init_request([("field", [("string", "value")])])


class Server:
    """`kapudf serve` in a subprocess, stderr captured to a file."""

    def __init__(self, sockdir: Path, *args: str):
        self.dir = sockdir
        self.err_path = sockdir / "serve.stderr"
        env = dict(os.environ)
        env.update(support_env())
        self._err = open(self.err_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(kapudf_command("serve", "--socket-dir", str(sockdir),
                                                    *args),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._err, env=env)

    def path(self, name: str) -> Path:
        return self.dir / f"{name}.sock"

    def wait_ready(self, *names: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        for name in names:
            while True:
                if self.proc.poll() is not None:
                    raise AssertionError(f"serve exited early: {self.stderr()}")
                if self.path(name).exists():
                    try:
                        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                            s.connect(str(self.path(name)))
                        break
                    except OSError:
                        pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"{name}.sock never came up: {self.stderr()}")
                time.sleep(0.05)

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._err.close()
        if self.proc.stdout:
            self.proc.stdout.close()


@pytest.fixture
def serve(sockdir):
    servers: list[Server] = []

    def start(*args: str) -> Server:
        s = Server(sockdir, *args)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()


def kinds(responses):
    return [r.WhichOneof("message") for r in responses]


def test_serves_several_udfs_from_one_process(serve):
    srv = serve("edge_detect", "outliers")
    srv.wait_ready("edge_detect", "outliers")
    with SocketClient(srv.path("edge_detect")) as c:
        info = c.request(info_request()).info
        assert (info.wants, info.provides) == (udf_pb2.STREAM, udf_pb2.STREAM)
        assert c.request(EDGE_INIT).init.success
        c.send_many([point_request(i, {"value": v}) for i, v in enumerate([1, 1, 2])])
        c.close_input()
        out = c.recv_all()
        assert [r.point.time for r in out] == [0, 2]
    with SocketClient(srv.path("outliers")) as c:
        info = c.request(info_request()).info
        assert (info.wants, info.provides) == (udf_pb2.BATCH, udf_pb2.BATCH)
        assert c.request(init_request([("field", [("string", "v")])])).init.success
        values = [1.0, 2.0, 3.0, 4.0, 100.0]
        pts = [point_request(i, {"v": v}) for i, v in enumerate(values)]
        for p in pts:
            p.point.name = ""
        c.send_many([begin_request("m"), *pts, end_request("m", tmax=4)])
        c.close_input()
        out = c.recv_all()
        # Quartiles of 1..4,100 (linear interpolation) are 2 and 4: fences -1 and 7 at 1.5.
        assert kinds(out) == ["begin", "point", "end"]
        assert out[1].point.fieldsDouble["v"] == 100.0 and out[0].begin.size == 1
    assert srv.proc.poll() is None  # connections ending does not end the server


def test_concurrent_connections_are_independent_instances(serve):
    srv = serve("edge_detect")
    srv.wait_ready("edge_detect")
    clients = [SocketClient(srv.path("edge_detect")) for _ in range(6)]
    try:
        for c in clients:  # all open at once
            assert c.request(EDGE_INIT).init.success
        # Each instance sees its own first point of group "" and emits it (emitFirst): a
        # shared state would emit only on the first connection.
        for c in clients:
            c.send(point_request(1, {"value": 5}))
        for c in clients:
            assert c.recv().point.time == 1
        # Diverge: even connections change value, odd ones repeat it.
        for i, c in enumerate(clients):
            c.send(point_request(2, {"value": 6 if i % 2 == 0 else 5}))
        for i, c in enumerate(clients):
            c.close_input()
            out = c.recv_all()
            assert [r.point.time for r in out] == ([2] if i % 2 == 0 else [])
    finally:
        for c in clients:
            c.close()


def _stale_socket(path: Path) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()  # the file stays; nobody listens: what a crashed server leaves behind


def test_stale_socket_file_is_removed_at_start(serve, sockdir):
    _stale_socket(sockdir / "edge_detect.sock")
    assert stat.S_ISSOCK((sockdir / "edge_detect.sock").lstat().st_mode)
    srv = serve("edge_detect")
    srv.wait_ready("edge_detect")
    with SocketClient(srv.path("edge_detect")) as c:
        assert c.request(info_request()).WhichOneof("message") == "info"
    assert "removing stale socket file" in srv.stderr()


@pytest.mark.parametrize("live_first", [True, False])
def test_live_socket_is_left_alone_with_a_clear_error(serve, sockdir, live_first):
    live = sockdir / "edge_detect.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(live))
    listener.listen(1)
    try:
        names = ("edge_detect", "threshold") if live_first else ("threshold", "edge_detect")
        srv = serve(*names)
        code = srv.proc.wait(timeout=30)
        assert code != 0
        err = srv.stderr()
        assert "Traceback" not in err
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1, err
        assert str(live) in lines[0] and "already listening" in lines[0]
        # Our listener is untouched and still accepts connections.
        assert stat.S_ISSOCK(live.lstat().st_mode)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.connect(str(live))
        # The socket it had already bound is not left behind.
        assert not (sockdir / "threshold.sock").exists()
    finally:
        listener.close()


def test_a_regular_file_in_the_way_is_not_removed(serve, sockdir):
    (sockdir / "edge_detect.sock").write_text("not a socket")
    srv = serve("edge_detect")
    assert srv.proc.wait(timeout=30) != 0
    assert "is not a socket" in srv.stderr() and "Traceback" not in srv.stderr()
    assert (sockdir / "edge_detect.sock").read_text() == "not a socket"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_removes_sockets_and_lets_open_connections_finish(serve, sig):
    srv = serve("edge_detect", "threshold")
    srv.wait_ready("edge_detect", "threshold")
    c = SocketClient(srv.path("edge_detect"))
    try:
        assert c.request(EDGE_INIT).init.success
        c.send(point_request(1, {"value": 1}))
        assert c.recv().point.time == 1
        srv.proc.send_signal(sig)
        deadline = time.monotonic() + 10
        while srv.path("edge_detect").exists() or srv.path("threshold").exists():
            assert time.monotonic() < deadline, "socket files not removed after the signal"
            time.sleep(0.05)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s, pytest.raises(OSError):
            s.connect(str(srv.path("edge_detect")))  # no longer accepting
        # The open connection is still served to its end.
        c.send(point_request(2, {"value": 2}))
        assert c.recv(timeout=10).point.time == 2
        assert srv.proc.poll() is None  # waiting for the open connection
        c.close_input()
        assert c.recv_all(timeout=10) == []
    finally:
        c.close()
    assert srv.proc.wait(timeout=20) == 0
    lines = srv.stderr().splitlines()
    assert all(ln.split(" ", 1)[0] in LEVEL_WORDS for ln in lines if ln.strip())


def test_socket_mode_defaults_to_0660(serve):
    srv = serve("edge_detect")
    srv.wait_ready("edge_detect")
    assert stat.S_IMODE(srv.path("edge_detect").stat().st_mode) == 0o660


def test_socket_mode_option(serve):
    srv = serve("--mode", "0600", "edge_detect")
    srv.wait_ready("edge_detect")
    assert stat.S_IMODE(srv.path("edge_detect").stat().st_mode) == 0o600


def test_bad_mode_is_a_usage_error(serve):
    srv = serve("--mode", "rw-rw----", "edge_detect")
    assert srv.proc.wait(timeout=30) == 2
    assert "not an octal mode" in srv.stderr() and "Traceback" not in srv.stderr()


def test_unknown_udf_is_a_usage_error_and_binds_nothing(serve, sockdir):
    srv = serve("edge_detect", "no_such_udf")
    assert srv.proc.wait(timeout=30) == 2
    assert "unknown UDF 'no_such_udf'" in srv.stderr() and "Traceback" not in srv.stderr()
    assert not list(sockdir.glob("*.sock"))


def test_udf_given_by_import_path_is_served_under_its_declared_name(serve):
    # `kapudf conf --socket-dir DIR mypkg.mod:Class` writes DIR/<declared name>.sock.
    srv = serve("kapudf_test_udfs:Counter")
    srv.wait_ready("test_counter")
    with SocketClient(srv.path("test_counter")) as c:
        assert c.request(init_request([("field", [("string", "v")])])).init.success
        c.send(point_request(1, {"v": 2.5}))
        assert c.recv().point.fieldsDouble["sum"] == 2.5
