"""`kapudf serve`: several UDFs from one process over Unix sockets, `DIR/NAME.sock` each.

Every accepted connection is an independent UDF instance (Kapacitor opens one per task node)
served on its own thread. At start a stale socket file (nobody listening) is removed; a live
one is left alone and reported. SIGTERM/SIGINT stop accepting, remove the socket files, and let
open connections finish (up to `drain_timeout`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import selectors
import signal
import socket
import stat
import threading
from collections.abc import Callable
from pathlib import Path

from udfcollection.agent.connection import Connection, FrameWriter, socket_reader, socket_writer
from udfcollection.agent.runtime import Handler, serve

log = logging.getLogger("udfcollection.server")


class SocketInUse(RuntimeError):
    pass


def socket_state(path: str | Path) -> str:
    """'missing', 'live' (something accepts connections), 'stale' (a socket file nobody
    listens on) or 'not-a-socket'."""
    p = Path(path)
    try:
        st = p.lstat()
    except FileNotFoundError:
        return "missing"
    if not stat.S_ISSOCK(st.st_mode):
        return "not-a-socket"
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(p))
    except (ConnectionRefusedError, FileNotFoundError):
        return "stale"
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
            return "stale"
        return "live"  # e.g. EAGAIN: a listener with a full backlog is still alive
    finally:
        probe.close()
    return "live"


def bind_unix(path: str | Path, mode: int = 0o660) -> socket.socket:
    """Bind and listen on a Unix socket at `path`, removing a stale socket file first.

    Raises SocketInUse if another process is listening there or the path is not a socket.
    """
    p = Path(path)
    state = socket_state(p)
    if state == "live":
        raise SocketInUse(f"{p}: another process is already listening on this socket; "
                          "stop it first or choose another --socket-dir")
    if state == "not-a-socket":
        raise SocketInUse(f"{p}: exists and is not a socket; refusing to remove it")
    if state == "stale":
        log.info("removing stale socket file %s (nobody was listening)", p)
        p.unlink()
    p.parent.mkdir(parents=True, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o777 & ~mode)  # never expose the socket wider than asked, even briefly
    try:
        sock.bind(str(p))
    finally:
        os.umask(old)
    os.chmod(p, mode)
    sock.listen(128)
    return sock


def serve_connection(conn_sock: socket.socket, handler: Handler, name: str) -> int:
    """Serve one connection until the peer closes its write half or the stream is corrupt."""
    writer = FrameWriter(socket_writer(conn_sock))
    conn = Connection(socket_reader(conn_sock), writer, name=name).start()
    try:
        return serve(conn, handler)
    finally:
        writer.flush()
        with contextlib.suppress(OSError):
            conn_sock.shutdown(socket.SHUT_RDWR)
        conn_sock.close()


class SocketServer:
    """Serves handler factories on Unix socket paths until stopped."""

    def __init__(self, endpoints: dict[str, tuple[Path, Callable[[], Handler]]],
                 mode: int = 0o660, drain_timeout: float = 30.0):
        self.endpoints = endpoints
        self.mode = mode
        self.drain_timeout = drain_timeout
        self._stop = threading.Event()
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._listeners: list[tuple[str, socket.socket, Path, Callable[[], Handler]]] = []
        self.connections_served = 0

    def bind(self) -> None:
        try:
            for name, (path, factory) in self.endpoints.items():
                self._listeners.append((name, bind_unix(path, self.mode), path, factory))
        except Exception:
            self._close_listeners()
            raise
        # Only once every socket is bound: a failed start must not claim to be serving.
        for name, _sock, path, _factory in self._listeners:
            log.info("serving %s on %s", name, path)

    def stop(self, *_args) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        def on_signal(signum, _frame):
            if self._stop.is_set():
                log.warning("second signal: exiting without waiting for connections")
                os._exit(1)
            log.info("signal %d: no longer accepting; letting open connections finish",
                     signum)
            self._stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def _close_listeners(self) -> None:
        for _name, sock, path, _f in self._listeners:
            with contextlib.suppress(OSError):
                sock.close()
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self._listeners = []

    def _spawn(self, name: str, conn: socket.socket, factory: Callable[[], Handler]) -> None:
        def run():
            try:
                serve_connection(conn, factory(), name)
            except Exception as exc:  # a broken connection must not take the server down
                log.error("%s connection failed: %s: %s", name, type(exc).__name__, exc)
            finally:
                with self._lock:
                    self._threads.discard(threading.current_thread())

        t = threading.Thread(target=run, name=f"{name}-conn", daemon=True)
        with self._lock:
            self._threads.add(t)
            self.connections_served += 1
        t.start()

    def serve_forever(self) -> None:
        if not self._listeners:
            self.bind()
        sel = selectors.DefaultSelector()
        for entry in self._listeners:
            sel.register(entry[1], selectors.EVENT_READ, entry)
        try:
            while not self._stop.is_set():
                for key, _ in sel.select(timeout=0.2):
                    name, sock, _path, factory = key.data
                    try:
                        conn, _ = sock.accept()
                    except OSError:
                        continue
                    conn.setblocking(True)
                    self._spawn(name, conn, factory)
        finally:
            sel.close()
            self._close_listeners()
        self._drain()

    def _drain(self) -> None:
        with self._lock:
            threads = list(self._threads)
        if threads:
            log.info("waiting up to %.0fs for %d open connection(s)", self.drain_timeout,
                     len(threads))
        deadline = self.drain_timeout
        import time

        end = time.monotonic() + deadline
        for t in threads:
            t.join(max(0.0, end - time.monotonic()))
        left = sum(t.is_alive() for t in threads)
        if left:
            log.warning("%d connection(s) still open after %.0fs; exiting anyway", left,
                        deadline)
