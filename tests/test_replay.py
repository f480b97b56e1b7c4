"""`kapudf replay` against a real InfluxDB 1.x server (started by tests/influx_server.py):
write history, replay a UDF over it, read the results back."""

from __future__ import annotations

import itertools
import math
import random
import subprocess
import uuid

import pytest
from influx_server import free_port, running

from udfcollection import replay
from udfcollection.lineprotocol import LPPoint, parse_lines
from udfcollection.testing import kapudf_command

T0 = 1_700_000_000_123_456_789  # ns precision on purpose: it must survive the round trip
POLL = 180 * 10**9  # the modems are polled every 3 minutes
HOSTS = {"modem1": "north", "modem2": "north", "modem3": "south"}


@pytest.fixture(scope="module")
def influx():
    with running() as server:
        yield server


@pytest.fixture
def db(influx):
    """A fresh database for one test, dropped afterwards."""
    name = "t_" + uuid.uuid4().hex[:10]
    client = influx.client()
    client.create_database(name)
    yield name
    client.drop_database(name)


def status_history(n: int = 150, seed: int = 7) -> dict[str, list[tuple[int, str, float, int]]]:
    """Per host: (time, status, snr, rate) polled every POLL; the status flips now and then,
    stays put mostly (that is what edge_detect is for)."""
    rng = random.Random(seed)
    out = {}
    for k, host in enumerate(HOSTS):
        status = "SHOWTIME" if k % 2 == 0 else "TRAINING"
        rows = []
        for i in range(n):
            if rng.random() < 0.08:
                status = "TRAINING" if status == "SHOWTIME" else "SHOWTIME"
            # Whole-number SNR values on purpose: JSON turns 31.0 into 31, a float they stay.
            snr = float(rng.randint(20, 40)) if i % 3 else round(rng.uniform(20, 40), 2)
            rows.append((T0 + k * 1000 + i * POLL, status, snr, 1000 + rng.randint(0, 50)))
        out[host] = rows
    return out


def write_history(influx, db: str, history) -> int:
    lines = [f'adsl,host={host},region={HOSTS[host]} status="{st}",snr={snr!r},rate={rate}i {t}'
             for host, rows in history.items() for t, st, snr, rate in rows]
    influx.client().write_points(lines, time_precision="n", database=db, protocol="line")
    return len(lines)


def expected_changes(rows):
    """edge_detect's definition, applied by hand: the first point, then each point whose status
    differs from the previous one, with the previous status and how long it lasted (s)."""
    out = []
    since = prev = None
    for t, st, _snr, _rate in rows:
        if prev is None:
            out.append((t, st, None, None))
        elif st != prev:
            out.append((t, st, prev, (t - since) / 1e9))
        if st != prev:
            since, prev = t, st
    return out


def run_replay(influx, db, *args, check=True) -> subprocess.CompletedProcess:
    res = subprocess.run(kapudf_command("replay", *args, "--influx", influx.url, "--db", db),
                         capture_output=True, text=True, timeout=120)
    if check:
        assert res.returncode == 0, res.stderr
    return res


def read_back(influx, db: str, query: str, tag: str = "host") -> dict[str, list[dict]]:
    """Series of the query's result by the value of `tag`, points with int ns times."""
    rs = influx.client().query(query, database=db, epoch="ns")
    return {tags.get(tag, ""): list(points) for (_name, tags), points in rs.items()}


def test_edge_detect_reduces_status_history_to_changes(influx, db):
    history = status_history()
    n = write_history(influx, db, history)
    out_db = db + "_out"
    res = run_replay(influx, db, "edge_detect", "-o", "field=status",
                     "--query", "SELECT * FROM adsl GROUP BY host",
                     "--write-db", out_db, "--write-measurement", "adsl_changes")
    try:
        got = read_back(influx, out_db, "SELECT * FROM adsl_changes GROUP BY host")
        assert set(got) == set(HOSTS)
        total = 0
        for host, rows in history.items():
            want = expected_changes(rows)
            assert 3 < len(want) < len(rows) / 4  # a real reduction, and some changes to see
            have = [(p["time"], p["status"], p["previous"], p["duration"]) for p in got[host]]
            assert [h[:3] for h in have] == [w[:3] for w in want]
            for h, w in zip(have, want, strict=True):
                assert (h[3] is None) == (w[3] is None)
                if w[3] is not None:
                    assert h[3] == pytest.approx(w[3])
            # Every other field and tag of the changing point goes along.
            first = got[host][0]
            assert first["region"] == HOSTS[host]
            assert first["snr"] == pytest.approx(rows[0][2])
            total += len(want)
        assert f"{n} points in from 3 series (grouped by host), {total} out" in res.stderr
        assert f"wrote {total} points to {out_db}.adsl_changes" in res.stderr
        assert res.stdout == ""
    finally:
        influx.client().drop_database(out_db)


def test_printed_output_keeps_types_and_ns_times(influx, db):
    history = status_history(n=60)
    write_history(influx, db, history)
    res = run_replay(influx, db, "edge_detect", "-o", "field=status",
                     "--query", "SELECT status, snr, rate FROM adsl GROUP BY host")
    points = list(parse_lines(res.stdout.splitlines()))
    by_host: dict[str, list[LPPoint]] = {}
    for p in points:
        by_host.setdefault(p.tags["host"], []).append(p)
    for host, rows in history.items():
        want = expected_changes(rows)
        assert [(p.time, p.fields["status"]) for p in by_host[host]] == [w[:2] for w in want]
        for p in by_host[host]:
            assert isinstance(p.fields["snr"], float)  # a float field, even when whole
            assert isinstance(p.fields["rate"], int)  # an integer field stays integer
            assert "region" not in p.tags  # not selected, not grouped: not there


def test_select_star_without_group_by_uses_tag_columns(influx, db):
    history = status_history(n=80)
    write_history(influx, db, history)
    res = run_replay(influx, db, "edge_detect", "-o", "field=status", "--group-by", "host",
                     "--query", "SELECT * FROM adsl", "--format", "json")
    import json

    rows = [json.loads(line) for line in res.stdout.splitlines()]
    for host, hist in history.items():
        mine = [r for r in rows if r["tags"]["host"] == host]
        assert [(r["timestamp"], r["fields"]["status"]) for r in mine] == [
            w[:2] for w in expected_changes(hist)]
        assert all(r["tags"]["region"] == HOSTS[host] for r in mine)  # tag, not field
        assert all("region" not in r["fields"] for r in mine)


def test_group_by_coarser_than_the_query_is_replayed_in_time_order(influx, db):
    history = status_history(n=80)
    write_history(influx, db, history)
    res = run_replay(influx, db, "edge_detect", "-o", "field=status", "--group-by", "region",
                     "--query", "SELECT * FROM adsl GROUP BY host")
    points = list(parse_lines(res.stdout.splitlines()))
    for region in set(HOSTS.values()):
        # The region's modems interleaved by time, as Kapacitor's stream would deliver them.
        merged = sorted((r for h, rows in history.items() if HOSTS[h] == region for r in rows),
                        key=lambda r: r[0])
        got = [(p.time, p.fields["status"]) for p in points if p.tags["region"] == region]
        assert got == [w[:2] for w in expected_changes(merged)]
    assert "(grouped by region)" in res.stderr


def test_moving_avg_round_trip(influx, db):
    history = status_history(n=40)
    write_history(influx, db, history)
    out_db = db + "_avg"
    run_replay(influx, db, "moving_avg", "-o", "field=snr", "-o", "size=3", "-o", "as=snr_avg",
               "--query", "SELECT snr FROM adsl WHERE host =~ /modem[12]/ GROUP BY host",
               "--write-db", out_db, "--write-measurement", "snr_avg")
    try:
        got = read_back(influx, out_db, "SELECT snr_avg FROM snr_avg GROUP BY host")
        assert set(got) == {"modem1", "modem2"}
        for host in ("modem1", "modem2"):
            snrs = [r[2] for r in history[host]]
            want = [sum(snrs[max(0, i - 2):i + 1]) / len(snrs[max(0, i - 2):i + 1])
                    for i in range(len(snrs))]
            assert [p["time"] for p in got[host]] == [r[0] for r in history[host]]
            assert [p["snr_avg"] for p in got[host]] == pytest.approx(want)
        kinds = influx.client().query("SHOW FIELD KEYS FROM snr_avg", database=out_db)
        assert {r["fieldKey"]: r["fieldType"] for r in kinds.get_points()} == {"snr_avg": "float"}
    finally:
        influx.client().drop_database(out_db)


def test_batch_udf_gets_one_batch_per_group(influx, db):
    lines, planted = [], set()
    for host in ("a", "b"):
        for i in range(100):
            # An even spread 10.0 .. 10.4: within any 10 points the quartiles are 0.2 apart,
            # so the fences (1.5 IQR out) sit 0.3 beyond them and only the planted 1000s fall out.
            v = 10.0 + (i % 5) / 10
            if (host, i) in (("a", 17), ("a", 71), ("b", 50)):
                v = 1000.0
                planted.add((host, T0 + i * POLL))
            lines.append(f"load,host={host} value={v!r} {T0 + i * POLL}")
    influx.client().write_points(lines, time_precision="n", database=db, protocol="line")
    res = run_replay(influx, db, "outliers", "-o", "field=value",
                     "--query", "SELECT value FROM load GROUP BY host")
    got = {(p.tags["host"], p.time) for p in parse_lines(res.stdout.splitlines())}
    assert got == planted
    # Batches of 10 points, or of one hour (20 polls): each planted value is still an outlier
    # of its own batch.
    for cut in (["--batch-size", "10"], ["--batch-every", "1h"]):
        res = run_replay(influx, db, "outliers", "-o", "field=value", *cut,
                         "--query", "SELECT value FROM load GROUP BY host")
        got = {(p.tags["host"], p.time) for p in parse_lines(res.stdout.splitlines())}
        assert got == planted, cut
    res = run_replay(influx, db, "edge_detect", "-o", "field=value", "--batch-size", "10",
                     "--query", "SELECT value FROM load GROUP BY host", check=False)
    assert res.returncode == 2
    assert "takes a stream" in res.stderr


def test_on_error_policies(influx, db):
    write_history(influx, db, status_history(n=10))
    q = "SELECT * FROM adsl GROUP BY host"
    # Default policy: a point without the watched field is dropped and logged; the replay goes on.
    res = run_replay(influx, db, "edge_detect", "-o", "field=state", "--query", q)
    assert res.stdout == ""
    assert "30 points in" in res.stderr and "0 out" in res.stderr
    assert "'state' is missing" in res.stderr
    # onError 'fail' stops at the first bad point, as the Kapacitor task would stop.
    res = run_replay(influx, db, "edge_detect", "-o", "field=state", "-o", "onError=fail",
                     "--query", q, check=False)
    assert res.returncode == 1
    assert "error: " in res.stderr and "'state' is missing" in res.stderr


def t1_rows(days: int) -> list[tuple[int, float, float]]:
    """(time ns, active power kW, wind speed m/s) of the shipped T1 SCADA data, first days."""
    import csv
    from datetime import UTC, datetime
    from pathlib import Path

    import udfcollection

    path = Path(udfcollection.__file__).parent / "data" / "wind_turbine" / "T1.csv"
    rows = []
    with path.open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            t = datetime.strptime(r["timestamp"], "%d %m %Y %H:%M").replace(tzinfo=UTC)
            rows.append((int(t.timestamp()) * 10**9, float(r["grid_activepower"]),
                         float(r["wind_speed"])))
    return [r for r in rows if r[0] < rows[0][0] + days * 86_400 * 10**9]


def test_wind_turbine_labels_backfilled_equal_an_offline_run(influx, db):
    from udfcollection import offline
    from udfcollection.udfs.wind_turbine import WindTurbine

    rows = t1_rows(days=14)
    lines = [f"scada,turbine=T1 grid_active_power={p!r},wind_speed={w!r} {t}"
             for t, p, w in rows]
    influx.client().write_points(lines, time_precision="n", database=db, protocol="line")
    out_db = db + "_labels"
    res = run_replay(influx, db, "wind_turbine",
                     "--query", "SELECT grid_active_power, wind_speed FROM scada "
                     "GROUP BY turbine", "--write-db", out_db, "--write-measurement", "labels")
    try:
        got = read_back(influx, out_db, "SELECT * FROM labels GROUP BY turbine", "turbine")["T1"]
        # The same points straight from the CSV, through the in-process runner: the trip through
        # InfluxDB must change nothing (types, times, order, grouping).
        direct = offline.run(WindTurbine, [LPPoint("scada", {"turbine": "T1"},
                                                   {"grid_active_power": p, "wind_speed": w}, t)
                                           for t, p, w in rows], (), ("turbine",))
        assert len(got) == len(direct.points) == len(rows)
        assert sum(p["anomaly_status"] > 0 for p in got) > 10  # something to compare
        for g, d in zip(got, direct.points, strict=True):
            assert g["time"] == d.time
            for f in ("anomaly_status", "expected_power", "power_error"):
                assert g[f] == pytest.approx(d.fields[f], rel=1e-12, abs=1e-12), (d.time, f)
        assert f"{len(rows)} points in from 1 series (grouped by turbine)" in res.stderr
    finally:
        influx.client().drop_database(out_db)


def test_series_split_across_chunks_gives_the_same_result(influx, db):
    from udfcollection.udfs.edge_detect import EdgeDetect

    history = status_history(n=50)
    write_history(influx, db, history)
    client = replay.connect(influx.url)
    results = []
    for chunk in (3, 10_000):
        out: list[LPPoint] = []
        stats = replay.replay(client, EdgeDetect, db, "SELECT * FROM adsl GROUP BY host",
                              [("field", [("string", "status")])], sink=out.extend,
                              chunk_size=chunk)
        assert stats.points_in == 150
        assert stats.series == 3  # one series, however many chunks carried it
        results.append(out)
    assert results[0] == results[1]
    want = sum(len(expected_changes(rows)) for rows in history.values())
    assert len(results[0]) == want


def test_refuses_to_overwrite_the_history(influx, db):
    write_history(influx, db, status_history(n=10))
    res = run_replay(influx, db, "edge_detect", "-o", "field=status",
                     "--query", "SELECT * FROM adsl GROUP BY host", "--write-db", db,
                     check=False)
    assert res.returncode == 1
    assert "refusing to write into" in res.stderr
    count = influx.client().query("SELECT count(status) FROM adsl", database=db)
    assert next(count.get_points())["count"] == 30  # untouched


@pytest.mark.parametrize("query, message", [
    ("SHOW MEASUREMENTS", "must be a SELECT"),
    ("SELECT * INTO other FROM adsl", "INTO writes"),
    ("SELECT * FROM adsl; DROP MEASUREMENT adsl", "one SELECT"),
    ("SELECT * FROM adsl ORDER BY time DESC", "oldest first"),
])
def test_query_checks(influx, db, query, message):
    res = run_replay(influx, db, "edge_detect", "-o", "field=status", "--query", query,
                     check=False)
    assert res.returncode == 2
    assert message in res.stderr
    assert "Traceback" not in res.stderr


def test_quoted_keywords_do_not_count():
    q = """SELECT "into" FROM "order" WHERE note = 'x; SELECT 1 INTO y'"""
    assert replay.check_query(q) == q


def test_server_side_errors_are_one_line(influx, db):
    res = run_replay(influx, db, "edge_detect", "-o", "field=status",
                     "--query", "SELECT * FROM adsl WHERE", check=False)
    assert res.returncode == 1
    assert "query failed: error parsing query" in res.stderr
    res = subprocess.run(kapudf_command("replay", "edge_detect", "-o", "field=status",
                                        "--influx", influx.url, "--db", "no_such_db",
                                        "--query", "SELECT * FROM adsl"),
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert "database 'no_such_db' not found" in res.stderr
    assert "Traceback" not in res.stderr


def test_unreachable_server():
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    res = subprocess.run(kapudf_command("replay", "edge_detect", "-o", "field=status",
                                        "--influx", url, "--db", "x", "--query",
                                        "SELECT * FROM adsl"),
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert f"cannot reach InfluxDB at {url}" in res.stderr
    assert "Traceback" not in res.stderr


def test_udf_option_errors_are_usage_errors(influx, db):
    res = run_replay(influx, db, "moving_avg", "-o", "field=snr",
                     "--query", "SELECT * FROM adsl", check=False)
    assert res.returncode == 2
    assert "exactly one of size" in res.stderr


def test_storable_drops_what_influxdb_cannot_hold():
    stats = replay.ReplayStats()
    p = LPPoint("m", {"host": "a", "empty": ""}, {"x": math.nan, "y": 1.5, "z": math.inf}, 5)
    q = replay.storable(p, "out", stats)
    assert (q.name, q.tags, q.fields, q.time) == ("out", {"host": "a"}, {"y": 1.5}, 5)
    assert stats.dropped_values == 2
    assert replay.storable(LPPoint("m", {}, {"x": math.nan}, 1), None, stats) is None
    assert stats.skipped_out == 1


def test_unknown_columns_become_floats_known_fields_keep_their_type():
    schema = replay.Schema({"rate": "integer", "snr": "float", "up": "boolean"}, {"host"})
    s = replay.Series("adsl", {"region": "north"}, ["time", "host", "rate", "snr", "up", "mean"],
                      [[1, "m1", 7, 30, True, 2], [2, None, None, None, None, None]])
    (p,) = list(replay.series_points(s, schema))  # the all-null row has no fields: skipped
    assert p.tags == {"region": "north", "host": "m1"}
    assert p.fields == {"rate": 7, "snr": 30.0, "up": True, "mean": 2.0}
    assert [type(p.fields[k]) for k in ("rate", "snr", "mean")] == [int, float, float]


def test_pairs_of_history_helpers_agree():
    # The hand-written expectation must itself notice every flip in the generated history.
    for rows in status_history().values():
        flips = sum(1 for a, b in itertools.pairwise(rows) if a[1] != b[1])
        assert len(expected_changes(rows)) == flips + 1
