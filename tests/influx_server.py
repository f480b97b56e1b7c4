"""A real InfluxDB 1.x server for tests, on 127.0.0.1 with a throw-away data directory.

`running()` finds `influxd`; when it is missing and we are root with apt-get (a fresh CI
machine), it installs Debian's `influxdb` package first (about 5 s with package lists present).
It then starts `influxd` with its own config (free ports, temp dirs, no reporting, no
_internal monitoring) and waits until /ping answers. Where influxd can be neither installed
nor started, it calls `pytest.skip` with the reason, so the skip is visible in the test report.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

INSTALL_LOCK = Path(tempfile.gettempdir()) / "kapudf-influxdb-install.lock"


def _tail(text: str, n: int = 400) -> str:
    text = text.strip()
    return text if len(text) <= n else "..." + text[-n:]


def find_or_install_influxd() -> str:
    """Path of influxd, installing Debian's package when possible; pytest.skip otherwise."""
    path = shutil.which("influxd")
    if path:
        return path
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("influxd is not installed and cannot be installed here (needs root and "
                    "apt-get: apt-get install influxdb)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # Another test process may be installing at the same time; apt would refuse the second.
    with INSTALL_LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = shutil.which("influxd")
        if path:
            return path
        steps = (["apt-get", "update", "-q"],
                 ["apt-get", "install", "-y", "-q", "--no-install-recommends", "influxdb"])
        for cmd in steps:
            try:
                res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=540)
            except (OSError, subprocess.TimeoutExpired) as exc:
                pytest.skip(f"could not install influxdb ({' '.join(cmd)}): {exc}")
            if res.returncode != 0:
                pytest.skip(f"could not install influxdb ({' '.join(cmd)} exited "
                            f"{res.returncode}): {_tail(res.stderr or res.stdout)}")
    path = shutil.which("influxd") or ("/usr/bin/influxd" if Path("/usr/bin/influxd").exists()
                                       else None)
    if not path:
        pytest.skip("installed the influxdb package but found no influxd")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CONFIG = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{root}/meta"
  logging-enabled = false

[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  query-log-enabled = false
  wal-fsync-delay = "0s"

[monitor]
  store-enabled = false

[continuous_queries]
  enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  log-enabled = false
"""


@dataclass
class InfluxServer:
    url: str
    port: int
    version: str
    proc: subprocess.Popen
    root: Path

    def client(self, database: str | None = None):
        from influxdb import InfluxDBClient

        return InfluxDBClient(host="127.0.0.1", port=self.port, database=database,
                              headers={"Accept": "application/json"}, retries=1, timeout=30)


def _ping(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url + "/ping", timeout=1) as resp:
            if resp.status == 204:
                return resp.headers.get("X-Influxdb-Version", "?")
    except OSError:
        return None
    return None


@contextlib.contextmanager
def running(start_timeout: float = 60.0) -> Iterator[InfluxServer]:
    """Start a private influxd and yield it; stop it and delete its data on exit."""
    influxd = find_or_install_influxd()
    root = Path(tempfile.mkdtemp(prefix="kapudf-influxd-"))
    http_port, rpc_port = free_port(), free_port()
    conf = root / "influxdb.conf"
    conf.write_text(CONFIG.format(root=root, http_port=http_port, rpc_port=rpc_port))
    log = (root / "influxd.log").open("wb")
    proc = subprocess.Popen([influxd, "-config", str(conf)], stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{http_port}"
    try:
        deadline = time.monotonic() + start_timeout
        version = None
        while version is None:
            if proc.poll() is not None:
                pytest.skip(f"influxd exited with status {proc.returncode} at start: "
                            f"{_tail((root / 'influxd.log').read_text(errors='replace'))}")
            if time.monotonic() > deadline:
                pytest.skip(f"influxd did not answer /ping within {start_timeout:.0f} s: "
                            f"{_tail((root / 'influxd.log').read_text(errors='replace'))}")
            version = _ping(url)
            if version is None:
                time.sleep(0.1)
        yield InfluxServer(url, http_port, version, proc, root)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        shutil.rmtree(root, ignore_errors=True)
