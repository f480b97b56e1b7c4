"""moving_avg's algorithm, in-process through the real UDFHandler (udfcollection.offline).

Reference averages come from a naive recomputation over the window (math.fsum of the values
a window definition selects), independent of the UDF's running sum."""

from __future__ import annotations

import copy
import json
import math
import random

import pytest

from udfcollection.lineprotocol import LPPoint
from udfcollection.offline import InitFailed, OfflineRunner, run, stream_requests
from udfcollection.points import Point
from udfcollection.protocol.framing import encode_frame
from udfcollection.state import GroupTable
from udfcollection.udfs.moving_avg import MovingAverage

S = 1_000_000_000
T0 = 1_600_000_000 * S


def wire(*pairs):
    decl = {o.name: o for o in MovingAverage.all_options()}
    return [(n, [] if decl[n].type == "flag" else [(decl[n].type, v)]) for n, v in pairs]


def pts(values, field="v", tags=None, times=None):
    times = times or [T0 + i * S for i in range(len(values))]
    return [LPPoint("cpu", dict(tags or {}), {field: v, "junk": "x"}, t)
            for v, t in zip(values, times, strict=True)]


def avgs(out, key="avg"):
    return [p.fields[key] for p in out.points]


def naive_size(values, n):
    return [math.fsum(values[max(0, i + 1 - n):i + 1]) / len(values[max(0, i + 1 - n):i + 1])
            for i in range(len(values))]


def naive_period(values, times, period):
    """In-order input: the window of point i is every point j <= i with time > t_i - period."""
    out = []
    for i, t in enumerate(times):
        w = [values[j] for j in range(i + 1) if times[j] > t - period]
        out.append(math.fsum(w) / len(w))
    return out


@pytest.mark.parametrize("size", [1, 2, 5, 50])
def test_size_window_matches_naive_average(size):
    rng = random.Random(size)
    values = [rng.choice([rng.randint(-1000, 1000), rng.uniform(-1e3, 1e3)]) for _ in range(300)]
    out = run(MovingAverage, pts(values), wire(("field", "v"), ("size", size)))
    assert avgs(out) == pytest.approx(naive_size(values, size), rel=1e-12, abs=1e-9)


@pytest.mark.parametrize("period_s", [1, 7, 60])
def test_period_window_matches_naive_average(period_s):
    rng = random.Random(period_s)
    times, t = [], T0
    for _ in range(300):
        t += rng.choice([0, 1, 2, 3, 10]) * S // 2  # equal times included
        times.append(t)
    values = [rng.uniform(-50, 50) for _ in times]
    out = run(MovingAverage, pts(values, times=times),
              wire(("field", "v"), ("period", period_s * S)))
    assert avgs(out) == pytest.approx(naive_period(values, times, period_s * S), rel=1e-12)


def test_output_is_one_point_per_input_with_tags_and_only_the_average():
    out = run(MovingAverage, pts([1, 3], tags={"host": "a", "dc": "x"}),
              wire(("field", "v"), ("size", 2), ("as", "mean")))
    assert [(p.name, p.tags, p.fields, p.time) for p in out.points] == [
        ("cpu", {"host": "a", "dc": "x"}, {"mean": 1.0}, T0),
        ("cpu", {"host": "a", "dc": "x"}, {"mean": 2.0}, T0 + S),
    ]
    assert all(type(p.fields["mean"]) is float for p in out.points)


def test_groups_have_separate_windows():
    a = pts([10, 20, 30], tags={"host": "a"})
    b = pts([1, 2, 3], tags={"host": "b"})
    mixed = [p for pair in zip(a, b, strict=True) for p in pair]
    out = run(MovingAverage, mixed, wire(("field", "v"), ("size", 2)), group_by=["host"])
    assert [(p.tags["host"], p.fields["avg"]) for p in out.points] == [
        ("a", 10.0), ("b", 1.0), ("a", 15.0), ("b", 1.5), ("a", 25.0), ("b", 2.5)]


def test_bad_values_are_dropped_and_leave_the_window_alone():
    values = [1.0, "x", float("nan"), True, float("inf"), float("-inf"), 3]
    out = run(MovingAverage, pts(values), wire(("field", "v"), ("size", 2)))
    assert avgs(out) == [1.0, 2.0]
    assert [p.time for p in out.points] == [T0, T0 + 6 * S]


def test_missing_field_passes_unchanged_with_on_error_pass():
    points = pts([2.0, 4.0])
    points.insert(1, LPPoint("cpu", {}, {"w": 1}, T0 + S // 2))
    out = run(MovingAverage, points, wire(("field", "v"), ("size", 5), ("onError", "pass")))
    assert [p.fields for p in out.points] == [{"avg": 2.0}, {"w": 1}, {"avg": 3.0}]


def test_huge_value_leaving_the_window_does_not_wipe_out_later_averages():
    # A plain running sum gives (1e300 + 5) - 1e300 = 0 here.
    out = run(MovingAverage, pts([1e300, 5.0, 5.0, 7.0]), wire(("field", "v"), ("size", 1)))
    assert avgs(out) == [1e300, 5.0, 5.0, 7.0]
    out = run(MovingAverage, pts([1e20, 1.0, 2.0, 3.0]), wire(("field", "v"), ("size", 2)))
    assert avgs(out) == [1e20, (1e20 + 1.0) / 2, 1.5, 2.5]


def test_long_run_does_not_drift():
    rng = random.Random(3)
    values = [rng.uniform(0, 1) * 10 ** rng.randint(-3, 8) for _ in range(20_000)]
    out = run(MovingAverage, pts(values), wire(("field", "v"), ("size", 100)))
    got = avgs(out)
    for i in range(99, len(values), 997):
        want = math.fsum(values[i - 99:i + 1]) / 100
        assert got[i] == pytest.approx(want, rel=1e-13)


def test_period_late_point_inside_window_joins_it_older_one_is_dropped():
    times = [T0, T0 + 10 * S, T0 + 5 * S, T0 - 20 * S, T0 + 12 * S]
    out = run(MovingAverage, pts([1.0, 3.0, 5.0, 100.0, 7.0], times=times),
              wire(("field", "v"), ("period", 10 * S)))
    # window at 10: (0,10] -> {10}; late 5 joins: {5,10}; -20 is older than 0: dropped;
    # at 12: (2,12] -> {5,10,12}
    assert avgs(out) == [1.0, 3.0, 4.0, 5.0]
    assert [p.time for p in out.points] == [T0, T0 + 10 * S, T0 + 5 * S, T0 + 12 * S]


def test_period_boundary_point_exactly_period_old_leaves_the_window():
    out = run(MovingAverage, pts([2.0, 4.0], times=[T0, T0 + 5 * S]),
              wire(("field", "v"), ("period", 5 * S)))
    assert avgs(out) == [2.0, 4.0]


def test_max_groups_evicts_the_least_recently_seen_window():
    stream = [LPPoint("m", {"h": h}, {"v": v}, T0 + i * S)
              for i, (h, v) in enumerate([("a", 10), ("b", 1), ("c", 1), ("a", 20)])]
    out = run(MovingAverage, stream, wire(("field", "v"), ("size", 5), ("maxGroups", 2)),
              group_by=["h"])
    assert avgs(out)[-1] == 20.0  # a's window was forgotten when c arrived


@pytest.mark.parametrize("mode", ["size", "period"])
@pytest.mark.parametrize("split", [0, 1, 40, 150])
def test_snapshot_restore_mid_stream_equals_uninterrupted_run(mode, split):
    rng = random.Random(split)
    stream = []
    for i in range(200):
        stream.append(LPPoint("m", {"h": rng.choice("xyz")},
                              {"v": rng.uniform(-1e6, 1e6)}, T0 + i * S // 3))
    options = wire(("field", "v"), ("size", 7) if mode == "size" else ("period", 4 * S))
    whole = run(MovingAverage, stream, options, group_by=["h"]).points

    first = OfflineRunner(MovingAverage, options)
    first.feed_stream(stream[:split], ["h"])
    snap = first.snapshot()
    second = OfflineRunner(MovingAverage, options)
    assert second.restore(snap)
    second.feed_stream(stream[split:], ["h"])
    # Bit for bit: the running sum is part of the snapshot.
    assert first.collect().points + second.finish().points == whole


def test_restored_window_is_cut_to_a_smaller_size():
    first = OfflineRunner(MovingAverage, wire(("field", "v"), ("size", 4)))
    first.feed_stream(pts([1.0, 2.0, 3.0, 4.0]))
    snap = first.snapshot()
    second = OfflineRunner(MovingAverage, wire(("field", "v"), ("size", 2)))
    assert second.restore(snap)
    second.feed_stream(pts([10.0], times=[T0 + 10 * S]))
    assert avgs(second.finish()) == [7.0]  # (4 + 10) / 2


def test_window_from_the_other_mode_starts_over():
    first = OfflineRunner(MovingAverage, wire(("field", "v"), ("size", 4)))
    first.feed_stream(pts([100.0, 100.0]))
    second = OfflineRunner(MovingAverage, wire(("field", "v"), ("period", 60 * S)))
    assert second.restore(first.snapshot())
    second.feed_stream(pts([1.0], times=[T0 + 5 * S]))
    assert avgs(second.finish()) == [1.0]


def test_snapshot_is_versioned_json_naming_the_udf():
    runner = OfflineRunner(MovingAverage, wire(("field", "v"), ("size", 3)))
    runner.feed_stream(pts([1.0, 2.0]))
    doc = json.loads(runner.snapshot())
    assert doc["udf"] == "moving_avg"
    (_key, state), = doc["groups"]
    assert state["values"] == [1.0, 2.0]


def test_corrupt_state_in_snapshot_starts_fresh():
    runner = OfflineRunner(MovingAverage, wire(("field", "v"), ("size", 3)))
    runner.feed_stream(pts([1.0, 2.0]))
    doc = json.loads(runner.snapshot())
    doc["groups"][0][1]["values"] = ["not a number"]
    second = OfflineRunner(MovingAverage, wire(("field", "v"), ("size", 3)))
    assert second.restore(json.dumps(doc).encode())  # success, with a warning
    second.feed_stream(pts([9.0], times=[T0 + 9 * S]))
    assert avgs(second.finish()) == [9.0]


@pytest.mark.parametrize(("options", "message"), [
    ([("field", "v")], "exactly one of size"),
    ([("field", "v"), ("size", 3), ("period", S)], "both were given"),
    ([("field", "v"), ("size", 0)], "size: must be >= 1"),
    ([("field", "v"), ("period", 0)], "period: must be > 0s"),
    ([("size", 3)], "missing required option field"),
    ([("field", "v"), ("size", 3), ("as", "")], "as: must not be empty"),
])
def test_bad_options_are_refused_naming_the_option(options, message):
    with pytest.raises(InitFailed, match=message):
        OfflineRunner(MovingAverage, wire(*options))


def test_size_given_as_double_is_a_type_error():
    with pytest.raises(InitFailed, match="size: expected INT, got DOUBLE"):
        OfflineRunner(MovingAverage, [("field", [("string", "v")]), ("size", [("double", 3.0)])])


@pytest.mark.parametrize("mode", [("size", 3), ("period", 2 * S)])
def test_number_kernel_output_equals_process_output(mode):
    """The framework's fast path (number_kernel) and `process` must give identical frames,
    whatever else the point carries: int values, string and bool fields, several groups."""
    rng = random.Random(7)
    points = []
    for i in range(200):
        fields = {"v": rng.choice([rng.randint(-9, 9), rng.uniform(-5, 5)])}
        if i % 3 == 0:
            fields["s"] = "text"
        if i % 4 == 0:
            fields["b"] = True
        if i % 5 == 0:
            fields["n"] = i
        points.append(LPPoint("cpu", {"host": f"h{i % 3}", "dc": "x"}, fields, T0 + i * S))
    options = wire(("field", "v"), mode)
    reqs = list(stream_requests(points, ["host"]))

    runner = OfflineRunner(MovingAverage, options)
    assert runner.handler.udf.number_kernel() is not None
    runner.feed_requests(copy.deepcopy(r) for r in reqs)
    runner.writer.flush()

    udf = OfflineRunner(MovingAverage, options).handler.udf
    table = GroupTable(udf.new_state, 1000, lambda cap: None)
    expected = bytearray()
    for req in reqs:
        out = udf.process(Point(req.point, req), table.get(req.point.group))
        expected += encode_frame(out.to_request().SerializeToString())
    assert len(expected) > 200 * 20
    assert bytes(runner._capture.data) == bytes(expected)
