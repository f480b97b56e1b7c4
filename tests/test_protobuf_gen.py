"""The committed udf_pb2.py is exactly what protoc makes of udf.proto, and it works at both ends
of the protobuf range pyproject.toml declares.

Other protobuf and grpcio-tools versions are installed with `pip install --target` into a cache
directory keyed by version (KAPUDF_TEST_CACHE, default: the system temp dir), and used from a
subprocess with that directory first on PYTHONPATH, so this environment's own protobuf is never
touched. Reruns reuse the cache. The tests skip, saying so, only when pip cannot reach a
package registry.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest

from udfcollection.testing import info_request, kapudf_command

REPO = Path(__file__).resolve().parents[1]
PROTO = "udfcollection/protocol/udf.proto"
GENERATED = REPO / "udfcollection" / "protocol" / "udf_pb2.py"
GRPC_TOOLS = "1.62.3"  # bundles protoc 25, which produced the committed file
OLDEST_PROTOBUF = "4.21.6"
NETWORK_TROUBLE = re.compile(
    r"NewConnectionError|Max retries exceeded|Temporary failure in name resolution|"
    r"Network is unreachable|Name or service not known|ProxyError|ConnectTimeout|"
    r"ReadTimeout|Connection refused|SSLError", re.I)


def cache_root() -> Path:
    return Path(os.environ.get("KAPUDF_TEST_CACHE")
                or Path(tempfile.gettempdir()) / "kapudf-test-pip")


def pip_target(key: str, *requirements: str, deps: bool = True) -> Path:
    """A directory with `requirements` installed (pip --target), cached under `key`."""
    final = cache_root() / key
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=final.parent))
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
           "--retries", "1", "--timeout", "30", "--target", str(work), *requirements]
    if not deps:
        cmd.insert(4, "--no-deps")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        text = proc.stdout + proc.stderr
        if NETWORK_TROUBLE.search(text):
            pytest.skip(f"pip cannot reach a package registry to install {requirements}: "
                        + text.strip().splitlines()[-1])
        pytest.fail(f"pip install {requirements} failed:\n{text}")
    try:
        work.rename(final)  # atomic: a half-finished install is never taken for a cached one
    except OSError:  # another run finished first
        shutil.rmtree(work, ignore_errors=True)
    return final


def run_with(path: Path, code: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(path), str(REPO)])
    env.pop("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", None)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def test_generated_module_matches_the_proto(tmp_path):
    tools = pip_target(f"grpcio-tools-{GRPC_TOOLS}", f"grpcio-tools=={GRPC_TOOLS}")
    code = ("import sys\nfrom grpc_tools import protoc\n"
            f"sys.exit(protoc.main(['protoc', '-I{REPO}', '--python_out={tmp_path}', "
            f"'{PROTO}']))")
    proc = run_with(tools, code)
    assert proc.returncode == 0, proc.stderr
    fresh = (tmp_path / PROTO).with_name("udf_pb2.py").read_bytes()
    assert fresh == GENERATED.read_bytes(), (
        "udf_pb2.py is out of date with udf.proto: regenerate it with grpcio-tools "
        f"{GRPC_TOOLS}: python -m grpc_tools.protoc -I. --python_out=. {PROTO}")


def test_generated_module_has_no_runtime_version_check():
    # What lets one generated file serve the whole protobuf range: newer protoc versions add
    # a check that refuses older runtimes.
    text = GENERATED.read_text()
    assert "runtime_version" not in text
    assert "ValidateProtobufRuntimeVersion" not in text


def test_declared_protobuf_range_is_the_tested_one():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert f"protobuf>={OLDEST_PROTOBUF},<8" in [d.replace(" ", "") for d in deps]


ROUND_TRIP = r"""
import google.protobuf as pb
from google.protobuf.internal import api_implementation
from udfcollection.protocol import udf_pb2
assert pb.__file__.startswith(TARGET), pb.__file__
r = udf_pb2.Request()
p = r.point
p.time = 1514979051065000000
p.name = "adsl"
p.group = "host=a"
p.dimensions.extend(["host"])
p.tags["host"] = "a"
p.fieldsDouble["x"] = 1.5
p.fieldsInt["n"] = -(2**40)
p.fieldsString["s"] = "SHOWTIME"
p.fieldsBool["b"] = True
data = r.SerializeToString()
back = udf_pb2.Request.FromString(data)
assert back == r and back.WhichOneof("message") == "point"
assert dict(back.point.fieldsInt) == {"n": -(2**40)}
# A point request is also a valid response (field 17 in both wrappers).
assert udf_pb2.Response.FromString(data).point == p
i = udf_pb2.Response()
i.info.wants = udf_pb2.BATCH
i.info.options["field"].valueTypes.append(udf_pb2.STRING)
assert udf_pb2.Response.FromString(i.SerializeToString()) == i
init = udf_pb2.Request()
o = init.init.options.add(name="hold")
o.values.add(type=udf_pb2.DURATION, durationValue=10**10)
assert udf_pb2.Request.FromString(init.SerializeToString()).init.options[0].values[0] \
    .WhichOneof("value") == "durationValue"
print(pb.__version__, api_implementation.Type())
"""


@pytest.mark.parametrize("which", ["oldest", "newest 7.x"])
def test_committed_module_works_across_the_protobuf_range(which):
    if which == "oldest":
        target = pip_target(f"protobuf-{OLDEST_PROTOBUF}", f"protobuf=={OLDEST_PROTOBUF}",
                            deps=False)
    else:
        # Keyed by day so "newest" follows new releases without reinstalling on every run.
        target = pip_target(f"protobuf-7.x-{datetime.date.today().isoformat()}",
                            "protobuf>=7,<8", deps=False)
    proc = run_with(target, f"TARGET = {str(target)!r}\n" + ROUND_TRIP)
    assert proc.returncode == 0, proc.stderr
    version, backend = proc.stdout.split()
    if which == "oldest":
        assert version == OLDEST_PROTOBUF
    else:
        assert version.startswith("7.")
    assert backend in ("upb", "cpp", "python")


def _info_stderr(env_extra: dict[str, str]) -> str:
    env = dict(os.environ)
    env.pop("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", None)
    env.update(env_extra)
    from udfcollection.protocol.framing import encode_frame

    proc = subprocess.run(kapudf_command("run", "edge_detect"),
                          input=encode_frame(info_request().SerializeToString()),
                          capture_output=True, env=env, timeout=60)
    assert proc.returncode == 0
    assert proc.stdout  # the Info answer
    return proc.stderr.decode()


def test_slow_protobuf_backend_warns_once():
    err = _info_stderr({"PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python"})
    lines = [ln for ln in err.splitlines() if "pure-Python backend" in ln]
    assert len(lines) == 1, err
    assert lines[0].startswith("WARNING ")


def test_fast_backend_does_not_warn():
    assert "pure-Python backend" not in _info_stderr({})
