"""Agent benchmarks for issue 2: drive `kapudf run NAME` over a pipe like Kapacitor does.

Prints, per UDF:
- throughput: points/s from the first point written to the answer of a snapshot request sent
  after the last point (the snapshot is answered in order, after every point is processed);
- keepalive latency percentiles while points stream (a keepalive written every 5 ms between
  point writes; latency = from just before the write to the response being read);
- Info latency from process start (spawn to InfoResponse read), over several starts;
- RSS after 100,000 and after 1,000,000 points over 1,000 groups, and peak RSS (VmHWM).

Usage: python benchmarks/bench_agent.py [--udf edge_detect --udf moving_avg] [--points N]
       python benchmarks/bench_agent.py --udf wind_turbine --groups 100 --skip-memory
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time

from proc_stats import info_latency_ms, rss_kib

from udfcollection.offline import make_init
from udfcollection.protocol import udf_pb2
from udfcollection.protocol.framing import FrameSplitter, encode_frame

OPTIONS = {
    "edge_detect": [("field", [("string", "value")])],
    "moving_avg": [("field", [("string", "value")]), ("size", [("int", 10)])],
    "wind_turbine": [],  # only with --udf wind_turbine: an ML UDF on the column path
}
DEFAULT = ("edge_detect", "moving_avg")


def cmd(name: str) -> list[str]:
    return [sys.executable, "-m", "udfcollection", "run", name]


def frame(req: udf_pb2.Request) -> bytes:
    return encode_frame(req.SerializeToString())


def make_points(n: int, groups: int, start: int = 0, name: str = "") -> list[bytes]:
    """Point frames as Kapacitor sends them for `stream|from().groupBy('host')` (for
    wind_turbine: `groupBy('turbine')`, wind speed and power fields)."""
    out = []
    t0 = 1_700_000_000_000_000_000
    for i in range(start, start + n):
        g = i % groups
        req = udf_pb2.Request()
        p = req.point
        p.time = t0 + i * 1_000_000
        p.database = "telegraf"
        p.retentionPolicy = "autogen"
        if name == "wind_turbine":
            p.name = "turbine"
            p.group = f"turbine=t{g}"
            p.dimensions.append("turbine")
            p.tags["turbine"] = f"t{g}"
            # Speeds across the producing range, power around the curve and below it.
            p.fieldsDouble["wind_speed"] = 3.0 + (i % 97) / 8.0
            p.fieldsDouble["grid_active_power"] = 100.0 + (i % 89) * 30.0
            out.append(frame(req))
            continue
        p.name = "cpu"
        p.group = f"host=h{g}"
        p.dimensions.append("host")
        p.tags["host"] = f"h{g}"
        p.tags["dc"] = "eu-1"
        # A value that changes every 10th point of a group, like a polled status.
        p.fieldsDouble["value"] = float((i // groups) // 10 % 3)
        p.fieldsInt["n"] = i
        out.append(frame(req))
    return out


class Reader(threading.Thread):
    """Reads responses; records keepalive arrival times and the snapshot answer."""

    def __init__(self, fd: int):
        super().__init__(daemon=True)
        self.fd = fd
        self.splitter = FrameSplitter()
        self.keepalive_at: dict[int, float] = {}
        self.points = 0
        self.snapshot_at: float | None = None
        self.info_at: float | None = None
        self.init_ok = threading.Event()
        self.done = threading.Event()

    def run(self) -> None:
        while True:
            data = os.read(self.fd, 1 << 20)
            if not data:
                break
            now = time.perf_counter()
            frames, _ = self.splitter.feed(data)
            for f in frames:
                if f[:2] == b"\x8a\x01":
                    self.points += 1
                    continue
                r = udf_pb2.Response.FromString(f)
                kind = r.WhichOneof("message")
                if kind == "keepalive":
                    self.keepalive_at[r.keepalive.time] = now
                elif kind == "snapshot":
                    self.snapshot_at = now
                    self.done.set()
                elif kind == "init":
                    if not r.init.success:
                        print("init failed:", r.init.error, file=sys.stderr)
                    self.init_ok.set()
                elif kind == "error":
                    print("ERROR from UDF:", r.error.error, file=sys.stderr)
        self.done.set()


def start(name: str) -> tuple[subprocess.Popen, Reader]:
    proc = subprocess.Popen(cmd(name), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, bufsize=0)
    reader = Reader(proc.stdout.fileno())
    reader.start()
    init = udf_pb2.Request()
    init.init.CopyFrom(make_init(OPTIONS[name]))
    proc.stdin.write(frame(init))
    if not reader.init_ok.wait(10):
        raise SystemExit(f"{name}: no init response")
    return proc, reader


def snapshot_frame() -> bytes:
    r = udf_pb2.Request()
    r.snapshot.SetInParent()
    return frame(r)


def throughput(name: str, n: int, groups: int, chunk: int = 500,
               keepalive_every: float = 0.005) -> dict:
    frames = make_points(n, groups, name=name)
    blobs = [b"".join(frames[i:i + chunk]) for i in range(0, n, chunk)]
    del frames
    proc, reader = start(name)
    sent_at: dict[int, float] = {}
    k = 0
    w = proc.stdin
    t0 = time.perf_counter()
    next_ka = t0 + keepalive_every
    for blob in blobs:
        now = time.perf_counter()
        if now >= next_ka:
            k += 1
            ka = udf_pb2.Request()
            ka.keepalive.time = k
            sent_at[k] = time.perf_counter()
            w.write(frame(ka))
            next_ka = now + keepalive_every
        w.write(blob)
    w.write(snapshot_frame())
    reader.done.wait(600)
    t1 = reader.snapshot_at or time.perf_counter()
    w.close()
    proc.wait(30)
    lat = sorted((reader.keepalive_at[i] - sent_at[i]) * 1e3 for i in sent_at
                 if i in reader.keepalive_at)
    missing = len(sent_at) - len(lat)

    def pct(q: float) -> float:
        return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")

    return {"points_per_s": n / (t1 - t0), "seconds": t1 - t0, "out_points": reader.points,
            "ka_n": len(lat), "ka_missing": missing, "ka_p50": pct(0.50), "ka_p99": pct(0.99),
            "ka_max": lat[-1] if lat else float("nan")}


def memory(name: str, total: int = 1_000_000, groups: int = 1000, step: int = 100_000) -> list:
    proc, reader = start(name)
    rows = []
    sent = 0
    while sent < total:
        frames = make_points(step, groups, start=sent, name=name)
        blob = b"".join(frames)
        del frames
        reader.done.clear()
        reader.snapshot_at = None
        proc.stdin.write(blob + snapshot_frame())
        reader.done.wait(300)
        sent += step
        rss, hwm = rss_kib(proc.pid)
        rows.append((sent, rss, hwm))
    proc.stdin.close()
    proc.wait(30)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--udf", action="append", choices=sorted(OPTIONS))
    ap.add_argument("--points", type=int, default=300_000)
    ap.add_argument("--groups", type=int, default=1000)
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args()
    names = args.udf or DEFAULT
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, load "
          f"{os.getloadavg()[0]:.2f}")
    for name in names:
        r = throughput(name, args.points, args.groups)
        print(f"{name}: {r['points_per_s']:,.0f} points/s ({args.points:,} points, "
              f"{args.groups} groups, {r['out_points']:,} out, {r['seconds']:.2f}s)")
        print(f"{name}: keepalive latency while streaming: p50 {r['ka_p50']:.2f} ms, "
              f"p99 {r['ka_p99']:.2f} ms, max {r['ka_max']:.2f} ms "
              f"({r['ka_n']} keepalives, {r['ka_missing']} unanswered)")
        info = info_latency_ms(cmd(name), 7)
        print(f"{name}: Info answered {statistics.median(info):.0f} ms after process start "
              f"(median of {len(info)}, max {max(info):.0f} ms)")
        if not args.skip_memory:
            rows = memory(name)
            for sent, rss, hwm in rows:
                if sent in (100_000, 500_000, 1_000_000):
                    print(f"{name}: after {sent:>9,} points RSS {rss / 1024:6.1f} MiB "
                          f"(peak {hwm / 1024:.1f} MiB)")
            growth = (rows[-1][1] - rows[0][1]) / 1024
            print(f"{name}: RSS change 100k -> 1M points: {growth:+.1f} MiB")


if __name__ == "__main__":
    main()
