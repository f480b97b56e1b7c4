"""Run a UDF over history stored in InfluxDB 1.x, and print or write back what it emits.

Contract:
- The query must be one `SELECT` without `INTO` (replay reads; it writes only where told) and
  without `ORDER BY time DESC` (a UDF sees time move forward, as under Kapacitor). Results are
  read in chunks (`chunked=true`), so no server row limit truncates them.
- Grouping is TICKscript's `groupBy`: by default the query's own GROUP BY tags (as InfluxDB
  reports them for each series, so `GROUP BY *` and regexes work); `group_by` overrides it. Tag
  values selected as columns (`SELECT *`) are tags of the point, found with SHOW TAG KEYS.
- Field types follow SHOW FIELD KEYS: a float field stays float even when a value is whole
  (InfluxDB's JSON writes 3.0 as 3). Columns that are not stored fields (`mean`, an alias)
  keep strings and booleans as they are and become floats when numeric. Null cells are absent
  fields; a row with no field left is skipped.
- Stream UDFs see each group's points in time order. When every group lies within one series
  (the default) series are replayed one after another, with bounded memory; otherwise (a
  `group_by` coarser than the query's GROUP BY) everything is read first and replayed in time
  order. Batch UDFs get each group's points as batches cut by `offline.requests_for` (one batch
  per group unless `batch_every`/`batch_size`). Points of different measurements are never
  in one group.
- Writing back: line protocol at nanosecond precision, in batches; tags with empty values are
  left out (InfluxDB cannot store them) and so are NaN and infinite field values; a point with
  no field left is skipped and counted. Writing into the very measurement being read, in the
  same database, is refused.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from udfcollection.lineprotocol import LPPoint, format_point
from udfcollection.spec import BATCH, UDF

CHUNK_SIZE = 10_000
WRITE_BATCH = 5_000


class ReplayError(Exception):
    """A problem the user can fix: unreachable server, bad query, write refused."""


@dataclass
class Series:
    name: str
    tags: dict[str, str]
    columns: list[str]
    values: list[list[Any]]


@dataclass
class ReplayStats:
    points_in: int = 0
    series: int = 0
    points_out: int = 0
    written: int = 0
    skipped_out: int = 0  # output points with nothing InfluxDB can store
    dropped_values: int = 0  # NaN/inf field values left out of writes
    groups: dict[str, int] = field(default_factory=dict)  # output points per group
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    group_by: tuple[str, ...] = ()
    measurements: set[str] = field(default_factory=set)


# --- the query ------------------------------------------------------------------------------

_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


def check_query(query: str) -> str:
    """The query, stripped, if replay can run it; ReplayError saying why not otherwise."""
    q = query.strip().rstrip(";").strip()
    bare = _QUOTED.sub("''", q)  # keywords inside strings and identifiers do not count
    if not re.match(r"select\b", bare, re.IGNORECASE):
        raise ReplayError("the query must be a SELECT statement (replay only reads history)")
    if ";" in bare:
        raise ReplayError("give one SELECT statement, not several")
    if re.search(r"\binto\b", bare, re.IGNORECASE):
        raise ReplayError("SELECT ... INTO writes to the database; drop INTO and use "
                          "--write-db/--write-measurement for the UDF's output")
    if re.search(r"\border\s+by\s+time\s+desc\b", bare, re.IGNORECASE):
        raise ReplayError("ORDER BY time DESC would feed the UDF newest first; replay feeds "
                          "points oldest first, as Kapacitor does: drop it")
    return q


def quote_ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- talking to InfluxDB --------------------------------------------------------------------

def connect(url: str, username: str | None = None, password: str | None = None,
            timeout: float = 60.0):
    """An `influxdb.InfluxDBClient` for `url` (http[s]://host[:port][/path]), checked with a
    ping. JSON answers are asked for: the chunked reader parses one JSON document per line."""
    try:
        from influxdb import InfluxDBClient
    except ImportError:
        raise ReplayError("replay needs the InfluxDB client library: "
                          "pip install 'udfcollection[influx]'") from None
    parts = urlsplit(url if "://" in url else "http://" + url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ReplayError(f"--influx {url!r} is not an http:// or https:// URL")
    try:
        port = parts.port or 8086
    except ValueError:
        raise ReplayError(f"--influx {url!r} has a bad port") from None
    client = InfluxDBClient(host=parts.hostname, port=port, username=username or "",
                            password=password or "", ssl=parts.scheme == "https",
                            verify_ssl=parts.scheme == "https", timeout=timeout, retries=1,
                            path=parts.path.strip("/"),
                            headers={"Accept": "application/json"})
    try:
        client.ping()
    except Exception as exc:
        raise ReplayError(f"cannot reach InfluxDB at {url}: {_short_error(exc)}") from None
    return client


def _short_error(exc: BaseException) -> str:
    from influxdb.exceptions import InfluxDBClientError

    if isinstance(exc, InfluxDBClientError):
        text = exc.content
        if isinstance(text, bytes):
            text = text.decode(errors="replace")
        with contextlib.suppress(ValueError, AttributeError):
            text = json.loads(text).get("error", text)
        return str(text).strip()
    text = str(exc)
    # requests' connection errors nest several reprs; the last clause is the useful one.
    m = re.search(r"\[Errno -?\d+\] ([^')\]]+)", text)
    return m.group(1) if m else text[:200]


def databases(client) -> set[str]:
    try:
        return {d["name"] for d in client.get_list_database()}
    except Exception as exc:
        raise ReplayError(f"cannot list databases: {_short_error(exc)}") from None


def read_series(client, db: str, query: str, chunk_size: int = CHUNK_SIZE
                ) -> Iterator[Series]:
    """The query's result, series by series as InfluxDB streams them; a series split across
    chunks arrives as several consecutive Series with the same name and tags. Times are int ns.
    An error in the result (which the client's own chunked reader would drop) is raised."""
    params = {"q": query, "db": db, "epoch": "ns", "chunked": "true",
              "chunk_size": str(chunk_size)}
    try:
        resp = client.request("query", params=params, stream=True)
    except Exception as exc:
        raise ReplayError(f"query failed: {_short_error(exc)}") from None
    try:
        # requests' default 512-byte reads make long chunk lines slow to reassemble.
        for line in resp.iter_lines(chunk_size=1 << 16):
            if not line:
                continue
            doc = json.loads(line)
            if "error" in doc:
                raise ReplayError(f"query failed: {doc['error']}")
            for result in doc.get("results", []):
                if "error" in result:
                    raise ReplayError(f"query failed: {result['error']}")
                for s in result.get("series", []):
                    yield Series(s.get("name", ""), dict(s.get("tags") or {}),
                                 list(s.get("columns", [])), s.get("values", []))
    finally:
        resp.close()


@dataclass
class Schema:
    """What SHOW FIELD KEYS / SHOW TAG KEYS say about one measurement."""

    field_types: dict[str, str]  # field -> float | integer | string | boolean
    tags: set[str]


def load_schema(client, db: str, measurement: str) -> Schema:
    types: dict[str, str] = {}
    seen_twice: set[str] = set()
    try:
        fk = client.query(f"SHOW FIELD KEYS FROM {quote_ident(measurement)}", database=db)
        for row in fk.get_points():
            key, kind = row["fieldKey"], row["fieldType"]
            if key in types and types[key] != kind:
                seen_twice.add(key)  # differs between shards: leave values as they come
            types[key] = kind
        tk = client.query(f"SHOW TAG KEYS FROM {quote_ident(measurement)}", database=db)
        tags = {row["tagKey"] for row in tk.get_points()}
    except Exception as exc:
        raise ReplayError(f"cannot read the schema of {measurement!r}: {_short_error(exc)}"
                          ) from None
    for key in seen_twice:
        types.pop(key, None)
    return Schema(types, tags)


_COERCE: dict[str, Callable[[Any], Any]] = {"float": float, "integer": int, "string": str,
                                             "boolean": bool}


def series_points(s: Series, schema: Schema) -> Iterator[LPPoint]:
    """The rows of one series as points: series tags plus tag columns, typed fields."""
    try:
        t_index = s.columns.index("time")
    except ValueError:
        raise ReplayError("the query's result has no time column (SHOW statements and "
                          "aggregates without GROUP BY time() over no rows cannot be "
                          "replayed)") from None
    cols = []
    for i, c in enumerate(s.columns):
        if i == t_index:
            continue
        if c in schema.tags and c not in schema.field_types:
            cols.append((i, c, None))
        else:
            cols.append((i, c, _COERCE.get(schema.field_types.get(c, ""), _derived)))
    for row in s.values:
        tags = dict(s.tags)
        fields: dict[str, Any] = {}
        for i, c, conv in cols:
            v = row[i]
            if v is None:
                continue
            if conv is None:
                tags[c] = str(v)
            else:
                fields[c] = conv(v)
        if fields:
            yield LPPoint(s.name, tags, fields, int(row[t_index]))


def _derived(v: Any) -> Any:
    """A column that is not a stored field (a function's result, an alias)."""
    if isinstance(v, bool | str):
        return v
    return float(v)


# --- writing back ---------------------------------------------------------------------------

def storable(p: LPPoint, measurement: str | None, stats: ReplayStats) -> LPPoint | None:
    """`p` as InfluxDB can store it, or None when nothing of it can be."""
    fields = {}
    for k, v in p.fields.items():
        if isinstance(v, float) and not math.isfinite(v):
            stats.dropped_values += 1
            continue
        fields[k] = v
    if not fields:
        stats.skipped_out += 1
        return None
    tags = {k: v for k, v in p.tags.items() if v != ""}
    return LPPoint(measurement or p.name, tags, fields, p.time)


class Writer:
    """Buffers output points and writes them to `db` in line-protocol batches."""

    def __init__(self, client, db: str, measurement: str | None, read_db: str,
                 stats: ReplayStats, batch: int = WRITE_BATCH):
        self.client, self.db, self.measurement = client, db, measurement
        self.read_db, self.stats, self.batch = read_db, stats, batch
        self.lines: list[str] = []

    def prepare(self) -> None:
        if self.db not in databases(self.client):
            try:
                self.client.create_database(self.db)
            except Exception as exc:
                raise ReplayError(f"database {self.db!r} does not exist and cannot be created: "
                                  f"{_short_error(exc)}") from None

    def add(self, points: Sequence[LPPoint]) -> None:
        for p in points:
            target = self.measurement or p.name
            if self.db == self.read_db and target in self.stats.measurements:
                raise ReplayError(f"refusing to write into {self.db}.{target}, the measurement "
                                  "being replayed; choose --write-measurement NAME or another "
                                  "--write-db")
            q = storable(p, self.measurement, self.stats)
            if q is not None:
                self.lines.append(format_point(q))
        if len(self.lines) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if not self.lines:
            return
        try:
            self.client.write_points(self.lines, time_precision="n", database=self.db,
                                     protocol="line")
        except Exception as exc:
            raise ReplayError(f"writing to {self.db} failed after {self.stats.written} points: "
                              f"{_short_error(exc)}") from None
        self.stats.written += len(self.lines)
        self.lines = []


# --- the replay -----------------------------------------------------------------------------

OptionList = Sequence[tuple[str, Sequence[tuple[str, Any]]]]


def replay(client, cls: type[UDF], db: str, query: str, options: OptionList = (), *,
           group_by: Sequence[str] | None = None, batch_every: int | None = None,
           batch_size: int | None = None, sink: Callable[[list[LPPoint]], None],
           chunk_size: int = CHUNK_SIZE, stats: ReplayStats | None = None) -> ReplayStats:
    """Replay `query`'s result through a fresh instance of `cls`; every output point goes to
    `sink` (in lists, as produced). Counts go to `stats` (a new one by default; pass the one a
    Writer holds). Raises ReplayError, or offline.InitFailed for options the UDF refuses."""
    from udfcollection import offline
    from udfcollection.agent.runtime import FatalError

    query = check_query(query)
    if db not in databases(client):
        raise ReplayError(f"database {db!r} not found on the server")
    stats = stats if stats is not None else ReplayStats()
    t0 = time.perf_counter()
    runner = offline.OfflineRunner(cls, options)
    schemas: dict[str, Schema] = {}
    explicit = tuple(group_by) if group_by else None
    is_batch = cls.wants == BATCH
    if not is_batch and (batch_every is not None or batch_size is not None):
        raise ReplayError(f"{cls.name} takes a stream, not batches: drop --batch-every/"
                          "--batch-size")

    def points_of(s: Series) -> list[LPPoint]:
        if s.name not in schemas:
            schemas[s.name] = load_schema(client, db, s.name)
        stats.measurements.add(s.name)
        pts = list(series_points(s, schemas[s.name]))
        stats.points_in += len(pts)
        return pts

    def feed(points: list[LPPoint], keys: tuple[str, ...]) -> None:
        if is_batch:
            runner.feed_requests(offline.requests_for(cls, points, keys,
                                                      batch_every=batch_every,
                                                      batch_size=batch_size))
        else:
            runner.feed_stream(points, keys)
        drain()

    def drain(out: offline.Output | None = None) -> None:
        out = out if out is not None else runner.collect()
        if out.errors:
            stats.errors.extend(out.errors)
            out.errors.clear()
        if out.points:
            stats.points_out += len(out.points)
            sink(list(out.points))
            out.points.clear()
        out.batches.clear()

    keys: list[tuple[str, ...]] = [()]  # the group-by tags, once the first series shows them

    def feed_all() -> None:
        pending: list[LPPoint] = []  # one series (batch UDFs), or everything (coarse group_by)
        load_all = False
        current: tuple[str, tuple] | None = None
        for s in read_series(client, db, query, chunk_size):
            key = (s.name, tuple(sorted(s.tags.items())))
            if key != current:
                stats.series += 1
                if current is None:
                    keys[0] = explicit if explicit is not None else tuple(sorted(s.tags))
                    # Series one after another is exact only when no group spans two series.
                    load_all = not set(s.tags) <= set(keys[0])
                elif pending and not load_all:
                    feed(pending, keys[0])
                    pending = []
                current = key
            pts = points_of(s)
            if load_all or is_batch:
                pending.extend(pts)
            else:
                feed(pts, keys[0])
        if pending:
            if load_all:
                pending.sort(key=lambda p: p.time)  # stable: ties keep series order
            feed(pending, keys[0])

    try:
        feed_all()
    except FatalError as exc:
        # onError 'fail': the UDF stops the task here, as the agent would under Kapacitor.
        drain(runner.stop_with_error(str(exc)))
    else:
        drain(runner.finish())
    stats.groups = dict(runner.output.groups)
    stats.group_by = keys[0]
    stats.seconds = time.perf_counter() - t0
    return stats
