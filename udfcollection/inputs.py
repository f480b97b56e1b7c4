"""Read data files into plain points for `kapudf test`: line protocol, CSV and Kapacitor stream
recordings (`.srpl`). Any of them may be gzip-compressed (detected by content) or stdin (`-`).

Every problem in a file is an `InputError` whose text is one line naming the file and line.

Formats:
- `lp`: InfluxDB line protocol, timestamps in `precision` (default ns).
- `csv`: a header row, then one point per row. One column holds the time (`time_column`, found
  by name when not given: time, timestamp, _time, date, datetime); `tag_columns` become tags;
  every other column becomes a field whose type is inferred from the whole column: int when
  every value is an integer, float when every value is a number, bool when every value is
  true/false, else string. Empty cells are left out of their point (InfluxDB has no nulls).
  Times are ISO 8601 (a time without zone is UTC), epoch numbers (in `precision`; without it
  the unit is guessed from the number of digits and reported in `notes`), or parsed with a
  strftime `time_format`. A file without a time column can number its rows with `time_step`.
- `srpl`: what Kapacitor's `kapacitor record stream` stores (gzip-compressed on disk in its
  replay directory): for every point three lines, the database, the retention policy, and
  the point in line protocol with nanosecond timestamps. The database and retention policy are
  kept on the points (`RecordedPoint`) and sent to the UDF as Kapacitor would.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO

from udfcollection.lineprotocol import PRECISION_NS, LineProtocolError, LPPoint, parse_line
from udfcollection.lineprotocol import _field_value as _lp_value  # same value rules

FORMATS = ("lp", "csv", "srpl")
TIME_COLUMN_NAMES = ("time", "timestamp", "_time", "date", "datetime")
_EXTENSIONS = {".lp": "lp", ".line": "lp", ".txt": "lp", ".influx": "lp", ".csv": "csv",
               ".srpl": "srpl"}


class InputError(ValueError):
    """A problem in an input file. `str()` is one line: `FILE:line N: what is wrong`."""

    def __init__(self, source: str, lineno: int | None, message: str):
        where = source + (f":line {lineno}" if lineno is not None else "")
        super().__init__(f"{where}: {message}")
        self.source = source
        self.lineno = lineno
        self.message = message


@dataclass
class RecordedPoint(LPPoint):
    """A point read from a stream recording, with the database and retention policy it was
    written to."""

    database: str = ""
    retention_policy: str = ""


@dataclass
class CsvSpec:
    """How to turn CSV rows into points (see the module docstring)."""

    measurement: str | None = None
    time_column: str | None = None
    time_format: str | None = None  # None/"auto", "iso", "epoch", or a strftime pattern
    tag_columns: tuple[str, ...] = ()
    time_step: int | None = None  # ns between rows of a file without a time column


@dataclass
class InputData:
    points: list[LPPoint]
    format: str
    source: str
    notes: list[str] = field(default_factory=list)


def detect_format(path: str) -> str | None:
    """The format named by a file's extension (`.lp`, `.csv`, `.srpl`, each optionally `.gz`),
    or None when the extension says nothing."""
    p = Path(path)
    suffixes = [s.lower() for s in p.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    return _EXTENSIONS.get(suffixes[-1]) if suffixes else None


def _open_text(path: str, stdin: IO[bytes] | None = None) -> IO[str]:
    """A text stream over the file or stdin, gunzipped when the content is gzip."""
    if path == "-":
        raw: IO[bytes] = stdin if stdin is not None else sys.stdin.buffer
        buffered = raw if hasattr(raw, "peek") else io.BufferedReader(raw)  # type: ignore[arg-type]
    else:
        buffered = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    head = buffered.peek(2)[:2]  # type: ignore[attr-defined]
    if head == b"\x1f\x8b":
        buffered = gzip.GzipFile(fileobj=buffered)  # type: ignore[assignment]
    # utf-8-sig: spreadsheet exports often start with a byte-order mark.
    return io.TextIOWrapper(buffered, encoding="utf-8-sig", newline="")


def read_points(path: str, fmt: str | None = None, *, precision: str | None = None,
                csv_spec: CsvSpec | None = None, stdin: IO[bytes] | None = None) -> InputData:
    """Read a whole input file (or `-` for stdin). `fmt` defaults to the extension's format, and
    to line protocol for stdin or an unknown extension. Raises InputError, or OSError when the
    file cannot be opened."""
    source = "<stdin>" if path == "-" else path
    fmt = fmt or (detect_format(path) if path != "-" else None) or "lp"
    if fmt not in FORMATS:
        raise ValueError(f"unknown input format {fmt!r}")
    fh = _open_text(path, stdin)
    try:
        if fmt == "csv":
            spec = csv_spec or CsvSpec()
            if spec.measurement is None:
                name = "data" if path == "-" else Path(path).name.split(".")[0] or "data"
                spec = CsvSpec(name, spec.time_column, spec.time_format, spec.tag_columns,
                               spec.time_step)
            return read_csv(fh, spec, precision, source)
        lines = _decoded_lines(fh, source)
        if fmt == "srpl":
            return InputData(list(read_srpl(lines, precision or "ns", source)), fmt, source)
        return InputData(list(read_lp(lines, precision or "ns", source)), fmt, source)
    finally:
        if path != "-":
            fh.close()
        else:
            fh.detach()


def _decoded_lines(fh: IO[str], source: str) -> Iterator[str]:
    n = 0
    try:
        for n, line in enumerate(fh, 1):  # noqa: B007 - n is read after the loop on errors
            yield line
    except UnicodeDecodeError:
        raise InputError(source, n + 1, "not UTF-8 text") from None
    except (OSError, EOFError) as exc:  # a truncated or corrupt gzip stream
        raise InputError(source, n + 1, f"cannot read: {exc}") from None


def read_lp(lines: Iterable[str], precision: str = "ns", source: str = "") -> Iterator[LPPoint]:
    for n, line in enumerate(lines, 1):
        try:
            p = parse_line_fast(line, precision, n)
        except LineProtocolError as exc:
            raise InputError(source, n, _lp_message(exc)) from None
        if p is not None:
            yield p


def parse_line_fast(line: str, precision: str = "ns", lineno: int | None = None
                    ) -> LPPoint | None:
    """`lineprotocol.parse_line` with a fast path for the common line without escapes or
    quoted strings: same result, same errors (anything unusual is left to parse_line)."""
    s = line.strip()
    if not s or s[0] == "#" or "\\" in s or '"' in s:
        return parse_line(line, precision, lineno)
    parts = s.split(" ")
    if len(parts) not in (2, 3):
        return parse_line(line, precision, lineno)
    key = parts[0].split(",")
    name = key[0]
    if not name:
        return parse_line(line, precision, lineno)
    tags = {}
    for t in key[1:]:
        k, sep, v = t.partition("=")
        if not sep or not k or "=" in v:
            return parse_line(line, precision, lineno)
        tags[k] = v
    fields: dict[str, float | int | str | bool] = {}
    try:
        for f in parts[1].split(","):
            k, sep, v = f.partition("=")
            if not sep or not k or "=" in v:
                return parse_line(line, precision, lineno)
            fields[k] = _lp_value(v)
        ts = int(parts[2]) * PRECISION_NS[precision] if len(parts) == 3 else 0
    except (ValueError, KeyError):
        return parse_line(line, precision, lineno)
    return LPPoint(name, tags, fields, ts)


def _lp_message(exc: LineProtocolError) -> str:
    text = str(exc)
    return text.split(": ", 1)[1] if text.startswith("line ") and ": " in text else text


def read_srpl(lines: Iterable[str], precision: str = "ns",
              source: str = "") -> Iterator[RecordedPoint]:
    """Kapacitor stream recording text: database, retention policy, line protocol, repeated."""
    text = [line.rstrip("\r\n") for line in lines]
    while text and not text[-1].strip():
        text.pop()
    for i in range(0, len(text), 3):
        db_no, lp_no = i + 1, i + 3
        db = text[i]
        if " " in db.strip() or "=" in db:
            raise InputError(source, db_no, f"expected a database name, got {_short(db)}; a "
                             "stream recording repeats three lines: database, retention "
                             "policy, line protocol (for a line-protocol file use "
                             "--input-format lp)")
        if i + 2 >= len(text):
            raise InputError(source, len(text) + 1, "recording ends inside a record (each "
                             "point needs three lines: database, retention policy, line "
                             "protocol)")
        try:
            p = parse_line(text[i + 2], precision, lp_no)
        except LineProtocolError as exc:
            raise InputError(source, lp_no, _lp_message(exc)) from None
        if p is None:
            raise InputError(source, lp_no, "expected a line-protocol line after the database "
                             "and retention policy lines")
        yield RecordedPoint(p.name, p.tags, p.fields, p.time, db, text[i + 1])


def _short(s: str, n: int = 40) -> str:
    s = s.strip()
    return repr(s if len(s) <= n else s[:n] + "...")


# --- CSV --------------------------------------------------------------------------------------

_INT_RE = re.compile(r"[+-]?\d+")
_NUM_RE = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_ISO_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?")
_BOOL = {"true": True, "false": False}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_iso(text: str) -> int:
    """ISO 8601 / RFC 3339 date-time to int ns since the epoch, to the nanosecond. Without a
    zone the time is UTC. Raises ValueError."""
    m = _ISO_RE.fullmatch(text.strip())
    if not m:
        raise ValueError("not an ISO 8601 time")
    y, mo, d, h, mi, s, frac, tz = m.groups()
    dt = datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0), tzinfo=UTC)
    secs = (dt - _EPOCH) // timedelta(seconds=1)
    if tz and tz not in ("Z", "z"):
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        offset = int(digits[:2]) * 3600 + (int(digits[2:4]) * 60 if len(digits) > 2 else 0)
        secs -= sign * offset
    ns = int((frac or "").ljust(9, "0")) if frac else 0
    return secs * 1_000_000_000 + ns


def guess_epoch_precision(text: str) -> str:
    """The unit of an epoch timestamp judged by its integer digits: 10 digits are seconds
    (years 2001-2286), 13 milliseconds, 16 microseconds, 19 nanoseconds."""
    digits = len(text.strip().lstrip("+-").split(".")[0].split("e")[0].split("E")[0])
    if digits <= 11:
        return "s"
    if digits <= 14:
        return "ms"
    if digits <= 17:
        return "us"
    return "ns"


def parse_epoch(text: str, precision: str) -> int:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError("not a number") from None
    if not value.is_finite():
        raise ValueError("not a finite number")
    return int((value * PRECISION_NS[precision]).to_integral_value())


def _infer_column(values: list[str]) -> str:
    """'int', 'float', 'bool' or 'string' for a column's non-empty cells."""
    present = [v for v in values if v != ""]
    if not present:
        return "empty"
    if all(_INT_RE.fullmatch(v) for v in present):
        return "int"
    if all(_is_float(v) for v in present):
        return "float"
    if all(v.lower() in _BOOL for v in present):
        return "bool"
    return "string"


def _is_float(v: str) -> bool:
    if _NUM_RE.fullmatch(v):
        return True
    return v.lower().lstrip("+-") in ("nan", "inf", "infinity")


def read_csv(fh: IO[str], spec: CsvSpec, precision: str | None = None,
             source: str = "") -> InputData:
    reader = csv.reader(fh)
    try:
        header = next(reader, None)
        if header is None:
            raise InputError(source, 1, "empty file: expected a header row naming the columns")
        header = [h.strip() for h in header]
        rows: list[tuple[int, list[str]]] = []
        for row in reader:
            if not row or all(c.strip() == "" for c in row):
                continue
            if len(row) != len(header):
                raise InputError(source, reader.line_num,
                                 f"{len(row)} values but the header has {len(header)} columns")
            rows.append((reader.line_num, [c.strip() for c in row]))
    except csv.Error as exc:
        raise InputError(source, reader.line_num, f"bad CSV: {exc}") from None
    except UnicodeDecodeError:
        raise InputError(source, reader.line_num + 1, "not UTF-8 text") from None
    except (OSError, EOFError) as exc:
        raise InputError(source, reader.line_num + 1, f"cannot read: {exc}") from None

    for i, h in enumerate(header):
        if not h:
            raise InputError(source, 1, f"column {i + 1} has no name in the header")
        if h in header[:i]:
            raise InputError(source, 1, f"column {h!r} appears twice in the header")
    index = {h: i for i, h in enumerate(header)}

    def column(name: str, what: str) -> int:
        if name in index:
            return index[name]
        lower = {h.lower(): h for h in header}
        hint = f" (did you mean {lower[name.lower()]!r}?)" if name.lower() in lower else ""
        raise InputError(source, 1, f"no column {name!r} for {what}{hint}; columns: "
                         + ", ".join(header))

    notes: list[str] = []
    time_idx: int | None = None
    if spec.time_column is not None:
        time_idx = column(spec.time_column, "--time-column")
    elif spec.time_step is None:
        for cand in TIME_COLUMN_NAMES:
            found = [i for i, h in enumerate(header) if h.lower() == cand]
            if found:
                time_idx = found[0]
                break
        else:
            raise InputError(source, 1, "no time column (none is named "
                             + ", ".join(TIME_COLUMN_NAMES)
                             + "); name it with --time-column, or number the rows with "
                             "--time-step 10s")
    tag_idx = [column(t, "--tag-column") for t in spec.tag_columns]
    if time_idx is not None and time_idx in tag_idx:
        raise InputError(source, 1, f"column {header[time_idx]!r} is both the time and a tag")
    field_idx = [i for i in range(len(header)) if i != time_idx and i not in tag_idx]
    kinds = {i: _infer_column([r[i] for _, r in rows]) for i in field_idx}

    to_time = _time_parser(spec, precision, rows, time_idx, header, source, notes)
    measurement = spec.measurement or "data"
    points: list[LPPoint] = []
    for k, (lineno, row) in enumerate(rows):
        if time_idx is None:
            t = k * (spec.time_step or 0)
        else:
            raw = row[time_idx]
            if raw == "":
                raise InputError(source, lineno, f"empty time in column {header[time_idx]!r}")
            try:
                t = to_time(raw)
            except ValueError as exc:
                raise InputError(source, lineno, f"column {header[time_idx]!r}: cannot read "
                                 f"{_short(raw)} as a time ({exc})") from None
        tags = {header[i]: row[i] for i in tag_idx if row[i] != ""}
        fields: dict[str, float | int | str | bool] = {}
        for i in field_idx:
            v = row[i]
            if v == "":
                continue
            kind = kinds[i]
            if kind == "int":
                fields[header[i]] = int(v)
            elif kind == "float":
                fields[header[i]] = float(v)
            elif kind == "bool":
                fields[header[i]] = _BOOL[v.lower()]
            else:
                fields[header[i]] = v
        if not fields:
            raise InputError(source, lineno, "row has no field values (a point needs at least "
                             "one field)")
        points.append(LPPoint(measurement, tags, fields, t))
    return InputData(points, "csv", source, notes)


def _time_parser(spec: CsvSpec, precision: str | None, rows: list[tuple[int, list[str]]],
                 time_idx: int | None, header: list[str], source: str, notes: list[str]):
    if time_idx is None:
        return None
    mode = spec.time_format or "auto"
    if mode not in ("auto", "iso", "epoch") and "%" not in mode:
        raise ValueError(f"time format {mode!r}: expected auto, iso, epoch or a strftime "
                         "pattern such as '%d %m %Y %H:%M'")
    first = next((r[time_idx] for _, r in rows if r[time_idx] != ""), None)
    if mode == "auto":
        mode = "epoch" if first is not None and _NUM_RE.fullmatch(first) else "iso"
    if mode == "iso":
        return parse_iso
    if mode == "epoch":
        if precision is None:
            precision = guess_epoch_precision(first or "0")
            names = {"s": "seconds", "ms": "milliseconds", "us": "microseconds",
                     "ns": "nanoseconds"}
            notes.append(f"{source}: epoch times in column {header[time_idx]!r} read as "
                         f"{names[precision]} (judged by their digits; --precision sets it)")
        return lambda text: parse_epoch(text, precision)
    fmt = mode

    def strp(text: str) -> int:
        dt = datetime.strptime(text, fmt)
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return (dt - _EPOCH) // timedelta(microseconds=1) * 1_000

    return strp
