"""How `kapudf test` feeds batch UDFs: windows of point time per group (`--batch-every`), runs of N
points per group (`--batch-size`), or one batch per group; checked on the plan and through the
real UDFHandler with a probe UDF that reports every batch it receives."""

from __future__ import annotations

from typing import ClassVar

import pytest

from udfcollection.lineprotocol import LPPoint
from udfcollection.offline import plan_batches, requests_for, run
from udfcollection.points import Point
from udfcollection.spec import BATCH, STREAM, UDF, Option
from udfcollection.udfs.edge_detect import EdgeDetect

S = 1_000_000_000
M = 60 * S


class BatchProbe(UDF):
    """Answers every batch with one point describing it."""

    name = "batch_probe"
    summary = "Report each batch received (test only)."
    wants = BATCH
    provides = STREAM
    options: ClassVar = (Option("note", "string", "Unused.", default=""),)

    def process_batch(self, batch, state):
        times = [p.time for p in batch.points]
        return [Point.new(batch.tmax, {
            "count": len(batch.points), "tmax": batch.tmax,
            "first": min(times) if times else -1, "last": max(times) if times else -1,
            "group": batch.group, "names": ",".join(sorted({p.name for p in batch.points})),
        }, tags=batch.tags, name=batch.name or "unnamed")]


def pts(spec):
    """[(host, seconds)] -> points of measurement m, field i = index."""
    return [LPPoint("m", {"host": h}, {"i": i}, int(t * S)) for i, (h, t) in enumerate(spec)]


def test_every_windows_are_aligned_to_the_epoch_per_group():
    # 5-minute windows: [0, 300), [300, 600), ... in seconds.
    points = pts([("a", 290), ("b", 299), ("a", 300), ("a", 599.9), ("b", 900), ("a", 10)])
    batches = plan_batches(points, ["host"], every=5 * M)
    got = [(b.group, [p.fields["i"] for p in b.points], b.tmax // S) for b in batches]
    assert got == [
        ("host=a", [5, 0], 300),   # sorted by time inside the window
        ("host=b", [1], 300),
        ("host=a", [2, 3], 600),
        ("host=b", [4], 1200),     # empty windows are not batches
    ]
    assert batches[0].tags == {"host": "a"} and batches[0].name == "m"


def test_size_runs_per_group_in_arrival_order_last_run_shorter():
    points = pts([("a", 1), ("b", 2), ("a", 3), ("a", 4), ("b", 5), ("a", 6), ("a", 7)])
    batches = plan_batches(points, ["host"], size=2)
    got = [(b.group, [p.fields["i"] for p in b.points], b.tmax // S) for b in batches]
    assert got == [
        ("host=a", [0, 2], 3),    # full when the third point arrives
        ("host=b", [1, 4], 5),
        ("host=a", [3, 5], 6),
        ("host=a", [6], 7),       # leftovers at the end
    ]


def test_default_one_batch_per_group_and_ungrouped_is_one_group():
    points = pts([("a", 1), ("b", 2), ("a", 3)])
    assert [len(b.points) for b in plan_batches(points, ["host"])] == [2, 1]
    whole = plan_batches(points)
    assert len(whole) == 1 and whole[0].group == "" and whole[0].tags == {}
    assert whole[0].tmax == 3 * S


def test_bad_window_and_size_are_refused():
    with pytest.raises(ValueError):
        plan_batches(pts([("a", 1)]), every=0)
    with pytest.raises(ValueError):
        plan_batches(pts([("a", 1)]), size=0)


def test_stream_udf_refuses_batching():
    with pytest.raises(ValueError, match="takes a stream"):
        requests_for(EdgeDetect, pts([("a", 1)]), batch_size=2)


def test_batch_messages_look_like_kapacitors():
    reqs = list(requests_for(BatchProbe, pts([("a", 1), ("a", 2)]), ["host"]))
    kinds = [r.WhichOneof("message") for r in reqs]
    assert kinds == ["begin", "point", "point", "end"]
    begin, end = reqs[0].begin, reqs[-1].end
    assert (begin.name, begin.group, dict(begin.tags), begin.size) == ("m", "host=a",
                                                                      {"host": "a"}, 2)
    assert (end.group, end.tmax) == ("host=a", 2 * S)
    # Batch points carry no name, database or retention policy, as Kapacitor sends them.
    p = reqs[1].point
    assert (p.name, p.database, p.group, dict(p.tags)) == ("", "", "host=a", {"host": "a"})


def test_probe_receives_the_planned_windows_through_the_handler():
    points = pts([("a", 0), ("a", 59), ("b", 30), ("a", 60), ("a", 61), ("b", 125)])
    out = run(BatchProbe, points, [], ["host"], batch_every=M)
    got = [(p.tags["host"], p.fields["count"], p.fields["first"] // S, p.fields["last"] // S,
            p.fields["tmax"] // S, p.fields["names"]) for p in out.points]
    assert got == [("a", 2, 0, 59, 60, ""), ("b", 1, 30, 30, 60, ""),
                   ("a", 2, 60, 61, 120, ""), ("b", 1, 125, 125, 180, "")]
    # The output point takes the batch's name (from BeginBatch) and time (tmax).
    assert {p.name for p in out.points} == {"m"}
    assert [p.time // S for p in out.points] == [60, 60, 120, 180]


def test_probe_batch_size_through_the_handler():
    points = pts([("a", t) for t in range(7)])
    out = run(BatchProbe, points, [], batch_size=3)
    assert [(p.fields["count"], p.fields["first"] // S) for p in out.points] == [(3, 0), (3, 3),
                                                                                (1, 6)]
