"""The Kapacitor UDF wire protocol: the generated messages and length-prefixed framing."""

from udfcollection.protocol import udf_pb2
from udfcollection.protocol.framing import (
    MAX_FRAME_LEN,
    FrameSplitter,
    ProtocolError,
    encode_frame,
    encode_varint,
)

__all__ = [
    "MAX_FRAME_LEN",
    "FrameSplitter",
    "ProtocolError",
    "encode_frame",
    "encode_varint",
    "udf_pb2",
]
