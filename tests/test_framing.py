"""Framing unit tests: varint lengths, frames split anywhere, many per chunk, offsets, errors."""

from __future__ import annotations

import pytest
from google.protobuf.internal.decoder import _DecodeVarint
from google.protobuf.internal.encoder import _VarintBytes

from udfcollection.protocol.framing import (
    MAX_FRAME_LEN,
    FrameSplitter,
    ProtocolError,
    encode_frame,
    encode_varint,
)


@pytest.mark.parametrize(("value", "encoded"), [
    (0, b"\x00"), (1, b"\x01"), (127, b"\x7f"), (128, b"\x80\x01"), (300, b"\xac\x02"),
    (16383, b"\xff\x7f"), (16384, b"\x80\x80\x01"), (2**32 - 1, b"\xff\xff\xff\xff\x0f"),
])
def test_varint_known_values(value, encoded):
    # 300 -> AC 02 is the worked example of protobuf's encoding guide.
    assert encode_varint(value) == encoded


@pytest.mark.parametrize("value", [0, 5, 127, 128, 255, 999, 2**14, 2**21 + 7, 2**28 + 3,
                                   2**32 - 1])
def test_varint_matches_protobuf_reference(value):
    assert encode_varint(value) == _VarintBytes(value)
    assert _DecodeVarint(encode_varint(value), 0) == (value, len(encode_varint(value)))


BODIES = [b"", b"a", b"hello", bytes(range(256)) * 3, b"x" * 127, b"y" * 128, b"z" * 20000]
STREAM = b"".join(encode_frame(b) for b in BODIES)
OFFSETS = []
_pos = 0
for _b in BODIES:
    OFFSETS.append(_pos)
    _pos += len(_VarintBytes(len(_b))) + len(_b)


def test_many_frames_in_one_chunk():
    frames, offsets = FrameSplitter().feed(STREAM)
    assert frames == BODIES
    assert offsets == OFFSETS


def test_split_at_every_position():
    for cut in range(len(STREAM) + 1):
        sp = FrameSplitter()
        f1, o1 = sp.feed(STREAM[:cut])
        f2, o2 = sp.feed(STREAM[cut:])
        assert f1 + f2 == BODIES, cut
        assert o1 + o2 == OFFSETS, cut
        assert sp.pending == 0


def test_byte_by_byte():
    sp = FrameSplitter()
    frames, offsets = [], []
    for i in range(len(STREAM)):
        f, o = sp.feed(STREAM[i:i + 1])
        frames += f
        offsets += o
    assert frames == BODIES
    assert offsets == OFFSETS
    assert sp.pending == 0


def test_pending_and_offset_track_an_incomplete_frame():
    sp = FrameSplitter()
    sp.feed(encode_frame(b"abc") + b"\x05ab")
    assert sp.offset == 4  # the next frame starts after 1 length byte + 3 body bytes
    assert sp.pending == 3
    frames, offsets = sp.feed(b"cde")
    assert frames == [b"abcde"] and offsets == [4]
    assert sp.pending == 0 and sp.offset == 10


def test_varint_longer_than_five_bytes_is_an_error_with_offset():
    good = encode_frame(b"ok") + encode_frame(b"fine")  # 3 + 5 bytes
    with pytest.raises(ProtocolError) as info:
        FrameSplitter().feed(good + b"\x80\x80\x80\x80\x80\x01")
    assert info.value.offset == 8
    assert "longer than 5 bytes" in str(info.value)
    assert "byte offset 8" in str(info.value)
    # The frames before the bad one are handed over with the error.
    assert info.value.frames == [b"ok", b"fine"]
    assert info.value.offsets == [0, 3]


def test_varint_error_detected_across_reads():
    sp = FrameSplitter()
    assert sp.feed(encode_frame(b"q") + b"\x80\x80") == ([b"q"], [0])
    with pytest.raises(ProtocolError) as info:
        for _ in range(4):
            sp.feed(b"\x80")
    assert info.value.offset == 2
    assert info.value.frames == []


def test_five_byte_varint_over_32_bits_is_an_error():
    with pytest.raises(ProtocolError, match="32 bits"):
        FrameSplitter().feed(b"\xff\xff\xff\xff\x1f")  # 2**35 - 1


def test_length_over_the_cap_is_an_error():
    too_long = _VarintBytes(MAX_FRAME_LEN + 1)
    with pytest.raises(ProtocolError) as info:
        FrameSplitter().feed(encode_frame(b"abc") + too_long)
    assert info.value.offset == 4
    assert f"{MAX_FRAME_LEN + 1}" in str(info.value)
    assert info.value.frames == [b"abc"]


def test_length_at_the_cap_is_accepted_and_waits_for_the_body():
    sp = FrameSplitter()
    assert sp.feed(_VarintBytes(MAX_FRAME_LEN) + b"partial") == ([], [])
    assert sp.pending == len(_VarintBytes(MAX_FRAME_LEN)) + 7


def test_cap_is_configurable():
    sp = FrameSplitter(max_len=10)
    assert sp.feed(encode_frame(b"x" * 10)) == ([b"x" * 10], [0])
    with pytest.raises(ProtocolError):
        sp.feed(encode_frame(b"x" * 11))


def test_cap_is_64_mib():
    assert MAX_FRAME_LEN == 64 * 1024 * 1024
