"""`kapudf test` end to end: the real CLI in a subprocess, on the committed fixtures."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import re
import subprocess
from itertools import pairwise
from pathlib import Path

import pytest

from udfcollection.inputs import read_points
from udfcollection.testing import kapudf_command

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
EXAMPLE = "examples/adsl_connection.lp"
EDGES = DATA / "adsl_connection_edges.lp"
CPU = DATA / "cpu_two_hosts.lp"
ADSL_CSV = ["--measurement", "adsl_connection", "--tag-column", "host"]


@pytest.fixture
def kt(cli):
    """`kt(args...)`: `kapudf test ARGS` from the repository root."""
    def run(*args: str, **kw) -> subprocess.CompletedProcess:
        kw.setdefault("cwd", REPO)
        return cli("test", *args, **kw)
    return run


def lp_lines(path: Path) -> list[str]:
    return [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def one_error_line(r: subprocess.CompletedProcess) -> str:
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


# --- the README quick start -------------------------------------------------------------------

def test_quick_start_prints_the_state_changes_and_a_summary(kt):
    r = kt("edge_detect", "--input", EXAMPLE, "-o", "field=value")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == lp_lines(EDGES)
    assert re.fullmatch(r"edge_detect: 17 points in, 6 out, 1 group, [\d.,]+ ms\n", r.stderr)


# --- --expect ----------------------------------------------------------------------------------

def test_expect_pass_prints_ok_and_no_points(kt):
    r = kt("edge_detect", "-i", EXAMPLE, "-o", "field=value", "--expect", str(EDGES))
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"OK: all 6 points match {EDGES} (rtol 1e-09)\n"


def test_expect_fail_shows_a_diff_and_exits_1(kt, tmp_path):
    lines = lp_lines(EDGES)
    # Change one duration, drop the last change, add a point that will not come.
    lines[1] = lines[1].replace("duration=90.005", "duration=90.5")
    del lines[5]
    lines.append('adsl_connection,host=router1 value="DOWN" 1514980999000000000')
    want = tmp_path / "want.lp"
    want.write_text("\n".join(lines) + "\n")
    r = kt("edge_detect", "-i", EXAMPLE, "-o", "field=value", "--expect", str(want))
    assert r.returncode == 1
    out = r.stdout.splitlines()
    assert out[0].startswith("FAIL: output (6 points) differs from")
    assert "4 match, 1 differ, 1 missing, 1 unexpected" in out[0]
    assert "  ~ 2018-01-03T11:32:21.07Z adsl_connection,host=router1" in out
    assert any("duration: expected 90.5, got 90.005" in ln for ln in out)
    assert any(ln.startswith("  + ") and "1514980221010000000" in ln for ln in out)
    assert any(ln.startswith("  - ") and '"DOWN"' in ln for ln in out)


def test_rtol_lets_small_float_differences_pass(kt, tmp_path):
    want = tmp_path / "want.lp"
    want.write_text(EDGES.read_text().replace("duration=90.005", "duration=90.0051"))
    r = kt("edge_detect", "-i", EXAMPLE, "-o", "field=value", "--expect", str(want))
    assert r.returncode == 1
    r = kt("edge_detect", "-i", EXAMPLE, "-o", "field=value", "--expect", str(want),
           "--rtol", "1e-5")
    assert r.returncode == 0, r.stdout


# --- every input format gives the same run -----------------------------------------------------

@pytest.mark.parametrize("args", [
    ["-i", "tests/data/adsl_connection.csv", *ADSL_CSV],
    ["-i", "tests/data/adsl_connection.srpl"],
])
def test_csv_and_recording_inputs_give_the_expected_output(kt, args):
    r = kt("edge_detect", *args, "-o", "field=value", "--expect", str(EDGES))
    assert r.returncode == 0, r.stdout + r.stderr


def test_stdin_csv(kt):
    text = (DATA / "adsl_connection.csv").read_text()
    r = kt("edge_detect", "-i", "-", "--input-format", "csv", *ADSL_CSV, "-o", "field=value",
           input=text)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == lp_lines(EDGES)


def test_precision_seconds(kt, tmp_path):
    src = tmp_path / "s.lp"
    src.write_text("m v=1 100\nm v=2 160\n")
    r = kt("edge_detect", "-i", str(src), "--precision", "s", "-o", "field=v")
    assert r.stdout.splitlines() == ["m v=1.0 100000000000",
                                     "m duration=60.0,previous=1.0,v=2.0 160000000000"]


# --- output formats ----------------------------------------------------------------------------

def test_json_output(kt):
    r = kt("edge_detect", "-i", EXAMPLE, "-o", "field=value", "--format", "json")
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) == 6
    assert rows[1] == {"time": "2018-01-03T11:32:21.07Z", "timestamp": 1514979141070000000,
                       "measurement": "adsl_connection", "tags": {"host": "router1"},
                       "fields": {"duration": 90.005, "previous": "SHOWTIME",
                                  "value": "TRAINING"}}


def test_csv_output_to_a_file_reads_back(kt, tmp_path):
    target = tmp_path / "edges.csv"
    r = kt("edge_detect", "-i", EXAMPLE, "-o", "field=value", "--output", str(target))
    assert r.returncode == 0 and r.stdout == ""
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [row["value"] for row in rows] == ["SHOWTIME", "TRAINING", "SHOWTIME", "TRAINING",
                                              "SHOWTIME", "TRAINING"]
    assert rows[0]["duration"] == "" and rows[1]["duration"] == "90.005"
    # The CSV output is valid CSV input: same points again (tags need naming).
    again = read_points(str(target), csv_spec=None)
    assert [p.fields["value"] for p in again.points] == [row["value"] for row in rows]
    assert [p.time for p in again.points] == [p.time for p in read_points(str(EDGES)).points]


# --- grouping and the summary -------------------------------------------------------------------

def test_group_by_counts_per_group_in_the_summary(kt):
    points = read_points(str(CPU)).points
    changes = {}
    for host in ("a", "b"):
        vals = [p.fields["usage"] for p in points if p.tags["host"] == host]
        changes[host] = 1 + sum(1 for x, y in pairwise(vals) if x != y)
    r = kt("edge_detect", "-i", str(CPU), "-o", "field=usage", "--group-by", "host")
    assert r.returncode == 0, r.stderr
    assert (f"120 points in, {changes['a'] + changes['b']} out, 2 groups (in/out "
            f"host=a: 60/{changes['a']}, host=b: 60/{changes['b']})") in r.stderr


def test_without_group_by_everything_is_one_group(kt):
    # Ungrouped, host a's and b's readings interleave: every point differs from the one before.
    r = kt("edge_detect", "-i", str(CPU), "-o", "field=usage")
    assert "120 points in, 120 out, 1 group," in r.stderr


def test_batch_udf_windows_in_the_summary(kt):
    r = kt("outliers", "-i", str(CPU), "-o", "field=usage", "--group-by", "host",
           "--batch-every", "5m")
    assert r.returncode == 0, r.stderr
    # 1700000000 s is 200 s into a 5-minute window; 600 s of data span 3 windows per host.
    assert "in 6 batches, 2 groups" in r.stderr
    # The spike of host a (95.0) and the dip of host b (3.5) are the outliers of their windows.
    assert sorted(r.stdout.splitlines()) == ["cpu,host=a usage=95.0 1700000370000000000",
                                             "cpu,host=b usage=3.5 1700000120000000000"]


def test_batch_flags_refused_for_stream_udfs(kt):
    r = kt("edge_detect", "-i", EXAMPLE, "-o", "field=value", "--batch-size", "3")
    assert r.returncode == 2
    assert "--batch-size is for batch UDFs; edge_detect takes a stream" in r.stderr


# --- --process ---------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["edge_detect", "-i", str(CPU), "-o", "field=usage", "-o", "tolerance=2.0",
     "--group-by", "host"],
    ["moving_avg", "-i", str(CPU), "-o", "field=usage", "-o", "size=5", "--group-by", "host"],
    ["outliers", "-i", str(CPU), "-o", "field=usage", "-o", "mode=annotate", "--group-by",
     "host", "--batch-size", "25"],
    ["edge_detect", "-i", "tests/data/adsl_connection.srpl", "-o", "field=value"],
])
def test_process_output_equals_in_process_output(kt, args):
    inproc = kt(*args)
    wire = kt(*args, "--process")
    assert inproc.returncode == 0 and wire.returncode == 0, wire.stderr
    assert inproc.stdout and wire.stdout == inproc.stdout
    assert "(kapudf run subprocess)" in wire.stderr


def test_error_response_exits_1_in_both_modes(kt, tmp_path):
    src = tmp_path / "gap.lp"
    src.write_text("m v=1 1\nm v=2 2\nm x=3 3\nm v=4 4\n")
    runs = [kt("edge_detect", "-i", str(src), "-o", "field=v", "-o", "onError=fail", *extra)
            for extra in ([], ["--process"])]
    for r in runs:
        assert r.returncode == 1
        assert "ErrorResponse" in r.stderr and "watched field 'v' is missing" in r.stderr
        # What came before the bad point was emitted; nothing after it.
        assert r.stdout.splitlines() == ["m v=1.0 1", "m duration=1e-09,previous=1.0,v=2.0 2"]


# --- options explained as TICKscript literals --------------------------------------------------

def test_int_option_given_a_decimal_explains_the_literal(kt):
    r = kt("edge_detect", "-i", EXAMPLE, "-o", "field=value", "-o", "maxGroups=10.5")
    assert r.returncode == 2
    assert "option maxGroups is INT: cannot read '10.5'" in r.stderr
    assert ".maxGroups(10) is an INT" in r.stderr


def test_double_option_given_an_integer_works_with_a_note(kt):
    r = kt("edge_detect", "-i", EXAMPLE, "-o", "field=value", "-o", "tolerance=1")
    assert r.returncode == 0
    assert ("note: -o tolerance=1 is read as the DOUBLE 1.0; in TICKscript write "
            ".tolerance(1.0) (.tolerance(1) is an INT and Kapacitor rejects it)") in r.stderr


def test_duration_option_needs_a_unit(kt):
    r = kt("edge_detect", "-i", EXAMPLE, "-o", "field=value", "-o", "hold=10")
    assert r.returncode == 2
    assert "a duration such as 10s" in r.stderr and ".hold(10s)" in r.stderr


@pytest.mark.parametrize("extra", [[], ["--process"]])
def test_refused_options_are_a_usage_error(kt, extra):
    r = kt("edge_detect", "-i", EXAMPLE, "-o", "onError=explode", *extra)
    assert r.returncode == 2
    assert r.stderr.splitlines()[-1] == (
        "Error: edge_detect: option onError: 'explode' is not one of 'drop', 'pass', 'fail'; "
        "missing required option field (Field to watch; repeat the option to watch several, "
        "e.g. .field('value'))")
    assert r.stdout == ""


# --- bad files: exit 2, one line naming file and line --------------------------------------------

def test_bad_line_protocol_line(kt, tmp_path):
    src = tmp_path / "bad.lp"
    src.write_text("m v=1 1\nm v=2 2\nm v=\n")
    r = kt("edge_detect", "-i", str(src), "-o", "field=v")
    assert r.returncode == 2
    assert one_error_line(r).startswith(f"Error: {src}:line 3: ")


def test_bad_csv_row(kt, tmp_path):
    src = tmp_path / "bad.csv"
    src.write_text("time,v\n2020-01-01T00:00:00Z,1\n2020-01-01T00:00:10Z,2,3\n")
    r = kt("edge_detect", "-i", str(src), "-o", "field=v")
    assert r.returncode == 2
    assert one_error_line(r) == (f"Error: {src}:line 3: 3 values but the header has 2 "
                                 "columns")


def test_missing_input_and_bad_expected_file(kt, tmp_path):
    r = kt("edge_detect", "-i", str(tmp_path / "nope.lp"), "-o", "field=value")
    assert r.returncode == 2
    assert one_error_line(r) == f"Error: {tmp_path / 'nope.lp'}: no such file"
    want = tmp_path / "want.lp"
    want.write_text("ok v=1 1\nthis is not line protocol\n")
    r = kt("edge_detect", "-i", EXAMPLE, "-o", "field=value", "--expect", str(want))
    assert r.returncode == 2
    assert one_error_line(r).startswith(f"Error: {want}:line 2: ")


def test_csv_flags_on_line_protocol_input_are_refused(kt):
    r = kt("edge_detect", "-i", EXAMPLE, "-o", "field=value", "--tag-column", "host")
    assert r.returncode == 2
    assert "--tag-column only apply to CSV input" in r.stderr


# --- progress bar --------------------------------------------------------------------------------

def test_progress_bar_on_a_terminal(tmp_path):
    n = 60_000  # above progress.MIN_ITEMS
    src = tmp_path / "big.lp"
    src.write_text("".join(f"m v={i // 1000}i {i}\n" for i in range(n)))
    args = kapudf_command("test", "edge_detect", "-i", str(src), "-o", "field=v",
                          "--output", str(tmp_path / "out.lp"))
    # stderr on a pseudo-terminal: the bar is drawn, then erased before the summary.
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=follower, cwd=REPO)
        os.close(follower)
        seen = bytearray()
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closes with the process
                break
            if not chunk:
                break
            seen += chunk
        assert proc.wait(60) == 0
    finally:
        os.close(leader)
    text = seen.decode(errors="replace")
    assert re.search(r"\r\[#*-*\] [\d,]+/60,000 points", text), text[-500:]
    assert "edge_detect: 60,000 points in, 60 out" in text
    assert (tmp_path / "out.lp").read_text().count("\n") == 60


# --- plots ---------------------------------------------------------------------------------------

def test_plot_file_is_written(kt, tmp_path):
    target = tmp_path / "edges.png"
    r = kt("edge_detect", "-i", EXAMPLE, "-o", "field=value", "--plot", str(target))
    assert r.returncode == 0, r.stderr
    assert f"plot written to {target}" in r.stderr
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_says_how_to_install_it(kt, tmp_path):
    # A matplotlib that cannot be imported, ahead of the real one on the path.
    fake = tmp_path / "shadow" / "matplotlib"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('matplotlib is not installed')\n")
    r = kt("edge_detect", "-i", EXAMPLE, "-o", "field=value", "--plot",
           str(tmp_path / "x.png"), env={"PYTHONPATH": str(fake.parent)})
    assert r.returncode == 2
    assert "pip install 'udfcollection[plot]'" in r.stderr
    assert not (tmp_path / "x.png").exists()
