"""Length-prefixed framing: an unsigned varint length (at most 32 bits) then the message body.

Kapacitor writes the length and the body in separate writes and never waits for replies, so
a reader must cope with frames split across reads and with many frames in one read.
"""

from __future__ import annotations

MAX_FRAME_LEN = 64 * 1024 * 1024
"""Longest frame body accepted. Kapacitor never sends anything close; a larger length means the
stream is corrupt (or not the protocol at all), and trusting it would buffer without bound."""

_MAX_VARINT_BYTES = 5


class ProtocolError(Exception):
    """The byte stream is not valid framing. `offset` is the absolute byte offset of the frame
    (its length prefix) where the problem was found."""

    def __init__(self, message: str, offset: int):
        super().__init__(f"{message} at byte offset {offset}")
        self.reason = message
        self.offset = offset
        # Frames completed in the same `feed` call before the bad one: still valid, in order.
        self.frames: list[bytes] = []
        self.offsets: list[int] = []


def encode_varint(value: int) -> bytes:
    """Encode a non-negative int as a protobuf base-128 varint."""
    if value < 0x80:
        return _SMALL[value]
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


SMALL_VARINTS = [bytes([i]) for i in range(0x80)]
_SMALL = SMALL_VARINTS


def encode_frame(body: bytes) -> bytes:
    """Prefix a serialized message with its varint length."""
    return encode_varint(len(body)) + body


class FrameSplitter:
    """Incremental splitter: feed it raw reads, get back complete frame bodies.

    Contract: `feed` returns every frame completed by the data so far, in order, and keeps any
    incomplete tail for the next call. It raises ProtocolError for a varint longer than 5 bytes,
    one that does not fit in 32 bits, or a length over `max_len`; after that the splitter must
    not be fed again. `offsets` (when `track_offsets`) gives each returned frame's absolute
    offset so later stages can report where a bad message started.
    """

    __slots__ = ("_base", "_held", "_need", "_parts", "_tail", "max_len", "small_frames")

    def __init__(self, max_len: int = MAX_FRAME_LEN):
        self._tail = b""
        self._base = 0  # absolute offset of the first byte not yet returned
        self._parts: list[bytes] = []  # a large incomplete frame, collected without copying
        self._held = 0
        self._need = 0
        self.max_len = max_len
        # Set when a frame under 16 bytes was returned (a keepalive is 4 to 13 bytes), so a
        # reader looking for keepalives can skip scanning reads that hold none. The caller
        # resets it.
        self.small_frames = False

    @property
    def pending(self) -> int:
        """Bytes held of a frame not yet complete."""
        return self._held if self._need else len(self._tail)

    @property
    def offset(self) -> int:
        """Absolute offset of the first byte not yet returned in a frame."""
        return self._base

    def feed(self, data: bytes) -> tuple[list[bytes], list[int]]:
        frames: list[bytes] = []
        offsets: list[int] = []
        try:
            self._split(data, frames, offsets)
        except ProtocolError as exc:
            # The frames before the bad one were sent in good faith: let the caller process
            # them before reporting the error.
            exc.frames, exc.offsets = frames, offsets
            raise
        return frames, offsets

    def _split(self, data: bytes, frames: list[bytes], offsets: list[int]) -> None:
        if self._need:
            # Still collecting one large frame: do not rescan or re-copy what we hold.
            self._parts.append(data)
            self._held += len(data)
            if self._held < self._need:
                return
            data = b"".join(self._parts)
            self._parts = []
            self._held = self._need = 0
            buf = data
        else:
            buf = self._tail + data if self._tail else data
        n = len(buf)
        pos = 0
        base = self._base
        max_len = self.max_len
        append = frames.append
        oappend = offsets.append
        # The fast paths skip the max_len check, valid only when no 2-byte length can exceed it.
        fast = max_len >= 0x3FFF
        while pos < n:
            if fast:
                b0 = buf[pos]
                if b0 < 0x80:
                    # Frames under 128 bytes (small points, keepalives).
                    end = pos + 1 + b0
                    if end > n:
                        break
                    if b0 < 16:
                        self.small_frames = True
                    append(buf[pos + 1:end])
                    oappend(base + pos)
                    pos = end
                    continue
                if pos + 1 < n and buf[pos + 1] < 0x80:
                    # Frames under 16 KiB: most points.
                    end = pos + 2 + ((b0 & 0x7F) | (buf[pos + 1] << 7))
                    if end > n:
                        break
                    append(buf[pos + 2:end])
                    oappend(base + pos)
                    pos = end
                    continue
            length = 0
            shift = 0
            i = pos
            while True:
                if i >= n:
                    # The varint itself is split across reads.
                    self._tail = buf[pos:]
                    self._base = base + pos
                    return
                b = buf[i]
                i += 1
                length |= (b & 0x7F) << shift
                if b < 0x80:
                    break
                shift += 7
                if i - pos >= _MAX_VARINT_BYTES:
                    raise ProtocolError("length varint longer than 5 bytes", base + pos)
            if length > 0xFFFFFFFF:
                raise ProtocolError("length varint does not fit in 32 bits", base + pos)
            if length > max_len:
                raise ProtocolError(
                    f"frame length {length} exceeds the {max_len}-byte limit", base + pos
                )
            end = i + length
            if end > n:
                break
            if length < 16:
                self.small_frames = True
            append(buf[i:end])
            oappend(base + pos)
            pos = end
        if pos < n:
            tail = buf[pos:]
            self._base = base + pos
            need = _frame_size(tail)
            if need > _COLLECT_AT and need > len(tail):
                self._tail = b""
                self._parts = [tail]
                self._held = len(tail)
                self._need = need
            else:
                self._tail = tail
        else:
            self._tail = b""
            self._base = base + pos


_COLLECT_AT = 1 << 20  # frames larger than this are collected in parts, not by re-copying


def _frame_size(buf: bytes) -> int:
    """Total size (prefix + body) of the frame starting at buf[0], or 0 if its length
    prefix is not complete yet. Only called on a tail that already passed validation."""
    length = 0
    shift = 0
    for i, b in enumerate(buf[:_MAX_VARINT_BYTES]):
        length |= (b & 0x7F) << shift
        if b < 0x80:
            return i + 1 + length
        shift += 7
    return 0
