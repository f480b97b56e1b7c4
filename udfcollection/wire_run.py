"""Run a UDF in a real `kapudf run NAME` subprocess, over the wire, as Kapacitor does.

`kapudf test --process` uses this to show exactly what Kapacitor would see: the request messages
are the ones the in-process runner gets (`offline.requests_for`), the answers are decoded by the
same `offline.Collector`, so the two paths can be compared point for point.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterable, Sequence

from udfcollection.offline import Collector, InitFailed, OptionList, Output, make_init
from udfcollection.protocol import udf_pb2
from udfcollection.testing import WireClient, WireError, info_request, kapudf_command

CHUNK = 512  # requests per write


class ProcessFailed(RuntimeError):
    """The UDF process broke the protocol (no answer, exited early, garbage on stdout)."""


def run_process(name: str, options: OptionList, requests: Iterable[udf_pb2.Request], *,
                command: Sequence[str] | None = None, timeout: float = 600.0,
                env: dict[str, str] | None = None) -> Output:
    """Start `kapudf run NAME` (or `command`), do the Info and Init handshake, stream
    `requests` to it while reading its answers, close its input and collect everything it sends
    until it exits. The UDF's stderr (its log) goes to this process's stderr.

    Raises InitFailed when Init is refused, ProcessFailed when the process misbehaves. An
    ErrorResponse (which would stop the Kapacitor task) lands in `Output.errors`."""
    cmd = list(command) if command is not None else kapudf_command("run", name)
    client = WireClient(cmd, env=env, stderr=None)
    try:
        try:
            info = client.request(info_request(), timeout=30.0)
            if info.WhichOneof("message") != "info":
                raise ProcessFailed(f"{name}: answered Info with {info.WhichOneof('message')}")
            req = udf_pb2.Request()
            req.init.CopyFrom(make_init(options))
            init = client.request(req, timeout=120.0)
        except (WireError, EOFError) as exc:
            raise ProcessFailed(f"{' '.join(cmd)}: no handshake ({exc}); exit code "
                                f"{client.proc.poll()}") from None
        if init.WhichOneof("message") != "init":
            raise ProcessFailed(f"{name}: answered Init with {init.WhichOneof('message')}")
        if not init.init.success:
            raise InitFailed(init.init.error)

        # The client reads (and keeps) answers while it writes, so a UDF blocked on a full
        # stdout pipe never stops draining its stdin: no deadlock on large inputs.
        chunk: list[udf_pb2.Request] = []
        try:
            for r in requests:
                chunk.append(r)
                if len(chunk) >= CHUNK:
                    client.send_many(chunk, timeout=timeout)
                    chunk = []
            if chunk:
                client.send_many(chunk, timeout=timeout)
        except OSError:
            pass  # the UDF stopped reading (an ErrorResponse, read below, says why)
        except WireError as exc:
            raise ProcessFailed(f"{name}: {exc}") from None
        client.close_input()
        collector = Collector()
        try:
            for resp in client.recv_all(timeout=timeout):
                collector.add(resp)
        except WireError as exc:
            raise ProcessFailed(f"{name}: {exc}") from None
        try:
            code = client.wait(timeout=30.0)
        except subprocess.TimeoutExpired:
            raise ProcessFailed(f"{name}: did not exit after its input closed") from None
        if code != 0 and not collector.output.errors:
            raise ProcessFailed(f"{name}: exited with code {code}")
        return collector.output
    finally:
        with contextlib.suppress(Exception):
            client.__exit__(None, None, None)
