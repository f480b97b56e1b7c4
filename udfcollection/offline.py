"""Run a UDF over plain points in-process, through the same handler Kapacitor's frames reach.

The points go through the real handler (option validation, groups, batches, snapshots, the
onError policy) and the real framing; only the pipe and the process are left out. Used by
`kapudf test` and by tests of algorithm behaviour.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from udfcollection.agent.connection import FrameWriter
from udfcollection.agent.udf_handler import TYPE_TO_PB, UDFHandler
from udfcollection.lineprotocol import LPPoint
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
    fields: dict[str, Any] = {}
    fields.update(pb.fieldsDouble)
    fields.update(pb.fieldsInt)
    fields.update(pb.fieldsString)
    fields.update(pb.fieldsBool)
    return LPPoint(pb.name, dict(pb.tags), fields, pb.time)


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


class OfflineRunner:
    """One UDF instance fed in-process. Create, then `feed_*`, then `finish()`."""

    def __init__(self, cls: type[UDF], options: OptionList = (), *, log=None):
        self.cls = cls
        self.handler = UDFHandler(cls, log=log)
        self._capture = _Capture()
        self.writer = FrameWriter(self._capture)
        resp = self.handler.init(make_init(options))
        if not resp.init.success:
            raise InitFailed(resp.init.error)
        self.output = Output()
        self._open: tuple[udf_pb2.BeginBatch, list[LPPoint]] | None = None

    def feed_point(self, req: udf_pb2.Request) -> None:
        self.handler.point(req, self.writer)

    def feed_stream(self, points: Iterable[LPPoint], group_by: Sequence[str] = ()) -> None:
        for p in points:
            self.handler.point(to_request(p, group_by), self.writer)
        self.handler.drain(self.writer)

    def feed_batch(self, points: list[LPPoint], group_by: Sequence[str] = (),
                   name: str | None = None) -> None:
        """One batch (all of `points` must belong to one group)."""
        tags = {k: points[0].tags.get(k, "") for k in group_by} if points else {}
        gid = group_id(points[0].tags, group_by) if points else ""
        nm = name if name is not None else (points[0].name if points else "")
        self.handler.begin_batch(udf_pb2.BeginBatch(name=nm, group=gid, tags=tags,
                                                    size=len(points)), self.writer)
        for p in points:
            req = to_request(p, group_by)
            # Kapacitor sends batch points without name, database or retention policy.
            req.point.name = ""
            self.handler.point(req, self.writer)
        self.handler.end_batch(udf_pb2.EndBatch(name=nm, group=gid, tags=tags,
                                                tmax=max((p.time for p in points), default=0)),
                               self.writer)

    def snapshot(self) -> bytes:
        self.handler.drain(self.writer)
        return self.handler.snapshot().snapshot.snapshot

    def restore(self, data: bytes) -> bool:
        return self.handler.restore(udf_pb2.RestoreRequest(snapshot=data)).restore.success

    def collect(self) -> Output:
        """Decode everything emitted so far into self.output."""
        self.handler.drain(self.writer)
        self.writer.flush()
        out = self.output
        for resp in decode_responses(self._capture.data):
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
        self._capture.data.clear()
        return out

    def finish(self) -> Output:
        self.handler.close(self.writer)
        return self.collect()


def run(cls: type[UDF], points: Sequence[LPPoint], options: OptionList = (),
        group_by: Sequence[str] = ()) -> Output:
    """Run `points` through a fresh instance: as a stream, or for batch UDFs one batch per
    group (in order of first appearance)."""
    runner = OfflineRunner(cls, options)
    if cls.wants == BATCH:
        groups: dict[str, list[LPPoint]] = {}
        for p in points:
            groups.setdefault(group_id(p.tags, group_by), []).append(p)
        for pts in groups.values():
            runner.feed_batch(pts, group_by)
    else:
        runner.feed_stream(points, group_by)
    return runner.finish()
