"""Runs one declared UDF (a `spec.UDF` subclass) behind the protocol.

Owns everything the UDF itself should not: option validation, per-group state with its cap,
snapshot and restore, batch assembly, vectorised hand-off, and the onError policy.
"""

from __future__ import annotations

import logging
import time as _time
import traceback
from datetime import UTC, datetime
from operator import itemgetter

from google.protobuf.message import DecodeError

from udfcollection.agent.connection import FLUSH_AT, FrameWriter
from udfcollection.agent.logs import RateLimiter
from udfcollection.agent.runtime import POINT_TAG, FatalError, Handler
from udfcollection.columns import FieldColumns, PointBlock
from udfcollection.points import Batch, Point
from udfcollection.protocol import udf_pb2
from udfcollection.protocol.framing import SMALL_VARINTS, ProtocolError, encode_varint
from udfcollection.spec import (
    BATCH,
    BOOL,
    DOUBLE,
    DURATION,
    INT,
    STRING,
    UDF,
    InitError,
    Options,
    PointError,
    validate_options,
)
from udfcollection.state import GroupTable, SnapshotError, decode_snapshot, encode_snapshot

TYPE_TO_PB = {BOOL: udf_pb2.BOOL, INT: udf_pb2.INT, DOUBLE: udf_pb2.DOUBLE,
              STRING: udf_pb2.STRING, DURATION: udf_pb2.DURATION}
PB_TO_TYPE = {v: k for k, v in TYPE_TO_PB.items()}
_VALUE_MEMBER = {udf_pb2.BOOL: "boolValue", udf_pb2.INT: "intValue",
                 udf_pb2.DOUBLE: "doubleValue", udf_pb2.STRING: "stringValue",
                 udf_pb2.DURATION: "durationValue"}

# Most points held for one vectorised call. Larger batches hold the interpreter longer in
# single C calls and write their output in longer bursts: wind_turbine streaming at about
# 300k points/s over a pipe (benchmarks/bench_agent.py --udf wind_turbine --groups 100) had a
# keepalive p99 of 7.8-8.2 ms at 4096 and 1.5-2.6 ms at 2048, for 2% less throughput.
VECTOR_MAX = 2048


def info_response(udf_cls: type[UDF]) -> udf_pb2.Response:
    resp = udf_pb2.Response()
    info = resp.info
    info.wants = udf_pb2.BATCH if udf_cls.wants == BATCH else udf_pb2.STREAM
    info.provides = udf_pb2.BATCH if udf_cls.provides == BATCH else udf_pb2.STREAM
    for opt in udf_cls.all_options():
        info.options[opt.name].valueTypes.extend(TYPE_TO_PB[t] for t in opt.value_types)
    return resp


def init_options(req: udf_pb2.InitRequest) -> list[tuple[str, list[tuple[str, object]]]]:
    """Options of an InitRequest as (name, [(type, value), ...])."""
    out = []
    for opt in req.options:
        vals = []
        for v in opt.values:
            member = _VALUE_MEMBER.get(v.type)
            vals.append((PB_TO_TYPE.get(v.type, f"type{v.type}"),
                         getattr(v, member) if member else None))
        out.append((opt.name, vals))
    return out


def describe_point(p: Point) -> str:
    try:
        ts = datetime.fromtimestamp(p.time / 1e9, tz=UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        ts = str(p.time)
    return f"measurement={p.name or '-'} group={p.group or '-'} time={ts}"


class UDFHandler(Handler):
    """Serves one instance of a declared UDF (one Kapacitor task node)."""

    def __init__(self, udf_cls: type[UDF], log: logging.Logger | None = None,
                 log_init_errors: bool = True):
        """`log_init_errors=False` leaves reporting a refused init to the caller (the CLI
        prints it itself; under Kapacitor the log line is where the operator sees it)."""
        self.cls = udf_cls
        self.log = log or logging.getLogger(f"udfcollection.udf.{udf_cls.name}")
        self.log_init_errors = log_init_errors
        self.udf: UDF | None = None
        self.opts: Options | None = None
        self.groups: GroupTable | None = None
        self.stateful = udf_cls.State is not None
        self.vectorised = udf_cls.process_many is not None
        self.batch_in = udf_cls.wants == BATCH
        self.batch_out = udf_cls.provides == BATCH
        self.on_error = udf_cls.on_error_default
        self._pending: list[Point] | PointBlock = []
        self._inputs: tuple[str, ...] | None = None  # the UDF's column_inputs, if any
        self._batch_begin: udf_pb2.BeginBatch | None = None
        self._batch_points: list[Point] | None = None
        self._limiter = RateLimiter()
        self._warned_no_init = False
        self.points_dropped = 0  # points the onError policy handled (dropped or passed on)

    # --- management -----------------------------------------------------------------------

    def info(self) -> udf_pb2.Response:
        return info_response(self.cls)

    def init(self, req: udf_pb2.InitRequest) -> udf_pb2.Response:
        resp = udf_pb2.Response()
        result = validate_options(self.cls, init_options(req))
        if result.errors:
            resp.init.success = False
            resp.init.error = f"{self.cls.name}: " + "; ".join(result.errors)
            self._log_init_failure(resp.init.error)
            return resp
        opts = result.options
        assert opts is not None
        if getattr(opts, "debug", False):
            self.log.setLevel(logging.DEBUG)
        self.on_error = opts.on_error
        udf = self.cls(opts, self.log)
        t0 = _time.monotonic()
        try:
            udf.setup()
        except InitError as exc:
            resp.init.success = False
            resp.init.error = f"{self.cls.name}: {exc}"
            self._log_init_failure(str(exc))
            return resp
        except Exception as exc:
            resp.init.success = False
            resp.init.error = f"{self.cls.name}: setup failed: {type(exc).__name__}: {exc}"
            self._log_init_failure(resp.init.error)
            self.log.debug("%s", traceback.format_exc())
            return resp
        self.log.debug("setup took %.1f ms", (_time.monotonic() - t0) * 1e3)
        self.udf = udf
        self.opts = opts
        self.groups = GroupTable(udf.new_state, opts.max_groups, self._first_evict)
        if not self.batch_in and not self.vectorised:
            kernel = udf.number_kernel()
            self.point, self.point_run = (self._stream_point_fns() if kernel is None
                                          else self._number_point_fns(*kernel))
        elif not self.batch_in and (names := udf.column_inputs()) is not None:
            self._inputs = tuple(names)
            self._pending = PointBlock(self._inputs)
            self.point_run = self._block_point_run()
        self.log.debug("init ok: task=%s node=%s options=%s", req.taskID, req.nodeID,
                       opts.as_dict())
        resp.init.success = True
        return resp

    def _log_init_failure(self, text: str) -> None:
        if self.log_init_errors:
            self.log.error("init failed: %s", text)

    def _first_evict(self, cap: int) -> None:
        self.log.warning("more than %d groups seen: forgetting the least recently seen group's "
                         "state from now on (raise .maxGroups() to keep more); logged once", cap)

    def snapshot(self) -> udf_pb2.Response:
        resp = udf_pb2.Response()
        if self.stateful and self.groups is not None and len(self.groups):
            resp.snapshot.snapshot = encode_snapshot(self.cls.name, self.cls.state_version,
                                                     self.groups)
        else:
            resp.snapshot.snapshot = b""
        return resp

    def restore(self, req: udf_pb2.RestoreRequest) -> udf_pb2.Response:
        resp = udf_pb2.Response()
        resp.restore.success = True
        if not req.snapshot or not self.stateful:
            return resp
        if self.groups is None or self.State is None:
            self.log.warning("restore before a successful init: ignored, starting fresh")
            return resp
        try:
            items = decode_snapshot(req.snapshot, self.cls.name, self.cls.state_version,
                                    self.State.from_json)
        except SnapshotError as exc:
            # A restore replaces all state: a failed one leaves none, not the previous state.
            self.groups.clear()
            self.log.warning("cannot restore snapshot (%s): starting with fresh state", exc)
            return resp
        self.groups.load(items)
        self.log.info("restored state of %d group(s)", len(self.groups))
        return resp

    @property
    def State(self):
        return self.cls.State

    # --- errors -----------------------------------------------------------------------------

    def _point_failed(self, p: Point, exc: BaseException, out: FrameWriter) -> None:
        """Apply the onError policy to a point the UDF could not process."""
        self.points_dropped += 1
        if isinstance(exc, PointError):
            reason = str(exc)
        else:
            tb = traceback.extract_tb(exc.__traceback__)
            where = f" at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else ""
            reason = f"{type(exc).__name__}: {exc}{where}"
        policy = self.on_error
        if policy == "fail":
            raise FatalError(f"{self.cls.name}: {reason} ({describe_point(p)}); "
                             "onError='fail' stops the task")
        allowed, suppressed = self._limiter.allow(reason[:120])
        if allowed:
            more = f" ({suppressed} similar messages suppressed)" if suppressed else ""
            action = "passed on unchanged" if policy == "pass" else "dropped"
            self.log.warning("point %s: %s (%s)%s", action, reason, describe_point(p), more)
        if not isinstance(exc, PointError):
            self.log.debug("%s", "".join(traceback.format_exception(exc)))
        if policy == "pass":
            p.emit(None)
            out.frame(p.to_bytes())

    def _not_ready(self) -> bool:
        if self.udf is not None:
            return False
        if not self._warned_no_init:
            self.log.warning("data received before a successful init: ignored")
            self._warned_no_init = True
        return True

    # --- stream ---------------------------------------------------------------------------

    def _stream_point_fns(self):
        """(point, point_run) for plain stream UDFs: one loop serves both, so the code that runs
        for every point exists once. Everything it touches is bound here: at a few
        microseconds per point, attribute lookups and function calls are a measurable share."""
        process = self.udf.process
        failed = self._point_failed
        point_cls = Point
        small = SMALL_VARINTS
        parse = udf_pb2.Request.FromString
        tag = POINT_TAG
        table = self.groups if self.stateful else None
        lookup, touch = table.hot_path() if table is not None else (None, None)
        table_get = table.get if table is not None else None

        def point_run(items, offsets, i: int, out: FrameWriter) -> int:
            """Handle items[i:] while they are point frames (bytes) or parsed point Requests;
            return the index of the first item not handled."""
            n = len(items)
            buf = out.buf
            while i < n:
                body = items[i]
                if body.__class__ is bytes:
                    if not body.startswith(tag):
                        return i
                    try:
                        req = parse(body)
                    except DecodeError:
                        raise ProtocolError("undecodable point message", offsets[i]) from None
                else:
                    req = body
                i += 1
                pb = req.point
                p = point_cls(pb, req)
                if lookup is not None:
                    g = pb.group
                    state = lookup(g)
                    if state is None:
                        state = table_get(g)
                    else:
                        touch(g)
                else:
                    state = None
                try:
                    result = process(p, state)
                except Exception as exc:
                    failed(p, exc, out)
                    continue
                if result is None:
                    continue
                if result.__class__ is point_cls:
                    # to_bytes() and out.frame() inlined: this runs once per output point.
                    req = result._req
                    if result._out is not None or req is None:
                        body = result.to_bytes()
                    else:
                        body = req.SerializeToString()
                    k = len(body)
                    buf += small[k] if k < 128 else encode_varint(k)
                    buf += body
                    if len(buf) >= FLUSH_AT:
                        out.flush()
                else:
                    for r in result:
                        out.frame(r.to_bytes())
            return n

        def point(req: udf_pb2.Request, out: FrameWriter) -> None:
            point_run((req,), None, 0, out)

        return point, point_run

    def _number_point_fns(self, field: str, out_field: str, step):
        """(point, point_run) for a UDF with a `number_kernel`: the point's message is read and
        rewritten in place (one float as its only field), without a `Point` or a `process`
        call; a point the kernel does not take goes through `process`, as anywhere else.
        Measured on moving_avg, in-process: 4.4 -> 3.1 us per point."""
        slow_point, _ = self._stream_point_fns()
        failed = self._point_failed
        point_cls = Point
        small = SMALL_VARINTS
        parse = udf_pb2.Request.FromString
        tag = POINT_TAG
        lookup, touch = self.groups.hot_path()
        table_get = self.groups.get

        def point_run(items, offsets, i: int, out: FrameWriter) -> int:
            n = len(items)
            buf = out.buf
            while i < n:
                body = items[i]
                if body.__class__ is bytes:
                    if not body.startswith(tag):
                        return i
                    try:
                        req = parse(body)
                    except DecodeError:
                        raise ProtocolError("undecodable point message", offsets[i]) from None
                else:
                    req = body
                i += 1
                pb = req.point
                fd = pb.fieldsDouble
                fi = pb.fieldsInt
                v = fd.get(field)
                if v is None:
                    v = fi.get(field)
                    if v is not None:
                        v = float(v)
                if v is None or v - v != 0.0:  # missing, mistyped, NaN or infinite
                    slow_point(req, out)
                    continue
                g = pb.group
                state = lookup(g)
                if state is None:
                    state = table_get(g)
                else:
                    touch(g)
                try:
                    avg = step(v, pb.time, state)
                except Exception as exc:
                    failed(point_cls(pb, req), exc, out)
                    continue
                # Clearing an empty map costs as much as clearing a full one: test first.
                if fd:
                    fd.clear()
                if fi:
                    fi.clear()
                m = pb.fieldsString
                if m:
                    m.clear()
                m = pb.fieldsBool
                if m:
                    m.clear()
                fd[out_field] = avg
                body = req.SerializeToString()
                k = len(body)
                buf += small[k] if k < 128 else encode_varint(k)
                buf += body
                if len(buf) >= FLUSH_AT:
                    out.flush()
            return n

        def point(req: udf_pb2.Request, out: FrameWriter) -> None:
            point_run((req,), None, 0, out)

        return point, point_run

    def _block_point_run(self):
        """point_run for vectorised UDFs with `column_inputs`: decodes each point, reads its
        inputs into the pending PointBlock (see PointBlock for what it holds) and lets the
        message go; drains once VECTOR_MAX points are held."""
        parse = udf_pb2.Request.FromString
        tag = POINT_TAG
        drain = self.drain
        names = self._inputs
        stateful = self.stateful
        point_parse = udf_pb2.Point.FromString
        if len(names) > 1:
            read = itemgetter(*names)  # a tuple of the values, in C
        elif names:
            def read(fd, name=names[0]):
                return (fd[name],)
        else:
            def read(fd):
                return ()

        def point_run(items, offsets, i: int, out: FrameWriter) -> int:
            n = len(items)
            block = self._pending
            raws = block.raws
            extend = block.flat.extend
            groups_append = block.groups.append
            while i < n:
                body = items[i]
                if body.__class__ is bytes:
                    if not body.startswith(tag):
                        break
                    try:
                        pb = parse(body).point
                    except DecodeError:
                        raise ProtocolError("undecodable point message", offsets[i]) from None
                    # The point's bytes, when the Request is field 17 alone with a one- or
                    # two-byte length (a byte follows a length byte >= 0x80: it decoded).
                    b2 = body[2]
                    if b2 < 0x80:
                        raw = body[3:] if len(body) == b2 + 3 else None
                    elif body[3] < 0x80 and len(body) == (b2 & 0x7F | body[3] << 7) + 4:
                        raw = body[4:]
                    else:
                        raw = None
                    if raw is None:
                        raw = pb.SerializeToString()
                else:  # a decoded Request: read a copy, the caller's message stays as it is
                    raw = body.point.SerializeToString()
                    pb = point_parse(raw)
                i += 1
                k = len(raws)
                raws.append(raw)
                if stateful:
                    groups_append(pb.group)
                # Reading a missing key of a protobuf map inserts it, so the map grows: one C
                # call reads every input and the length tells whether one was missing. The
                # message is dropped after this (the bytes as received are kept).
                fd = pb.fieldsDouble
                size = len(fd)
                vals = read(fd)
                if pb.fieldsInt or pb.fieldsString or pb.fieldsBool:
                    block.mixed.add(k)
                if len(fd) != size:
                    vals = block.slow_inputs(k)
                extend(vals)
                if k + 1 >= VECTOR_MAX:
                    drain(out)
                    block = self._pending
                    raws = block.raws
                    extend = block.flat.extend
                    groups_append = block.groups.append
            return i

        return point_run

    def point(self, req: udf_pb2.Request, out: FrameWriter) -> None:
        if self.udf is None and self._not_ready():
            return
        if self._inputs is not None:
            self.point_run((req,), None, 0, out)
            return
        p = Point(req.point, req)
        if self.batch_in:
            if self._batch_points is None:
                self._implicit_begin(p)
            self._batch_points.append(p)
            return
        if self.vectorised:
            self._pending.append(p)
            if len(self._pending) >= VECTOR_MAX:
                self.drain(out)
            return
        state = self.groups.get(req.point.group) if self.stateful else None
        try:
            result = self.udf.process(p, state)
        except Exception as exc:
            self._point_failed(p, exc, out)
            return
        if result is None:
            return
        if result.__class__ is Point:
            out.frame(result.to_bytes())
        else:
            for r in result:
                out.frame(r.to_bytes())

    def drain(self, out: FrameWriter) -> None:
        pending = self._pending
        if not pending:
            return
        if self._inputs is not None:
            self._pending = PointBlock(self._inputs)
        else:
            self._pending = []
        if self.stateful:
            get = self.groups.get
            states = ([get(g) for g in pending.groups] if pending.__class__ is PointBlock
                      else [get(p._pb.group) for p in pending])
        else:
            states = [None] * len(pending)
        try:
            results = self.udf.process_many(pending, states)
            if len(results) != len(pending):
                raise RuntimeError(f"process_many returned {len(results)} results for "
                                   f"{len(pending)} points")
        except Exception:
            # Find the culprit(s): score one at a time so good points still flow.
            results = []
            for p, s in zip(pending, states, strict=True):
                try:
                    results.append(self.udf.process_many([p], [s])[0])
                except Exception as exc:
                    self._point_failed(p, exc, out)
                    results.append(None)
        if results.__class__ is FieldColumns:
            self._write_columns(results, out)
            return
        small = SMALL_VARINTS
        buf = out.buf
        for p, r in zip(pending, results, strict=True):
            if r.__class__ is Point:
                # out.frame() inlined: this runs once per output point.
                body = r.to_bytes()
                k = len(body)
                buf += small[k] if k < 128 else encode_varint(k)
                buf += body
                if len(buf) >= FLUSH_AT:
                    out.flush()
            else:
                self._write_result(p, r, out)

    def _write_columns(self, columns: FieldColumns, out: FrameWriter) -> None:
        """Write a FieldColumns result: the points it encodes straight away, the others (and
        all of them, should encoding fail) as ordinary per-point results."""
        try:
            frames = columns.encode()
        except Exception as exc:
            allowed, _ = self._limiter.allow(f"encode:{type(exc).__name__}")
            if allowed:
                self.log.warning("output columns could not be encoded at once (%s: %s): "
                                 "writing point by point", type(exc).__name__, exc)
            frames = [None] * len(columns)
        buf = out.buf
        if None not in frames:
            # Whole runs of frames at a time, a run about FLUSH_AT bytes long.
            step = max(1, FLUSH_AT * len(frames) // max(1, sum(map(len, frames))))
            for a in range(0, len(frames), step):
                buf += b"".join(frames[a:a + step])
                if len(buf) >= FLUSH_AT:
                    out.flush()
            return
        for i, frame in enumerate(frames):
            if frame is None:
                p = columns.points[i]
                try:
                    r = columns[i]
                    if r.__class__ is Point:
                        r = r.to_bytes()  # a value of no field type raises here, per point
                except Exception as exc:
                    self._point_failed(p, exc, out)
                    continue
                if r.__class__ is bytes:
                    out.frame(r)
                else:
                    self._write_result(p, r, out)
                continue
            buf += frame
            if len(buf) >= FLUSH_AT:
                out.flush()

    def _write_result(self, p: Point, r, out: FrameWriter) -> None:
        """Write one entry of a `process_many` result for input point `p`."""
        if r is None:
            return
        if isinstance(r, BaseException):
            self._point_failed(p, r, out)
        elif r.__class__ is Point:
            out.frame(r.to_bytes())
        else:
            for x in r:
                out.frame(x.to_bytes())

    # --- batch ----------------------------------------------------------------------------

    def begin_batch(self, begin: udf_pb2.BeginBatch, out: FrameWriter) -> None:
        if self.udf is None and self._not_ready():
            return
        if not self.batch_in:
            self._warn("BeginBatch received by a stream UDF: ignored")
            return
        if self._batch_points is not None:
            self._warn("BeginBatch while a batch was open: the open batch is processed first")
            self._finish_batch(None, out)
        b = udf_pb2.BeginBatch()
        b.CopyFrom(begin)
        self._batch_begin = b
        self._batch_points = []

    def _implicit_begin(self, p: Point) -> None:
        self._warn("point outside a batch (no BeginBatch): starting a batch for it")
        b = udf_pb2.BeginBatch()
        b.group = p.group
        b.name = p.name
        self._batch_begin = b
        self._batch_points = []

    def end_batch(self, end: udf_pb2.EndBatch, out: FrameWriter) -> None:
        if self.udf is None and self._not_ready():
            return
        if not self.batch_in:
            self._warn("EndBatch received by a stream UDF: ignored")
            return
        if self._batch_points is None:
            self._warn("EndBatch without BeginBatch: an empty batch is answered")
            self._batch_begin = udf_pb2.BeginBatch(name=end.name, group=end.group)
            self._batch_points = []
        self._finish_batch(end, out)

    def _finish_batch(self, end: udf_pb2.EndBatch | None, out: FrameWriter) -> None:
        begin = self._batch_begin
        points = self._batch_points or []
        self._batch_begin = None
        self._batch_points = None
        if end is None:
            end = udf_pb2.EndBatch(name=begin.name, group=begin.group, byName=begin.byName,
                                   tmax=max((p.time for p in points), default=0))
            end.tags.update(begin.tags)
        batch = Batch(name=end.name or begin.name, group=end.group or begin.group,
                      tags=dict(end.tags) or dict(begin.tags), tmax=end.tmax,
                      by_name=end.byName, points=points, size_hint=begin.size)
        state = self.groups.get(batch.group) if self.stateful else None
        try:
            result = list(self.udf.process_batch(batch, state) or ())
        except Exception as exc:
            policy = self.on_error
            if policy == "fail":
                raise FatalError(f"{self.cls.name}: batch of group {batch.group!r} failed: "
                                 f"{type(exc).__name__}: {exc}") from None
            allowed, _ = self._limiter.allow(f"batch:{type(exc).__name__}:{exc}"[:120])
            if allowed:
                self.log.warning("batch of group %r with %d points %s: %s: %s", batch.group,
                                 len(points), "passed on unchanged" if policy == "pass"
                                 else "dropped", type(exc).__name__, exc)
            if policy != "pass":
                return
            for p in points:
                p.emit(None)
            result = points
        self._write_batch(batch, end, result, out)

    def _write_batch(self, batch: Batch, end: udf_pb2.EndBatch, points: list[Point],
                     out: FrameWriter) -> None:
        if self.batch_out:
            resp = udf_pb2.Response()
            b = resp.begin
            b.name = batch.name
            b.group = batch.group
            b.tags.update(batch.tags)
            b.size = len(points)
            b.byName = batch.by_name
            out.response(resp)
        for p in points:
            out.frame(p.to_bytes())
        if self.batch_out:
            resp = udf_pb2.Response()
            resp.end.CopyFrom(end)
            out.response(resp)

    def close(self, out: FrameWriter) -> None:
        if self._batch_points:
            self._warn("input ended inside a batch: the partial batch is processed")
            self._finish_batch(None, out)

    def _warn(self, text: str) -> None:
        allowed, suppressed = self._limiter.allow(text)
        if allowed:
            more = f" ({suppressed} similar messages suppressed)" if suppressed else ""
            self.log.warning("%s%s", text, more)
