"""`kapudf conf --script PATH --name NAME`: the kapacitor.conf section for an agent script,
through the real CLI, parsed back as TOML."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from udfcollection.commands.run import _take_strict

SCRIPTS = Path(__file__).resolve().parent / "compat_scripts"


def test_script_section_runs_the_absolute_script_with_kapudf(cli, tmp_path) -> None:
    # A relative path, from another directory: the section must still be absolute.
    rel = os.path.relpath(SCRIPTS / "moving_avg.py", tmp_path)
    proc = cli("conf", "--script", rel, "--name", "movavg", "--timeout", "20s", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    conf = tomllib.loads(proc.stdout)
    entry = conf["udf"]["functions"]["movavg"]
    assert os.path.isabs(entry["prog"]) and Path(entry["prog"]).name == "kapudf"
    assert entry["args"] == ["run", str((SCRIPTS / "moving_avg.py").resolve())]
    assert entry["timeout"] == "20s"
    assert entry["env"] == {"KAPUDF_LOG_LEVEL": "info"}


def test_name_defaults_to_the_file_name_and_socket_dir_is_honoured(cli) -> None:
    proc = cli("conf", "--script", str(SCRIPTS / "mirror_server.py"), "--socket-dir",
               "/run/kapudf")
    assert proc.returncode == 0, proc.stderr
    entry = tomllib.loads(proc.stdout)["udf"]["functions"]["mirror_server"]
    assert entry == {"socket": "/run/kapudf/mirror_server.sock", "timeout": "10s"}
    assert "kapudf run " + str((SCRIPTS / "mirror_server.py").resolve()) in proc.stdout


def test_script_conf_usage_errors(cli) -> None:
    script = str(SCRIPTS / "moving_avg.py")
    for args, text in [
        (("--script", "does/not/exist.py"), "does not exist"),
        (("--name", "x"), "--name goes with --script"),
        (("--script", script, "--name", "bad-name"), "cannot be called from TICKscript"),
        (("edge_detect", "--script", script), "not both"),
    ]:
        proc = cli("conf", *args)
        assert proc.returncode == 2, args
        assert text in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_strict_may_follow_the_script() -> None:
    assert _take_strict(["a", "--strict"], False) == (["a"], True)
    assert _take_strict(["a"], True) == (["a"], True)
    assert _take_strict(["a"], False) == (["a"], False)
    # After `--` everything is the script's, including a literal --strict.
    assert _take_strict(["a", "--", "--strict"], False) == (["a", "--strict"], False)
