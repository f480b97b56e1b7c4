"""Shipped models: manifest, hashes, refusal of modified files, lazy loading over the real wire,
and `kapudf train` reproducing the shipped files."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time

import pytest
from kapudf_testkit import REPO, run_cli

from udfcollection.ml.data import WELD_DIR, WIND_T1, sha256_of_files, weld_run_files
from udfcollection.ml.manifest import (
    MANIFEST_FORMAT,
    ModelError,
    read_manifest,
    shipped_model,
    shipped_models_dir,
)
from udfcollection.testing import WireClient, info_request, init_request, point_request

HEAVY = ("numpy", "pandas", "sklearn", "catboost", "scipy", "joblib")


@pytest.fixture
def models_copy(tmp_path, monkeypatch):
    """A private copy of the shipped models, made the shipped ones via KAPUDF_MODELS_DIR."""
    d = tmp_path / "models"
    shutil.copytree(shipped_models_dir(), d)
    monkeypatch.setenv("KAPUDF_MODELS_DIR", str(d))
    return d


def test_manifest_describes_every_shipped_model():
    d = shipped_models_dir()
    assert d is not None and (d / "manifest.json").is_file()
    doc = read_manifest(d)
    assert doc["format"] == MANIFEST_FORMAT
    assert set(doc["models"]) == {"wind_turbine", "weld"}
    for name, entry in doc["models"].items():
        path = d / entry["file"]
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], name
        assert len(data) == entry["size_bytes"]
        assert entry["name"] == name
        assert entry["libraries"]["python"]
        assert entry["metrics"]
        assert shipped_model(name) == (path, entry)
    wind = doc["models"]["wind_turbine"]
    assert wind["size_bytes"] < 2 * 1024 * 1024
    assert wind["format"] == "sklearn-pickle" and "scikit-learn" in wind["libraries"]
    assert doc["models"]["weld"]["format"] == "catboost-cbm"
    assert "catboost" in doc["models"]["weld"]["libraries"]


def test_training_data_hashes_match_the_bundled_data():
    doc = read_manifest(shipped_models_dir())["models"]
    assert doc["wind_turbine"]["training_data"]["sha256"] == sha256_of_files([WIND_T1])
    assert doc["wind_turbine"]["training_data"]["rows"] == 50_530
    assert doc["weld"]["training_data"]["sha256"] == sha256_of_files(weld_run_files(WELD_DIR))
    assert doc["weld"]["training_data"]["files"] == [f.name for f in weld_run_files(WELD_DIR)]


def test_the_repository_copy_is_the_shipped_copy():
    # In a checkout the package reads <repo>/models; an installed wheel carries a copy of the
    # same directory (setup.py). Either way the files are those in the repository.
    if (REPO / "models" / "manifest.json").is_file():
        for f in (REPO / "models").iterdir():
            assert (shipped_models_dir() / f.name).read_bytes() == f.read_bytes()


def test_modified_shipped_model_is_refused(models_copy):
    data = bytearray((models_copy / "weld_catboost.cbm").read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit flipped
    (models_copy / "weld_catboost.cbm").write_bytes(bytes(data))
    with pytest.raises(ModelError) as info:
        shipped_model("weld")
    msg = str(info.value)
    assert str(models_copy / "weld_catboost.cbm") in msg
    assert "does not match" in msg and "refused" in msg and "kapudf train weld" in msg
    # the other model is unaffected
    shipped_model("wind_turbine")


def test_models_dir_without_manifest_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("KAPUDF_MODELS_DIR", str(tmp_path))
    with pytest.raises(ModelError, match=f"no shipped models found \\(looked in {tmp_path}\\)"):
        shipped_model("weld")


def test_models_dir_others_can_write_is_refused_for_loading(models_copy):
    import logging

    from udfcollection.ml.loading import load_shipped

    models_copy.chmod(0o777)
    with pytest.raises(ModelError, match="writable by group and others"):
        load_shipped("wind_turbine", logging.getLogger("t"))
    models_copy.chmod(0o755)
    assert load_shipped("wind_turbine", logging.getLogger("t")).kind == "sklearn"


# --- over the real wire ---------------------------------------------------------------------

def test_info_is_answered_without_heavy_imports_and_model_loads_at_init():
    """`kapudf run weld`: Info must not import numpy/catboost/... (Kapacitor asks every UDF for
    Info at daemon start); the model is loaded at Init."""
    import subprocess

    code = ("import sys, runpy; sys.argv = ['kapudf', 'run', 'weld'];"
            "import atexit; atexit.register(lambda: sys.stderr.write('HEAVY ' + ' '.join("
            f"m for m in {HEAVY!r} if m in sys.modules) + '\\n'));"
            "runpy.run_module('udfcollection', run_name='__main__')")
    from udfcollection.protocol.framing import encode_frame

    proc = subprocess.run([sys.executable, "-c", code],
                          input=encode_frame(info_request().SerializeToString()),
                          capture_output=True, timeout=60)
    heavy_line = [ln for ln in proc.stderr.decode().splitlines() if ln.startswith("HEAVY")]
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert heavy_line == ["HEAVY "], heavy_line
    assert proc.stdout  # the InfoResponse frame


@pytest.mark.parametrize("name", ["weld", "wind_turbine"])
def test_info_then_init_then_points_over_the_wire(name):
    t0 = time.monotonic()
    with WireClient.for_udf(name) as c:
        info = c.request(info_request(), timeout=30)
        info_s = time.monotonic() - t0
        assert info.WhichOneof("message") == "info"
        assert "model" in info.info.options
        init = c.request(init_request([]), timeout=60)
        assert init.init.success, init.init.error
        if name == "weld":
            fields = {"Pressure": 0.2, "CO2 Weld Flow": 4.0, "Feed": 53.0,
                      "Primary Weld Current": 0.0, "Wire Consumed": 1.0,
                      "Secondary Weld Voltage": 0.0}
            want = {"defect_probability": 0.0, "anomaly_status": 0.0}
        else:
            fields = {"wind_speed": 1.0, "grid_active_power": 0.0}
            want = {"anomaly_status": 0.0, "expected_power": 0.0, "power_error": 0.0}
        c.send(point_request(1, fields))
        out = c.recv(timeout=30)
        assert out.WhichOneof("message") == "point"
        assert {k: out.point.fieldsDouble[k] for k in want} == want
        c.close_input()
        assert c.wait(30) == 0
    # generous: the 500 ms figure is measured by benchmarks/bench_ml.py --info
    assert info_s < 10.0


def _init_error(name, options, env=None):
    with WireClient.for_udf(name, env=env) as c:
        resp = c.request(init_request(options), timeout=60)
        assert resp.WhichOneof("message") == "init"
        assert not resp.init.success
        # a failed init is an InitResponse, never an ErrorResponse; the process stays up
        c.close_input()
        assert c.wait(30) == 0
        return resp.init.error


def test_init_errors_over_the_wire(tmp_path, models_copy):
    missing = tmp_path / "missing.cbm"
    err = _init_error("model", [("model", [("string", str(missing))])])
    assert err == f"model: cannot read model {missing}: no such file"
    open_model = tmp_path / "open.pkl"
    open_model.write_bytes(b"x")
    open_model.chmod(0o666)
    err = _init_error("wind_turbine", [("model", [("string", str(open_model))])])
    assert f"model file {open_model} is writable by group and others" in err
    assert f"chmod go-w {open_model}" in err
    (models_copy / "wind_turbine_power_curve.pkl").write_bytes(b"tampered")
    err = _init_error("wind_turbine", [], env={"KAPUDF_MODELS_DIR": str(models_copy)})
    assert "does not match" in err and "wind_turbine_power_curve.pkl" in err


# --- kapudf train ---------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("name", ["wind_turbine", "weld"])
def test_train_reproduces_the_shipped_file(tmp_path, name):
    shipped = read_manifest(shipped_models_dir())["models"][name]
    out = tmp_path / "out"
    res = run_cli("train", name, "--out", str(out), "--json", timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    entry = json.loads(res.stdout)
    assert "train: " in res.stderr  # progress goes to stderr
    assert entry["metrics"] == shipped["metrics"]
    same_libs = entry["libraries"] == shipped["libraries"]
    if same_libs:  # same library versions: the very same bytes
        assert entry["sha256"] == shipped["sha256"]
        assert (out / entry["file"]).read_bytes() == (
            shipped_models_dir() / shipped["file"]).read_bytes()
    doc = read_manifest(out)
    assert doc["models"][name] == entry
    # training again into the same directory says so
    again = run_cli("train", name, "--out", str(out), timeout=300)
    assert again.returncode == 0
    if same_libs:
        assert "identical bytes to the previous model" in again.stdout


def test_train_errors_are_one_line_usage_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("speed,power\n1,2\n")
    res = run_cli("train", "wind_turbine", "--data", str(bad), "--out", str(tmp_path / "o"))
    assert res.returncode == 2
    assert "has no column(s) 'wind_speed', 'Theoretical_Power_Curve'" in res.stderr
    assert "Traceback" not in res.stderr
    res = run_cli("train", "weld", "--data", str(bad), "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "is not a directory" in res.stderr
    res = run_cli("train", "nosuch")
    assert res.returncode == 2 and "'nosuch' is not one of" in res.stderr


def test_train_on_own_turbine_data(tmp_path):
    """Retraining on your own turbine: any CSV with a speed and a power-curve column."""
    csv = tmp_path / "mine.csv"
    rows = ["ws,curve"] + [f"{s / 10},{min(2000.0, max(0.0, (s / 10 - 3) * 200))}"
                           for s in range(0, 250)]
    csv.write_text("\n".join(rows) + "\n")
    out = tmp_path / "m"
    res = run_cli("train", "wind_turbine", "--data", str(csv), "--speed-column", "ws",
                  "--target-column", "curve", "--out", str(out), "--json")
    assert res.returncode == 0, res.stderr
    entry = json.loads(res.stdout)
    assert entry["metrics"]["train_rows"] == 250
    assert entry["metrics"]["mae_kw"] < 1e-6  # a monotone curve is fitted exactly
    assert entry["features"] == ["ws"]
    # the new model is usable straight away through the model option
    from udfcollection.lineprotocol import LPPoint
    from udfcollection.offline import run
    from udfcollection.udfs.wind_turbine import WindTurbine

    p = LPPoint("t", {}, {"wind_speed": 8.0, "grid_active_power": 900.0}, 1)
    res = run(WindTurbine, [p], [("model", [("string", str(out / entry["file"]))])])
    assert res.points[0].fields["expected_power"] == pytest.approx(1000.0)
