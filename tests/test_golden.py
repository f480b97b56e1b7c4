"""Golden cases: every folder tests/cases/<udf>/<case>/ holds

- `options`: one `name=value` per line, parsed by the option's declared type exactly like
  `kapudf test -o name=value`; `group_by=TAG` lines set the grouping; blank lines and lines
  starting with `#` are ignored;
- `input.lp`: the input points (line protocol, ns timestamps);
- `expected.lp`: the output, in output order (a late point comes where the UDF emits it);
  consecutive points with the same timestamp may come in any order; floats compare with a
  relative tolerance of 1e-9; value types (int, float, string, bool) must match exactly.

Cases are read by `kapudf_testkit.read_case` (tests/support). Each runs through
`udfcollection.offline.run` (the real UDFHandler: option validation, groups, batches,
onError); a batch UDF gets one batch per group. A new behaviour is a new folder.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from kapudf_testkit import CASES, read_case

from udfcollection import offline, registry
from udfcollection.lineprotocol import LPPoint, format_point, parse_lines


def _case_dirs() -> list[Path]:
    return sorted(p.parent for p in CASES.glob("*/*/input.lp"))


def read_lp(path: Path) -> list[LPPoint]:
    with path.open(encoding="utf-8") as fh:
        return list(parse_lines(fh, "ns", str(path)))


def _same_value(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def same_point(a: LPPoint, b: LPPoint) -> bool:
    return (a.name == b.name and a.time == b.time and a.tags == b.tags
            and a.fields.keys() == b.fields.keys()
            and all(_same_value(a.fields[k], b.fields[k]) for k in a.fields))


def _by_time(points: list[LPPoint]) -> list[list[LPPoint]]:
    runs: list[list[LPPoint]] = []
    for p in points:
        if runs and runs[-1][0].time == p.time:
            runs[-1].append(p)
        else:
            runs.append([p])
    return runs


def compare_outputs(actual: list[LPPoint], expected: list[LPPoint]) -> str | None:
    """None when `actual` matches `expected` (order-insensitive among equal timestamps), else
    a readable description of the first difference."""
    got_runs, want_runs = _by_time(actual), _by_time(expected)
    for i, (got, want) in enumerate(zip(got_runs, want_runs, strict=False)):
        left = list(got)
        for w in want:
            match = next((g for g in left if same_point(g, w)), None)
            if match is None:
                return (f"at output time group {i} (t={w.time}): expected\n  {format_point(w)}\n"
                        "but got\n  " + "\n  ".join(format_point(g) for g in got))
            left.remove(match)
        if left:
            return (f"at output time group {i} (t={got[0].time}): unexpected extra point(s)\n  "
                    + "\n  ".join(format_point(g) for g in left))
    if len(got_runs) != len(want_runs):
        extra = got_runs[len(want_runs):] or want_runs[len(got_runs):]
        which = "unexpected" if len(got_runs) > len(want_runs) else "missing"
        return (f"{len(actual)} points out, {len(expected)} expected; first {which}:\n  "
                + format_point(extra[0][0]))
    return None


@pytest.mark.parametrize("case", _case_dirs(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_golden_case(case: Path) -> None:
    c = read_case(case)
    out = offline.run(registry.get(c.udf), c.points, c.options, c.group_by)
    assert not out.errors, out.errors
    problem = compare_outputs(out.points, read_lp(case / "expected.lp"))
    assert problem is None, f"{case.parent.name}/{case.name}: {problem}"


def test_every_builtin_has_golden_cases() -> None:
    with_cases = {p.parent.name for p in _case_dirs()}
    core = {"edge_detect", "moving_avg", "threshold", "outliers"}
    missing = sorted(core & set(registry.names()) - with_cases)
    assert not missing, f"no golden cases for {missing}"
    for name in core:
        assert len([p for p in _case_dirs() if p.parent.name == name]) >= 3, name


def test_comparison_catches_differences() -> None:
    """The comparison itself must be able to fail: values, types, tags and extra points."""
    a = LPPoint("m", {"h": "a"}, {"v": 1.0}, 1)
    b = LPPoint("m", {"h": "b"}, {"v": 2.0}, 1)
    assert compare_outputs([a, b], [b, a]) is None  # same time: order does not matter
    assert compare_outputs([a], [LPPoint("m", {"h": "a"}, {"v": 1.0 + 1e-12}, 1)]) is None
    assert compare_outputs([a], [LPPoint("m", {"h": "a"}, {"v": 1.001}, 1)]) is not None
    assert compare_outputs([a], [LPPoint("m", {"h": "a"}, {"v": 1}, 1)]) is not None  # int
    assert compare_outputs([a], [b]) is not None
    assert compare_outputs([a, b], [a]) is not None
    assert compare_outputs([a], [a, b]) is not None
    later = LPPoint("m", {"h": "a"}, {"v": 1.0}, 2)
    assert compare_outputs([a, later], [later, a]) is not None  # order across times matters


def _readme_try_commands() -> list[str]:
    text = (CASES.parents[1] / "README.md").read_text(encoding="utf-8")
    section = text[text.index("<!-- section: catalogue -->"):
                   text.index("<!-- /section: catalogue -->")]
    return [line for line in section.splitlines() if line.startswith("kapudf test ")]


def test_readme_lists_a_try_command_per_core_udf():
    named = {cmd.split()[2] for cmd in _readme_try_commands()}
    assert {"edge_detect", "moving_avg", "threshold", "outliers"} <= named


@pytest.mark.parametrize("command", _readme_try_commands())
def test_readme_try_command_runs(command):
    """The README's example commands run as printed, on the bundled examples/*.lp."""
    import shlex

    from kapudf_testkit import REPO, run_cli

    args = shlex.split(command)[1:]
    result = run_cli(*args, cwd=REPO)
    assert result.returncode == 0, result.stderr
    out = [line for line in result.stdout.splitlines() if line]
    assert out, f"{command}: no output"
    name = args[1]
    if name == "edge_detect":  # issue 2's six marked rows
        assert len(out) == 6
    if name == "outliers":
        # db1: 3 21 22 22 22 23 23 23 23 24 24 24 25 25 97, Q1 22, Q3 24, fences 19 and 27;
        # db2: 60..64, Q1 61, Q3 63, fences 58 and 66: no outlier.
        assert [line.split()[1] for line in out] == ["iowait=97i", "iowait=3i"]
