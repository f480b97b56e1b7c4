"""Inputs that once broke kapudf, rebuilt from their description (see README.md).

Each builder returns the exact bytes Kapacitor would have written to `kapudf run edge_detect`.
"""

from __future__ import annotations

import base64
import json

from udfcollection.protocol.framing import encode_frame
from udfcollection.testing import (
    info_request,
    init_request,
    keepalive_request,
    point_request,
    restore_request,
)


def _frames(*reqs) -> bytes:
    return b"".join(encode_frame(r.SerializeToString()) for r in reqs)


def _start() -> bytes:
    return _frames(info_request(), init_request([("field", [("string", "value")])]))


def _point(t: int, value: str = "up") -> bytes:
    return _frames(point_request(t, {"value": value}, tags={"host": "a"}, group_by=["host"]))


def _snapshot(group_state: dict) -> bytes:
    doc = {"format": "kapudf-snapshot", "version": 1, "udf": "edge_detect",
           "state_version": 1, "groups": [["host=a", group_state]]}
    return json.dumps(doc).encode()


def keepalives_after_bad_message() -> bytes:
    """The reader thread answered keepalives it read after an undecodable message, so answers
    could follow the ErrorResponse (fixed: FrameWriter.write_last closes the output)."""
    return (_start() + _point(1) + encode_frame(b"\xff")
            + _frames(*[keepalive_request(i) for i in range(500)]))


def good_frames_then_bad_varint_in_one_read() -> bytes:
    """Frames completed in the same read as a framing error were dropped with it, so the Info
    and Init before the garbage went unanswered (fixed in FrameSplitter/Connection)."""
    return _start() + _point(1) + b"\xff\xff\xff\xff\xff\xff"


def empty_request_frame() -> bytes:
    """A zero-length frame is a Request with no message set: corrupt, named as such."""
    return _start() + encode_frame(b"") + _point(1)


def restore_with_undecodable_point() -> bytes:
    """edge_detect's held point in a snapshot was decoded without a guard: a protobuf
    DecodeError escaped the restore and killed the process (fixed: any error in a snapshot
    means a fresh start)."""
    state = {"stable": ["up"], "since": 0, "cand": ["down"], "cand_time": 5,
             "cand_point": base64.b64encode(b"\xff\xff\xff\xff").decode()}
    return _start() + _frames(restore_request(_snapshot(state))) + _point(10, "down")


def restore_nested_too_deep() -> bytes:
    """JSON nested 100,000 deep made json.loads raise RecursionError, which killed the process
    (fixed: reported as a corrupt snapshot)."""
    data = b'{"format":"kapudf-snapshot","groups":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    return _start() + _frames(restore_request(data)) + _point(10)


def restore_with_wrongly_typed_state() -> bytes:
    """A snapshot whose `since` was text restored 'successfully', then every state change of
    the group failed and was dropped (fixed: edge_detect checks each state field)."""
    state = {"stable": ["up"], "since": "yesterday", "cand": None, "cand_time": None,
             "cand_point": None}
    return _start() + _frames(restore_request(_snapshot(state))) + _point(10, "down")


def restore_from_task_watching_two_fields() -> bytes:
    """State restored from a task that watched two fields made every point of the group fail
    the length check of the comparison (fixed: started over)."""
    state = {"stable": ["up", 1], "since": 0, "cand": ["down", 1], "cand_time": 5,
             "cand_point": None}
    good = dict(state, cand=None, cand_time=None)
    return _start() + _frames(restore_request(_snapshot(good))) + _point(10, "down") + _point(
        11, "up")


STREAMS = {f.__name__: f for f in (
    keepalives_after_bad_message, good_frames_then_bad_varint_in_one_read, empty_request_frame,
    restore_with_undecodable_point, restore_nested_too_deep, restore_with_wrongly_typed_state,
    restore_from_task_watching_two_fields,
)}
