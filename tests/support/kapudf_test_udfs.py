"""Test-only UDFs, loaded by tests as `kapudf run kapudf_test_udfs:Class` with this directory on
PYTHONPATH (see tests/conftest.py). Each exists to exercise one behaviour of the agent or of the
conformance suite; none is part of the catalogue."""

from __future__ import annotations

import logging
import os
import random
import sys
import time
from dataclasses import dataclass
from typing import ClassVar

from udfcollection.points import Point
from udfcollection.spec import (
    BATCH,
    BOOL,
    DOUBLE,
    DURATION,
    INT,
    STREAM,
    STRING,
    UDF,
    Option,
    PointError,
    UDFState,
)


@dataclass
class CountState(UDFState):
    count: int = 0
    total: float = 0.0
    last: int | None = None


class Counter(UDF):
    """Running count and sum per group: small, stateful, and with one option of every type so
    init validation can be exercised over the wire."""

    name = "test_counter"
    summary = "Running count and sum of a field per group (test UDF)."
    description = ("Emits every `every`-th point of a group with `count` (points seen in the "
                   "group) and `sum` (scaled sum of `field`). A gap longer than `window` "
                   "between points of a group restarts the count. A point without a numeric "
                   "`field` is handled by onError.")
    options = (
        Option("field", STRING, "Numeric field to sum.", required=True, example="value"),
        Option("every", INT, "Emit every n-th point of a group.", default=1, min=1, example=2),
        Option("scale", DOUBLE, "Factor applied to the sum.", default=1.0, min=0.0,
               min_exclusive=True, example=2.0),
        Option("window", DURATION, "Restart the count after a gap this long (0s: never).",
               default=0, min=0, example=60_000_000_000),
        Option("label", STRING, "Kind of output.", default="plain",
               choices=("plain", "fancy"), example="fancy"),
        Option("chatty", BOOL, "Log every point at DEBUG.", default=False, example=True),
        Option("tag", STRING, "Tag copied into the `tags` output field (repeatable).",
               repeatable=True, example="host"),
    )
    example_options: ClassVar[dict] = {"field": "value"}
    State = CountState

    def process(self, point: Point, state: CountState) -> Point | None:
        v = point.number(self.opts.field)
        if v is None:
            raise PointError(f"field {self.opts.field!r} is missing or not numeric")
        w = self.opts.window
        if w and state.last is not None and point.time - state.last > w:
            state.count = 0
            state.total = 0.0
        state.count += 1
        state.total += v
        state.last = point.time
        if self.opts.chatty:
            self.log.debug("point %d of group %r", state.count, point.group)
        if state.count % self.opts.every:
            return None
        out = {"count": state.count, "sum": state.total * self.opts.scale}
        if self.opts.label == "fancy":
            out["label"] = "fancy"
        if self.opts.tag:
            out["tags"] = ",".join(point.tags.get(t, "") for t in self.opts.tag)
        return point.emit(out)


class Boom(UDF):
    """Raises from UDF code: ZeroDivisionError for value 0, a ValueError with a two-line message
    for negative values; emits `inv` = 1/value otherwise."""

    name = "test_boom"
    summary = "Inverse of a field; raises on zero and negative values (test UDF)."
    description = "Emits 1/value as `inv`. Raises ZeroDivisionError for 0 and ValueError below 0."
    options = (Option("field", STRING, "Field to invert.", default="value", example="value"),)

    def process(self, point: Point, state) -> Point:
        v = point.number(self.opts.field)
        if v is None:
            raise PointError(f"field {self.opts.field!r} is missing")
        if v < 0:
            raise ValueError("negative value\nsecond line of the message")
        return point.emit({"inv": 1 / v})


class Sleepy(UDF):
    """Busy for `seconds` per point: keepalives must still be answered meanwhile."""

    name = "test_sleepy"
    summary = "Forwards each point after sleeping (test UDF)."
    description = "Sleeps `seconds` per point, then forwards it unchanged."
    options = (Option("seconds", DOUBLE, "Time to sleep per point.", default=2.0, min=0.0,
                      example=2.0),)

    def process(self, point: Point, state) -> Point:
        time.sleep(self.opts.seconds)
        return point.emit()


class Printer(UDF):
    """Writes to stdout in every way UDF code might: print(), sys.stdout.write, a raw write to
    file descriptor 1, plus a log record. None of it may reach the protocol stream."""

    name = "test_printer"
    summary = "Forwards points and prints to stdout all the while (test UDF)."
    description = "Prints on every point; forwards it unchanged."

    def setup(self) -> None:
        print("printed during setup")

    def process(self, point: Point, state) -> Point:
        print(f"print() for point {point.time}")
        sys.stdout.write("sys.stdout.write\n")
        sys.stdout.flush()
        os.write(1, b"raw write to fd 1\n")
        logging.getLogger("some.library").warning("library log line")
        return point.emit()


class Doubler(UDF):
    """Vectorised: `process_many` doubles `field` for all points read so far at once."""

    name = "test_doubler"
    summary = "Doubles a field, vectorised (test UDF)."
    description = "Emits each point with `double` = 2 * field; points are handled in blocks."
    options = (Option("field", STRING, "Field to double.", default="value", example="value"),)

    def process_many(self, points, states):
        out = []
        for p in points:
            v = p.number(self.opts.field)
            out.append(PointError("no value") if v is None else p.emit({"double": 2 * v}))
        return out


@dataclass
class SeenState(UDFState):
    points: int = 0


class ColumnScaler(UDF):
    """Column-wise at both ends (`column_inputs` in, `FieldColumns` out): `double` = 2 * field
    and `sign` ('neg' or 'pos') on every point, `seen` counting the group's points so far; a
    point whose field is missing or not a number goes to onError."""

    name = "test_column_scaler"
    summary = "Doubles a field column-wise (test UDF)."
    description = "Emits each point with `double`, `sign` and `seen` added, column-wise."
    options = (Option("field", STRING, "Field to double.", default="value", example="value"),)
    State = SeenState

    def column_inputs(self):
        return (self.opts.field,)

    def process_many(self, points, states):
        import numpy as np

        from udfcollection.columns import FieldColumns
        from udfcollection.ml.inputs import read_matrix

        x, problems = read_matrix(points, self.column_inputs())
        v = x[:, 0]
        seen = []
        for s in states:
            s.points += 1
            seen.append(s.points)
        sign = np.where(v < 0, "neg", "pos").astype(object)
        return FieldColumns(points, ("double", "sign", "seen"), (2 * v, sign, seen),
                            {i: PointError(r) for i, r in problems.items()})


@dataclass
class BatchState(UDFState):
    batches: int = 0


class TopN(UDF):
    """Batch to batch: the `n` points with the largest `field`, in time order, each with
    `batch_no` (batches seen in this group so far, kept in state)."""

    name = "test_topn"
    summary = "The n largest points of each batch (test UDF)."
    description = ("Answers each batch with its `n` points of largest `field` (ties: earlier "
                   "first), in time order, numbered with `batch_no`. Points without the field "
                   "are ignored.")
    wants = BATCH
    provides = BATCH
    options = (
        Option("field", STRING, "Field to rank by.", required=True, example="value"),
        Option("n", INT, "How many points to keep per batch.", default=1, min=0, example=2),
    )
    example_options: ClassVar[dict] = {"field": "value"}
    State = BatchState

    def process_batch(self, batch, state: BatchState):
        state.batches += 1
        f = self.opts.field
        ranked = sorted((p for p in batch.points if p.number(f) is not None),
                        key=lambda p: (-p.number(f), p.time))[: self.opts.n]
        return [p.emit({"batch_no": state.batches}) for p in sorted(ranked, key=lambda p: p.time)]


class BatchToStream(UDF):
    """Batch to stream: one point per batch with the batch's point count."""

    name = "test_batch_count"
    summary = "Counts the points of each batch (test UDF)."
    description = "Emits one stream point per batch: `count` points, at the batch's tmax."
    wants = BATCH
    provides = STREAM

    def process_batch(self, batch, state):
        return [Point.new(batch.tmax, {"count": len(batch.points)}, tags=batch.tags,
                          name=batch.name or "batch")]


# --- deliberately broken UDFs, for the conformance suite's own tests ----------------------

class Undescribed(UDF):
    name = "test_undescribed"
    summary = ""
    description = ""

    def process(self, point, state):
        return point.emit()


class NoExample(Counter):
    name = "test_no_example"
    options = (Option("field", STRING, "Numeric field to sum.", required=True),)


class Forgetful(UDF):
    """Keeps its count on the instance instead of in declared State: lost across restore."""

    name = "test_forgetful"
    summary = "Counts points but forgets them across a restore (broken test UDF)."
    description = "Emits `count` of points seen, kept outside the framework's state."

    def setup(self) -> None:
        self.count = 0

    def process(self, point, state):
        self.count += 1
        return point.emit({"count": self.count})


class Dice(UDF):
    """Nondeterministic: adds a random field."""

    name = "test_dice"
    summary = "Adds a random number (broken test UDF)."
    description = "Adds `roll`, a random number, to each point."

    def process(self, point, state):
        return point.emit({"roll": random.random()})


class Noisy(UDF):
    """Writes unlevelled lines to stderr (like a stray traceback)."""

    name = "test_noisy"
    summary = "Forwards points, writing free text to stderr (broken test UDF)."
    description = "Writes a line without a level word to stderr for each point."

    def process(self, point, state):
        sys.stderr.write("free text on stderr\n")
        return point.emit()
