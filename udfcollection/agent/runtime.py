"""The protocol loop: dispatch frames from a Connection to a Handler, answer, flush.

Error policy, in one place:
- framing or message corruption -> one ErrorResponse naming the problem and byte offset, exit 1;
- a handler raising FatalError (only when the user asked for it, e.g. onError=fail) -> one
  ErrorResponse with its text, exit 1;
- everything else (bad points, exceptions in UDF code) is the handler's to log and survive.
"""

from __future__ import annotations

import logging

from google.protobuf.message import DecodeError

from udfcollection.agent.connection import Connection, FrameWriter
from udfcollection.protocol import udf_pb2
from udfcollection.protocol.framing import ProtocolError

log = logging.getLogger("udfcollection.agent")

POINT_TAG = b"\x8a\x01"  # field 17, length-delimited: a Request (or Response) holding a point


class FatalError(Exception):
    """Stop the task: the text is sent to Kapacitor in an ErrorResponse."""


class Handler:
    """What the protocol loop drives. Management methods return the Response to send; data
    methods write their output frames to `out` themselves."""

    def info(self) -> udf_pb2.Response:
        raise NotImplementedError

    def init(self, req: udf_pb2.InitRequest) -> udf_pb2.Response:
        raise NotImplementedError

    def snapshot(self) -> udf_pb2.Response:
        resp = udf_pb2.Response()
        resp.snapshot.snapshot = b""
        return resp

    def restore(self, req: udf_pb2.RestoreRequest) -> udf_pb2.Response:
        resp = udf_pb2.Response()
        resp.restore.success = True
        return resp

    def point(self, req: udf_pb2.Request, out: FrameWriter) -> None:
        raise NotImplementedError

    point_run = None
    """Optional fast path `point_run(frames, offsets, i, out) -> int`: handle the consecutive
    point frames starting at frames[i] (undecoded; raising ProtocolError for one that does not
    decode) and return the index of the first frame it did not handle."""

    def begin_batch(self, begin: udf_pb2.BeginBatch, out: FrameWriter) -> None:
        raise NotImplementedError

    def end_batch(self, end: udf_pb2.EndBatch, out: FrameWriter) -> None:
        raise NotImplementedError

    def drain(self, out: FrameWriter) -> None:
        """Process anything held back (vectorised UDFs). Called before every non-point message
        and whenever the input runs dry, so held points never wait for more input."""

    def close(self, out: FrameWriter) -> None:
        """End of input: emit anything still owed."""


def error_frame(text: str) -> bytes:
    resp = udf_pb2.Response()
    resp.error.error = text
    return resp.SerializeToString()


def serve(conn: Connection, handler: Handler) -> int:
    """Run the protocol until end of input. Returns the process exit code (0 clean, 1 after an
    ErrorResponse)."""
    out = conn.writer
    parse = udf_pb2.Request.FromString
    try:
        for frames, offsets in conn.chunks():
            point = handler.point
            point_run = handler.point_run
            i = 0
            n = len(frames)
            while i < n:
                body = frames[i]
                if body.startswith(POINT_TAG):
                    if point_run is not None:
                        i = point_run(frames, offsets, i, out)
                        continue
                    try:
                        req = parse(body)
                    except DecodeError:
                        raise ProtocolError("undecodable point message", offsets[i]) from None
                    point(req, out)
                    i += 1
                    continue
                i += 1
                handler.drain(out)
                try:
                    req = parse(body)
                except DecodeError:
                    raise ProtocolError(
                        f"undecodable message ({len(body)} bytes)", offsets[i - 1]) from None
                _dispatch(handler, req, out, offsets[i - 1])
            if conn.input_idle():
                handler.drain(out)
                out.flush()
        handler.drain(out)
        if conn.error is not None:
            raise conn.error
        handler.close(out)
        out.flush()
        return 0
    except ProtocolError as exc:
        text = f"kapudf: corrupt input from Kapacitor: {exc}"
        log.error("%s", text)
        conn.stop()
        out.write_last(error_frame(text))
        return 1
    except FatalError as exc:
        log.error("stopping the task: %s", exc)
        conn.stop()
        out.write_last(error_frame(str(exc)))
        return 1


def _dispatch(handler: Handler, req: udf_pb2.Request, out: FrameWriter, offset: int) -> None:
    kind = req.WhichOneof("message")
    if kind == "point":
        handler.point(req, out)
    elif kind == "begin":
        handler.begin_batch(req.begin, out)
    elif kind == "end":
        handler.end_batch(req.end, out)
    elif kind == "init":
        out.response(handler.init(req.init))
    elif kind == "info":
        out.response(handler.info())
    elif kind == "snapshot":
        out.response(handler.snapshot())
    elif kind == "restore":
        out.response(handler.restore(req.restore))
    elif kind == "keepalive":
        resp = udf_pb2.Response()
        resp.keepalive.time = req.keepalive.time
        out.response(resp)
    else:
        raise ProtocolError("message of no known request type", offset)
    if kind != "point":
        # Management answers go out at once; Kapacitor waits for them.
        out.flush()
