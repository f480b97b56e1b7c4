"""Soak: millions of points through `kapudf run edge_detect` over a pipe, as Kapacitor sends them.

Prints, every --report-every points: points/s over that interval and overall, the agent's RSS
and its peak RSS (VmHWM), and the output points read back. At the end: total time, average
throughput, and RSS growth from the moment every group has state (the cap is reached) to the end.
A long-running task must show no growth after that point.

The stream: --groups groups (grouped by tag `host`), visited round-robin, one point per visit;
a group's value flips between "up" and "dn" every 5 visits, so about one point in five is a state
change and is emitted (the rest are filtered, as in production). With --max-groups below
--groups, the least recently seen groups are evicted continuously (worst case for the cap).

Usage: python benchmarks/soak_edge_detect.py [--points 10000000] [--groups 100000]
       [--max-groups N] [--report-every 1000000]
Takes about a minute per 10 million points per 150k points/s; run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time

from proc_stats import rss_kib

from udfcollection.protocol import udf_pb2
from udfcollection.protocol.framing import FrameSplitter, encode_frame
from udfcollection.testing import init_request, kapudf_command


class Template:
    """Point frames built by splicing fixed-width values into one serialized template:
    serializing ten million messages here would cost more CPU than the agent under test."""

    def __init__(self, width: int):
        req = udf_pb2.Request()
        pb = req.point
        pb.name = "adsl_connection"
        pb.database = "telegraf"
        pb.retentionPolicy = "autogen"
        pb.time = 1_700_000_000_000_000_000
        pb.dimensions.append("host")
        pb.group = "host=" + "H" * width
        pb.tags["host"] = "H" * width
        pb.fieldsString["value"] = "VV"
        pb.fieldsDouble["snr"] = 31.5
        body = encode_frame(req.SerializeToString())
        self.width = width
        parts = body.replace(b"H" * width, b"\0").replace(b"VV", b"\1")
        # Order of the placeholders in the serialized message: group, tag, value (by field
        # number: group 5, tags 7, fieldsString 10).
        a, rest = parts.split(b"\0", 1)
        b, rest = rest.split(b"\0", 1)
        c, d = rest.split(b"\1", 1)
        self.parts = (a, b, c, d)

    def chunk(self, start: int, stop: int, groups: int) -> bytes:
        a, b, c, d = self.parts
        fmt = b"%0" + str(self.width).encode() + b"d"
        out = []
        for i in range(start, stop):
            g = fmt % (i % groups)
            v = b"up" if (i // groups // 5) % 2 == 0 else b"dn"
            out.append(a + g + b + g + c + v + d)
        return b"".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=int, default=10_000_000)
    ap.add_argument("--groups", type=int, default=100_000)
    ap.add_argument("--max-groups", type=int, default=None,
                    help="maxGroups option (default: the UDF's default, 100000)")
    ap.add_argument("--report-every", type=int, default=1_000_000)
    ap.add_argument("--chunk", type=int, default=50_000)
    args = ap.parse_args()

    options = [("field", [("string", "value")])]
    if args.max_groups is not None:
        options.append(("maxGroups", [("int", args.max_groups)]))
    cap = args.max_groups or 100_000
    proc = subprocess.Popen(kapudf_command("run", "edge_detect"), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    out_points = [0]
    stderr_lines: list[bytes] = []

    def read_output() -> None:
        sp = FrameSplitter()
        fd = proc.stdout.fileno()
        while data := os.read(fd, 1 << 20):
            frames, _ = sp.feed(data)
            for f in frames:
                if f[:2] == b"\x8a\x01":
                    out_points[0] += 1
        if sp.pending:
            print(f"ERROR: output ended inside a frame ({sp.pending} bytes)", file=sys.stderr)

    def read_stderr() -> None:
        for line in proc.stderr:
            stderr_lines.append(line)

    threading.Thread(target=read_output, daemon=True).start()
    threading.Thread(target=read_stderr, daemon=True).start()
    proc.stdin.write(encode_frame(init_request(options).SerializeToString()))

    width = len(str(args.groups - 1))
    tmpl = Template(width)
    print(f"soak: {args.points:,} points, {args.groups:,} groups, maxGroups {cap:,}, "
          f"kapudf run edge_detect over a pipe (pid {proc.pid})")
    print(f"{'points':>12} {'interval pts/s':>15} {'overall pts/s':>14} {'RSS MiB':>8} "
          f"{'peak MiB':>9} {'out points':>11}")
    t0 = last_t = time.perf_counter()
    last_n = 0
    samples: list[tuple[int, int]] = []
    next_report = args.report_every
    sent = 0
    while sent < args.points:
        stop = min(sent + args.chunk, args.points)
        proc.stdin.write(tmpl.chunk(sent, stop, args.groups))
        sent = stop
        if sent >= next_report or sent == args.points:
            now = time.perf_counter()
            rss, hwm = rss_kib(proc.pid)
            samples.append((sent, rss))
            print(f"{sent:>12,} {(sent - last_n) / (now - last_t):>15,.0f} "
                  f"{sent / (now - t0):>14,.0f} {rss / 1024:>8.1f} {hwm / 1024:>9.1f} "
                  f"{out_points[0]:>11,}", flush=True)
            last_t, last_n = now, sent
            next_report += args.report_every
    rss, hwm = rss_kib(proc.pid)  # before exit: /proc is gone afterwards
    proc.stdin.close()
    code = proc.wait()
    total = time.perf_counter() - t0
    time.sleep(0.2)
    print(f"done: {args.points:,} points in {total:.1f} s = {args.points / total:,.0f} points/s "
          f"(until the agent exited, everything processed); exit code {code}; "
          f"{out_points[0]:,} points emitted")
    print(f"peak RSS (VmHWM) {hwm / 1024:.1f} MiB; last RSS {rss / 1024:.1f} MiB")
    # Every group has state once each has been seen: after `groups` points (and, when the cap
    # is smaller, the cap is full by then too). Compare the first sample after that with the end.
    after_cap = [s for s in samples if s[0] >= 2 * min(args.groups, cap)]
    if len(after_cap) >= 2:
        first, end = after_cap[0], after_cap[-1]
        lo = min(r for _n, r in after_cap)
        hi = max(r for _n, r in after_cap)
        print(f"RSS once the group state is complete ({first[0]:,} to {end[0]:,} points): "
              f"first {first[1] / 1024:.1f}, last {end[1] / 1024:.1f}, range "
              f"{lo / 1024:.1f} to {hi / 1024:.1f} MiB (input read ahead of the handler, up to "
              f"8 MiB, comes and goes with it)")
    warnings = [ln.decode(errors="replace").rstrip() for ln in stderr_lines
                if not ln.startswith(b"INFO")]
    if warnings:
        print(f"agent stderr ({len(warnings)} non-INFO lines), first: {warnings[0]}")
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
