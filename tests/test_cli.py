"""The `kapudf` CLI in a real subprocess: list, info, conf, error handling, `python -m`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from kapudf_testkit import REPO, run_cli

from udfcollection import registry


def one_line_error(proc: subprocess.CompletedProcess, *words: str) -> str:
    """Assert a usage error: exit 2, exactly one line on stderr, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in proc.stderr
    for w in words:
        assert w in lines[0]
    return lines[0]


# --- list ---------------------------------------------------------------------------------

def test_list_table():
    proc = run_cli("list")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["NAME", "EDGES", "SUMMARY"]
    rows = {ln.split()[0]: ln for ln in lines[1:] if ln and not ln.startswith("More")}
    assert sorted(rows) == registry.names()
    assert "stream -> stream" in rows["edge_detect"]
    assert "batch -> batch" in rows["outliers"]
    assert registry.get("edge_detect").summary in rows["edge_detect"]


def test_list_json():
    proc = run_cli("list", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [d["name"] for d in doc] == registry.names()
    for d in doc:
        assert {"name", "wants", "provides", "summary", "options"} <= set(d)
        assert d["wants"] in ("stream", "batch") and d["provides"] in ("stream", "batch")
        assert d["summary"]
        names = [o["name"] for o in d["options"]]
        assert {"debug", "onError", "maxGroups"} <= set(names)
    edge = next(d for d in doc if d["name"] == "edge_detect")
    field = next(o for o in edge["options"] if o["name"] == "field")
    assert (field["type"], field["required"], field["repeatable"]) == ("string", True, True)
    hold = next(o for o in edge["options"] if o["name"] == "hold")
    assert hold["type"] == "duration" and hold["default"] == 0


# --- info ---------------------------------------------------------------------------------

def test_info_shows_description_options_tickscript_and_conf():
    proc = run_cli("info", "edge_detect")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("edge_detect (stream -> stream): ")
    assert "int 1 and float 1.0 are equal" in out  # from the description
    for opt in ("field", "emitFirst", "tolerance", "hold", "previousAs", "durationAs",
                "debug", "onError", "maxGroups"):
        assert f"\n{opt} " in out
    assert "@edge_detect()" in out and ".field('value')" in out
    assert "[udf.functions.edge_detect]" in out


def test_info_tick_only():
    proc = run_cli("info", "threshold", "--tick")
    assert proc.returncode == 0
    assert "@threshold()" in proc.stdout and "[udf" not in proc.stdout


# --- conf ---------------------------------------------------------------------------------

def test_conf_is_valid_toml_with_absolute_prog():
    proc = run_cli("conf", "edge_detect", "threshold")
    assert proc.returncode == 0, proc.stderr
    funcs = tomllib.loads(proc.stdout)["udf"]["functions"]
    assert sorted(funcs) == ["edge_detect", "threshold"]
    for name, sec in funcs.items():
        prog = Path(sec["prog"])
        assert prog.is_absolute() and prog.name == "kapudf"
        assert os.access(prog, os.X_OK)  # Kapacitor runs exactly this file
        assert sec["args"] == ["run", name]
        assert sec["timeout"] == "10s"
        assert sec["env"]["KAPUDF_LOG_LEVEL"] == "info"
        assert "socket" not in sec


def test_conf_prog_is_the_installed_console_script():
    script = shutil.which("kapudf") or str(Path(sys.executable).with_name("kapudf"))
    if not os.access(script, os.X_OK):
        pytest.skip("the kapudf console script is not installed in this environment")
    proc = subprocess.run([script, "conf", "edge_detect"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    sec = tomllib.loads(proc.stdout)["udf"]["functions"]["edge_detect"]
    assert sec["prog"] == str(Path(script).resolve())
    # And that program really speaks the protocol: the Info handshake kapacitord does.
    from udfcollection.testing import WireClient, info_request

    with WireClient([sec["prog"], *sec["args"]]) as c:
        assert c.request(info_request(), timeout=30).WhichOneof("message") == "info"


def test_conf_for_a_udf_given_by_import_path_starts_that_udf():
    proc = run_cli("conf", "kapudf_test_udfs:Counter")
    assert proc.returncode == 0, proc.stderr
    sec = tomllib.loads(proc.stdout)["udf"]["functions"]["test_counter"]  # declared name
    assert sec["args"] == ["run", "kapudf_test_udfs:Counter"]
    # What kapacitord would start really is that UDF.
    from kapudf_testkit import support_env

    from udfcollection.testing import WireClient, info_request

    with WireClient([sec["prog"], *sec["args"]], env=support_env()) as c:
        assert "every" in c.request(info_request(), timeout=30).info.options


def test_info_conf_for_a_udf_given_by_import_path_runs_that_path():
    proc = run_cli("info", "kapudf_test_udfs:Counter")
    assert proc.returncode == 0, proc.stderr
    conf = proc.stdout.split("kapacitor.conf:\n", 1)[1]
    sec = tomllib.loads(conf)["udf"]["functions"]["test_counter"]
    assert sec["args"] == ["run", "kapudf_test_udfs:Counter"]


def test_conf_all_covers_the_catalogue():
    proc = run_cli("conf", "--all")
    assert proc.returncode == 0
    assert sorted(tomllib.loads(proc.stdout)["udf"]["functions"]) == registry.names()


def test_conf_socket_dir():
    proc = run_cli("conf", "--socket-dir", "/run/kapudf", "edge_detect", "outliers")
    assert proc.returncode == 0
    doc = tomllib.loads(proc.stdout)
    funcs = doc["udf"]["functions"]
    assert funcs["edge_detect"] == {"socket": "/run/kapudf/edge_detect.sock", "timeout": "10s"}
    assert funcs["outliers"]["socket"] == "/run/kapudf/outliers.sock"
    # The header says how to serve them.
    assert "kapudf serve --socket-dir /run/kapudf edge_detect outliers" in proc.stdout


def test_conf_timeout():
    proc = run_cli("conf", "--timeout", "1m30s", "edge_detect")
    assert tomllib.loads(proc.stdout)["udf"]["functions"]["edge_detect"]["timeout"] == "1m30s"


# --- errors a user can fix: exit 2, one line, no traceback -------------------------------

@pytest.mark.parametrize("args", [
    ("info", "edgedetect"), ("run", "edgedetect"), ("conf", "edgedetect"),
    ("test", "edgedetect", "--input", "examples/adsl_connection.lp"),
])
def test_unknown_udf(args):
    line = one_line_error(run_cli(*args, cwd=REPO), "unknown UDF 'edgedetect'",
                          "did you mean edge_detect?")
    for name in registry.names():
        assert name in line


@pytest.mark.parametrize(("args", "words"), [
    (("--bogus",), ("No such option '--bogus'", "kapudf --help")),
    (("bogus",), ("No such command 'bogus'",)),
    (("test", "--bogus"), ("No such option '--bogus'", "kapudf test --help")),
])
def test_usage_errors_are_one_line(args, words):
    one_line_error(run_cli(*args), *words)


def test_unloadable_import_path():
    one_line_error(run_cli("info", "no_such_module:Thing"), "cannot load no_such_module:Thing")


@pytest.mark.parametrize(("opt", "words"), [
    ("feild=value", ("unknown option 'feild'", "did you mean field?")),
    ("tolerance=abc", ("tolerance",)),
    ("hold=10 parsecs", ("hold",)),
])
def test_bad_option(opt, words):
    args = ["test", "edge_detect", "--input", "examples/adsl_connection.lp", "-o", opt]
    if not opt.startswith("feild"):
        args += ["-o", "field=value"]
    one_line_error(run_cli(*args, cwd=REPO), *words)


def _missing_required():
    return run_cli("test", "edge_detect", "--input", "examples/adsl_connection.lp", cwd=REPO)


def test_option_rejected_by_the_udf():
    # Validation from the declaration, as Kapacitor's Init would see it.
    proc = _missing_required()
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-1] == (
        "Error: edge_detect: missing required option field (Field to watch; repeat the option "
        "to watch several, e.g. .field('value'))")


def test_option_rejected_by_the_udf_is_a_single_line():
    one_line_error(_missing_required(), "missing required option field")


def test_unreadable_file(tmp_path):
    one_line_error(run_cli("test", "edge_detect", "--input", str(tmp_path / "nope.lp"),
                           "-o", "field=value"), "nope.lp")
    one_line_error(run_cli("test", "edge_detect", "--input", str(tmp_path),
                           "-o", "field=value"), str(tmp_path), "directory")
    binary = tmp_path / "binary.lp"
    binary.write_bytes(b"\xff\xfe\x00 not text")
    one_line_error(run_cli("test", "edge_detect", "--input", str(binary),
                           "-o", "field=value"), "binary.lp")


def test_file_without_read_permission(tmp_path):
    locked = tmp_path / "locked.lp"
    locked.write_text("m v=1 1\n")
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):
            pytest.skip("running as a user who can read mode-000 files (root)")
        one_line_error(run_cli("test", "edge_detect", "--input", str(locked),
                               "-o", "field=value"), "locked.lp")
    finally:
        locked.chmod(0o600)


def test_bad_timeout():
    one_line_error(run_cli("conf", "--timeout", "soon", "edge_detect"), "--timeout",
                   "not a duration")


def test_conf_without_names():
    one_line_error(run_cli("conf"), "--all")


def test_missing_argument_is_one_line_too():
    one_line_error(run_cli("info"), "Missing argument", "kapudf info --help")


# --- entry points -------------------------------------------------------------------------

def test_python_dash_m_works():
    proc = subprocess.run([sys.executable, "-m", "udfcollection", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    for cmd in ("list", "info", "conf", "run", "serve", "test"):
        assert f"  {cmd} " in proc.stdout
    version = subprocess.run([sys.executable, "-m", "udfcollection", "--version"],
                             capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and "kapudf" in version.stdout
