"""`kapudf run NAME`: serve one UDF instance on stdin/stdout, as kapacitor.conf's prog/args."""

from __future__ import annotations

import os
import sys

from udfcollection.agent.connection import Connection, FrameWriter, fd_reader, fd_writer
from udfcollection.agent.runtime import Handler, serve


def claim_stdout() -> int:
    """Take fd 1 for the protocol and point fd 1 (and sys.stdout) at stderr.

    Returns the fd protocol frames must be written to. Anything non-protocol on the stream kills
    the task, and a stray print can come from anywhere (the UDF, a library, C code writing to
    fd 1), so after this nothing but frames can reach Kapacitor.
    """
    sys.stdout.flush()
    proto_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return proto_fd


def run_stdio(handler: Handler, proto_fd: int | None = None) -> int:
    """Serve `handler` on stdin and the protocol fd (`claim_stdout()` is called unless the
    caller already did, e.g. before importing UDF code that might print)."""
    # Keepalive answers from the reader thread wait for the GIL at most this long.
    sys.setswitchinterval(0.001)
    if proto_fd is None:
        proto_fd = claim_stdout()
    writer = FrameWriter(fd_writer(proto_fd))
    conn = Connection(fd_reader(0), writer).start()
    code = serve(conn, handler)
    writer.flush()
    return code
