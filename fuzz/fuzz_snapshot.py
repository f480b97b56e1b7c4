"""atheris harness: arbitrary snapshot bytes restored into each stateful catalogue UDF.

Restore must succeed (a failing restore fails the task at every start), and the state it leaves
must never make the fixture's continuation lose more points than fresh state does. Uses the
committed fixtures in tests/fixtures/snapshots; seeds the corpus with their snapshots.
See fuzz/README.md.
"""

from __future__ import annotations

import copy
import json
import logging
import sys
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "support")]

with atheris.instrument_imports(include=["udfcollection"]):
    from udfcollection.offline import OfflineRunner

from test_state_snapshots import FIXTURE_FILES, _fuzz_case, options_of  # noqa: E402

logging.disable(logging.CRITICAL)
CASES = [_fuzz_case(p) for p in FIXTURE_FILES]


def one_input(data: bytes) -> None:
    if not data:
        return
    fx, cls, cont, fresh_dropped = CASES[data[0] % len(CASES)]
    runner = OfflineRunner(cls, options_of(fx))
    assert runner.restore(data[1:]), "restore answered success=false"
    runner.feed_requests(copy.deepcopy(cont))
    out = runner.finish()
    assert out.errors == []
    assert runner.handler.points_dropped <= fresh_dropped, "restored state broke processing"
    again = runner.snapshot()
    if again:
        json.loads(again)


def seed(corpus: Path) -> None:
    if corpus.is_dir() and not any(corpus.iterdir()):
        for i, (fx, *_rest) in enumerate(CASES):
            (corpus / fx["udf"]).write_bytes(bytes([i]) + fx["snapshot"].encode())


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        if not arg.startswith("-"):
            seed(Path(arg))
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
