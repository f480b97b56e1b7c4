"""Column-wise input and output for vectorised UDFs (the ML detectors).

An ML detector reads the same few numeric fields of every point and emits every point
unchanged plus the same few output fields. Both ends are done here without a Python object per
point and field:

- in: `PointBlock`, the points of one `process_many` call as the agent decoded them, with the
  UDF's declared input fields (`UDF.column_inputs`) already read into one flat list while each
  point was decoded; a `Point` view is made only for a point the UDF asks for;
- out: `FieldColumns`, one numpy array (or list) per output field; the double fields of all
  points are encoded in one numpy call, and each output point is its input point's bytes, as
  received, followed by the encoded output fields (a protobuf map entry appended to a message
  adds that key, as `Point.to_bytes` already relies on).

numpy is imported only by the methods that build arrays, which only UDFs that already use
numpy reach.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from itertools import repeat
from typing import Any

from udfcollection.points import (
    Point,
    _double_head,
    _map_entry,
    _pack_double,
    point_request_head,
)
from udfcollection.protocol import udf_pb2
from udfcollection.protocol.framing import encode_varint

_INT64_MIN, _INT64_END = -(1 << 63), 1 << 63


class PointBlock(Sequence):
    """The points of one vectorised call, in arrival order, as a read-only sequence of `Point`
    (each decoded again, on first access, from the bytes it arrived as).

    Filled by the agent (`UDFHandler`'s block point_run), which decodes each point once, reads
    what it needs and lets the message go (holding thousands of decoded messages costs more
    than decoding a few twice): `raws` (each point's bytes, as received), `flat` (the `names`
    inputs of every point, row after row: floats, NaN for a point listed in `problems`),
    `problems` (index -> why an input is missing or not a number), `mixed` (indices of points
    with int, string or bool fields) and `groups` (each point's group, when the UDF keeps
    per-group state)."""

    __slots__ = ("_points", "flat", "groups", "mixed", "names", "problems", "raws")

    def __init__(self, names: Sequence[str]):
        self.names = tuple(names)
        self.raws: list[bytes] = []
        self.flat: list[float] = []
        self.problems: dict[int, str] = {}
        self.mixed: set[int] = set()
        self.groups: list[str] = []
        self._points: dict[int, Point] = {}

    def slow_inputs(self, i: int) -> list[float]:
        """Inputs of point i when one is not a double field: ints are read as numbers; a
        missing or non-numeric input is recorded in `problems` and the row is all NaN."""
        from udfcollection.ml.inputs import input_problem

        p = self[i]
        vals = [p.number(n) for n in self.names]
        if None in vals:
            self.problems[i] = input_problem(p, self.names[vals.index(None)])
            return [float("nan")] * len(self.names)
        return vals  # type: ignore[return-value]

    def matrix(self):
        """(X, problems): the inputs as a float64 matrix, one row per point."""
        import numpy as np

        return (np.array(self.flat, dtype=float).reshape(len(self.raws), len(self.names)),
                self.problems)

    def __len__(self) -> int:
        return len(self.raws)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self.raws)))]
        if i < 0:
            i += len(self.raws)
        p = self._points.get(i)
        if p is None:
            raw = self.raws[i]
            req = udf_pb2.Request()
            req.point.MergeFromString(raw)
            p = self._points[i] = Point(req.point, req, raw)
        return p


class FieldColumns:
    """What `process_many` may return instead of a list: point i goes out with field
    `names[j]` set to `columns[j][i]`, keeping its own fields, tags and the rest (as
    `points[i].emit({...})` would), unless `others` holds a result for i (a Point, None to
    drop it, or a PointError / other exception for the onError policy), used instead.

    `columns[j]` is a 1-D float64 numpy array (a double field: the fast case) or a sequence of
    plain str, int, bool or float values, one per point; values in rows listed in `others` are
    ignored. The UDF must not have changed the points it describes this way.

    It also behaves as the list of per-point results (`len`, indexing), so code written for
    `process_many`'s list (one-point retries, the default `UDF.process`) works unchanged."""

    __slots__ = ("columns", "names", "others", "points")

    def __init__(self, points: Sequence[Point], names: Sequence[str], columns: Sequence[Any],
                 others: dict[int, Any] | None = None):
        if len(names) != len(columns):
            raise ValueError(f"{len(names)} names for {len(columns)} columns")
        for name, col in zip(names, columns, strict=True):
            if len(col) != len(points):
                raise ValueError(f"column {name!r} has {len(col)} values for "
                                 f"{len(points)} points")
        self.points = points
        self.names = tuple(names)
        self.columns = list(columns)
        self.others = others or {}

    def __len__(self) -> int:
        return len(self.points)

    def row(self, i: int) -> dict[str, Any]:
        """Point i's output fields as plain Python values."""
        out = {}
        for name, col in zip(self.names, self.columns, strict=True):
            v = col[i]
            out[name] = v.item() if hasattr(v, "item") else v  # numpy scalars: plain values
        return out

    def __getitem__(self, i: int) -> Any:
        if i in self.others:
            return self.others[i]
        return self.points[i].emit(self.row(i))

    def encode(self) -> list[bytes | None]:
        """Each point's output as a whole frame (length prefix and Response body), or None
        where it is not written from the columns: listed in `others`, changed since it was
        read, or not appendable exactly; the caller then handles `self[i]` as any other result.

        Appending is exact when no map of the point can already hold an output's key: the
        point has no int, string or bool fields (so a double output can only meet a double
        field, which it then replaces, the protobuf map rule), and the name of a str, int or
        bool output occurs nowhere in the point's bytes (a map key is stored verbatim).

        Every step is one C-level pass over all points (numpy, `map`, `bytes.join`): at a few
        hundred nanoseconds a point, Python bytecode per point and field would cost more than
        the rest of an ML UDF's work."""
        import numpy as np

        points = self.points
        n = len(points)
        skip = set(self.others)
        if points.__class__ is PointBlock:
            skip |= points.mixed
            # A point the UDF emitted itself (against the contract) goes the general way.
            skip.update(i for i, p in points._points.items() if p._out is not None)
            raws = points.raws
        else:
            raws = []
            for i, p in enumerate(points):
                pb = p._pb
                if p._out is not None or pb.fieldsInt or pb.fieldsString or pb.fieldsBool:
                    skip.add(i)
                raws.append(p._raw)
        if None in raws:  # not from the wire, or an unusual layout: serialize the message
            raws = [r if r is not None else points[i]._pb.SerializeToString()
                    for i, r in enumerate(raws)]
        doubles: list[tuple[str, Any]] = []
        loose: list[tuple[str, list]] = []
        for name, col in zip(self.names, self.columns, strict=True):
            if isinstance(col, np.ndarray) and col.dtype == np.float64 and col.ndim == 1:
                doubles.append((name, col))
            else:
                loose.append((name, col.tolist() if isinstance(col, np.ndarray) else list(col)))
        # The double outputs of all points at once: per point, each field's map-entry head
        # and its 8 value bytes, packed without padding, cut into one bytes object per point.
        if doubles:
            heads = [_double_head(name) for name, _ in doubles]
            dtype = np.dtype([item for j, h in enumerate(heads)
                              for item in ((f"h{j}", np.uint8, (len(h),)), (f"v{j}", "<f8"))])
            rec = np.empty(n, dtype)
            for j, (h, (_, col)) in enumerate(zip(heads, doubles, strict=True)):
                rec[f"h{j}"] = np.frombuffer(h, np.uint8)
                rec[f"v{j}"] = col
            extras = rec.view(f"V{dtype.itemsize}").tolist()
        else:
            extras = [b""] * n
        parts = [raws, extras]
        sizes = list(map(operator.add, map(len, raws), map(len, extras)))
        for name, values in loose:
            entries = _loose_entries(name, values)
            if None in entries:
                skip.update(i for i, e in enumerate(entries) if e is None)
                entries = [e or b"" for e in entries]
            parts.append(entries)
            sizes = list(map(operator.add, sizes, map(len, entries)))
            if any(v.__class__ is not float for v in values):
                hits = list(map(bytes.find, raws, repeat(name.encode())))
                if max(hits) >= 0:
                    skip.update(i for i, h in enumerate(hits) if h >= 0)
        heads_by_size = {k: _frame_head(k) for k in set(sizes)}
        frames: list[bytes | None] = list(map(b"".join, zip(
            map(heads_by_size.__getitem__, sizes), *parts, strict=True)))
        for i in skip:
            frames[i] = None
        return frames


def _frame_head(k: int) -> bytes:
    """Length prefix, field 17's tag and length: what goes before a k-byte point body (the
    point's bytes with the added entries) to make it a whole Response frame."""
    head = point_request_head(k)
    return encode_varint(len(head) + k) + head


def _loose_entries(name: str, values: Sequence[Any]) -> list[bytes | None]:
    """Map entries for the values of a column that is not a float64 array, one per point;
    None for a value of no plain field type (that point takes the general path)."""
    if set(map(type, values)) <= {str}:  # class names and the like: the usual case
        cache = {v: _entry(name, v) for v in set(values)}
        return list(map(cache.__getitem__, values))
    keys = list(map(_typed, values))
    try:
        cache = {k: _entry(name, k[1]) for k in set(keys)}
        return list(map(cache.__getitem__, keys))
    except (KeyError, TypeError):  # a NaN (never equal to another NaN) or an unhashable value
        return [_entry(name, v) for v in values]


def _typed(v: Any) -> tuple[type, Any]:
    # 1, 1.0 and True are equal as dict keys but are different field values.
    return (v.__class__, v)


def _entry(name: str, value: Any) -> bytes | None:
    cls = value.__class__
    if cls is float:
        return _double_head(name) + _pack_double(value)
    if cls is str or cls is bool or (cls is int and _INT64_MIN <= value < _INT64_END):
        return _map_entry(name, value)
    return None
