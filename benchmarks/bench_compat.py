"""Stock-style agent scripts under `kapudf run script.py` (issue 5): speed and memory.

Drives `kapudf run tests/compat_scripts/moving_avg.py` (a moving average written the way
scripts for Kapacitor's Python agent are written, map-style field access) over a pipe as
Kapacitor does: an InitRequest, then point frames written in large writes while a reader counts
the output points. The moving average answers every point with one point, so the Nth output
point read means N points were processed.

Prints, per run: points/s over the first 100,000 points and over all of them (from the first
write to the last output point read), the script process's RSS after 100,000, 500,000 and
1,000,000 points with the growth per point between 100k and 1M, and its CPU time per point.
Then how long Info takes from process start, the best and median over `--repeat` runs, and the
load average before and after (the machine may be shared: compare runs taken under similar
load).

`--script tests/compat_scripts/scale_entries.py --options factor=2.0` measures the old
repeated-entry field style instead (it also answers one point per point).

Usage: python benchmarks/bench_compat.py [--points 1000000] [--groups 100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from proc_stats import info_latency_ms, rss_kib

from udfcollection.offline import make_init
from udfcollection.protocol import udf_pb2
from udfcollection.protocol.framing import FrameSplitter, encode_frame

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SCRIPT = REPO / "tests" / "compat_scripts" / "moving_avg.py"
MARKS = (100_000, 500_000, 1_000_000)


def make_points(n: int, groups: int) -> list[bytes]:
    """Point frames as Kapacitor sends them for `stream|from().groupBy('host')`."""
    t0 = 1_700_000_000_000_000_000
    req = udf_pb2.Request()
    p = req.point
    p.name = "cpu"
    p.database = "telegraf"
    p.retentionPolicy = "autogen"
    p.dimensions.append("host")
    p.tags["dc"] = "eu-1"
    out = []
    for i in range(n):
        g = i % groups
        p.time = t0 + i * 1_000_000
        p.group = f"host=h{g}"
        p.tags["host"] = f"h{g}"
        p.fieldsDouble["value"] = float(i % 97)
        out.append(encode_frame(req.SerializeToString()))
    return out


class Reader(threading.Thread):
    """Counts output points; notes the time and the UDF's RSS as each mark is passed."""

    def __init__(self, proc: subprocess.Popen, marks: list[int]):
        super().__init__(daemon=True)
        self.proc = proc
        self.marks = sorted(marks)
        self.points = 0
        self.at: dict[int, tuple[float, int]] = {}
        self.init_ok = threading.Event()
        self.done = threading.Event()
        self.errors: list[str] = []

    def run(self) -> None:
        fd = self.proc.stdout.fileno()
        splitter = FrameSplitter()
        marks = list(self.marks)
        while True:
            data = os.read(fd, 1 << 20)
            if not data:
                break
            frames, _ = splitter.feed(data)
            for f in frames:
                if f[:2] == b"\x8a\x01":
                    self.points += 1
                    if marks and self.points >= marks[0]:
                        self.at[marks.pop(0)] = (time.perf_counter(), rss_kib(self.proc.pid)[0])
                        if not marks:
                            self.done.set()
                    continue
                r = udf_pb2.Response.FromString(f)
                kind = r.WhichOneof("message")
                if kind == "init":
                    if not r.init.success:
                        self.errors.append("init failed: " + r.init.error)
                    self.init_ok.set()
                elif kind == "error":
                    self.errors.append(r.error.error)
                    self.done.set()
        self.done.set()


def parse_options(pairs: list[str]) -> list:
    out = []
    for pair in pairs:
        name, _, value = pair.partition("=")
        if value.lstrip("-").isdigit():
            out.append((name, [("int", int(value))]))
        else:
            try:
                out.append((name, [("double", float(value))]))
            except ValueError:
                out.append((name, [("string", value)]))
    return out


def one_run(script: str, options: list, blobs: list[bytes], n: int) -> dict:
    proc = subprocess.Popen([sys.executable, "-m", "udfcollection", "run", script],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, bufsize=0)
    marks = [m for m in MARKS if m < n] + [n]
    reader = Reader(proc, marks)
    reader.start()
    init = udf_pb2.Request()
    init.init.CopyFrom(make_init(options))
    proc.stdin.write(encode_frame(init.SerializeToString()))
    if not reader.init_ok.wait(30) or reader.errors:
        proc.kill()
        raise SystemExit(f"no successful init: {reader.errors}")
    t0 = time.perf_counter()
    for blob in blobs:
        proc.stdin.write(blob)
    reader.done.wait(900)
    proc.stdin.close()
    # wait4 also gives the UDF process's CPU time: a figure that load on a shared machine
    # disturbs much less than wall-clock throughput.
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if reader.errors:
        raise SystemExit(f"the UDF reported: {reader.errors}")
    if reader.points < n:
        raise SystemExit(f"only {reader.points} of {n} output points arrived")
    first = min(reader.at)
    return {
        "rate_first": first / (reader.at[first][0] - t0),
        "rate_all": n / (reader.at[n][0] - t0),
        "rss": {m: reader.at[m][1] for m in reader.at},
        "cpu_us": (usage.ru_utime + usage.ru_stime) / n * 1e6,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--script", default=str(DEFAULT_SCRIPT))
    ap.add_argument("--options", nargs="*", default=["field=value", "size=10"],
                    help="NAME=VALUE init options (ints, doubles, else strings)")
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--groups", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=500, help="point frames per write")
    args = ap.parse_args()

    n = args.points
    frames = make_points(n, args.groups)
    blobs = [b"".join(frames[i:i + args.chunk]) for i in range(0, n, args.chunk)]
    del frames
    options = parse_options(args.options)
    print(f"{Path(args.script).name}: {n:,} points, {args.groups} groups; python "
          f"{sys.version.split()[0]}, {os.cpu_count()} cpus, load before "
          f"{os.getloadavg()[0]:.2f}")
    runs = []
    for i in range(args.repeat):
        r = one_run(args.script, options, blobs, n)
        runs.append(r)
        rss = "  ".join(f"{m // 1000}k: {kib / 1024:.1f} MiB" for m, kib in sorted(
            r["rss"].items()))
        print(f"run {i + 1}: {r['rate_first']:,.0f} points/s over the first "
              f"{min(r['rss']):,}, {r['rate_all']:,.0f} points/s over all {n:,}; RSS {rss}")
        print(f"       UDF process CPU time {r['cpu_us']:.2f} us per point (start-up "
              "included)")
        marks = sorted(r["rss"])
        if len(marks) > 1:
            lo, hi = marks[0], marks[-1]
            per_point = (r["rss"][hi] - r["rss"][lo]) * 1024 / (hi - lo)
            print(f"       RSS growth {lo:,} -> {hi:,} points: "
                  f"{(r['rss'][hi] - r['rss'][lo]) / 1024:+.1f} MiB ({per_point:+.2f} bytes "
                  "per point)")
    info = info_latency_ms([sys.executable, "-m", "udfcollection", "run", args.script], 5)
    print(f"Info answered {statistics.median(info):.0f} ms after process start (median of "
          f"{len(info)}, max {max(info):.0f} ms)")
    rates = [r["rate_all"] for r in runs]
    print(f"points/s over all {n:,}: best {max(rates):,.0f}, median "
          f"{statistics.median(rates):,.0f}, worst {min(rates):,.0f} "
          f"({len(runs)} runs; load after {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
