"""An independent reference decoder for the frame stream, written the simplest way possible
(one byte at a time, straight from the protocol description: unsigned base-128 varint length,
at most 5 bytes and 32 bits, then the body). The property tests and fuzz harnesses check the
real splitter and the running agent against it."""

from __future__ import annotations

from udfcollection.protocol.framing import MAX_FRAME_LEN


def reference_decode(data: bytes, max_len: int = MAX_FRAME_LEN):
    """(frames, offsets, error_offset or None, leftover byte count)."""
    frames, offsets = [], []
    pos = 0
    while pos < len(data):
        start = pos
        length = 0
        shift = 0
        nbytes = 0
        while True:
            if pos >= len(data):
                if nbytes >= 5:
                    return frames, offsets, start, 0
                return frames, offsets, None, len(data) - start  # varint incomplete
            b = data[pos]
            pos += 1
            nbytes += 1
            length |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                break
            if nbytes >= 5:
                return frames, offsets, start, 0
        if length >= 1 << 32 or length > max_len:
            return frames, offsets, start, 0
        if pos + length > len(data):
            return frames, offsets, None, len(data) - start
        frames.append(data[pos:pos + length])
        offsets.append(start)
        pos += length
    return frames, offsets, None, 0
