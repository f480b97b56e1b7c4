"""`kapudf run NAME`: serve one UDF instance on stdin/stdout, as kapacitor.conf's prog/args."""

from __future__ import annotations

import os
import sys

from udfcollection.agent.connection import Connection, FrameWriter, fd_reader, fd_writer
from udfcollection.agent.runtime import Handler, serve

SWITCH_INTERVAL = 0.0005
INPUT_PIPE_SIZE = 32 * 1024


def shrink_input_pipe(fd: int, size: int = INPUT_PIPE_SIZE) -> None:
    """Make the kernel buffer of the input pipe small (Linux; elsewhere nothing happens).

    While Kapacitor streams faster than the UDF keeps up, a keepalive waits in the pipe behind
    everything written before it, and the reader only reads more once the handler has caught
    up (that is what keeps memory bounded). With the default 64 KiB pipe that is 2-5 ms of
    work; with 32 KiB, half that. Measured with benchmarks/bench_agent.py at full speed
    (together with a 0.5 ms switch interval): keepalive p99 8-9 ms -> 4.3-4.5 ms, throughput
    within run-to-run noise. 16 KiB gave lower latency still but cost edge_detect ~20%.
    """
    import fcntl
    import stat

    setsize = getattr(fcntl, "F_SETPIPE_SZ", None)
    try:
        if setsize is None or not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return
        fcntl.fcntl(fd, setsize, size)
    except OSError:
        pass  # e.g. more than `size` bytes already queued: keep the pipe as it is


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
    sys.setswitchinterval(SWITCH_INTERVAL)
    shrink_input_pipe(0)
    if proto_fd is None:
        proto_fd = claim_stdout()
    writer = FrameWriter(fd_writer(proto_fd))
    conn = Connection(fd_reader(0), writer).start()
    code = serve(conn, handler)
    writer.flush()
    return code
