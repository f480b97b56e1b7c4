"""atheris harness: byte streams into the agent's protocol loop, judged by the test oracle.

Each input runs through the real Connection reader thread and `serve` with edge_detect, exactly
as tests/test_fuzz_agent.py's in-process test does, and must satisfy the same oracle (every
management request answered in order and exit 0, or exactly one ErrorResponse, last, exit 1).
Coverage-guided, so it reaches corners hypothesis's mutations do not. See fuzz/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "support")]

with atheris.instrument_imports(include=["udfcollection"]):
    from udfcollection.agent.connection import Connection, FrameWriter
    from udfcollection.agent.runtime import serve
    from udfcollection.agent.udf_handler import UDFHandler
    from udfcollection.udfs.edge_detect import EdgeDetect

import logging  # noqa: E402

from test_fuzz_agent import SESSION_BYTES, check_output  # noqa: E402

logging.disable(logging.CRITICAL)


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    read_size = fdp.ConsumeIntInRange(1, 512)
    stream = fdp.ConsumeBytes(fdp.remaining_bytes())
    pos = [0]

    def read(_n: int) -> bytes:
        chunk = stream[pos[0]:pos[0] + read_size]
        pos[0] += len(chunk)
        return chunk

    out = bytearray()
    writer = FrameWriter(out.extend)
    conn = Connection(read, writer, heartbeat=30.0).start()
    code = serve(conn, UDFHandler(EdgeDetect))
    writer.flush()
    conn._thread.join(5)
    check_output(stream, bytes(out), code)


def seed(corpus: Path) -> None:
    """Put the valid session into an empty corpus directory (prefixed with one byte for the
    read size that FuzzedDataProvider takes first)."""
    if corpus.is_dir() and not any(corpus.iterdir()):
        (corpus / "session").write_bytes(b"\x40" + SESSION_BYTES)


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        if not arg.startswith("-"):
            seed(Path(arg))
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
