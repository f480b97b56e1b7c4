"""The stock agent's `Server(socket_path, accepter)` for socket-mode scripts, on kapudf's socket
handling.

Differences from the stock one, all in the script's favour:

- a stale socket file left by a crash or a kill is removed at start (the stock server fails with
  "Address already in use"); a socket some live process listens on is left alone and reported
  (`SocketInUse`); the socket is created with mode 0660, never wider;
- SIGTERM and SIGINT (when `serve()` runs on the main thread) stop accepting, remove the socket
  file and return from `serve()`; the runner then lets open connections finish for up to
  `DRAIN_SECONDS`; a second signal exits at once;
- the accepter gets a `ConnectionFile` (read/write/flush/close/fileno, like the stock
  `makefile('rwb')` object) that `Agent(conn, conn)` recognises, so the agent reads and writes
  the socket directly.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import socket
import threading
from pathlib import Path

from udfcollection.agent.server import SocketInUse, bind_unix

__all__ = ["DRAIN_SECONDS", "ConnectionFile", "Server", "SocketInUse"]

log = logging.getLogger("udfcollection.compat")

DRAIN_SECONDS = 10.0


class ConnectionFile:
    """One accepted connection as a binary file object."""

    def __init__(self, sock: socket.socket):
        self._kapudf_socket = sock

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            chunks = []
            while chunk := self._kapudf_socket.recv(1 << 16):
                chunks.append(chunk)
            return b"".join(chunks)
        return self._kapudf_socket.recv(n)

    read1 = read

    def write(self, data: bytes) -> int:
        self._kapudf_socket.sendall(data)
        return len(data)

    def flush(self) -> None:
        pass

    def fileno(self) -> int:
        return self._kapudf_socket.fileno()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._kapudf_socket.close()

    @property
    def closed(self) -> bool:
        return self._kapudf_socket.fileno() < 0


class Server:
    """Accepts connections on a Unix socket and hands each to `accepter.accept(conn, addr)` on
    a thread of its own."""

    def __init__(self, socket_path, accepter):
        self._socket_path = Path(socket_path)
        self._accepter = accepter
        self._stop = threading.Event()
        self._listener: socket.socket | None = bind_unix(self._socket_path)
        self._inode = os.stat(self._socket_path).st_ino
        log.info("listening on %s", self._socket_path)

    def serve(self) -> None:
        """Accept connections until stopped (SIGTERM/SIGINT or `stop()`), then clean up."""
        previous = self._install_signal_handlers()
        sel = selectors.DefaultSelector()
        try:
            if self._listener is None:
                return
            sel.register(self._listener, selectors.EVENT_READ)
            while not self._stop.is_set():
                if not sel.select(timeout=0.2):
                    continue
                try:
                    conn, addr = self._listener.accept()
                except OSError:
                    continue
                conn.setblocking(True)
                threading.Thread(target=self._accept, args=(ConnectionFile(conn), addr),
                                 name="accept", daemon=True).start()
        finally:
            sel.close()
            self.stop()
            for signum, handler in previous.items():
                with contextlib.suppress(ValueError):
                    signal.signal(signum, handler)

    def _accept(self, conn: ConnectionFile, addr) -> None:
        try:
            self._accepter.accept(conn, addr)
        except Exception as exc:
            log.error("accept() raised %s: %s; closing that connection", type(exc).__name__,
                      exc)
            conn.close()

    def stop(self) -> None:
        """Stop accepting and remove the socket file (only if it is still ours)."""
        self._stop.set()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
            self._listener = None
            try:
                if os.stat(self._socket_path).st_ino == self._inode:
                    self._socket_path.unlink()
                    log.info("removed socket %s", self._socket_path)
            except FileNotFoundError:
                pass

    def _install_signal_handlers(self) -> dict:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def on_signal(signum, _frame):
            if self._stop.is_set():
                log.warning("second signal: exiting now")
                self.stop()
                os._exit(1)
            log.info("signal %d: no longer accepting connections", signum)
            self._stop.set()

        previous = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, on_signal)
        return previous
