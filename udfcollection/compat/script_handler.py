"""Adapts a stock-style Handler (the script's) to kapudf's protocol loop, with kapudf's safety
nets in place of the stock agent's "any exception ends the task".

Policy, per request:

- `info()`: must return a Response with `info` set; anything else cannot be repaired and
  answers an ErrorResponse (Kapacitor then reports the UDF as unusable at start-up).
- `init()`: an exception answers `InitResponse(success=false)` with the exception as the error
  text, which Kapacitor shows to the user; returning `None` answers success with a warning.
- `snapshot()`: missing (the base class returns `None`), `None`, raising, or not a snapshot
  response: an empty snapshot, which Kapacitor does not store, with one warning. A `str`
  snapshot is stored UTF-8 encoded (see `legacy_fields`).
- `restore()`: raising or `None`: success, with an error logged (a failed restore would fail
  the task at every start until it is deleted; the script keeps whatever state it restored);
  with `strict`, failure with the exception text. An explicit response is sent as it is.
- `point()`, `begin_batch()`, `end_batch()`: an exception is logged (rate-limited, one line with
  the traceback folded in) and the stream continues: the point is dropped; after a failed
  `begin_batch()` the rest of that batch is dropped; an output batch the script had begun is
  closed with an EndBatch copied from the input's, so Kapacitor never sees a batch left open.
  With `strict`, the stock behaviour: an ErrorResponse "error processing request of type
  point: ..." and the agent stops.
"""

from __future__ import annotations

import logging
import traceback

from udfcollection.agent.connection import FrameWriter
from udfcollection.agent.logs import RateLimiter
from udfcollection.agent.runtime import FatalError, Handler
from udfcollection.protocol import udf_pb2

log = logging.getLogger("udfcollection.compat")

Response = udf_pb2.Response


def _where(exc: BaseException) -> str:
    """`file:line` of the innermost frame, the place to look in the script."""
    tb = traceback.extract_tb(exc.__traceback__)
    if not tb:
        return "?"
    frame = tb[-1]
    return f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}"


def _describe(obj) -> str:
    if obj is None:
        return "None"
    if isinstance(obj, Response):
        return f"a Response holding {obj.WhichOneof('message') or 'nothing'}"
    return f"a {type(obj).__name__}"


class ScriptHandler(Handler):
    """Drives the script's handler object; `agent` is the compat Agent that owns the output."""

    def __init__(self, user, agent, strict: bool = False):
        self.user = user
        self.agent = agent
        self.strict = strict
        self._limiter = RateLimiter(burst=5, window=60.0)
        self._skip_batch = False
        self._warned: set[str] = set()
        self.point = self._make_point()

    # --- failure handling ----------------------------------------------------------------

    def _failed(self, method: str, exc: Exception, consequence: str) -> None:
        if self.strict:
            raise FatalError(f"error processing request of type {_request_kind(method)}: "
                             f"{exc}") from exc
        key = f"{method}:{type(exc).__name__}:{_where(exc)}"
        allowed, suppressed = self._limiter.allow(key)
        if not allowed:
            return
        more = f" ({suppressed} more like it suppressed)" if suppressed else ""
        tb = "".join(traceback.format_exception(exc)).strip()
        log.error("%s() raised %s: %s at %s; %s%s. %s", method, type(exc).__name__, exc,
                  _where(exc), consequence, more, tb)

    def _warn_once(self, key: str, text: str, *args) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(text, *args)

    # --- management ------------------------------------------------------------------------

    def info(self) -> udf_pb2.Response:
        try:
            resp = self.user.info()
        except Exception as exc:
            raise FatalError(f"the script's info() failed: {type(exc).__name__}: {exc} "
                             f"(at {_where(exc)})") from exc
        if not isinstance(resp, Response) or resp.WhichOneof("message") != "info":
            raise FatalError("the script's info() must return a udf_pb2.Response with info "
                             f"set; it returned {_describe(resp)}")
        self.agent._note_provides(resp.info.provides)
        return resp

    def init(self, req: udf_pb2.InitRequest) -> udf_pb2.Response:
        self.agent._learn_provides(self.user)
        try:
            resp = self.user.init(req)
        except Exception as exc:
            log.error("init() raised %s: %s at %s", type(exc).__name__, exc, _where(exc))
            resp = Response()
            resp.init.success = False
            resp.init.error = f"init failed: {type(exc).__name__}: {exc}"
            return resp
        if resp is None:
            log.warning("the script's init() returned None; answering success")
            resp = Response()
            resp.init.success = True
            return resp
        if not isinstance(resp, Response) or resp.WhichOneof("message") != "init":
            resp = Response()
            resp.init.success = False
            resp.init.error = ("the script's init() must return a udf_pb2.Response with init "
                               f"set; it returned {_describe(resp)}")
        return resp

    def snapshot(self) -> udf_pb2.Response:
        try:
            resp = self.user.snapshot()
        except Exception as exc:
            self._warn_once("snapshot-raised", "snapshot() raised %s: %s at %s; answering an "
                            "empty snapshot, so no state is saved", type(exc).__name__, exc,
                            _where(exc))
            return _empty_snapshot()
        if isinstance(resp, Response) and resp.WhichOneof("message") == "snapshot":
            return resp
        if resp is None:
            self._warn_once("snapshot-none", "the script's snapshot() returns None (or is not "
                            "implemented); answering an empty snapshot, so no state is saved")
        else:
            self._warn_once("snapshot-kind", "snapshot() returned %s; answering an empty "
                            "snapshot, so no state is saved", _describe(resp))
        return _empty_snapshot()

    def restore(self, req: udf_pb2.RestoreRequest) -> udf_pb2.Response:
        try:
            resp = self.user.restore(req)
        except Exception as exc:
            log.error("restore() raised %s: %s at %s", type(exc).__name__, exc, _where(exc))
            resp = Response()
            if self.strict:
                resp.restore.success = False
                resp.restore.error = f"restore failed: {type(exc).__name__}: {exc}"
            else:
                log.error("answering success instead of failing the task at every start "
                          "(the script keeps whatever state it restored; --strict fails)")
                resp.restore.success = True
            return resp
        if isinstance(resp, Response) and resp.WhichOneof("message") == "restore":
            if not resp.restore.success:
                log.warning("the script's restore() failed (%s); Kapacitor will fail this "
                            "task at every start until its snapshot is removed",
                            resp.restore.error or "no reason given")
            return resp
        log.warning("the script's restore() returned %s; answering success (the state it "
                    "restored, if any, is kept)", _describe(resp))
        resp = Response()
        resp.restore.success = True
        return resp

    # --- data --------------------------------------------------------------------------------

    def _make_point(self):
        # The per-point path, as a closure (set as the instance's `point`): the protocol loop
        # calls it for every point, so it avoids attribute look-ups it does not need.
        user_point = self.user.point
        failed = self._failed

        def point(req: udf_pb2.Request, out: FrameWriter) -> None:
            if self._skip_batch:
                return
            try:
                user_point(req.point)
            except Exception as exc:
                failed("point", exc, "the point was dropped and the stream continues")

        return point

    def begin_batch(self, begin: udf_pb2.BeginBatch, out: FrameWriter) -> None:
        self._skip_batch = False
        try:
            self.user.begin_batch(begin)
        except Exception as exc:
            self._failed("begin_batch", exc, "the rest of this batch is dropped and the stream "
                         "continues")
            self._skip_batch = True

    def end_batch(self, end: udf_pb2.EndBatch, out: FrameWriter) -> None:
        if self._skip_batch:
            self._skip_batch = False
            self.agent._close_output_batch(end)
            return
        try:
            self.user.end_batch(end)
        except Exception as exc:
            self._failed("end_batch", exc, "the batch was closed and the stream continues")
            self.agent._close_output_batch(end)


def _empty_snapshot() -> udf_pb2.Response:
    resp = Response()
    resp.snapshot.snapshot = b""
    return resp


def _request_kind(method: str) -> str:
    return {"begin_batch": "begin", "end_batch": "end"}.get(method, method)
