"""atheris harness: FrameSplitter against the reference decoder, any bytes, any read sizes.
See fuzz/README.md."""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "support")]

with atheris.instrument_imports(include=["udfcollection"]):
    from udfcollection.protocol.framing import MAX_FRAME_LEN

from reference_framing import reference_decode  # noqa: E402
from test_fuzz_framing import feed_in_chunks  # noqa: E402


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    max_len = fdp.PickValueInList([MAX_FRAME_LEN, 300, 10, 0x3FFF, 0x4000])
    cuts = [fdp.ConsumeIntInRange(0, 4096) for _ in range(fdp.ConsumeIntInRange(0, 16))]
    stream = fdp.ConsumeBytes(fdp.remaining_bytes())
    frames, offsets, err, sp = feed_in_chunks(stream, cuts, max_len)
    ref_frames, ref_offsets, ref_err, leftover = reference_decode(stream, max_len)
    assert frames == ref_frames, "frames differ from the reference decoder"
    assert offsets == ref_offsets, "offsets differ from the reference decoder"
    assert err == ref_err, f"error offset {err} != reference {ref_err}"
    if err is None:
        assert sp.pending == leftover


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
