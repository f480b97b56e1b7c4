"""`--plot` pictures (udfcollection.plot), drawn from real runs through the UDFHandler. The
pictures were looked at while writing these tests; the tests pin down which picture is chosen,
what it is built from, and that a valid image file comes out."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest

from udfcollection import offline, registry
from udfcollection.commands.test import resolved_options, tick_call
from udfcollection.inputs import CsvSpec, read_points
from udfcollection.plot import RunInfo, _is_wind, plot_run
from udfcollection.spec import UDF, Option

DATA = Path(__file__).resolve().parent / "data"
EXAMPLE = DATA.parent.parent / "examples" / "adsl_connection.lp"
PNG = b"\x89PNG\r\n\x1a\n"


def info(cls, opts, group_by=(), source="test"):
    return RunInfo(cls.name, resolved_options(cls, opts), tuple(cls.output_fields), group_by,
                   source, tick_call(cls, opts))


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_state_changes_of_a_string_field(tmp_path):
    cls = registry.get("edge_detect")
    opts = [("field", [("string", "value")])]
    points = read_points(str(EXAMPLE)).points
    out = offline.run(cls, points, opts)
    target = tmp_path / "edges.png"
    assert plot_run(str(target), info(cls, opts), points, out.points) == "series"
    width, height = png_size(target)
    assert width > 800 and height > 300


def test_grouped_numeric_run_has_one_panel_per_group(tmp_path):
    cls = registry.get("moving_avg")
    opts = [("field", [("string", "usage")]), ("size", [("int", 5)])]
    points = read_points(str(DATA / "cpu_two_hosts.lp")).points
    out = offline.run(cls, points, opts, ["host"])
    one = tmp_path / "one.png"
    two = tmp_path / "two.png"
    plot_run(str(one), info(cls, opts), points, offline.run(cls, points, opts).points)
    plot_run(str(two), info(cls, opts, ["host"]), points, out.points)
    # Two groups stack two panels: a taller picture of the same width.
    (w1, h1), (w2, h2) = png_size(one), png_size(two)
    assert w1 == w2 and h2 > h1 * 1.5


class WindShaped(UDF):
    """Emits the wind_turbine output fields from a fixed rule, so the wind picture can be
    checked without the shipped model: expected = 10 * speed**2 (capped at 3000), status by
    the relative shortfall."""

    name = "wind_shaped"
    summary = "test only"
    options: ClassVar = (Option("speedField", "string", "speed", default="speed"),
                         Option("powerField", "string", "power", default="power"))
    output_fields = ("anomaly_status", "expected_power", "power_error")

    def process(self, point, state):
        speed = point.number(self.opts.speed_field)
        power = point.number(self.opts.power_field)
        if speed is None or power is None or speed < 3:
            return point.emit({"anomaly_status": 0.0, "expected_power": 0.0,
                               "power_error": 0.0})
        expected = min(3000.0, 10 * speed * speed)
        error = (expected - power) / max(power, 1.0)
        status = 1.0 if error > 1 else 0.6 if error > 0.5 else 0.3 if error > 0.2 else 0.0
        return point.emit({"anomaly_status": status, "expected_power": expected,
                           "power_error": error})


def test_wind_picture_is_chosen_from_output_fields_and_options(tmp_path):
    from udfcollection.lineprotocol import LPPoint

    points = []
    for i in range(200):
        speed = 2 + (i % 20)
        power = min(3000.0, 10 * speed * speed) * (0.3 if i % 17 == 0 else 1.0)
        points.append(LPPoint("turbine", {}, {"speed": float(speed), "power": power},
                              i * 600 * 10**9))
    out = offline.run(WindShaped, points, [])
    run = info(WindShaped, [])
    assert _is_wind(run, out.points)
    target = tmp_path / "wind.png"
    assert plot_run(str(target), run, points, out.points) == "wind"
    assert png_size(target)[0] > 1000
    # Without the speed/power options the same fields do not make a wind picture.
    other = RunInfo("x", {"field": "power"}, (), (), "test")
    assert not _is_wind(other, out.points)


def test_shipped_wind_turbine_on_turbine_data(tmp_path):
    try:
        cls = registry.get("wind_turbine")
    except registry.UnknownUDF:
        pytest.skip("wind_turbine is not in this install")
    opts = [("speedField", [("string", "wind_speed")]),
            ("powerField", [("string", "grid_activepower")])]
    points = read_points(str(DATA / "wind_t1_sample.csv"),
                         csv_spec=CsvSpec(time_format="%d %m %Y %H:%M")).points
    out = offline.run(cls, points, opts)
    assert len(out.points) == len(points)
    levels = {p.fields["anomaly_status"] for p in out.points}
    assert levels - {0.0}, "the sample was chosen to hold confirmed anomalies"
    target = tmp_path / "wind.png"
    assert plot_run(str(target), info(cls, opts, source="wind_t1_sample.csv"), points,
                    out.points) == "wind"
    assert png_size(target)[0] > 1000
