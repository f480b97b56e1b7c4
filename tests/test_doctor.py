"""`kapudf doctor`: good and broken kapacitor.conf files, checked with real UDF processes and
real Unix sockets."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from udfcollection import doctor
from udfcollection.testing import kapudf_command

FAKE = str(Path(__file__).with_name("doctor_fake_udf.py"))
PY = sys.executable


def toml_list(items: list[str]) -> str:
    return json.dumps(items)  # a JSON array of strings is a TOML array of strings


def write_conf(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "kapacitor.conf"
    p.write_text("[udf]\n[udf.functions]\n" + body)
    return p


def entry(name: str, prog: str | None = None, args: list[str] | None = None,
          timeout: str | None = '"10s"', extra: str = "") -> str:
    lines = [f"[udf.functions.{name}]"]
    if prog is not None:
        lines.append(f'prog = "{prog}"')
    if args is not None:
        lines.append(f"args = {toml_list(args)}")
    if timeout is not None:
        lines.append(f"timeout = {timeout}")
    return "\n".join(lines) + "\n" + extra + "\n"


def run_doctor(conf: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(kapudf_command("doctor", str(conf), *extra), capture_output=True,
                          text=True, timeout=120)


def findings(report: doctor.Report, udf: str) -> dict[str, doctor.Finding]:
    return {f.check: f for f in report.findings if f.udf == udf}


EDGE = entry("edge_detect", PY, ["-m", "udfcollection", "run", "edge_detect"])


def test_good_conf_real_kapudf_process(tmp_path):
    conf = write_conf(tmp_path, EDGE)
    res = run_doctor(conf)
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    # edge_detect is stream -> stream; its Info lists its own options plus the common ones.
    from udfcollection.udfs.edge_detect import EdgeDetect

    n_opts = len(EdgeDetect.all_options())
    assert f"stream -> stream, {n_opts} options" in out
    assert "kapacitord would start" in out
    report = doctor.check_conf(str(conf))
    rows = findings(report, "edge_detect")
    assert rows["info"].status == doctor.OK
    assert rows["shutdown"].status == doctor.OK
    assert rows["timeout"].status == doctor.OK
    assert not report.failed


def test_protobuf_backend_reported(tmp_path):
    from google.protobuf.internal import api_implementation

    res = run_doctor(write_conf(tmp_path, EDGE))
    assert f"{api_implementation.Type()} backend" in res.stdout


def test_missing_prog(tmp_path):
    conf = write_conf(tmp_path, entry("gone", str(tmp_path / "no-such-kapudf"), ["run", "x"]))
    res = run_doctor(conf)
    assert res.returncode == 1
    assert "no-such-kapudf does not exist" in res.stdout
    assert "would NOT start" in res.stdout
    assert "Traceback" not in res.stderr


def test_prog_not_executable(tmp_path):
    script = tmp_path / "udf.py"
    script.write_text(f"#!{PY}\nprint('hi')\n")
    script.chmod(0o644)
    rows = findings(doctor.check_conf(str(write_conf(tmp_path, entry("u", str(script))))), "u")
    assert rows["prog"].status == doctor.FAIL
    assert "not executable" in rows["prog"].detail
    assert "chmod 755" in rows["prog"].fix


def test_missing_interpreter(tmp_path):
    script = tmp_path / "udf.py"
    script.write_text("#!/nonexistent/python3\n")
    script.chmod(0o755)
    rows = findings(doctor.check_conf(str(write_conf(tmp_path, entry("u", str(script))))), "u")
    assert rows["interpreter"].status == doctor.FAIL
    assert "/nonexistent/python3" in rows["interpreter"].detail
    assert "info" not in rows  # not started: kapacitord would fail the same way


def test_slow_info_fails_at_the_timeout(tmp_path):
    conf = write_conf(tmp_path, entry("slow", PY, [FAKE, "--sleep", "30"], '"1s"'))
    t0 = time.monotonic()
    res = run_doctor(conf)
    elapsed = time.monotonic() - t0
    assert res.returncode == 1
    assert "no answer to Info within the 1s timeout" in res.stdout
    # kapacitord gives up after the timeout, so doctor must not wait the 30 s either.
    assert elapsed < 20


def test_slow_info_is_fine_when_keepalives_are_answered(tmp_path):
    # kapacitord resets its deadline on any response: keepalives answered every timeout/2 keep a
    # slow Info alive (3 s of loading against a 2 s timeout).
    hs = doctor.process_handshake([PY, FAKE, "--sleep", "3", "--keepalives"],
                                  dict(os.environ), timeout=2.0)
    assert hs.ok, hs.error
    assert hs.keepalives >= 2
    assert hs.elapsed >= 3.0
    assert (hs.wants, hs.provides, hs.options) == ("stream", "batch", 1)
    without = doctor.process_handshake([PY, FAKE, "--sleep", "3"], dict(os.environ),
                                       timeout=2.0)
    assert not without.ok
    assert "timeout" in without.error


def test_half_the_timeout_is_a_warning(tmp_path):
    conf = write_conf(tmp_path, entry("halfslow", PY, [FAKE, "--sleep", "1.5"], '"2s"'))
    rows = findings(doctor.check_conf(str(conf)), "halfslow")
    assert rows["info"].status == doctor.WARN
    assert "over half the limit" in rows["info"].detail


def test_stray_print_on_stdout(tmp_path):
    conf = write_conf(tmp_path, entry("noisy", PY, [FAKE, "--junk"], '"1s"'))
    rows = findings(doctor.check_conf(str(conf)), "noisy")
    assert rows["info"].status == doctor.FAIL
    assert "not the UDF protocol" in rows["info"].detail
    assert "loading model" in rows["info"].detail


def test_process_that_ignores_eof_would_hang_startup(tmp_path):
    conf = write_conf(tmp_path, entry("hang", PY, [FAKE, "--hang"]))
    rows = findings(doctor.check_conf(str(conf), patience=1.0), "hang")
    assert rows["info"].status == doctor.OK
    assert rows["shutdown"].status == doctor.FAIL
    assert "start-up would hang" in rows["shutdown"].detail


def test_nonzero_exit_after_eof_is_a_warning(tmp_path):
    conf = write_conf(tmp_path, entry("bad_exit", PY, [FAKE, "--exit-code", "3"]))
    rows = findings(doctor.check_conf(str(conf)), "bad_exit")
    assert rows["shutdown"].status == doctor.WARN
    assert "status 3" in rows["shutdown"].detail


def test_misspelled_udf_name_in_args(tmp_path):
    conf = write_conf(tmp_path, entry("edge", PY, ["-m", "udfcollection", "run", "edge_detct"]))
    res = run_doctor(conf)
    assert res.returncode == 1
    assert "before answering Info" in res.stdout
    assert "edge_detect" in res.stdout  # kapudf's own stderr hint (did you mean ...) is shown


def test_missing_timeout(tmp_path):
    conf = write_conf(tmp_path, EDGE.replace('timeout = "10s"', 'timout = "10s"'))
    res = run_doctor(conf)
    assert res.returncode == 1
    assert "no timeout" in res.stdout
    assert "unknown key 'timout'" in res.stdout
    assert "did you mean 'timeout'?" in res.stdout


@pytest.mark.parametrize("value, message", [
    ('"1d"', "unknown unit 'd'"),
    ('"10"', "missing unit"),
    ('"1ms"', "too small"),
    ("10", "is an integer"),
])
def test_bad_timeouts(tmp_path, value, message):
    conf = write_conf(tmp_path, entry("e", PY, ["-m", "udfcollection", "run", "edge_detect"],
                                      value))
    report = doctor.check_conf(str(conf))
    rows = findings(report, "e")
    assert rows["timeout"].status == doctor.FAIL
    assert message in rows["timeout"].detail
    assert report.failed


def test_wrong_types_stop_the_configuration(tmp_path):
    conf = write_conf(tmp_path, entry("e", PY, None, extra='args = "run edge_detect"'))
    rows = findings(doctor.check_conf(str(conf)), "e")
    assert rows["args"].status == doctor.FAIL
    assert "array of strings" in rows["args"].detail


def test_socket_combined_with_prog(tmp_path):
    conf = write_conf(tmp_path, entry("both", "/bin/true", extra=f'socket = "{tmp_path}/x.sock"'))
    res = run_doctor(conf)
    assert res.returncode == 1
    assert "socket is combined with prog" in res.stdout


def test_neither_prog_nor_socket(tmp_path):
    rows = findings(doctor.check_conf(str(write_conf(tmp_path, entry("none")))), "none")
    assert rows["mode"].status == doctor.FAIL


def test_stale_socket(tmp_path):
    path = tmp_path / "weld.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()  # the file stays, nobody listens: what a crashed server leaves behind
    conf = write_conf(tmp_path, entry("weld", extra=f'socket = "{path}"'))
    res = run_doctor(conf)
    assert res.returncode == 1
    assert "is stale" in res.stdout
    assert "kapudf serve" in res.stdout


def test_missing_socket(tmp_path):
    conf = write_conf(tmp_path, entry("weld", extra=f'socket = "{tmp_path}/none.sock"'))
    rows = findings(doctor.check_conf(str(conf)), "weld")
    assert rows["socket"].status == doctor.FAIL
    assert "does not exist" in rows["socket"].detail


def test_live_socket_answers_info(tmp_path):
    sock_dir = tmp_path / "sockets"
    server = subprocess.Popen(kapudf_command("serve", "--socket-dir", str(sock_dir),
                                             "edge_detect"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        path = sock_dir / "edge_detect.sock"
        deadline = time.monotonic() + 30
        while not path.exists():
            assert server.poll() is None, server.stderr.read().decode()
            assert time.monotonic() < deadline, "kapudf serve did not create its socket"
            time.sleep(0.05)
        conf = write_conf(tmp_path, entry("edge_detect", extra=f'socket = "{path}"'))
        rows = findings(doctor.check_conf(str(conf)), "edge_detect")
        assert rows["socket"].status == doctor.OK
        assert rows["info"].status == doctor.OK, rows["info"].detail
        assert "stream -> stream" in rows["info"].detail
        assert rows["shutdown"].status == doctor.OK  # the server closed its end after ours
    finally:
        server.terminate()
        server.wait(30)


def _has_user(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
@pytest.mark.skipif(not _has_user("nobody"), reason="no user 'nobody' on this machine")
def test_service_user_cannot_reach_prog(tmp_path):
    # pytest's tmp_path is private to root (0700): another user cannot reach a program there,
    # which is what happens to a venv inside /root when kapacitord runs as `kapacitor`.
    script = tmp_path / "udf.sh"
    script.write_text("#!/bin/sh\nexec cat\n")
    script.chmod(0o755)
    conf = write_conf(tmp_path, entry("u", str(script)))
    res = run_doctor(conf, "--user", "nobody")
    assert res.returncode == 1
    assert "user nobody cannot run" in res.stdout
    # The handshake ran as nobody too, and failed the way kapacitord would.
    assert "Permission denied" in res.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
@pytest.mark.skipif(not _has_user("nobody"), reason="no user 'nobody' on this machine")
def test_handshake_runs_as_the_service_user():
    import pwd
    import shutil
    import tempfile

    # /bin/sh is reachable by anyone; it reports who it runs as, then answers Info by echoing
    # the request (an empty InfoRequest frame is also a valid empty InfoResponse frame).
    shared = Path(tempfile.mkdtemp(prefix="kapudf-doctor-"))  # under /tmp: reachable by nobody
    try:
        shared.chmod(0o777)
        ids = shared / "ids.txt"
        argv = ["/bin/sh", "-c", f"id -u > {ids}; id -g >> {ids}; exec cat"]
        hs = doctor.process_handshake(argv, {"PATH": doctor.SERVICE_PATH}, 5.0, user="nobody")
        assert hs.ok, hs.error
        pw = pwd.getpwnam("nobody")
        assert ids.read_text().split() == [str(pw.pw_uid), str(pw.pw_gid)]
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def test_toml_syntax_error(tmp_path):
    conf = tmp_path / "kapacitor.conf"
    conf.write_text('[udf.functions.x]\nprog = "/bin/true\n')
    res = run_doctor(conf)
    assert res.returncode == 1
    assert "not valid TOML" in res.stdout
    assert "line 2" in res.stdout


def test_missing_conf_file_is_a_usage_error(tmp_path):
    res = run_doctor(tmp_path / "nope.conf")
    assert res.returncode == 2
    assert "is not a file" in res.stderr
    assert "Traceback" not in res.stderr


def test_unknown_user_is_a_usage_error(tmp_path):
    res = run_doctor(write_conf(tmp_path, EDGE), "--user", "no-such-user-kapudf")
    assert res.returncode == 2
    assert "no user 'no-such-user-kapudf'" in res.stderr


@pytest.mark.parametrize("text, ns", [
    ("10s", 10_000_000_000), ("1m30s", 90_000_000_000), ("1.5h", 5_400_000_000_000),
    ("500ms", 500_000_000), ("250us", 250_000), ("250µs", 250_000), ("0", 0),
    ("-2s", -2_000_000_000), (".5s", 500_000_000),
])
def test_go_durations(text, ns):
    assert doctor.parse_go_duration(text) == ns


@pytest.mark.parametrize("text", ["10", "1d", "", "s", "1w", "10 s", "abc", "1.s5"])
def test_go_duration_errors(text):
    with pytest.raises(ValueError, match="time: "):
        doctor.parse_go_duration(text)


def test_render_wraps_to_a_terminal_and_not_to_a_pipe(tmp_path):
    conf = write_conf(tmp_path, entry("none", extra='timout = "1s"'))
    report = doctor.check_conf(str(conf))
    flat = doctor.render(report)
    narrow = doctor.render(report, width=70)
    assert max(len(ln) for ln in narrow.splitlines()) <= 70
    assert max(len(ln) for ln in flat.splitlines()) > 70
    # Same text either way, just laid out differently (a long path may be cut mid-word).
    assert "".join(narrow.split()) == "".join(flat.split())
    assert flat.splitlines()[-1].endswith("kapacitord would NOT start")
