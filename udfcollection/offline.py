"""Run a UDF over plain points in-process, through the same handler Kapacitor's frames reach.

The points go through the real handler (option validation, groups, batches, snapshots, the
onError policy) and the real framing; only the pipe and the process are left out. Used by
`kapudf test` and by tests of algorithm behaviour.

The input is first turned into the Request messages Kapacitor would send (`requests_for`):
points for a stream UDF; for a batch UDF, BeginBatch / points / EndBatch per group, cut into
windows of point time (`batch_every`, aligned to multiples of the duration since the epoch
like `.every(...).align()`), into runs of `batch_size` points, or one batch per group. The same
messages can be sent to a real `kapudf run` process (`udfcollection.wire_run`), so both paths
see exactly the same input.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from udfcollection.agent.connection import FrameWriter
from udfcollection.agent.udf_handler import TYPE_TO_PB, UDFHandler
from udfcollection.lineprotocol import LPPoint
from udfcollection.points import Point
from udfcollection.protocol import udf_pb2
from udfcollection.protocol.framing import FrameSplitter
from udfcollection.spec import BATCH, UDF

OptionList = Sequence[tuple[str, Sequence[tuple[str, Any]]]]


class InitFailed(Exception):
    """The UDF refused its options; the text is what Kapacitor would show."""


def group_id(tags: dict[str, str], group_by: Sequence[str]) -> str:
    """Kapacitor-style group ID for a point grouped by `group_by` tags ('' when ungrouped)."""
    if not group_by:
        return ""
    return ",".join(f"{k}={tags.get(k, '')}" for k in sorted(group_by))


def make_init(options: OptionList, task: str = "offline",
              node: str = "udf1") -> udf_pb2.InitRequest:
    req = udf_pb2.InitRequest(taskID=task, nodeID=node)
    for name, values in options:
        o = req.options.add(name=name)
        for vtype, value in values:
            ov = o.values.add(type=TYPE_TO_PB[vtype])
            member = {"bool": "boolValue", "int": "intValue", "double": "doubleValue",
                      "string": "stringValue", "duration": "durationValue"}[vtype]
            setattr(ov, member, value)
    return req


def to_request(p: LPPoint, group_by: Sequence[str], database: str = "",
               rp: str = "") -> udf_pb2.Request:
    req = udf_pb2.Request()
    pb = req.point
    pb.time = p.time
    pb.name = p.name
    pb.database = database
    pb.retentionPolicy = rp
    pb.group = group_id(p.tags, group_by)
    pb.dimensions.extend(sorted(group_by))
    pb.tags.update(p.tags)
    for k, v in p.fields.items():
        if isinstance(v, bool):
            pb.fieldsBool[k] = v
        elif isinstance(v, int):
            pb.fieldsInt[k] = v
        elif isinstance(v, float):
            pb.fieldsDouble[k] = v
        else:
            pb.fieldsString[k] = str(v)
    return req


def point_from_pb(pb: udf_pb2.Point) -> LPPoint:
    return LPPoint(pb.name, dict(pb.tags) if pb.tags else {}, Point(pb).fields, pb.time)


@dataclass
class InBatch:
    """One batch as Kapacitor would send it to a batch UDF."""

    name: str
    group: str
    tags: dict[str, str]
    points: list[LPPoint]
    tmax: int


def plan_batches(points: Iterable[LPPoint], group_by: Sequence[str] = (), *,
                 every: int | None = None, size: int | None = None) -> list[InBatch]:
    """Cut points into batches per group (groups as TICKscript's groupBy on `group_by` tags).

    - `every` (ns): windows [k*every, (k+1)*every) of point time, aligned to the epoch; only
      windows holding points become batches, each with `tmax` = the window's end. Batches come
      in window order, groups in order of first appearance within a window; points in time
      order.
    - `size`: runs of `size` consecutive points of one group, in arrival order; a batch goes
      out when its run is full, a group's last, shorter run at the end; `tmax` = its latest
      point time.
    - neither: one batch per group holding all its points, in order of first appearance.
    """
    if every is not None and every <= 0:
        raise ValueError("batch window must be positive")
    if size is not None and size <= 0:
        raise ValueError("batch size must be positive")
    order: dict[str, int] = {}
    out: list[InBatch] = []

    def new(p: LPPoint, gid: str) -> InBatch:
        return InBatch(p.name, gid, {k: p.tags.get(k, "") for k in group_by}, [], 0)

    if every is not None:
        windows: dict[tuple[int, str], InBatch] = {}
        for p in points:
            gid = group_id(p.tags, group_by)
            order.setdefault(gid, len(order))
            start = p.time - p.time % every
            b = windows.get((start, gid))
            if b is None:
                b = windows[(start, gid)] = new(p, gid)
                b.tmax = start + every
            b.points.append(p)
        for key in sorted(windows, key=lambda k: (k[0], order[k[1]])):
            b = windows[key]
            b.points.sort(key=lambda q: q.time)
            out.append(b)
        return out
    open_: dict[str, InBatch] = {}
    for p in points:
        gid = group_id(p.tags, group_by)
        b = open_.get(gid)
        if b is None:
            b = open_[gid] = new(p, gid)
        b.points.append(p)
        if size is not None and len(b.points) >= size:
            out.append(open_.pop(gid))
    out.extend(open_.values())
    for b in out:
        b.tmax = max(q.time for q in b.points)
    return out


def stream_requests(points: Iterable[LPPoint], group_by: Sequence[str] = ()
                    ) -> Iterator[udf_pb2.Request]:
    for p in points:
        yield to_request(p, group_by, getattr(p, "database", ""),
                         getattr(p, "retention_policy", ""))


def batch_requests(batches: Iterable[InBatch], group_by: Sequence[str] = ()
                   ) -> Iterator[udf_pb2.Request]:
    """BeginBatch, points, EndBatch per batch. Batch points carry only time, group, tags and
    fields, as Kapacitor sends them."""
    for b in batches:
        req = udf_pb2.Request()
        req.begin.name = b.name
        req.begin.group = b.group
        req.begin.tags.update(b.tags)
        req.begin.size = len(b.points)
        yield req
        for p in b.points:
            r = to_request(p, group_by)
            r.point.name = ""
            del r.point.dimensions[:]
            yield r
        req = udf_pb2.Request()
        req.end.name = b.name
        req.end.group = b.group
        req.end.tags.update(b.tags)
        req.end.tmax = b.tmax
        yield req


def requests_for(cls: type[UDF], points: Sequence[LPPoint], group_by: Sequence[str] = (), *,
                 batch_every: int | None = None, batch_size: int | None = None
                 ) -> Iterator[udf_pb2.Request]:
    """The data messages Kapacitor would send `cls` for these points (see the module doc)."""
    if cls.wants == BATCH:
        return batch_requests(plan_batches(points, group_by, every=batch_every,
                                           size=batch_size), group_by)
    if batch_every is not None or batch_size is not None:
        raise ValueError(f"{cls.name} takes a stream, not batches")
    return stream_requests(points, group_by)


@dataclass
class Output:
    points: list[LPPoint] = field(default_factory=list)
    batches: list[tuple[udf_pb2.BeginBatch, list[LPPoint], udf_pb2.EndBatch]] = field(
        default_factory=list)
    errors: list[str] = field(default_factory=list)
    groups: dict[str, int] = field(default_factory=dict)  # output points per group


class _Capture:
    def __init__(self) -> None:
        self.data = bytearray()

    def __call__(self, data: bytes) -> None:
        self.data += data


def decode_responses(data: bytes) -> list[udf_pb2.Response]:
    frames, _ = FrameSplitter().feed(bytes(data))
    return [udf_pb2.Response.FromString(f) for f in frames]


class Collector:
    """Builds an Output from Response messages, as Kapacitor would read them: points of an
    output batch take the batch's name when they have none and the EndBatch's tags."""

    def __init__(self) -> None:
        self.output = Output()
        self._open: tuple[udf_pb2.BeginBatch, list[LPPoint]] | None = None

    def add(self, resp: udf_pb2.Response) -> None:
        out = self.output
        kind = resp.WhichOneof("message")
        if kind == "point":
            p = point_from_pb(resp.point)
            if self._open is not None:
                if not p.name:
                    p.name = self._open[0].name
                self._open[1].append(p)
            out.points.append(p)
            out.groups[resp.point.group] = out.groups.get(resp.point.group, 0) + 1
        elif kind == "begin":
            b = udf_pb2.BeginBatch()
            b.CopyFrom(resp.begin)
            self._open = (b, [])
        elif kind == "end":
            begin, pts = self._open if self._open else (udf_pb2.BeginBatch(), [])
            e = udf_pb2.EndBatch()
            e.CopyFrom(resp.end)
            for p in pts:
                p.tags = {**dict(e.tags), **p.tags}
            out.batches.append((begin, pts, e))
            self._open = None
        elif kind == "error":
            out.errors.append(resp.error.error)


class OfflineRunner:
    """One UDF instance fed in-process. Create, then `feed_*`, then `finish()`."""

    def __init__(self, cls: type[UDF], options: OptionList = (), *, log=None):
        self.cls = cls
        # InitFailed carries the message; the handler's own ERROR line would repeat it.
        self.handler = UDFHandler(cls, log=log, log_init_errors=False)
        self._capture = _Capture()
        self.writer = FrameWriter(self._capture)
        resp = self.handler.init(make_init(options))
        if not resp.init.success:
            raise InitFailed(resp.init.error)
        self._collector = Collector()
        self.output = self._collector.output

    def feed_point(self, req: udf_pb2.Request) -> None:
        self.handler.point(req, self.writer)

    def feed_stream(self, points: Iterable[LPPoint], group_by: Sequence[str] = ()) -> None:
        self.feed_requests(stream_requests(points, group_by))

    def feed_batch(self, points: list[LPPoint], group_by: Sequence[str] = (),
                   name: str | None = None, tmax: int | None = None) -> None:
        """One batch (all of `points` must belong to one group); `tmax` defaults to the latest
        point time."""
        tags = {k: points[0].tags.get(k, "") for k in group_by} if points else {}
        gid = group_id(points[0].tags, group_by) if points else ""
        nm = name if name is not None else (points[0].name if points else "")
        if tmax is None:
            tmax = max((p.time for p in points), default=0)
        self.feed_requests(batch_requests([InBatch(nm, gid, tags, points, tmax)], group_by))

    def feed_requests(self, reqs: Iterable[udf_pb2.Request]) -> None:
        """Data messages (points, BeginBatch, EndBatch) as Kapacitor would send them."""
        h, w = self.handler, self.writer
        for req in reqs:
            kind = req.WhichOneof("message")
            if kind == "point":
                h.point(req, w)
                continue
            h.drain(w)
            if kind == "begin":
                h.begin_batch(req.begin, w)
            elif kind == "end":
                h.end_batch(req.end, w)
            else:
                raise ValueError(f"feed_requests takes data messages, not {kind}")
        h.drain(w)

    def snapshot(self) -> bytes:
        self.handler.drain(self.writer)
        return self.handler.snapshot().snapshot.snapshot

    def restore(self, data: bytes) -> bool:
        return self.handler.restore(udf_pb2.RestoreRequest(snapshot=data)).restore.success

    def collect(self) -> Output:
        """Decode everything emitted so far into self.output."""
        self.handler.drain(self.writer)
        self.writer.flush()
        for resp in decode_responses(self._capture.data):
            self._collector.add(resp)
        self._capture.data.clear()
        return self.output

    def finish(self) -> Output:
        self.handler.close(self.writer)
        return self.collect()

    def stop_with_error(self, text: str) -> Output:
        """End the run as the agent does after a FatalError (onError 'fail'): what was emitted
        so far, then one ErrorResponse carrying `text`, then nothing more."""
        from udfcollection.agent.runtime import error_frame

        self.writer.write_last(error_frame(text))
        for resp in decode_responses(self._capture.data):
            self._collector.add(resp)
        self._capture.data.clear()
        return self.output


def run(cls: type[UDF], points: Sequence[LPPoint], options: OptionList = (),
        group_by: Sequence[str] = (), *, batch_every: int | None = None,
        batch_size: int | None = None) -> Output:
    """Run `points` through a fresh instance: as a stream, or for batch UDFs in batches cut as
    `plan_batches` describes (one batch per group, in order of first appearance, by default)."""
    runner = OfflineRunner(cls, options)
    runner.feed_requests(requests_for(cls, points, group_by, batch_every=batch_every,
                                      batch_size=batch_size))
    return runner.finish()
