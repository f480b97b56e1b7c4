"""kapudf's implementation of the stock `kapacitor.udf.agent` module, for agent scripts.

Scripts use it exactly as the stock one: subclass `Handler`, build `Agent()` (stdin/stdout) or
`Agent(conn, conn)` (a socket connection handed to an accepter by `Server`), set
`agent.handler`, call `start()` and `wait()`, and write output with
`agent.write_response(response, flush=False)`. What differs is underneath:

- input is read on kapudf's `Connection` reader thread, which answers keepalives the moment they
  arrive, so a slow handler no longer gets the task killed; each request is parsed into a fresh
  message, so memory stays flat (the stock agent's reused Request grows without bound);
- output is buffered in large writes and flushed whenever the input runs dry, before every
  management answer, and at once when written from a thread of the script's own; nothing
  depends on `python -u` or on the `flush` argument;
- handler exceptions and odd snapshot/restore answers follow `script_handler`'s policy
  instead of ending the task (`kapudf run --strict` restores the stock behaviour).

`write_response` may be called from any thread.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import threading
import time
from threading import get_ident
from types import SimpleNamespace

from udfcollection.agent.connection import (
    FLUSH_AT,
    Connection,
    FrameWriter,
    fd_reader,
    fd_writer,
    socket_reader,
    socket_writer,
)
from udfcollection.agent.runtime import error_frame, serve
from udfcollection.compat.script_handler import ScriptHandler
from udfcollection.compat.server import Server
from udfcollection.protocol import udf_pb2
from udfcollection.protocol.framing import encode_varint

__all__ = ["EOF", "Agent", "Handler", "Server", "decodeUvarint32", "encodeUvarint", "udf_pb2"]

log = logging.getLogger("udfcollection.compat")

settings = SimpleNamespace(
    strict=False,  # stop at the first handler exception, as the stock agent does
    stdout_fd=None,  # the fd protocol frames go to when a script writes to "stdout"
    agents_started=0,  # how many agents the script started, finished ones included
)

# Agents started in this process, for the runner to wait on when the script's main returns.
started: list[Agent] = []

_Response = udf_pb2.Response
FLUSH_PAUSE = 0.05  # a flush=True write on the protocol thread flushes at most this often
_HEADS = [bytes([n]) for n in range(128)]  # varint length prefixes of short frames


class Handler:
    """Base class of a script's handler: the methods the agent calls, one request at a time,
    from the agent's protocol thread. The defaults do nothing and return None; kapudf answers
    a missing `snapshot()` with an empty snapshot and a missing `init()` with success."""

    def info(self):
        return None

    def init(self, init_req):
        return None

    def snapshot(self):
        return None

    def restore(self, restore_req):
        return None

    def begin_batch(self, begin_req):
        return None

    def point(self, point):
        return None

    def end_batch(self, end_req):
        return None


class EOF(Exception):  # the stock module's name
    """End of the input stream (raised by `decodeUvarint32`)."""


def encodeUvarint(writer, value: int) -> None:  # the stock module's name
    """Write `value` as an unsigned varint to a binary file-like `writer`."""
    writer.write(encode_varint(value))


def decodeUvarint32(reader) -> int:  # the stock module's name
    """Read an unsigned varint of at most 32 bits from a binary file-like `reader`; EOF at end
    of input."""
    result = 0
    shift = 0
    while True:
        b = reader.read(1)
        if not b:
            raise EOF
        byte = b[0]
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & 0xFFFFFFFF
        shift += 7
        if shift >= 32:
            raise ValueError("varint longer than 32 bits")


def _fileno(obj) -> int | None:
    try:
        return obj.fileno()
    except Exception:
        return None


def _socket_of(obj) -> socket.socket | None:
    if isinstance(obj, socket.socket):
        return obj
    return getattr(obj, "_kapudf_socket", None)


def _is_stdout(out) -> bool:
    if out is None:
        return True
    std = sys.__stdout__
    if std is not None and (out is std or out is getattr(std, "buffer", None)):
        return True
    fd = _fileno(out)
    return fd is not None and fd in (1, settings.stdout_fd)


def _reader_for(_in, sock):
    if sock is not None:
        return socket_reader(sock)
    if _in is None or _fileno(_in) == 0:
        return fd_reader(0)
    source = getattr(_in, "buffer", _in)  # a text-mode file: read its bytes layer
    read = getattr(source, "read1", None) or source.read

    def read_some(n: int) -> bytes:
        return read(n) or b""

    return read_some


def _writer_for(out, sock):
    if sock is not None:
        return socket_writer(sock)
    if _is_stdout(out):
        return fd_writer(settings.stdout_fd if settings.stdout_fd is not None else 1)
    target = getattr(out, "buffer", out)  # a text-mode file: write to its bytes layer

    def write(data: bytes) -> None:
        target.write(data)
        target.flush()

    return write


class Agent:
    """Speaks the protocol for one handler over stdin/stdout (the default), a connection from
    `Server`, or any pair of binary file objects."""

    def __init__(self, _in=None, out=None, handler=None):
        self.handler = handler
        self._in = _in
        self._out = out
        self._sock = _socket_of(_in) or _socket_of(out)
        self.mode = "socket" if self._sock is not None else (
            "stdio" if (_in is None or _fileno(_in) == 0) and _is_stdout(out) else "file")
        self._writer = FrameWriter(_writer_for(out, self._sock))
        self._thread: threading.Thread | None = None
        self._worker_ident: int | None = None
        self._watch_batches = False
        self._provides_known = False
        self._batch_open = False
        self.exit_code: int | None = None

    # --- what scripts call -------------------------------------------------------------------

    def start(self) -> None:
        """Start serving on a background thread; returns at once."""
        if self.handler is None:
            raise ValueError("set agent.handler before calling agent.start()")
        if self._thread is not None:
            raise RuntimeError("this agent has already been started")
        handler = ScriptHandler(self.handler, self, strict=settings.strict)
        conn = Connection(_reader_for(self._in, self._sock), self._writer, name="agent")
        self._thread = threading.Thread(target=self._run, args=(conn, handler),
                                        name="agent", daemon=True)
        started.append(self)
        settings.agents_started += 1
        self._thread.start()

    def wait(self) -> None:
        """Block until the input ends (Kapacitor closed it) or the agent stopped on an error."""
        if self._thread is not None:
            self._thread.join()
        if self.mode == "file":
            for f in (self._in, self._out):
                with contextlib.suppress(Exception):
                    f.close()

    def write_response(self, response, flush: bool = False) -> None:
        """Send one Response to Kapacitor (thread safe). Output is buffered and flushed by the
        agent; `flush` only asks for it to go out soon."""
        if type(response) is not _Response:
            if response is None:
                raise ValueError("cannot write None response")
            raise TypeError("write_response() takes a udf_pb2.Response, not "
                            f"{type(response).__name__}")
        body = response.SerializeToString()
        if self._watch_batches:
            self._track(response)
        if get_ident() == self._worker_ident:
            # The protocol thread is the only one that appends to the buffer (and flushes
            # it), so appending needs no lock.
            buf = self._writer.buf
            n = len(body)
            buf += _HEADS[n] if n < 128 else encode_varint(n)
            buf += body
            if len(buf) >= FLUSH_AT or (
                    flush and time.monotonic() - self._writer.last_write >= FLUSH_PAUSE):
                self._writer.flush()
        else:
            # A thread of the script's own: nobody else would flush it, so it goes out now,
            # as one write under the writer's lock.
            self._writer.write_now(body)

    def _track(self, response) -> None:
        kind = response.WhichOneof("message")
        if kind == "begin":
            self._batch_open = True
        elif kind == "end":
            self._batch_open = False

    # --- used by ScriptHandler -------------------------------------------------------------

    def _note_provides(self, provides: int) -> None:
        self._provides_known = True
        self._watch_batches = provides == udf_pb2.BATCH

    def _learn_provides(self, user) -> None:
        """Whether the script emits batches (asked of its info() once, at init: Kapacitor
        sends Info to a separate process), so an output batch can be closed after a failure."""
        if self._provides_known:
            return
        self._provides_known = True
        try:
            resp = user.info()
        except Exception:
            return
        if isinstance(resp, _Response) and resp.WhichOneof("message") == "info":
            self._note_provides(resp.info.provides)

    def _close_output_batch(self, end: udf_pb2.EndBatch) -> None:
        if not self._batch_open:
            return
        resp = _Response()
        resp.end.CopyFrom(end)
        self._batch_open = False
        self._writer.response(resp)
        log.warning("closed the output batch the script had begun (group %r) so Kapacitor "
                    "does not see it left open", end.group)

    # --- the protocol thread -----------------------------------------------------------------

    def _run(self, conn: Connection, handler: ScriptHandler) -> None:
        self._worker_ident = threading.get_ident()
        code = 1
        try:
            conn.start()
            code = serve(conn, handler)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            log.info("the script's handler called sys.exit(%s); stopping this agent", exc.code)
        except BaseException as exc:
            # The reader would go on answering keepalives for a dead agent and the task would
            # stall unnoticed: tell Kapacitor instead.
            text = f"kapudf: the agent stopped: {type(exc).__name__}: {exc}"
            log.error("%s", text, exc_info=True)
            conn.stop()
            self._writer.write_last(error_frame(text))
        finally:
            self._writer.flush()
            self.exit_code = code
            if self.mode == "socket":
                # A socket server lives long and serves many connections: forget finished
                # ones (their exit codes do not decide the process's).
                with contextlib.suppress(ValueError):
                    started.remove(self)
            if self._sock is not None:
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    self._sock.close()
