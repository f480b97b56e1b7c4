"""edge_detect's algorithm, in-process through the real UDFHandler (udfcollection.offline)."""

from __future__ import annotations

import math

import pytest

from udfcollection.lineprotocol import LPPoint
from udfcollection.offline import InitFailed, OfflineRunner, run
from udfcollection.udfs.edge_detect import EdgeDetect

S = 1_000_000_000
T0 = 1_600_000_000 * S


def wire(*pairs):
    """Options in Kapacitor's wire form, typed by the declaration."""
    decl = {o.name: o for o in EdgeDetect.all_options()}
    return [(n, [] if decl[n].type == "flag" else [(decl[n].type, v)]) for n, v in pairs]


def pts(values, field="v", tags=None, step=S, start=T0):
    """One point per value, `step` ns apart; a None value makes a point without the field."""
    out = []
    for i, v in enumerate(values):
        fields = {"other": i} if v is None else {field: v, "i": i}
        out.append(LPPoint("m", dict(tags or {}), fields, start + i * step))
    return out


def emitted(out, key="i"):
    return [p.fields[key] for p in out.points]


def test_emits_changes_only_with_previous_and_duration():
    out = run(EdgeDetect, pts(["a", "a", "b", "b", "b", "a"], step=2 * S), wire(("field", "v")))
    assert emitted(out) == [0, 2, 5]
    first, second, third = out.points
    assert "previous" not in first.fields and "duration" not in first.fields
    assert second.fields["previous"] == "a" and second.fields["duration"] == 4.0
    assert third.fields["previous"] == "b" and third.fields["duration"] == 6.0


def test_emit_first_false():
    out = run(EdgeDetect, pts([1, 1, 2]), wire(("field", "v"), ("emitFirst", False)))
    assert emitted(out) == [2]


def test_int_one_equals_float_one_but_not_bool_true():
    out = run(EdgeDetect, pts([1, 1.0, 1, True, True, 1.0, "1"]), wire(("field", "v")))
    # 0 first; 3: bool after number; 5: number after bool; 6: string after number
    assert emitted(out) == [0, 3, 5, 6]
    assert out.points[1].fields["previous"] == 1  # the int that started the state
    assert type(out.points[1].fields["previous"]) is int


def test_nan_equals_nan_and_differs_from_numbers():
    nan = float("nan")
    out = run(EdgeDetect, pts([nan, nan, 1.0, nan]), wire(("field", "v")))
    assert emitted(out) == [0, 2, 3]
    assert math.isnan(out.points[1].fields["previous"])


def test_tolerance_dead_band_is_measured_against_the_state():
    # A slow drift of 0.2 per point: with tolerance 0.5 it counts once it is 0.6 away from the
    # state's value, not never (which comparing neighbours would give).
    vals = [20.0, 20.2, 20.4, 20.6, 20.8, 21.0, 21.2]
    out = run(EdgeDetect, pts(vals), wire(("field", "v"), ("tolerance", 0.5),
                                         ("emitFirst", False)))
    assert emitted(out) == [3, 6]  # 20.6 (0.6 from 20.0), 21.2 (0.6 from 20.6)
    assert out.points[0].fields["previous"] == 20.0
    assert out.points[1].fields["previous"] == 20.6


def test_tolerance_zero_counts_any_move():
    out = run(EdgeDetect, pts([1.0, 1.0 + 1e-12, 1.0 + 1e-12]), wire(("field", "v")))
    assert emitted(out) == [0, 1]


def test_tolerance_does_not_apply_to_strings_or_bools():
    out = run(EdgeDetect, pts(["a", "b", True, False]),
              wire(("field", "v"), ("tolerance", 100.0)))
    assert emitted(out) == [0, 1, 2, 3]


def test_hold_suppresses_short_flaps_and_emits_first_point_of_new_state():
    # 10 s steps, hold 25 s: 1 at i=1 flaps back at i=2 (held 10 s): suppressed. 1 from i=3,
    # confirmed at i=6 (30 s later): the emitted point is i=3's.
    vals = [0, 1, 0, 1, 1, 1, 1, 1]
    out = run(EdgeDetect, pts(vals, step=10 * S),
              wire(("field", "v"), ("hold", 25 * S)))
    assert emitted(out) == [0, 3]
    p = out.points[1]
    assert p.time == T0 + 30 * S
    assert p.fields["previous"] == 0 and p.fields["duration"] == 30.0


def test_hold_exactly_reached_counts():
    out = run(EdgeDetect, pts([0, 1, 1], step=10 * S),
              wire(("field", "v"), ("hold", 10 * S), ("emitFirst", False)))
    assert emitted(out) == [1]


def test_hold_state_not_confirmed_before_end_is_never_emitted():
    out = run(EdgeDetect, pts([0, 1, 1], step=10 * S),
              wire(("field", "v"), ("hold", 60 * S)))
    assert emitted(out) == [0]


def test_hold_candidate_replaced_by_another_value():
    # 1 is held from i=1, then 2 from i=2 (replacing it), 2 confirmed at i=4 (hold 20 s).
    out = run(EdgeDetect, pts([0, 1, 2, 2, 2], step=10 * S),
              wire(("field", "v"), ("hold", 20 * S), ("emitFirst", False)))
    assert emitted(out) == [2]
    assert out.points[0].fields["previous"] == 0


def test_several_fields_any_change_counts_with_prefixed_previous_names():
    points = [LPPoint("m", {}, {"a": 1, "b": "x", "i": i}, T0 + i * S) for i in range(2)]
    points.append(LPPoint("m", {}, {"a": 1, "b": "y", "i": 2}, T0 + 2 * S))
    points.append(LPPoint("m", {}, {"a": 2, "b": "y", "i": 3}, T0 + 3 * S))
    out = run(EdgeDetect, points, wire(("field", "a"), ("field", "b"), ("previousAs", "was")))
    assert emitted(out) == [0, 2, 3]
    assert out.points[1].fields["was_a"] == 1 and out.points[1].fields["was_b"] == "x"
    assert out.points[2].fields["was_a"] == 1 and out.points[2].fields["was_b"] == "y"
    assert "was" not in out.points[1].fields


def test_empty_previous_as_and_duration_as_omit_the_fields():
    out = run(EdgeDetect, pts([1, 2]), wire(("field", "v"), ("previousAs", ""),
                                           ("durationAs", "")))
    assert out.points[1].fields == {"v": 2, "i": 1}


def test_custom_output_names():
    out = run(EdgeDetect, pts([1, 2]), wire(("field", "v"), ("previousAs", "before"),
                                           ("durationAs", "lasted")))
    assert out.points[1].fields == {"v": 2, "i": 1, "before": 1, "lasted": 1.0}


def test_missing_field_dropped_by_default_and_state_unchanged():
    out = run(EdgeDetect, pts([1, None, 1, 2]), wire(("field", "v")))
    assert [p.fields.get("i") for p in out.points] == [0, 3]
    assert out.points[1].fields["duration"] == 3.0  # the state began at i=0


def test_missing_field_passed_unchanged_with_on_error_pass():
    out = run(EdgeDetect, pts([1, None, 1]), wire(("field", "v"), ("onError", "pass")))
    assert len(out.points) == 2
    assert out.points[1].fields == {"other": 1}


def test_missing_field_fails_the_task_with_on_error_fail():
    from udfcollection.agent.runtime import FatalError

    with pytest.raises(FatalError, match="'v' is missing"):
        run(EdgeDetect, pts([1, None]), wire(("field", "v"), ("onError", "fail")))


def test_groups_are_independent():
    a = pts([1, 1, 2], tags={"host": "a"})
    b = pts([5, 5, 5], tags={"host": "b"})
    interleaved = [p for pair in zip(a, b, strict=True) for p in pair]
    out = run(EdgeDetect, interleaved, wire(("field", "v")), group_by=["host"])
    got = [(p.tags["host"], p.fields["i"]) for p in out.points]
    assert got == [("a", 0), ("b", 0), ("a", 2)]
    assert out.points[2].fields["previous"] == 1


def test_without_group_by_all_points_share_one_state():
    a = pts([1], tags={"host": "a"})
    b = pts([1], tags={"host": "b"}, start=T0 + S)
    out = run(EdgeDetect, a + b, wire(("field", "v")))
    assert len(out.points) == 1


def test_max_groups_evicts_least_recently_seen_group():
    def p(host, v, i):
        return LPPoint("m", {"host": host}, {"v": v, "i": i}, T0 + i * S)

    stream = [p("a", 1, 0), p("b", 1, 1), p("c", 1, 2),  # a is evicted when c arrives
              p("b", 1, 3),  # b still known: no change
              p("a", 1, 4)]  # a forgotten: a first point again (emitFirst)
    out = run(EdgeDetect, stream, wire(("field", "v"), ("maxGroups", 2)), group_by=["host"])
    assert emitted(out) == [0, 1, 2, 4]
    assert "previous" not in out.points[-1].fields


def test_out_of_order_points_compare_in_arrival_order():
    points = pts([1, 2], step=10 * S)
    points[1].time = T0 - 5 * S  # arrives second, is 5 s older
    out = run(EdgeDetect, points, wire(("field", "v")))
    assert emitted(out) == [0, 1]
    assert out.points[1].fields["duration"] == -5.0


@pytest.mark.parametrize("split", [1, 2, 3, 4, 5, 7])
def test_snapshot_then_restore_mid_stream_equals_uninterrupted_run(split):
    # Includes a held candidate (hold 15 s) at several split points.
    values = [0, 1, 1, 0, 2, 2, 2, 1, 1]
    tags = {"host": "h"}
    stream = pts(values, step=10 * S, tags=tags) + pts(values[::-1], step=10 * S,
                                                       tags={"host": "k"})
    stream.sort(key=lambda p: p.time)
    options = wire(("field", "v"), ("hold", 15 * S))
    whole = run(EdgeDetect, stream, options, group_by=["host"]).points

    first = OfflineRunner(EdgeDetect, options)
    first.feed_stream(stream[:split * 2], ["host"])
    snap = first.snapshot()
    before = first.collect().points
    second = OfflineRunner(EdgeDetect, options)
    assert second.restore(snap)
    second.feed_stream(stream[split * 2:], ["host"])
    after = second.finish().points
    assert before + after == whole


def test_restore_of_garbage_starts_fresh():
    runner = OfflineRunner(EdgeDetect, wire(("field", "v")))
    assert runner.restore(b"not a snapshot")
    runner.feed_stream(pts([1]))
    assert len(runner.finish().points) == 1


def test_options_are_validated():
    with pytest.raises(InitFailed, match="missing required option field"):
        run(EdgeDetect, [], [])
    with pytest.raises(InitFailed, match="tolerance: must be >= 0"):
        run(EdgeDetect, [], wire(("field", "v"), ("tolerance", -1.0)))
