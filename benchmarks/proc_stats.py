"""Measurements of a UDF process shared by the benchmark scripts: memory from /proc (Linux
only) and the time to answer Info from a cold start."""

from __future__ import annotations

import os
import subprocess
import time

from udfcollection.protocol import udf_pb2
from udfcollection.protocol.framing import FrameSplitter, encode_frame


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB: its resident memory now, and its peak."""
    rss = hwm = 0
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return rss, hwm


def info_latency_ms(cmd: list[str], runs: int) -> list[float]:
    """Milliseconds from starting `cmd` to reading its InfoResponse, over `runs` fresh
    processes: what kapacitord waits for at start-up. Exits if the process never answers."""
    req = udf_pb2.Request()
    req.info.SetInParent()
    data = encode_frame(req.SerializeToString())
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, bufsize=0)
        proc.stdin.write(data)
        splitter = FrameSplitter()
        got: list[bytes] = []
        while not got:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                raise SystemExit(f"{' '.join(cmd)}: closed stdout without an InfoResponse")
            got, _ = splitter.feed(chunk)
        out.append((time.perf_counter() - t0) * 1e3)
        proc.stdin.close()
        proc.wait(30)
    return out
