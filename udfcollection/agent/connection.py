"""One protocol connection: a reader thread, a bounded hand-off queue, and a buffered writer.

Why a reader thread: Kapacitor kills a UDF that has not answered anything for `timeout`, and it
sends keepalives on the same stream as data. The reader answers each keepalive the moment it is
read, so a handler that is busy for a long time (a slow model, a big batch) never misses one.

Why a bounded queue: when the handler is slower than Kapacitor writes, the reader stops taking
input once the queue is full, so memory stays bounded and the pipe's back-pressure reaches
Kapacitor. While the reader is held up like that it cannot see keepalives queued behind data in
the pipe, so it sends a keepalive response on its own every `heartbeat` seconds (any response
resets Kapacitor's kill timer).
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable

from udfcollection.protocol import udf_pb2
from udfcollection.protocol.framing import FrameSplitter, ProtocolError, encode_varint

log = logging.getLogger("udfcollection.agent")

READ_SIZE = 64 * 1024
QUEUE_CHUNKS = 32  # at most QUEUE_CHUNKS * READ_SIZE bytes of input wait for the handler
FLUSH_AT = 256 * 1024

_KEEPALIVE_TAG = 0x1A  # field 3, length-delimited: the keepalive member of Request and Response

EOF_MARK = "eof"
ERROR_MARK = "error"


class FrameWriter:
    """Buffers whole frames and writes them in large writes.

    The handler thread appends frames; `flush` writes them out. Keepalive answers from the
    reader thread go through `write_now`, which takes the same lock so frames never interleave.
    """

    def __init__(self, raw_write: Callable[[bytes], None]):
        self._raw_write = raw_write
        self._lock = threading.Lock()
        self.buf = bytearray()
        self.last_write = time.monotonic()
        self.closed = False

    def frame(self, body: bytes) -> None:
        buf = self.buf
        buf += encode_varint(len(body))
        buf += body
        if len(buf) >= FLUSH_AT:
            self.flush()

    def response(self, response: udf_pb2.Response) -> None:
        self.frame(response.SerializeToString())

    def flush(self) -> None:
        if not self.buf:
            return
        with self._lock:
            data = bytes(self.buf)
            self.buf.clear()
            self._write_locked(data)

    def write_now(self, body: bytes) -> None:
        """Write one frame immediately (from any thread), ahead of nothing already buffered
        by the handler: buffered frames are complete and may follow it."""
        with self._lock:
            self._write_locked(encode_varint(len(body)) + body)

    def _write_locked(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            self._raw_write(data)
        except (BrokenPipeError, ConnectionResetError, OSError):
            # Kapacitor went away; there is nobody left to tell.
            self.closed = True
            return
        self.last_write = time.monotonic()


def fd_reader(fd: int) -> Callable[[int], bytes]:
    def read(n: int) -> bytes:
        return os.read(fd, n)

    return read


def fd_writer(fd: int) -> Callable[[bytes], None]:
    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]

    return write


def socket_reader(sock: socket.socket) -> Callable[[int], bytes]:
    return sock.recv


def socket_writer(sock: socket.socket) -> Callable[[bytes], None]:
    return sock.sendall


class Connection:
    """Reads frames on a background thread and hands them to the caller in chunks.

    `chunks()` yields `(frames, offsets)` lists in arrival order; it ends after end of input,
    or after yielding the frames that preceded a framing error, in which case `error` holds the
    ProtocolError. Keepalive requests are answered by the reader thread and never reach the
    caller.
    """

    def __init__(
        self,
        read: Callable[[int], bytes],
        writer: FrameWriter,
        *,
        queue_chunks: int = QUEUE_CHUNKS,
        read_size: int = READ_SIZE,
        heartbeat: float = 0.5,
        name: str = "udf",
    ):
        self._read = read
        self.writer = writer
        self._queue: queue.Queue = queue.Queue(maxsize=queue_chunks)
        self._read_size = read_size
        self._heartbeat = heartbeat
        self._last_keepalive_time: int | None = None
        self.error: ProtocolError | None = None
        self.bytes_read = 0
        self._thread = threading.Thread(target=self._run, name=f"{name}-reader", daemon=True)

    def start(self) -> Connection:
        self._thread.start()
        return self

    def _answer_keepalive(self, body: bytes, offset: int) -> bool:
        """Answer a keepalive frame at once. Returns False if the frame is not a clean
        keepalive (it is then passed on to the handler thread like any other frame)."""
        try:
            req = udf_pb2.Request.FromString(body)
        except Exception:
            return False
        if req.WhichOneof("message") != "keepalive":
            return False
        self._last_keepalive_time = req.keepalive.time
        resp = udf_pb2.Response()
        resp.keepalive.time = req.keepalive.time
        self.writer.write_now(resp.SerializeToString())
        return True

    def _put(self, item) -> None:
        while True:
            try:
                self._queue.put(item, timeout=self._heartbeat)
                return
            except queue.Full:
                # Held up by back-pressure: keep Kapacitor's kill timer from running out.
                if (
                    self._last_keepalive_time is not None
                    and time.monotonic() - self.writer.last_write >= self._heartbeat
                ):
                    resp = udf_pb2.Response()
                    resp.keepalive.time = self._last_keepalive_time
                    self.writer.write_now(resp.SerializeToString())

    def _run(self) -> None:
        splitter = FrameSplitter()
        read = self._read
        size = self._read_size
        try:
            while True:
                try:
                    data = read(size)
                except (ConnectionResetError, OSError):
                    data = b""
                if not data:
                    if splitter.pending:
                        self.error = ProtocolError(
                            f"input ended inside a frame ({splitter.pending} bytes of it read)",
                            splitter.offset,
                        )
                        self._put((ERROR_MARK, None))
                    else:
                        self._put((EOF_MARK, None))
                    return
                self.bytes_read += len(data)
                try:
                    frames, offsets = splitter.feed(data)
                except ProtocolError as exc:
                    # Frames complete before the bad one are still processed, in order.
                    self.error = exc
                    self._put((ERROR_MARK, None))
                    return
                if not frames:
                    continue
                if any(f[:1] == b"\x1a" for f in frames):
                    kept_f, kept_o = [], []
                    for f, o in zip(frames, offsets, strict=True):
                        if f[:1] and f[0] == _KEEPALIVE_TAG and self._answer_keepalive(f, o):
                            continue
                        kept_f.append(f)
                        kept_o.append(o)
                    frames, offsets = kept_f, kept_o
                    if not frames:
                        continue
                self._put((frames, offsets))
        except Exception as exc:  # pragma: no cover - defensive: never die silently
            log.error("reader thread failed: %s", exc)
            self.error = ProtocolError(f"internal reader failure: {exc}", splitter.offset)
            self._put((ERROR_MARK, None))

    def chunks(self):
        q = self._queue
        while True:
            frames, offsets = q.get()
            if isinstance(frames, str):  # EOF_MARK or ERROR_MARK
                return
            yield frames, offsets

    def input_idle(self) -> bool:
        """True when no more input is waiting: the moment to flush output."""
        return self._queue.empty()
