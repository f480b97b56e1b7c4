"""Reading snapshot fixtures (tests/fixtures/snapshots/v<N>/<udf>.json): shared by the tests
that restore them and by the script that fills them in (make_fixture.py)."""

from __future__ import annotations

import json
from pathlib import Path

from udfcollection import registry
from udfcollection.lineprotocol import parse_lines
from udfcollection.offline import OfflineRunner, requests_for


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def options_of(fx: dict) -> list:
    return [(name, [tuple(v) for v in values]) for name, values in fx["options"]]


def points(fx: dict, key: str) -> list:
    return list(parse_lines(fx[key], precision=fx.get("precision", "ns")))


def project(fx: dict, pts: list) -> list:
    """Keep only the fields the fixture compares (`compare_fields`, for outputs that depend on a
    shipped model's exact numbers); all fields when it names none."""
    keep = fx.get("compare_fields")
    if keep:
        for p in pts:
            p.fields = {k: v for k, v in p.fields.items() if k in keep}
    return pts


def run_through(fx: dict, keys: list[str], snapshot_after: str | None = None):
    """Run the fixture's inputs through one fresh instance; returns (output points of the last
    key, snapshot bytes taken after `snapshot_after`)."""
    cls = registry.get(fx["udf"])
    runner = OfflineRunner(cls, options_of(fx))
    snap = b""
    out = []
    for key in keys:
        runner.collect()
        before = len(runner.output.points)
        runner.feed_requests(requests_for(cls, points(fx, key), fx.get("group_by", ())))
        runner.collect()
        out = runner.output.points[before:]
        if key == snapshot_after:
            snap = runner.snapshot()
    return out, snap
