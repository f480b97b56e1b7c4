"""Shared fixtures: test-only UDFs on the path, wire clients that always get cleaned up, short
socket directories, and the real CLI in a subprocess. Plain helpers live in
tests/support/kapudf_testkit.py (import them: this directory is put on sys.path here)."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

SUPPORT = Path(__file__).resolve().parent / "support"
if str(SUPPORT) not in sys.path:
    sys.path.insert(0, str(SUPPORT))

from kapudf_testkit import run_cli, support_env  # noqa: E402

from udfcollection.testing import WireClient  # noqa: E402


@pytest.fixture
def wire() -> Iterator[Callable[..., WireClient]]:
    """Factory: `wire("edge_detect")` or `wire("kapudf_test_udfs:Counter", env={...})` starts
    `kapudf run NAME` with the test-only UDFs importable; every client is killed and closed at
    teardown."""
    clients: list[WireClient] = []

    def start(name: str, *extra: str, env: dict[str, str] | None = None) -> WireClient:
        c = WireClient.for_udf(name, *extra, env=support_env(env))
        clients.append(c)
        return c

    yield start
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def sockdir() -> Iterator[Path]:
    """A short directory for Unix sockets (socket paths are limited to about 100 bytes, which
    pytest's tmp_path can exceed)."""
    d = Path(tempfile.mkdtemp(prefix="kapudf-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def cli() -> Callable:
    """`cli("list", "--json")` runs the real CLI in a subprocess (CompletedProcess, text)."""
    return run_cli
