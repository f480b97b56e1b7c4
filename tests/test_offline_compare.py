"""`--expect` comparison (udfcollection.compare): order-insensitive within a timestamp, float
tolerance, types matter, readable report."""

from __future__ import annotations

import math

from udfcollection.compare import compare, values_match
from udfcollection.lineprotocol import LPPoint


def p(t, fields, host="a", name="m"):
    return LPPoint(name, {"host": host}, dict(fields), t)


def test_same_points_in_another_order_within_a_timestamp_match():
    expected = [p(1, {"v": 1.0}, "a"), p(1, {"v": 2.0}, "b"), p(2, {"v": 3.0}, "a")]
    actual = [p(1, {"v": 2.0}, "b"), p(2, {"v": 3.0}, "a"), p(1, {"v": 1.0}, "a")]
    result = compare(actual, expected)
    assert result.ok and result.matched == 3
    assert result.report("exp.lp") == "OK: all 3 points match exp.lp (rtol 1e-09)"


def test_float_tolerance_is_relative():
    assert values_match(100.0, 100.0 + 1e-6, rtol=1e-9) is False  # 1e-8 relative
    assert values_match(100.0, 100.0 + 1e-6, rtol=1e-6) is True
    assert values_match(math.nan, math.nan)
    assert not values_match(0.0, 1e-300)  # relative: nothing is close to zero but zero
    result = compare([p(1, {"v": 1.001})], [p(1, {"v": 1.0})], rtol=1e-2)
    assert result.ok
    result = compare([p(1, {"v": 1.001})], [p(1, {"v": 1.0})], rtol=1e-4)
    assert not result.ok
    assert "v: expected 1.0, got 1.001 (relative difference 0.000999 > rtol 0.0001)" in \
        result.report()


def test_types_matter_int_is_not_float_and_bool_is_not_int():
    assert not values_match(1, 1.0)
    assert not values_match(True, 1)
    result = compare([p(1, {"v": 1})], [p(1, {"v": 1.0})])
    assert [d for _, _, d in result.differing] == [["v: expected float 1.0, got int 1i"]]


def test_report_lists_differing_missing_and_unexpected_in_time_order():
    expected = [p(1, {"v": 1.0}), p(2, {"v": 2.0, "w": "x"}), p(3, {"v": 3.0}, "b")]
    actual = [p(1, {"v": 1.0}), p(2, {"v": 2.5}), p(4, {"v": 4.0}, "c")]
    result = compare(actual, expected)
    assert not result.ok
    assert (result.matched, len(result.differing), len(result.missing),
            len(result.unexpected)) == (1, 1, 1, 1)
    lines = result.report("want.lp").splitlines()
    assert lines[0] == ("FAIL: output (3 points) differs from want.lp (3 points): 1 match, "
                        "1 differ, 1 missing, 1 unexpected (rtol 1e-09)")
    assert lines[1] == "  ~ 1970-01-01T00:00:00.000000002Z m,host=a"
    assert lines[2].strip().startswith("v: expected 2.0, got 2.5")
    assert lines[3].strip() == 'w: missing from output (expected "x")'
    assert lines[4] == "  - m,host=b v=3.0 3    (expected, not in output)"
    assert lines[5] == "  + m,host=c v=4.0 4    (in output, not expected)"


def test_series_must_match_tags_and_measurement():
    result = compare([p(1, {"v": 1.0}, name="n")], [p(1, {"v": 1.0})])
    assert len(result.missing) == 1 and len(result.unexpected) == 1


def test_duplicates_are_counted():
    result = compare([p(1, {"v": 1.0})], [p(1, {"v": 1.0}), p(1, {"v": 1.0})])
    assert result.matched == 1 and len(result.missing) == 1


def test_long_reports_are_cut():
    expected = [p(t, {"v": 0.0}) for t in range(50)]
    result = compare([], expected)
    text = result.report(limit=10)
    assert text.count("\n  - ") == 10
    assert text.endswith("... and 40 more differences")
