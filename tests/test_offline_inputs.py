"""Input readers of `kapudf test` (udfcollection.inputs): line protocol, CSV, stream recordings,
gzip and stdin, and the one-line errors naming file and line."""

from __future__ import annotations

import gzip
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest

from udfcollection.inputs import (
    CsvSpec,
    InputError,
    RecordedPoint,
    detect_format,
    guess_epoch_precision,
    parse_iso,
    read_points,
)

DATA = Path(__file__).resolve().parent / "data"
EXAMPLE = DATA.parent.parent / "examples" / "adsl_connection.lp"
S = 1_000_000_000


def as_tuples(points):
    return [(p.name, p.tags, p.fields, p.time) for p in points]


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


# --- line protocol ----------------------------------------------------------------------------

def test_lp_example_reads_17_points():
    data = read_points(str(EXAMPLE))
    assert data.format == "lp"
    assert len(data.points) == 17
    first = data.points[0]
    assert (first.name, first.tags, first.fields, first.time) == (
        "adsl_connection", {"host": "router1"}, {"value": "SHOWTIME"}, 1514979051065000000)


@pytest.mark.parametrize("precision,factor", [("s", S), ("ms", 1_000_000), ("us", 1_000),
                                              ("ns", 1)])
def test_lp_precision_scales_timestamps(tmp_path, precision, factor):
    path = write(tmp_path, "p.lp", "m v=1 1600000000\nm v=2 1600000001\n")
    pts = read_points(path, precision=precision).points
    assert [p.time for p in pts] == [1600000000 * factor, 1600000001 * factor]


def test_lp_bad_line_names_file_and_line(tmp_path):
    path = write(tmp_path, "bad.lp", "m v=1 1\n\n# comment\nm v=oops 3\n")
    with pytest.raises(InputError) as info:
        read_points(path)
    text = str(info.value)
    assert text.startswith(f"{path}:line 4: ")
    assert "\n" not in text


def test_gzipped_lp_is_detected_by_content(tmp_path):
    path = tmp_path / "x.lp.gz"
    path.write_bytes(gzip.compress(EXAMPLE.read_bytes()))
    assert detect_format(str(path)) == "lp"
    assert as_tuples(read_points(str(path)).points) == as_tuples(
        read_points(str(EXAMPLE)).points)


def test_stdin_defaults_to_line_protocol():
    data = read_points("-", stdin=io.BytesIO(b"m,host=a v=1i 5\n"))
    assert data.source == "<stdin>"
    assert as_tuples(data.points) == [("m", {"host": "a"}, {"v": 1}, 5)]


# --- three formats, one data set ------------------------------------------------------------

def test_csv_and_srpl_fixtures_hold_the_same_points_as_the_lp_example():
    lp = as_tuples(read_points(str(EXAMPLE)).points)
    csv = read_points(str(DATA / "adsl_connection.csv"),
                      csv_spec=CsvSpec(measurement="adsl_connection", tag_columns=("host",)))
    srpl = read_points(str(DATA / "adsl_connection.srpl"))
    assert csv.format == "csv" and srpl.format == "srpl"
    assert as_tuples(csv.points) == lp
    assert as_tuples(srpl.points) == lp


# --- CSV --------------------------------------------------------------------------------------

def test_csv_types_inferred_per_column_and_empty_cells_left_out(tmp_path):
    path = write(tmp_path, "m.csv",
                 "time,host,count,ratio,ok,state\n"
                 "2020-01-01T00:00:00Z,a,1,1,true,up\n"
                 "2020-01-01T00:00:10Z,b,2,2.5,FALSE,\n"
                 "2020-01-01T00:00:20Z,,-3,,True,down\n")
    pts = read_points(path, csv_spec=CsvSpec(tag_columns=("host",))).points
    t0 = int(datetime(2020, 1, 1, tzinfo=UTC).timestamp()) * S
    assert as_tuples(pts) == [
        # ratio holds 2.5 somewhere, so its 1 is a float too; count is all integers.
        ("m", {"host": "a"}, {"count": 1, "ratio": 1.0, "ok": True, "state": "up"}, t0),
        ("m", {"host": "b"}, {"count": 2, "ratio": 2.5, "ok": False}, t0 + 10 * S),
        ("m", {}, {"count": -3, "ok": True, "state": "down"}, t0 + 20 * S),
    ]
    assert type(pts[0].fields["count"]) is int
    assert type(pts[0].fields["ratio"]) is float


def test_csv_measurement_defaults_to_file_name_and_can_be_set(tmp_path):
    path = write(tmp_path, "turbine.data.csv", "time,v\n1,1.5\n")
    assert read_points(path).points[0].name == "turbine"
    assert read_points(path, csv_spec=CsvSpec(measurement="wind")).points[0].name == "wind"


def test_csv_iso_times_with_zones_and_nanoseconds(tmp_path):
    path = write(tmp_path, "t.csv", "timestamp,v\n"
                 "2018-01-03T11:30:51.065000001Z,1\n"
                 "2018-01-03 12:30:51+01:00,2\n"
                 "2018-01-03T11:30:51,3\n"
                 "2018-01-03,4\n")
    pts = read_points(path).points
    base = int(datetime(2018, 1, 3, 11, 30, 51, tzinfo=UTC).timestamp()) * S
    midnight = int(datetime(2018, 1, 3, tzinfo=UTC).timestamp()) * S
    assert [p.time for p in pts] == [base + 65_000_001, base, base, midnight]


@pytest.mark.parametrize("value,unit", [("1514979051", "s"), ("1514979051065", "ms"),
                                        ("1514979051065000", "us"),
                                        ("1514979051065000000", "ns"), ("1514979051.5", "s")])
def test_epoch_unit_is_guessed_from_the_digits(value, unit):
    assert guess_epoch_precision(value) == unit


def test_csv_epoch_seconds_guessed_and_noted_or_given(tmp_path):
    path = write(tmp_path, "e.csv", "time,v\n1514979051,1\n1514979051.25,2\n")
    data = read_points(path)
    assert [p.time for p in data.points] == [1514979051 * S, 1514979051 * S + S // 4]
    assert len(data.notes) == 1 and "seconds" in data.notes[0] and "--precision" in data.notes[0]
    given = read_points(path, precision="ms")
    assert [p.time for p in given.points] == [1514979051 * 1_000_000,
                                              1514979051 * 1_000_000 + 250_000]
    assert given.notes == []


def test_csv_strftime_format_like_the_turbine_data():
    pts = read_points(str(DATA / "wind_t1_sample.csv"),
                      csv_spec=CsvSpec(time_format="%d %m %Y %H:%M")).points
    assert len(pts) == 432
    # First data row: "09 12 2018 10:40"; rows are 10 minutes apart.
    assert pts[0].time == int(datetime(2018, 12, 9, 10, 40, tzinfo=UTC).timestamp()) * S
    assert pts[1].time - pts[0].time == 600 * S
    assert set(pts[0].fields) == {"grid_activepower", "wind_speed", "Theoretical_Power_Curve",
                                  "Wind Direction (°)"}


def test_csv_without_time_column_numbers_rows_with_time_step(tmp_path):
    path = write(tmp_path, "weld.csv", "Pressure,Feed\r\n1.5,0\r\n1.6,2\r\n")
    with pytest.raises(InputError, match=r"weld.csv:line 1: no time column .*--time-step"):
        read_points(path)
    pts = read_points(path, csv_spec=CsvSpec(time_step=100_000_000)).points
    assert [(p.time, p.fields) for p in pts] == [(0, {"Pressure": 1.5, "Feed": 0}),
                                                 (100_000_000, {"Pressure": 1.6, "Feed": 2})]


def test_csv_byte_order_mark_is_not_part_of_the_first_column(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufefftime,v\n1,2\n".encode())
    assert read_points(str(path)).points[0].fields == {"v": 2}


@pytest.mark.parametrize("text,spec,line,needle", [
    ("time,v\n1,2\n3\n", CsvSpec(), 3, "1 values but the header has 2 columns"),
    ("time,v\n1,2\nsoon,3\n", CsvSpec(), 3, "cannot read 'soon' as a time"),
    ("time,v\n1,2\n,3\n", CsvSpec(), 3, "empty time"),
    ("time,v\n1,2\n", CsvSpec(tag_columns=("Host",)), 1, "no column 'Host' for --tag-column"),
    ("when,v\n1,2\n", CsvSpec(time_column="When"), 1, "did you mean 'when'?"),
    ("time,v,v\n1,2,3\n", CsvSpec(), 1, "column 'v' appears twice"),
    ("", CsvSpec(), 1, "empty file"),
    ("time,v\n1,\n", CsvSpec(), 2, "no field values"),
])
def test_csv_errors_name_file_and_line(tmp_path, text, spec, line, needle):
    path = write(tmp_path, "bad.csv", text)
    with pytest.raises(InputError) as info:
        read_points(path, csv_spec=spec)
    assert info.value.lineno == line
    assert str(info.value).startswith(f"{path}:line {line}: ")
    assert needle in str(info.value)


def test_csv_strftime_mismatch_names_the_line(tmp_path):
    path = write(tmp_path, "f.csv", "timestamp,v\n01 01 2018 00:00,1\n2018-01-01,2\n")
    with pytest.raises(InputError, match=r"f.csv:line 3: column 'timestamp': cannot read"):
        read_points(path, csv_spec=CsvSpec(time_format="%d %m %Y %H:%M"))


def test_iso_parser_agrees_with_datetime():
    for text in ("1999-12-31T23:59:59Z", "2024-02-29T12:00:00.5+05:30", "1969-07-20T20:17:40Z",
                 "2030-06-01T00:00:00-08:00"):
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        whole = datetime(dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second,
                         tzinfo=dt.tzinfo)
        expected = int(whole.timestamp()) * S + dt.microsecond * 1000
        assert parse_iso(text) == expected, text


# --- stream recordings --------------------------------------------------------------------------

def test_srpl_keeps_database_and_retention_policy():
    pts = read_points(str(DATA / "adsl_connection.srpl")).points
    assert all(isinstance(p, RecordedPoint) for p in pts)
    assert {(p.database, p.retention_policy) for p in pts} == {("telegraf", "autogen")}


def test_srpl_gzipped_as_kapacitor_stores_it(tmp_path):
    path = tmp_path / "0b8d4ba2-recording.srpl"
    path.write_bytes(gzip.compress((DATA / "adsl_connection.srpl").read_bytes()))
    assert as_tuples(read_points(str(path)).points) == as_tuples(
        read_points(str(EXAMPLE)).points)


def test_srpl_with_seconds_precision(tmp_path):
    path = write(tmp_path, "s.srpl", "db\nrp\ncpu,host=a usage=1 10\ndb\nrp\ncpu usage=2 11\n\n")
    pts = read_points(path, precision="s").points
    assert [(p.database, p.retention_policy, p.time) for p in pts] == [("db", "rp", 10 * S),
                                                                     ("db", "rp", 11 * S)]


def test_srpl_errors(tmp_path):
    truncated = write(tmp_path, "t.srpl", "db\nrp\nm v=1 1\ndb\nrp\n")
    with pytest.raises(InputError, match=r"t.srpl:line 6: recording ends inside a record"):
        read_points(truncated)
    plain_lp = write(tmp_path, "lp.srpl", "m v=1 1\nm v=2 2\nm v=3 3\n")
    with pytest.raises(InputError, match=r"lp.srpl:line 1: expected a database name"):
        read_points(plain_lp)
    bad = write(tmp_path, "b.srpl", "db\nrp\nm v=1 1\ndb\nrp\nm v= 2\n")
    with pytest.raises(InputError, match=r"b.srpl:line 6: "):
        read_points(bad)


def test_format_detection():
    assert detect_format("a/b.csv") == "csv"
    assert detect_format("rec.srpl.gz") == "srpl"
    assert detect_format("x.LP") == "lp"
    assert detect_format("noext") is None


# --- the fast line-protocol path agrees with the reference parser ------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from udfcollection.inputs import parse_line_fast  # noqa: E402
from udfcollection.lineprotocol import LineProtocolError, parse_line  # noqa: E402

_atoms = st.sampled_from(["m", "cpu", "host", "a", "v", "x1", "=", ",", " ", "  ", "\\", '"',
                          "1", "-2.5", "3i", "4u", "1e3", "t", "FALSE", "nan", "", "#", "é"])
_lines = st.one_of(
    st.lists(_atoms, max_size=12).map("".join),
    st.builds(lambda name, tags, fields, ts: name + "".join(f",{k}={v}" for k, v in tags)
              + " " + ",".join(f"{k}={v}" for k, v in fields) + ts,
              st.sampled_from(["m", "cpu", "", "a=b"]),
              st.lists(st.tuples(st.sampled_from(["host", "h", ""]),
                                 st.sampled_from(["a", "", "b=c", "x y"])), max_size=3),
              st.lists(st.tuples(st.sampled_from(["v", "w", ""]),
                                 st.sampled_from(["1", "2.5", "3i", "-4u", "true", "f", "",
                                                  "1.5i", "NaN", "1e400", '"s"'])),
                       max_size=3),
              st.sampled_from(["", " 10", " -3", " x", " 1.5", " 10 11"])),
)


def _outcome(fn, line, precision):
    try:
        p = fn(line, precision, 7)
    except LineProtocolError as exc:
        return ("error", str(exc))
    return None if p is None else (p.name, p.tags, p.fields, p.time)


def _same(a, b):
    # NaN != NaN: compare field values by repr.
    return repr(a) == repr(b)


@settings(max_examples=600, deadline=None)
@given(_lines, st.sampled_from(["ns", "s"]))
def test_fast_path_gives_the_reference_parsers_result(line, precision):
    assert _same(_outcome(parse_line_fast, line, precision),
                 _outcome(parse_line, line, precision))
