"""`kapudf serve` under load and abuse, over real Unix sockets to a real server process.

- 50 connections stream at once, each an independent edge_detect instance;
- a connection sending garbage, dropping mid-frame, claiming a huge frame, or vanishing without
  reading its answers affects no other connection and not the server;
- SIGTERM stops accepting, removes the socket files and lets open connections finish;
- after SIGKILL the stale socket file is removed by the next start;
- socket files get the configured permission bits.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

from udfcollection.agent.server import socket_state
from udfcollection.protocol.framing import encode_frame, encode_varint
from udfcollection.testing import (
    SocketClient,
    info_request,
    init_request,
    kapudf_command,
    point_request,
)

EDGE_INIT = init_request([("field", [("string", "value")])])


class Server:
    def __init__(self, sockdir: Path, *names: str, mode: str | None = None,
                 drain: float = 10.0):
        args = ["serve", "--socket-dir", str(sockdir), "--drain-timeout", str(drain), *names]
        if mode:
            args += ["--mode", mode]
        self.paths = [sockdir / f"{n}.sock" for n in names]
        self.proc = subprocess.Popen(kapudf_command(*args), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def wait_live(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(socket_state(p) == "live" for p in self.paths):
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.proc.stderr.read().decode()}")
            time.sleep(0.05)
        raise AssertionError("server did not start listening")

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _out, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _out, err = self.proc.communicate()
        return self.proc.returncode, err.decode(errors="replace")


@pytest.fixture
def server(sockdir):
    servers: list[Server] = []

    def start(*names: str, **kw) -> Server:
        s = Server(sockdir, *names, **kw)
        servers.append(s)
        s.wait_live()
        return s

    yield start
    for s in servers:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()


def stream_points(conn_id: int, n: int, run: int = 10) -> list:
    """n points whose value changes every `run` points: n // run state changes."""
    return [point_request(t, {"value": f"s{t // run}", "seq": t},
                          tags={"conn": str(conn_id)}, group_by=["conn"]) for t in range(n)]


def check_edges(responses, conn_id: int, n: int, run: int = 10) -> None:
    """emitFirst: the first point, then the first point of every new value."""
    points = [r.point for r in responses if r.WhichOneof("message") == "point"]
    assert [p.time for p in points] == list(range(0, n, run))
    assert all(p.tags["conn"] == str(conn_id) for p in points)
    assert [r.WhichOneof("message") for r in responses if
            r.WhichOneof("message") != "point"] == []


def test_fifty_connections_stream_at_once(server, sockdir):
    srv = server("edge_detect")
    path = srv.paths[0]
    n_conn, n_points, chunks = 50, 2000, 8
    barrier = threading.Barrier(n_conn)
    failures: list[str] = []
    overlap = {"active": 0, "peak": 0}
    lock = threading.Lock()

    def one(conn_id: int) -> None:
        try:
            reqs = stream_points(conn_id, n_points)
            with SocketClient(path, timeout=30) as c:
                assert c.request(EDGE_INIT, timeout=30).init.success
                barrier.wait(60)
                with lock:
                    overlap["active"] += 1
                    overlap["peak"] = max(overlap["peak"], overlap["active"])
                step = n_points // chunks
                for a in range(0, n_points, step):
                    c.send_many(reqs[a:a + step], timeout=60)
                    time.sleep(0.01)  # interleave with the other connections
                c.close_input()
                out = c.recv_all(timeout=60)
                with lock:
                    overlap["active"] -= 1
            check_edges(out, conn_id, n_points)
        except BaseException as exc:  # collected: pytest only sees the main thread
            failures.append(f"connection {conn_id}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n_conn)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures, "\n".join(failures[:5])
    # All 50 were initialised and streaming at the same time (the barrier guarantees it).
    assert overlap["peak"] >= n_conn // 2, overlap
    code, err = srv.stop()
    assert code == 0, err
    assert "Traceback" not in err


def _garbage(path: Path) -> bytes:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(str(path))
    s.sendall(encode_frame(EDGE_INIT.SerializeToString()) + encode_frame(b"\xff\xfe\xfd"))
    s.shutdown(socket.SHUT_WR)
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    return data


def _drop_mid_frame(path: Path) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(path))
    frame = encode_frame(point_request(1, {"value": "x"}).SerializeToString())
    s.sendall(encode_frame(EDGE_INIT.SerializeToString()) + frame[: len(frame) // 2])
    s.close()  # both halves at once, mid-frame


def _huge_claim_then_vanish(path: Path) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(path))
    s.sendall(encode_varint(60 << 20) + b"z" * 100_000)
    s.close()


def _vanish_without_reading(path: Path) -> None:
    """Sends points that produce output, never reads it, and disappears."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(path))
    reqs = [EDGE_INIT, *stream_points(99, 5000, run=1)]
    s.sendall(b"".join(encode_frame(r.SerializeToString()) for r in reqs))
    s.close()


def test_bad_connections_do_not_affect_good_ones(server):
    srv = server("edge_detect")
    path = srv.paths[0]
    good = [SocketClient(path, timeout=10) for _ in range(5)]
    try:
        streams = [stream_points(i, 3000) for i in range(5)]
        for c in good:
            assert c.request(EDGE_INIT, timeout=20).init.success
        for c, reqs in zip(good, streams, strict=True):
            c.send_many(reqs[:1500])
        # Now the abuse, while the good connections are mid-stream.
        answer = _garbage(path)
        _drop_mid_frame(path)
        _huge_claim_then_vanish(path)
        _vanish_without_reading(path)
        for c, reqs in zip(good, streams, strict=True):
            c.send_many(reqs[1500:])
            c.close_input()
        for i, c in enumerate(good):
            check_edges(c.recv_all(timeout=30), i, 3000)
    finally:
        for c in good:
            c.close()
    # The garbage connection got its init answer, then exactly one ErrorResponse, last.
    from udfcollection.protocol import udf_pb2
    from udfcollection.protocol.framing import FrameSplitter

    sp = FrameSplitter()
    frames, _ = sp.feed(answer)
    kinds = [udf_pb2.Response.FromString(f).WhichOneof("message") for f in frames]
    assert kinds == ["init", "error"] and sp.pending == 0
    # The server still takes new connections.
    with SocketClient(path, timeout=10) as c:
        assert c.request(info_request(), timeout=10).WhichOneof("message") == "info"
    code, err = srv.stop()
    assert code == 0, err
    assert "Traceback" not in err
    assert err.count("corrupt input") >= 3, err  # garbage, mid-frame drop, huge claim


def test_sigterm_drains_open_connections_and_removes_socket_files(server):
    srv = server("edge_detect", "moving_avg")
    edge_path = srv.paths[0]
    reqs = stream_points(1, 400)
    with SocketClient(edge_path, timeout=10) as c:
        assert c.request(EDGE_INIT, timeout=20).init.success
        c.send_many(reqs[:200])
        srv.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while any(p.exists() for p in srv.paths) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not any(p.exists() for p in srv.paths), "socket files left after SIGTERM"
        with pytest.raises(OSError):
            SocketClient(edge_path, timeout=2)
        # The open connection is drained: it keeps working until Kapacitor closes it.
        c.send_many(reqs[200:])
        c.close_input()
        check_edges(c.recv_all(timeout=20), 1, 400)
    # With its last connection finished, the server exits on its own.
    code = srv.proc.wait(10)
    err = srv.proc.stderr.read().decode(errors="replace")
    assert code == 0, err
    assert "Traceback" not in err


def test_sigkill_leaves_stale_file_that_next_start_removes(server, sockdir):
    srv = server("edge_detect")
    path = srv.paths[0]
    srv.proc.kill()
    srv.proc.wait()
    assert socket_state(path) == "stale"
    srv2 = server("edge_detect")
    with SocketClient(path, timeout=10) as c:
        assert c.request(EDGE_INIT, timeout=20).init.success
    code, err = srv2.stop()
    assert code == 0
    assert "stale" in err and str(path) in err


def test_live_socket_is_not_taken_over(server, sockdir):
    srv = server("edge_detect")
    second = subprocess.run(kapudf_command("serve", "--socket-dir", str(sockdir), "edge_detect"),
                            capture_output=True, text=True, timeout=30)
    assert second.returncode != 0
    assert "already listening" in second.stderr and "Traceback" not in second.stderr
    # The first server is untouched.
    with SocketClient(srv.paths[0], timeout=10) as c:
        assert c.request(info_request(), timeout=10).WhichOneof("message") == "info"


@pytest.mark.parametrize("mode", [None, "0600", "0666"])
def test_socket_file_permissions(server, mode):
    srv = server("edge_detect", mode=mode)
    bits = stat.S_IMODE(os.stat(srv.paths[0]).st_mode)
    assert bits == int(mode or "0660", 8)
    assert stat.S_ISSOCK(os.stat(srv.paths[0]).st_mode)
