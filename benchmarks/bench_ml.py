"""ML UDF benchmarks (issue 3): vectorised inference against one model call per point.

For each ML UDF (wind_turbine, weld, model), the same points from the bundled data go through
the real UDFHandler in-process, fed as the agent's protocol loop feeds it (undecoded point
frames, so decoding is included), with the same model:

- vectorised: the UDF as shipped; every point already read (up to 2048) is scored at once, as
  when the agent drains its input;
- per point: the same UDF class with `process_many` removed and `process` scoring each point
  with its own model call (a one-row numpy matrix);
- published-style per point (wind_turbine and weld): one call per point made exactly the way
  the published detectors make it: `predict(np.array([speed], dtype=np.float32).reshape(-1,
  1))` for the wind turbine, a pandas Series of the point's fields handed to CatBoost with its
  default thread count for weld.

Everything else (Point views, onError, output encoding) is the handler's work in every column;
only the pipe is left out, so the ratio shows what vectorising buys inside the process. With
`--wire`, the vectorised UDF is also timed over a real pipe (`kapudf run NAME`), first point
written to the answer of a snapshot request sent after the last point.

Prints points/s for each and the ratios (target: >= 20x). Best of `--repeat` runs; the
vectorised and per-point runs alternate so both see the same machine load.

`--info` instead measures, for each ML UDF, the time from starting `kapudf run NAME` (the
console script next to this Python, as kapacitor.conf starts it) to reading its InfoResponse
(target: 500 ms; Kapacitor asks every UDF for Info when the daemon starts).

Usage: python benchmarks/bench_ml.py [--points 20000] [--repeat 3] [--udf weld] [--wire]
       python benchmarks/bench_ml.py --udf wind_turbine --wind-model rf.pkl --slow-points 300
       python benchmarks/bench_ml.py --info [--repeat 10]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from itertools import cycle, islice

from udfcollection.agent.connection import FrameWriter
from udfcollection.agent.udf_handler import UDFHandler
from udfcollection.lineprotocol import LPPoint
from udfcollection.ml.data import WELD_DIR, WIND_T1, weld_points, weld_run_files, wind_points
from udfcollection.offline import make_init, to_request
from udfcollection.protocol import udf_pb2
from udfcollection.protocol.framing import FrameSplitter, encode_frame
from udfcollection.udfs.model import ModelUDF
from udfcollection.udfs.weld import NOT_EVALUATED, Weld
from udfcollection.udfs.wind_turbine import WindTurbine


def per_point(cls):
    """`cls` with one model call per point: the handler's per-point path calls `process`,
    which scores the single point it is given."""
    vectorised = cls.process_many

    def process(self, point, state):
        out = vectorised(self, [point], [state])[0]
        if isinstance(out, Exception):
            raise out
        return out

    return type(f"PerPoint{cls.__name__}", (cls,), {"process_many": None, "process": process})


class _PublishedWindCall:
    """The shipped power curve called the way the published wind-turbine detector calls its
    model: `predict(np.array([speed], dtype=np.float32).reshape(-1, 1))`, one point a call."""

    def __init__(self, loaded):
        self.loaded = loaded

    def predict(self, X):
        import numpy as np

        est = self.loaded.estimator
        return np.array([est.predict(np.array([x], dtype=np.float32).reshape(-1, 1))[0]
                         for x in X[:, 0]])


def published_style(cls):
    """One model call per point made the way the published detector makes it. Weld: a pandas
    Series built from the point's fields handed to predict_proba (features taken by name
    here, so the answer is right; the published code takes them in map order). Wind turbine:
    a one-element float32 array. Same model, same outputs as the vectorised UDF."""
    if cls is WindTurbine:
        slow = per_point(cls)
        setup = slow.setup

        def wind_setup(self):
            setup(self)
            self.model = _PublishedWindCall(self.model)

        return type(f"Published{cls.__name__}", (slow,), {"setup": wind_setup})
    if cls is not Weld:
        return None

    def process(self, point, state):
        import numpy as np
        import pandas as pd

        series = pd.Series({f: point.number(f) for f in self.features[:self.n_model_features]})
        current = point.number("Primary Weld Current")
        if current is None or not current > self.opts.min_current:
            return point.emit(NOT_EVALUATED)
        # CatBoost itself with its default thread count, as the published detector calls it
        # (CatBoostClassifier.predict_proba is this predict call).
        proba = np.asarray(self.model.estimator.predict(series, prediction_type="Probability"),
                           dtype=float).reshape(-1)
        d = float(1.0 - proba[self.good_index])
        return point.emit({"defect_probability": d,
                           "weld_class": self.class_names[int(proba.argmax())],
                           "anomaly_status": 1.0 if d > self.opts.threshold else 0.0})

    return type(f"Published{cls.__name__}", (cls,), {"process_many": None, "process": process})


WIND_MODEL: list[str] = []  # --wind-model PATH


def wind_input(n: int) -> tuple[list[LPPoint], list, tuple[str, ...]]:
    pts = wind_points(WIND_T1)[:n]
    opts = [("model", [("string", WIND_MODEL[0])])] if WIND_MODEL else []
    return pts, opts, ("turbine",)


def weld_input(n: int) -> tuple[list[LPPoint], list, tuple[str, ...]]:
    rows = [p for f in weld_run_files(WELD_DIR) for p in weld_points(f)]
    return list(islice(cycle(rows), n)), [], ("run",)


def model_input(n: int) -> tuple[list[LPPoint], list, tuple[str, ...]]:
    pts, _, _ = weld_input(n)
    return pts, [("model", [("string", "shipped:weld")]), ("proba", [])], ("run",)


CASES = {
    "wind_turbine": (WindTurbine, wind_input),
    "weld": (Weld, weld_input),
    "model": (ModelUDF, model_input),
}


class _Sink:
    def __init__(self) -> None:
        self.bytes = 0

    def __call__(self, data: bytes) -> None:
        self.bytes += len(data)


def run_in_process(cls, reqs: list[udf_pb2.Request], options: list) -> float:
    """Seconds to process every request through a fresh handler (init excluded), fed as the
    agent's protocol loop feeds it: undecoded point frames, through the handler's `point_run`
    when it has one (decoding is included), every point read before the final drain."""
    handler = UDFHandler(cls)
    resp = handler.init(make_init(options))
    if not resp.init.success:
        raise SystemExit(f"{cls.name}: init failed: {resp.init.error}")
    sink = _Sink()
    out = FrameWriter(sink)
    frames = [r.SerializeToString() for r in reqs]
    offsets = [0] * len(frames)
    parse = udf_pb2.Request.FromString
    t0 = time.perf_counter()
    if handler.point_run is not None:
        i = 0
        while i < len(frames):
            i = handler.point_run(frames, offsets, i, out)
    else:
        for f in frames:
            handler.point(parse(f), out)
    handler.drain(out)
    out.flush()
    return time.perf_counter() - t0


def run_wire(name: str, reqs: list[udf_pb2.Request], options: list) -> float:
    """Seconds from the first point written to the snapshot answer read, over a pipe."""
    proc = subprocess.Popen([sys.executable, "-m", "udfcollection", "run", name],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    init = udf_pb2.Request()
    init.init.CopyFrom(make_init(options))
    proc.stdin.write(encode_frame(init.SerializeToString()))
    proc.stdin.flush()
    splitter = FrameSplitter()

    def read_until(kind: str) -> None:
        while True:
            data = proc.stdout.read1(1 << 16)
            if not data:
                raise SystemExit(f"{name}: UDF closed stdout")
            frames, _ = splitter.feed(data)
            for f in frames:
                if udf_pb2.Response.FromString(f).WhichOneof("message") == kind:
                    return

    read_until("init")
    payload = b"".join(encode_frame(r.SerializeToString()) for r in reqs)
    snap = udf_pb2.Request()
    snap.snapshot.SetInParent()
    import threading

    t0 = time.perf_counter()
    writer = threading.Thread(target=lambda: (proc.stdin.write(payload), proc.stdin.write(
        encode_frame(snap.SerializeToString())), proc.stdin.flush()))
    writer.start()
    read_until("snapshot")
    dt = time.perf_counter() - t0
    writer.join()
    proc.stdin.close()
    proc.wait(30)
    return dt


def info_latency(name: str, repeat: int) -> list[float]:
    """Seconds from process start to InfoResponse read, `repeat` fresh processes of the
    `kapudf` console script next to this Python (as kapacitor.conf starts it)."""
    import os
    import shutil

    from proc_stats import info_latency_ms

    exe = os.path.join(os.path.dirname(sys.executable), "kapudf")
    cmd = [exe, "run", name] if os.path.exists(exe) else [
        shutil.which("kapudf") or sys.executable, *([] if shutil.which("kapudf") else
                                                    ["-m", "udfcollection"]), "run", name]
    return [ms / 1e3 for ms in info_latency_ms(cmd, repeat)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--udf", action="append", choices=sorted(CASES))
    ap.add_argument("--wire", action="store_true", help="also time the vectorised UDF over a pipe")
    ap.add_argument("--info", action="store_true", help="measure Info latency from start")
    ap.add_argument("--wind-model", metavar="PATH",
                    help="power-curve model for wind_turbine instead of the shipped one (e.g. a "
                    "random forest the size of the published detector's)")
    ap.add_argument("--slow-points", type=int, default=0,
                    help="points for the per-point runs (default: max(2000, points/5))")
    args = ap.parse_args()
    if args.wind_model:
        WIND_MODEL.append(args.wind_model)
    names = args.udf or list(CASES)
    if args.info:
        import statistics

        for name in names:
            ts = sorted(info_latency(name, max(args.repeat, 5)))
            print(f"{name:<13} Info after start: min {ts[0] * 1e3:.0f} ms, median "
                  f"{statistics.median(ts) * 1e3:.0f} ms, max {ts[-1] * 1e3:.0f} ms "
                  f"({len(ts)} starts)")
        return
    print(f"{args.points:,} points per run, best of {args.repeat}")
    print(f"{'UDF':<13} {'vectorised pts/s':>17} {'per-point pts/s':>16} {'ratio':>7}"
          + (f" {'wire pts/s':>11}" if args.wire else ""))
    for name in names:
        cls, make = CASES[name]
        pts, options, group_by = make(args.points)
        reqs = [to_request(p, group_by) for p in pts]
        slow_cls = per_point(cls)
        # Per point is slow: time a slice of the input and scale (same points, same order).
        n_slow = min(len(reqs), args.slow_points or max(2000, args.points // 5))
        vec = slow = float("inf")
        for _ in range(args.repeat):
            vec = min(vec, run_in_process(cls, reqs, options))
            slow = min(slow, run_in_process(slow_cls, reqs[:n_slow], options))
        vec_rate = len(reqs) / vec
        slow_rate = n_slow / slow
        line = f"{name:<13} {vec_rate:>17,.0f} {slow_rate:>16,.0f} {vec_rate / slow_rate:>6.1f}x"
        pub_cls = published_style(cls)
        if pub_cls is not None:
            pub = min(run_in_process(pub_cls, reqs[:n_slow], options)
                      for _ in range(args.repeat))
            pub_rate = n_slow / pub
            line += (f"   published-style per point: {pub_rate:,.0f} pts/s, "
                     f"ratio {vec_rate / pub_rate:.1f}x")
        if args.wire:
            wire = min(run_wire(name, reqs, options) for _ in range(args.repeat))
            line += f" {len(reqs) / wire:>11,.0f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
