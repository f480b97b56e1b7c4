"""One protocol connection: a reader thread, a bounded hand-off queue, and a buffered writer.

Why a reader thread: Kapacitor kills a UDF that has not answered anything for `timeout`, and it
sends keepalives on the same stream as data. The reader answers each keepalive the moment it is
read, so a handler that is busy for a long time (a slow model, a big batch) never misses one.

Why bounded read-ahead: when the handler is slower than Kapacitor writes, the reader stops
taking input once MAX_BUFFERED bytes wait, so memory stays bounded and the pipe's
back-pressure reaches Kapacitor. While the reader is held up like that it cannot see
keepalives queued behind data in the pipe, so it sends a keepalive response on its own every
`heartbeat` seconds (any response resets Kapacitor's kill timer).
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

READ_SIZE = 256 * 1024
MAX_BUFFERED = 8 * 1024 * 1024  # input bytes read ahead of the handler, at most (plus one read)
# A keepalive answer waits for the writer lock while buffered output is being written: keep
# each write short (moving_avg at full speed, keepalive p99: 256 KiB 4.5-5.1 ms, 32 KiB
# 3.1-4.4 ms, same throughput).
FLUSH_AT = 32 * 1024

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

    def write_last(self, body: bytes) -> None:
        """Flush what is buffered, write `body` and close: nothing is written after it (an
        ErrorResponse must be the last thing Kapacitor reads, even if the reader thread is
        still answering keepalives)."""
        with self._lock:
            data = bytes(self.buf) + encode_varint(len(body)) + body
            self.buf.clear()
            self._write_locked(data)
            self.closed = True

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
    """Reads frames on a background thread and hands them to the caller in small chunks.

    `chunks()` yields `(frames, offsets)` lists in arrival order; it ends after end of input,
    or after yielding the frames that preceded a framing error, in which case `error` holds the
    ProtocolError. Keepalive requests are answered by the reader thread and never reach the
    caller.

    Back-pressure is counted in bytes: the reader stops reading while more than `max_buffered`
    bytes of frames wait for the caller, and resumes as soon as the caller has worked through
    one chunk of at most CHUNK_FRAMES frames. The fine grain matters: a keepalive waiting in
    the pipe behind data is read (and answered) as soon as there is room again, instead of after
    a whole large read has been processed.
    """

    CHUNK_FRAMES = 64

    def __init__(
        self,
        read: Callable[[int], bytes],
        writer: FrameWriter,
        *,
        max_buffered: int = MAX_BUFFERED,
        read_size: int = READ_SIZE,
        heartbeat: float = 0.5,
        name: str = "udf",
    ):
        self._read = read
        self.writer = writer
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._read_size = read_size
        self._max_buffered = max_buffered
        self._heartbeat = heartbeat
        self._last_keepalive_time: int | None = None
        # Absolute input offsets: written by one thread each, so no lock is needed.
        self._produced = 0  # end of the last frame handed over (reader)
        self._consumed = 0  # end of the last chunk the caller finished (caller)
        self._waiting = False
        self._stopped = False
        self._room = threading.Event()
        self.error: ProtocolError | None = None
        self.bytes_read = 0
        self._thread = threading.Thread(target=self._run, name=f"{name}-reader", daemon=True)

    def start(self) -> Connection:
        self._thread.start()
        return self

    def _answer_keepalive(self, body: bytes) -> bool:
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

    def _hand_over(self, frames: list[bytes], offsets: list[int], end: int) -> None:
        """Queue frames for the caller in chunks of at most CHUNK_FRAMES."""
        step = self.CHUNK_FRAMES
        n = len(frames)
        put = self._queue.put
        if n <= step:
            put((frames, offsets, end))
        else:
            for a in range(0, n, step):
                b = a + step
                put((frames[a:b], offsets[a:b], offsets[b] if b < n else end))
        self._produced = end

    def stop(self) -> None:
        """Stop reading: the caller will not take more input (it hit an error)."""
        self._stopped = True
        self._room.set()

    def _wait_for_room(self) -> None:
        """Block while too much input waits for the caller, sending a keepalive response on
        our own every `heartbeat` seconds meanwhile (any response resets Kapacitor's kill
        timer, and keepalives queued behind data in the pipe cannot be seen from here)."""
        limit = self._max_buffered
        while self._produced - self._consumed > limit and not self._stopped:
            self._waiting = True
            self._room.clear()
            if self._produced - self._consumed <= limit:
                break
            if not self._room.wait(self._heartbeat) and (
                self._last_keepalive_time is not None
                and time.monotonic() - self.writer.last_write >= self._heartbeat
            ):
                resp = udf_pb2.Response()
                resp.keepalive.time = self._last_keepalive_time
                self.writer.write_now(resp.SerializeToString())
        self._waiting = False

    def _run(self) -> None:
        splitter = FrameSplitter()
        read = self._read
        size = self._read_size
        put = self._queue.put
        try:
            while True:
                self._wait_for_room()
                if self._stopped:
                    return
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
                        put((ERROR_MARK, None, 0))
                    else:
                        put((EOF_MARK, None, 0))
                    return
                self.bytes_read += len(data)
                try:
                    frames, offsets = splitter.feed(data)
                except ProtocolError as exc:
                    # Frames complete before the bad one are still processed, in order.
                    if exc.frames:
                        self._hand_over(exc.frames, exc.offsets, exc.offset)
                    self.error = exc
                    put((ERROR_MARK, None, 0))
                    return
                if not frames:
                    continue
                if splitter.small_frames:
                    splitter.small_frames = False
                    kept_f, kept_o = [], []
                    for f, o in zip(frames, offsets, strict=True):
                        if f and f[0] == _KEEPALIVE_TAG and self._answer_keepalive(f):
                            continue
                        kept_f.append(f)
                        kept_o.append(o)
                    frames, offsets = kept_f, kept_o
                    if not frames:
                        continue
                self._hand_over(frames, offsets, splitter.offset)
        except Exception as exc:  # pragma: no cover - defensive: never die silently
            log.error("reader thread failed: %s", exc)
            self.error = ProtocolError(f"internal reader failure: {exc}", splitter.offset)
            put((ERROR_MARK, None, 0))

    def chunks(self):
        get = self._queue.get
        room = self._room
        while True:
            frames, offsets, end = get()
            if isinstance(frames, str):  # EOF_MARK or ERROR_MARK
                return
            yield frames, offsets
            self._consumed = end
            # Wake the reader only once it may read again: waking it after every chunk while it
            # must still wait costs a pointless thread switch (and GIL hand-over) per chunk.
            if self._waiting and self._produced - end <= self._max_buffered:
                room.set()

    def input_idle(self) -> bool:
        """True when no more input is waiting: the moment to flush output."""
        return self._queue.empty()
