"""Property tests of the frame splitter against an independent reference decoder.

The reference (tests/support/reference_framing.py) decodes a whole byte string in one go, the
simplest way possible (one byte at a time, straight from the protocol description: unsigned
base-128 varint length, at most 5 bytes and 32 bits, then the body). The splitter must agree
with it however the same bytes are cut into reads.
"""

from __future__ import annotations

import itertools
import time

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from reference_framing import reference_decode

from udfcollection.protocol.framing import (
    MAX_FRAME_LEN,
    FrameSplitter,
    ProtocolError,
    encode_frame,
    encode_varint,
)

SETTINGS = settings(max_examples=300, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


def feed_in_chunks(data: bytes, cuts: list[int], max_len: int = MAX_FRAME_LEN):
    sp = FrameSplitter(max_len)
    frames, offsets = [], []
    bounds = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    for a, b in itertools.pairwise(bounds):
        try:
            f, o = sp.feed(data[a:b])
        except ProtocolError as exc:
            # Frames completed before the bad one in the same read are still valid.
            frames += getattr(exc, "frames", [])
            offsets += getattr(exc, "offsets", [])
            return frames, offsets, exc.offset, sp
        frames += f
        offsets += o
    return frames, offsets, None, sp


bodies = st.lists(st.one_of(st.binary(max_size=40), st.binary(min_size=120, max_size=400)),
                  max_size=12)


@SETTINGS
@given(bodies, st.lists(st.integers(min_value=0), max_size=30))
def test_valid_frames_survive_any_split(body_list, cuts):
    data = b"".join(encode_frame(b) for b in body_list)
    frames, offsets, err, sp = feed_in_chunks(data, cuts)
    assert err is None
    assert frames == body_list
    expected_offsets, pos = [], 0
    for b in body_list:
        expected_offsets.append(pos)
        pos += len(encode_frame(b))
    assert offsets == expected_offsets
    assert sp.pending == 0
    assert sp.offset == len(data)


@SETTINGS
@given(st.binary(max_size=600), st.lists(st.integers(min_value=0), max_size=20),
       st.sampled_from([MAX_FRAME_LEN, 300, 10]))
@example(b"\x80\x80\x80\x80\x80\x00", [], MAX_FRAME_LEN)  # 6-byte varint
@example(b"\xff\xff\xff\xff\x1f", [], MAX_FRAME_LEN)  # 35-bit length
@example(b"\x02ab\x80\x80\x80\x80\x80", [3], MAX_FRAME_LEN)  # good frame, then bad varint
@example(b"\x01a\x0bxx", [], 10)  # good frame, then one over max_len
def test_arbitrary_bytes_match_reference(data, cuts, max_len):
    frames, offsets, err, sp = feed_in_chunks(data, cuts, max_len)
    ref_frames, ref_offsets, ref_err, leftover = reference_decode(data, max_len)
    assert frames == ref_frames
    assert offsets == ref_offsets
    assert err == ref_err
    if err is None:
        assert sp.pending == leftover
        assert sp.offset == len(data) - leftover


def test_error_keeps_frames_completed_earlier_in_the_same_read():
    """Regression: frames before a bad length in one read used to be lost with the error."""
    data = encode_frame(b"one") + encode_frame(b"two") + b"\xff\xff\xff\xff\xff\x01"
    sp = FrameSplitter()
    with pytest.raises(ProtocolError) as info:
        sp.feed(data)
    assert info.value.frames == [b"one", b"two"]
    assert info.value.offsets == [0, 4]
    assert info.value.offset == 8


def test_huge_length_prefix_buffers_only_what_arrived():
    """A prefix claiming 60 MiB holds only the bytes actually read, not 60 MiB up front."""
    sp = FrameSplitter()
    prefix = encode_varint(60 << 20)
    frames, _ = sp.feed(prefix + b"x" * 1000)
    assert frames == []
    assert sp.pending == len(prefix) + 1000


def test_big_frame_in_small_reads_is_linear():
    """Regression: a large frame arriving in 64 KiB reads was re-copied on every read
    (quadratic: a 60 MiB frame took ~19 s here, longer than a typical keepalive timeout,
    during which the reader thread answered no keepalive). The bound is generous: linear
    accumulation takes well under 0.5 s for 48 MiB on this machine."""
    body = b"y" * (48 << 20)
    data = encode_frame(body)
    sp = FrameSplitter()
    got = []
    t0 = time.perf_counter()
    for i in range(0, len(data), 65536):
        got += sp.feed(data[i:i + 65536])[0]
    elapsed = time.perf_counter() - t0
    assert len(got) == 1 and len(got[0]) == len(body)
    assert elapsed < 4.0, f"48 MiB frame took {elapsed:.1f}s to assemble"
