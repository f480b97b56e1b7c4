"""The point a UDF sees and emits. UDF code never touches protobuf.

A `Point` wraps the protobuf point it was read from and reads it lazily, so a UDF that looks at
one field of a point does not pay for copying all of them. Emitting a point derived from an
input point (`point.emit(...)`) reuses the input message, so name, database, retention policy,
group, dimensions, byName and tags travel to the output unchanged: in stream mode Kapacitor
recomputes the group from `dimensions`, and a point that lost them would silently lose its
grouping.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

from udfcollection.protocol import udf_pb2

FieldValue = float | int | str | bool

_MISSING = object()


class Point:
    """A data point. Attributes: `time` (int ns since epoch), and the lazily read properties
    `name`, `tags`, `fields` (the four typed maps merged), `group`, `dimensions`, `database`,
    `retention_policy`, `by_name`."""

    __slots__ = ("_fields", "_out", "_pb", "_req", "time")

    def __init__(self, pb: udf_pb2.Point, req: udf_pb2.Request | None = None):
        self._pb = pb
        self._req = req
        self.time: int = pb.time
        self._fields: dict[str, FieldValue] | None = None
        # What emit() asked for: (fields, keep_fields, tags), applied by to_request().
        self._out: tuple | None = None

    # --- construction -------------------------------------------------------------------

    @classmethod
    def new(
        cls,
        time: int,
        fields: Mapping[str, FieldValue],
        *,
        tags: Mapping[str, str] | None = None,
        name: str = "",
        like: Point | None = None,
    ) -> Point:
        """A new point. With `like`, the name, database, retention policy, group, dimensions,
        byName and tags are copied from that point first (then `name`/`tags` override)."""
        req = udf_pb2.Request()
        pb = req.point
        if like is not None:
            src = like._pb
            pb.name = src.name
            pb.database = src.database
            pb.retentionPolicy = src.retentionPolicy
            pb.group = src.group
            pb.dimensions.extend(src.dimensions)
            pb.byName = src.byName
            pb.tags.update(src.tags)
        if name:
            pb.name = name
        if tags:
            pb.tags.update(tags)
        pb.time = time
        _set_fields(pb, fields)
        return cls(pb, req)

    # --- reading ------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._pb.name

    @property
    def group(self) -> str:
        return self._pb.group

    @property
    def dimensions(self) -> list[str]:
        return list(self._pb.dimensions)

    @property
    def database(self) -> str:
        return self._pb.database

    @property
    def retention_policy(self) -> str:
        return self._pb.retentionPolicy

    @property
    def by_name(self) -> bool:
        return self._pb.byName

    @property
    def tags(self) -> dict[str, str]:
        return dict(self._pb.tags)

    @property
    def fields(self) -> dict[str, FieldValue]:
        f = self._fields
        if f is None:
            pb = self._pb
            # Converting even an empty protobuf map costs microseconds: skip the empty ones.
            f = dict(pb.fieldsDouble) if pb.fieldsDouble else {}
            if pb.fieldsInt:
                f.update(pb.fieldsInt)
            if pb.fieldsString:
                f.update(pb.fieldsString)
            if pb.fieldsBool:
                f.update(pb.fieldsBool)
            self._fields = f
        return f

    def get(self, key: str, default: Any = None) -> Any:
        """The field's value from whichever typed map holds it, or `default`."""
        pb = self._pb
        # Map .get is one C call; no field value can be None, so None means absent.
        v = pb.fieldsDouble.get(key)
        if v is not None:
            return v
        v = pb.fieldsInt.get(key)
        if v is not None:
            return v
        v = pb.fieldsString.get(key)
        if v is not None:
            return v
        v = pb.fieldsBool.get(key)
        if v is not None:
            return v
        return default

    def number(self, key: str) -> float | None:
        """The field as a float if it is a double or int field; None when missing or of another
        type (string, bool). NaN and infinities are returned as they are."""
        pb = self._pb
        v = pb.fieldsDouble.get(key)
        if v is not None:
            return v
        v = pb.fieldsInt.get(key)
        if v is not None:
            return float(v)
        return None

    def field_type(self, key: str) -> str | None:
        """'double', 'int', 'string', 'bool', or None when the point has no such field."""
        pb = self._pb
        for kind, m in (("double", pb.fieldsDouble), ("int", pb.fieldsInt),
                        ("string", pb.fieldsString), ("bool", pb.fieldsBool)):
            if key in m:
                return kind
        return None

    # --- emitting -----------------------------------------------------------------------

    def emit(
        self,
        fields: Mapping[str, FieldValue] | None = None,
        *,
        keep_fields: bool = True,
        tags: Mapping[str, str] | None = None,
    ) -> Point:
        """Mark this point for output with `fields` added (or, with keep_fields=False, as its
        only fields) and `tags` added. Returns the point itself, for `return point.emit(...)`.
        Everything else (name, group, dimensions, tags, time) is carried over."""
        self._out = (fields, keep_fields, tags) if (fields or tags or not keep_fields) else None
        return self

    def emit_only(self, key: str, value: float) -> Point:
        """Mark this point for output with `key` (a float) as its only field; everything else is
        carried over as with `emit`. Unlike `emit`, the change is applied at once (the cheapest
        way to emit one number per point, e.g. an average): call it last, as the return value."""
        pb = self._pb
        m = pb.fieldsDouble
        if m:
            m.clear()
        m[key] = value
        if pb.fieldsInt:
            pb.fieldsInt.clear()
        if pb.fieldsString:
            pb.fieldsString.clear()
        if pb.fieldsBool:
            pb.fieldsBool.clear()
        self._out = None
        self._fields = None
        return self

    def to_request(self) -> udf_pb2.Request:
        """The Request message carrying this point with emitted changes applied. Because
        `point` is field 17 in both Request and Response, its bytes are a valid response frame."""
        pb = self._pb
        out = self._out
        if out is not None:
            fields, keep, tags = out
            if not keep:
                # Clearing an empty upb map costs about as much as clearing a full one, and a
                # point usually holds one or two of the four kinds: test first (measured:
                # 3.5 -> 1.8 us per replaced-fields output point, serialisation included).
                for m in (pb.fieldsDouble, pb.fieldsInt, pb.fieldsString, pb.fieldsBool):
                    if m:
                        m.clear()
            if fields:
                _set_fields(pb, fields, replace=keep)
            if tags:
                pb.tags.update(tags)
            self._out = None
            self._fields = None
        req = self._req
        if req is None:
            req = udf_pb2.Request()
            req.point.CopyFrom(pb)
            self._req = req
            self._pb = req.point
        return req

    @property
    def pb(self) -> udf_pb2.Point:
        """The underlying protobuf message (for the framework and compatibility code)."""
        return self._pb

    def __repr__(self) -> str:
        return (f"Point(time={self.time}, name={self.name!r}, tags={self.tags}, "
                f"fields={self.fields})")


def _set_fields(pb: udf_pb2.Point, fields: Mapping[str, FieldValue], replace: bool = False) -> None:
    """Write fields into the typed map matching each value's type. With `replace`, a key is
    first removed from the other typed maps so a field never appears twice with two types."""
    if not replace:
        # Fields replaced wholesale (moving_avg's one average): fetch only the map needed,
        # each map attribute access being a C call.
        for key, value in fields.items():
            name = _MAP_FOR_TYPE.get(type(value))
            if name is None:
                name, value = _coerce(key, value)
                if name is None:
                    continue
            getattr(pb, name)[key] = value
        return
    # Each map attribute access and lookup is a C call: fetch the maps once, and only look
    # into typed maps that hold anything (most points have doubles only).
    fd, fi, fs, fb = pb.fieldsDouble, pb.fieldsInt, pb.fieldsString, pb.fieldsBool
    others = [m for m in (fd, fi, fs, fb) if len(m)] if replace else ()
    for key, value in fields.items():
        t = type(value)
        if t is float:
            target = fd
        elif t is str:
            target = fs
        elif t is bool:
            target = fb
        elif t is int:
            target = fi
        elif isinstance(value, bool | str):
            target = fb if isinstance(value, bool) else fs
            value = bool(value) if isinstance(value, bool) else str(value)
        elif isinstance(value, numbers.Integral):
            target, value = fi, int(value)
        elif isinstance(value, numbers.Real):
            target, value = fd, float(value)
        elif value is None:
            continue
        else:
            raise TypeError(f"field {key!r}: unsupported value type {t.__name__}")
        for other in others:
            if other is not target and key in other:
                del other[key]
        target[key] = value


_MAP_FOR_TYPE = {float: "fieldsDouble", int: "fieldsInt", str: "fieldsString",
                 bool: "fieldsBool"}


def _coerce(key: str, value: object) -> tuple[str | None, object]:
    """Map name and plain value for numpy scalars and other number/str/bool subclasses;
    (None, None) for None (the field is left out). Raises TypeError for anything else."""
    if isinstance(value, bool):
        return "fieldsBool", bool(value)
    if isinstance(value, str):
        return "fieldsString", str(value)
    if isinstance(value, numbers.Integral):
        return "fieldsInt", int(value)
    if isinstance(value, numbers.Real):
        return "fieldsDouble", float(value)
    if value is None:
        return None, None
    if hasattr(value, "item"):  # numpy scalars, numpy.bool_ included
        return _coerce(key, value.item())
    raise TypeError(f"field {key!r}: unsupported value type {type(value).__name__}")


class Batch:
    """One batch of points as Kapacitor sent it: `name`, `group`, `tags`, `tmax` (int ns, from
    EndBatch), `by_name` and `points` (in arrival order)."""

    __slots__ = ("by_name", "group", "name", "points", "size_hint", "tags", "tmax")

    def __init__(self, name: str, group: str, tags: dict[str, str], tmax: int, by_name: bool,
                 points: list[Point], size_hint: int = 0):
        self.name = name
        self.group = group
        self.tags = tags
        self.tmax = tmax
        self.by_name = by_name
        self.points = points
        self.size_hint = size_hint


def is_finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def as_outputs(result: Point | Iterable[Point] | None) -> Iterable[Point]:
    """Normalise what a UDF's process method returned into an iterable of points."""
    if result is None:
        return ()
    if isinstance(result, Point):
        return (result,)
    return result
