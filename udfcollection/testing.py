"""Public test harness for UDF authors: talk to a UDF over the real wire.

`WireClient` starts `kapudf run NAME` (or any command) as a subprocess and speaks the protocol
to it exactly as Kapacitor does: length-prefixed Request frames in, Response frames out.
The conformance checks (`check_udf`) build on it.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from udfcollection.protocol import udf_pb2
from udfcollection.protocol.framing import FrameSplitter, encode_frame


def kapudf_command(*args: str) -> list[str]:
    """Command line running this install's kapudf with `args` (no PATH lookup needed)."""
    return [sys.executable, "-m", "udfcollection", *args]


class WireError(AssertionError):
    pass


class WireClient:
    """A Kapacitor stand-in driving one UDF process over stdin/stdout."""

    def __init__(self, cmd: Sequence[str], env: dict[str, str] | None = None,
                 stderr: Any = subprocess.PIPE):
        full_env = dict(os.environ)
        full_env.setdefault("KAPUDF_LOG_LEVEL", "info")
        if env:
            full_env.update(env)
        self.proc = subprocess.Popen(list(cmd), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=stderr, env=full_env)
        self._splitter = FrameSplitter()
        self._frames: list[bytes] = []
        self.raw_out = bytearray()
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.proc.stdout, selectors.EVENT_READ)
        os.set_blocking(self.proc.stdout.fileno(), False)

    @classmethod
    def for_udf(cls, name: str, *extra: str, env: dict[str, str] | None = None) -> WireClient:
        return cls(kapudf_command("run", name, *extra), env=env)

    # --- sending ----------------------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, req: udf_pb2.Request, flush: bool = True) -> None:
        self.proc.stdin.write(encode_frame(req.SerializeToString()))
        if flush:
            self.proc.stdin.flush()

    def send_many(self, reqs: Sequence[udf_pb2.Request]) -> None:
        self.proc.stdin.write(b"".join(encode_frame(r.SerializeToString()) for r in reqs))
        self.proc.stdin.flush()

    def close_input(self) -> None:
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.close()

    # --- receiving --------------------------------------------------------------------------

    def _pump(self, timeout: float) -> bool:
        events = self._sel.select(timeout)
        if not events:
            return False
        try:
            data = os.read(self.proc.stdout.fileno(), 1 << 16)
        except BlockingIOError:
            return True
        if not data:
            raise EOFError("UDF closed its stdout")
        self.raw_out += data
        frames, _ = self._splitter.feed(data)
        self._frames.extend(frames)
        return True

    def recv(self, timeout: float = 5.0) -> udf_pb2.Response:
        """Next response; raises WireError on timeout, EOFError when the UDF closed stdout."""
        deadline = time.monotonic() + timeout
        while not self._frames:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WireError(f"no response within {timeout}s")
            self._pump(left)
        return udf_pb2.Response.FromString(self._frames.pop(0))

    def recv_all(self, timeout: float = 10.0) -> list[udf_pb2.Response]:
        """Everything until the UDF closes stdout."""
        out = []
        deadline = time.monotonic() + timeout
        while True:
            while self._frames:
                out.append(udf_pb2.Response.FromString(self._frames.pop(0)))
            left = deadline - time.monotonic()
            if left <= 0:
                raise WireError(f"UDF did not close stdout within {timeout}s")
            try:
                self._pump(left)
            except EOFError:
                while self._frames:
                    out.append(udf_pb2.Response.FromString(self._frames.pop(0)))
                if self._splitter.pending:
                    raise WireError(f"stdout ended inside a frame ({self._splitter.pending} "
                                    "bytes)") from None
                return out

    def request(self, req: udf_pb2.Request, timeout: float = 5.0) -> udf_pb2.Response:
        self.send(req)
        return self.recv(timeout)

    def wait(self, timeout: float = 10.0) -> int:
        return self.proc.wait(timeout)

    def stderr_text(self) -> str:
        if self.proc.stderr is None:
            return ""
        try:
            return self.proc.stderr.read().decode(errors="replace")
        except ValueError:
            return ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> WireClient:
        return self

    def __exit__(self, *exc) -> None:
        self.kill()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()


# --- request builders ---------------------------------------------------------------------

def info_request() -> udf_pb2.Request:
    r = udf_pb2.Request()
    r.info.SetInParent()
    return r


def init_request(options: Sequence[tuple[str, Sequence[tuple[str, Any]]]] = (),
                 task: str = "t", node: str = "udf1") -> udf_pb2.Request:
    from udfcollection.offline import make_init

    r = udf_pb2.Request()
    r.init.CopyFrom(make_init(options, task, node))
    return r


def keepalive_request(t: int) -> udf_pb2.Request:
    r = udf_pb2.Request()
    r.keepalive.time = t
    return r


def snapshot_request() -> udf_pb2.Request:
    r = udf_pb2.Request()
    r.snapshot.SetInParent()
    return r


def restore_request(data: bytes) -> udf_pb2.Request:
    r = udf_pb2.Request()
    r.restore.snapshot = data
    return r


def point_request(time_ns: int, fields: dict[str, Any], *, name: str = "m",
                  tags: dict[str, str] | None = None, group_by: Sequence[str] = ()
                  ) -> udf_pb2.Request:
    from udfcollection.lineprotocol import LPPoint
    from udfcollection.offline import to_request

    return to_request(LPPoint(name, dict(tags or {}), dict(fields), time_ns), group_by)
