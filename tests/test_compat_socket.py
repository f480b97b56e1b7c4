"""Socket-mode stock-agent scripts (`Server(path, accepter).serve()`) under `kapudf run`:
a stale socket file is replaced, connections are independent agents, SIGTERM removes the
socket, and a live socket is never stolen."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from udfcollection.testing import SocketClient, info_request, init_request, point_request

SCRIPT = str(Path(__file__).resolve().parent / "compat_scripts" / "mirror_server.py")


def start_server(path: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "udfcollection", "run", SCRIPT, str(path)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_listening(path: Path, proc: subprocess.Popen, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early: {proc.communicate()[1]}")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
            return
        except OSError:
            time.sleep(0.05)
        finally:
            probe.close()
    raise AssertionError("server did not start listening")


def make_stale_socket(path: Path) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()  # the file stays, nobody listens: what a crash or kill -9 leaves behind


def test_stale_socket_connections_and_sigterm_cleanup(sockdir: Path) -> None:
    path = sockdir / "mirror.sock"
    make_stale_socket(path)
    proc = start_server(path)
    try:
        wait_listening(path, proc)
        with SocketClient(path) as a, SocketClient(path) as b:
            assert a.request(info_request()).WhichOneof("message") == "info"
            assert a.request(init_request()).init.success
            assert b.request(init_request()).init.success
            # Each connection is its own agent and handler: separate counters.
            assert a.request(point_request(1, {"v": 1.0})).point.fieldsInt["seen"] == 1
            assert a.request(point_request(2, {"v": 1.0})).point.fieldsInt["seen"] == 2
            assert b.request(point_request(3, {"v": 1.0})).point.fieldsInt["seen"] == 1
            a.close_input()
            assert a.recv_all() == []  # the agent closes its side when the input ends
            b.close_input()
            assert b.recv_all() == []
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0
        assert not path.exists()
        assert "removing stale socket file" in err
        assert "INFO:mirror: server stopped" in err  # serve() returned to the script
        assert "WARNING" not in err and "ERROR" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_a_live_socket_is_not_taken_over(sockdir: Path) -> None:
    path = sockdir / "busy.sock"
    first = start_server(path)
    try:
        wait_listening(path, first)
        second = start_server(path)
        _, err = second.communicate(timeout=30)
        assert second.returncode == 1
        assert "another process is already listening" in err
        # The first server is untouched and still serving.
        with SocketClient(path) as c:
            assert c.request(init_request()).init.success
    finally:
        first.send_signal(signal.SIGTERM)
        try:
            first.communicate(timeout=20)
        finally:
            if first.poll() is None:
                first.kill()
                first.communicate()
    assert not os.path.exists(path)
