"""Public test harness for UDF authors: talk to a UDF over the real wire, and check it.

- `WireClient` starts `kapudf run NAME` (or any command) as a subprocess and speaks the protocol
  to it exactly as Kapacitor does: length-prefixed Request frames in, Response frames out.
  `SocketClient` does the same over a Unix socket served by `kapudf serve`.
- Request builders (`info_request`, `init_request`, `point_request`, `batch_requests`, ...).
- `check_udf(cls, points, options, group_by)`: the conformance battery every catalogue UDF
  passes, for your own UDFs too. It raises AssertionError naming the check that failed.

Both clients are strict about what comes back: stdout (or the socket) must carry nothing but
complete frames, each a Response with a known message; anything else raises `WireError`.
Nothing here imports heavy libraries.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from udfcollection.protocol import udf_pb2
from udfcollection.protocol.framing import FrameSplitter, encode_frame

WireOptions = Sequence[tuple[str, Sequence[tuple[str, Any]]]]
"""Options in the wire form: `[(name, [(type, value), ...]), ...]`, type one of bool, int,
double, string, duration (durations as int nanoseconds); a flag has an empty value list."""

LEVEL_WORDS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def kapudf_command(*args: str) -> list[str]:
    """Command line running this install's kapudf with `args` (no PATH lookup needed)."""
    return [sys.executable, "-m", "udfcollection", *args]


class WireError(AssertionError):
    """The peer broke the protocol (or did not answer in time)."""


class _FrameChannel:
    """Frame I/O over a pair of file descriptors, without ever deadlocking: while writing,
    responses are read (and kept) so a UDF blocked on a full output pipe keeps draining ours."""

    def _init_channel(self, rfd: int, wfd: int) -> None:
        self._rfd = rfd
        self._wfd = wfd
        os.set_blocking(rfd, False)
        os.set_blocking(wfd, False)
        self._splitter = FrameSplitter()
        self._frames: deque[bytes] = deque()
        self._unsent = bytearray()
        self._eof = False
        self._write_closed = False
        self.raw_out = bytearray()
        """Every byte received, for checks that it was nothing but frames."""

    # --- low level ----------------------------------------------------------------------------

    def _read_some(self) -> None:
        try:
            data = os.read(self._rfd, 1 << 16)
        except BlockingIOError:
            return
        except ConnectionResetError:
            data = b""
        if not data:
            self._eof = True
            return
        self.raw_out += data
        frames, _ = self._splitter.feed(data)
        self._frames.extend(frames)

    def _write(self, data: bytes, timeout: float) -> None:
        view = memoryview(data)
        deadline = time.monotonic() + timeout
        while view:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WireError(f"peer stopped reading its input ({len(view)} bytes unsent "
                                f"after {timeout}s)")
            rl = [] if self._eof else [self._rfd]
            r, w, _ = select.select(rl, [self._wfd], [], left)
            if r:
                self._read_some()
            if w:
                try:
                    n = os.write(self._wfd, view)
                except BlockingIOError:
                    continue
                view = view[n:]

    def _decode(self, body: bytes) -> udf_pb2.Response:
        try:
            resp = udf_pb2.Response.FromString(body)
        except Exception as exc:
            raise WireError(f"received a frame that is not a Response ({exc}); output "
                            "carries something other than protocol frames") from None
        if resp.WhichOneof("message") is None:
            raise WireError(f"received a frame with no known Response message "
                            f"({body[:40]!r}); output carries something other than frames")
        return resp

    # --- sending ------------------------------------------------------------------------------

    def send_raw(self, data: bytes, timeout: float = 30.0) -> None:
        """Write bytes as they are (after anything still buffered by `send(flush=False)`)."""
        self.flush(timeout)
        self._write(data, timeout)

    def send(self, req: udf_pb2.Request, flush: bool = True) -> None:
        self._unsent += encode_frame(req.SerializeToString())
        if flush:
            self.flush()

    def flush(self, timeout: float = 30.0) -> None:
        if self._unsent:
            data = bytes(self._unsent)
            self._unsent.clear()
            self._write(data, timeout)

    def send_many(self, reqs: Iterable[udf_pb2.Request], timeout: float = 30.0) -> None:
        """Send all requests as one write (many frames per write, as Kapacitor's buffered
        writer does), reading responses meanwhile."""
        self.send_raw(b"".join(encode_frame(r.SerializeToString()) for r in reqs), timeout)

    # --- receiving ----------------------------------------------------------------------------

    def poll(self, timeout: float = 0.0) -> None:
        """Read whatever output is available within `timeout` seconds, keeping it for recv."""
        if self._eof:
            return
        r, _, _ = select.select([self._rfd], [], [], max(0.0, timeout))
        if r:
            self._read_some()

    def recv(self, timeout: float = 5.0) -> udf_pb2.Response:
        """Next response; raises WireError on timeout, EOFError when the peer closed."""
        deadline = time.monotonic() + timeout
        while not self._frames:
            if self._eof:
                raise EOFError("the UDF closed its output")
            left = deadline - time.monotonic()
            if left <= 0:
                raise WireError(f"no response within {timeout}s")
            self.poll(left)
        return self._decode(self._frames.popleft())

    def recv_until(self, kind: str, timeout: float = 5.0) -> list[udf_pb2.Response]:
        """Responses up to and including the first whose message is `kind` ('snapshot',
        'init', ...). Raises WireError if none comes within `timeout`."""
        out = []
        deadline = time.monotonic() + timeout
        while True:
            resp = self.recv(max(0.0, deadline - time.monotonic()))
            out.append(resp)
            if resp.WhichOneof("message") == kind:
                return out

    def recv_all(self, timeout: float = 10.0) -> list[udf_pb2.Response]:
        """Everything until the peer closes its output. Raises WireError if it does not close
        within `timeout` or ends inside a frame."""
        self.flush(timeout)
        out = []
        deadline = time.monotonic() + timeout
        while True:
            while self._frames:
                out.append(self._decode(self._frames.popleft()))
            if self._eof:
                if self._splitter.pending:
                    raise WireError(f"output ended inside a frame ({self._splitter.pending} "
                                    "bytes of it)")
                return out
            left = deadline - time.monotonic()
            if left <= 0:
                raise WireError(f"UDF did not close its output within {timeout}s")
            self.poll(left)

    def request(self, req: udf_pb2.Request, timeout: float = 5.0) -> udf_pb2.Response:
        """Send one request and return the next response."""
        self.send(req)
        return self.recv(timeout)


class WireClient(_FrameChannel):
    """A Kapacitor stand-in driving one UDF process over stdin/stdout.

    stderr is collected on a thread (so a chatty UDF never blocks on a full pipe) and read with
    `stderr_text()`. Use as a context manager: the process is killed on exit if still running.
    """

    def __init__(self, cmd: Sequence[str], env: Mapping[str, str] | None = None,
                 stderr: Any = subprocess.PIPE, cwd: str | os.PathLike | None = None):
        full_env = dict(os.environ)
        full_env.setdefault("KAPUDF_LOG_LEVEL", "info")
        if env:
            full_env.update(env)
        self.cmd = list(cmd)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=stderr, env=full_env, cwd=cwd)
        self._init_channel(self.proc.stdout.fileno(), self.proc.stdin.fileno())
        self._err = bytearray()
        self._err_thread: threading.Thread | None = None
        if self.proc.stderr is not None:
            self._err_thread = threading.Thread(target=self._collect_stderr, daemon=True)
            self._err_thread.start()

    @classmethod
    def for_udf(cls, name: str, *extra: str, env: Mapping[str, str] | None = None,
                cwd: str | os.PathLike | None = None) -> WireClient:
        """`kapudf run NAME` (NAME may be `package.module:Class`)."""
        return cls(kapudf_command("run", name, *extra), env=env, cwd=cwd)

    def _collect_stderr(self) -> None:
        fd = self.proc.stderr.fileno()
        while True:
            try:
                data = os.read(fd, 1 << 16)
            except OSError:
                return
            if not data:
                return
            self._err += data

    def close_input(self) -> None:
        """Close the UDF's stdin, as Kapacitor does to stop it."""
        with contextlib.suppress(BrokenPipeError, WireError):
            self.flush(5.0)
        if not self._write_closed:
            self._write_closed = True
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    def wait(self, timeout: float = 10.0) -> int:
        return self.proc.wait(timeout)

    def stderr_text(self, timeout: float = 5.0) -> str:
        """The UDF's stderr. Once its input was closed or its output ended, waits (up to
        `timeout`) for it to exit and returns all of it; otherwise what was written so far."""
        if self._err_thread is not None:
            if self.proc.poll() is None and (self._eof or self._write_closed):
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout)
            if self.proc.poll() is not None:
                self._err_thread.join(timeout)
        return bytes(self._err).decode(errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> WireClient:
        return self

    def __exit__(self, *exc) -> None:
        self.kill()
        if self._err_thread is not None:
            # The collector reads by fd number: closing the pipe under it would let its next
            # read take a later client's stderr, once the OS reuses that number.
            self._err_thread.join(5.0)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()


class SocketClient(_FrameChannel):
    """A Kapacitor stand-in on one Unix socket connection (`socket = "..."` in kapacitor.conf).
    `close_input` shuts down the write half, as Kapacitor does to stop a UDF."""

    def __init__(self, path: str | os.PathLike, timeout: float = 5.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.sock.setblocking(False)
        fd = self.sock.fileno()
        self._init_channel(fd, fd)

    def close_input(self) -> None:
        with contextlib.suppress(BrokenPipeError, WireError):
            self.flush(5.0)
        if not self._write_closed:
            self._write_closed = True
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> SocketClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- request builders ---------------------------------------------------------------------

def info_request() -> udf_pb2.Request:
    r = udf_pb2.Request()
    r.info.SetInParent()
    return r


def init_request(options: WireOptions = (), task: str = "t", node: str = "udf1"
                 ) -> udf_pb2.Request:
    from udfcollection.offline import make_init

    r = udf_pb2.Request()
    r.init.CopyFrom(make_init(options, task, node))
    return r


def keepalive_request(t: int) -> udf_pb2.Request:
    r = udf_pb2.Request()
    r.keepalive.time = t
    return r


def snapshot_request() -> udf_pb2.Request:
    r = udf_pb2.Request()
    r.snapshot.SetInParent()
    return r


def restore_request(data: bytes) -> udf_pb2.Request:
    r = udf_pb2.Request()
    r.restore.snapshot = data
    return r


def point_request(time_ns: int, fields: dict[str, Any], *, name: str = "m",
                  tags: dict[str, str] | None = None, group_by: Sequence[str] = ()
                  ) -> udf_pb2.Request:
    from udfcollection.lineprotocol import LPPoint
    from udfcollection.offline import to_request

    return to_request(LPPoint(name, dict(tags or {}), dict(fields), time_ns), group_by)


def begin_request(name: str = "m", group: str = "", tags: Mapping[str, str] | None = None,
                  size: int = 0, by_name: bool = False) -> udf_pb2.Request:
    r = udf_pb2.Request()
    b = r.begin
    b.name = name
    b.group = group
    b.tags.update(tags or {})
    b.size = size
    b.byName = by_name
    return r


def end_request(name: str = "m", group: str = "", tags: Mapping[str, str] | None = None,
                tmax: int = 0, by_name: bool = False) -> udf_pb2.Request:
    r = udf_pb2.Request()
    e = r.end
    e.name = name
    e.group = group
    e.tags.update(tags or {})
    e.tmax = tmax
    e.byName = by_name
    return r


def batch_requests(points: Sequence[Any], group_by: Sequence[str] = (),
                   name: str | None = None) -> list[udf_pb2.Request]:
    """One batch as Kapacitor sends it: BeginBatch, the points (time, group, tags and fields
    only: no name, database or retention policy), EndBatch with the batch's name, group, tags
    and tmax. `points` are LPPoints of one group."""
    from udfcollection.offline import group_id, to_request

    if not points:
        gid, tags, nm = "", {}, name or ""
    else:
        gid = group_id(points[0].tags, group_by)
        tags = {k: points[0].tags.get(k, "") for k in group_by}
        nm = name if name is not None else points[0].name
    out = [begin_request(nm, gid, tags, size=len(points))]
    for p in points:
        req = to_request(p, group_by)
        req.point.name = ""
        out.append(req)
    out.append(end_request(nm, gid, tags, tmax=max((p.time for p in points), default=0)))
    return out


def split_batches(points: Sequence[Any], group_by: Sequence[str] = ()) -> list[list[Any]]:
    """Points grouped into one batch per group, in order of first appearance (what
    `kapudf test` does for batch UDFs)."""
    from udfcollection.offline import group_id

    groups: dict[str, list[Any]] = {}
    for p in points:
        groups.setdefault(group_id(p.tags, group_by), []).append(p)
    return list(groups.values())


def wire_options(udf_cls: type, values: Mapping[str, Any]) -> list[tuple[str, list]]:
    """Convert `{tickscript_name: python value}` into the wire form using the declared types.
    A list value for a repeatable option gives one occurrence per element; a flag takes True."""
    decl = {o.name: o for o in udf_cls.all_options()}
    out: list[tuple[str, list]] = []
    for name, value in values.items():
        opt = decl.get(name)
        if opt is None:
            raise ValueError(f"{udf_cls.__name__} has no option {name!r}")
        if opt.type == "flag":
            if value:
                out.append((name, []))
            continue
        many = value if opt.repeatable and isinstance(value, list | tuple) else [value]
        out.extend((name, [(opt.type, v)]) for v in many)
    return out


# --- comparing outputs ----------------------------------------------------------------------

DATA_KINDS = ("point", "begin", "end")


def canonical(resp: udf_pb2.Response) -> str:
    """A stable text form of a response (map order and float formatting normalised), for
    comparing outputs of separate runs."""
    from google.protobuf import json_format

    return json.dumps(json_format.MessageToDict(resp, preserving_proto_field_name=True),
                      sort_keys=True)


def data_output(responses: Iterable[udf_pb2.Response]) -> list[str]:
    """The data responses (points and batch frames) in canonical form, in order."""
    return [canonical(r) for r in responses if r.WhichOneof("message") in DATA_KINDS]


def _first_difference(a: Sequence[str], b: Sequence[str]) -> str:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"first difference at output #{i}:\n  expected {x}\n  got      {y}"
    return f"lengths differ: expected {len(a)} responses, got {len(b)}"


# --- conformance ----------------------------------------------------------------------------

CHECKS = ("declaration", "info", "init_errors", "snapshot_restore", "deterministic",
          "frames_only", "log_lines")
"""Names of the conformance checks, in the order `check_udf` runs them."""


class ConformanceError(AssertionError):
    """A conformance check failed; `check` names it."""

    def __init__(self, udf: str, check: str, detail: str):
        super().__init__(f"{udf}: conformance check {check!r} failed: {detail}")
        self.udf = udf
        self.check = check
        self.detail = detail


@dataclass
class ConformanceReport:
    """What `check_udf` ran, for printing or further assertions."""

    udf: str
    target: str
    passed: list[str] = field(default_factory=list)
    info_seconds: float | None = None
    output_count: int = 0
    notes: list[str] = field(default_factory=list)


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_UDF_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")


def _run_target(udf_cls: type) -> tuple[str, dict[str, str]]:
    """How `kapudf run` names this class (catalogue name if registered as exactly this class,
    else `module:Class`), and the environment that lets a fresh process import it."""
    from udfcollection import registry

    try:
        if registry.get(udf_cls.name) is udf_cls:
            return udf_cls.name, {}
    except Exception:  # unregistered (or broken registry entry): fall back to the import path
        pass
    module = sys.modules.get(udf_cls.__module__)
    if module is None or udf_cls.__module__ == "__main__" or "<locals>" in udf_cls.__qualname__:
        raise ValueError(f"{udf_cls.__qualname__} must be defined at the top level of an "
                         "importable module so `kapudf run module:Class` can load it")
    env: dict[str, str] = {}
    mod_file = getattr(module, "__file__", None)
    if mod_file:
        root = Path(mod_file).resolve().parent
        depth = udf_cls.__module__.count(".")
        if Path(mod_file).name == "__init__.py":
            depth += 1
        for _ in range(depth):
            root = root.parent
        old = os.environ.get("PYTHONPATH")
        env["PYTHONPATH"] = str(root) + (os.pathsep + old if old else "")
    return f"{udf_cls.__module__}:{udf_cls.__qualname__}", env


class _Checker:
    def __init__(self, udf_cls, points, options, group_by, env, timeout):
        from udfcollection.spec import BATCH

        self.cls = udf_cls
        self.name = getattr(udf_cls, "name", udf_cls.__name__)
        self.points = list(points)
        self.options = [(n, list(v)) for n, v in (
            wire_options(udf_cls, options) if isinstance(options, Mapping) else options)]
        self.group_by = tuple(group_by)
        self.timeout = timeout
        self.target, self.env = _run_target(udf_cls)
        if env:
            self.env.update(env)
        self.batch_in = getattr(udf_cls, "wants", None) == BATCH
        self.report = ConformanceReport(self.name, self.target)

    def fail(self, check: str, detail: str) -> None:
        raise ConformanceError(self.name, check, detail)

    # --- helpers ------------------------------------------------------------------------

    def units(self) -> list[list[udf_pb2.Request]]:
        """The input as a list of units: one point request each (stream) or one batch each."""
        from udfcollection.offline import to_request

        if self.batch_in:
            return [batch_requests(b, self.group_by)
                    for b in split_batches(self.points, self.group_by)]
        return [[to_request(p, self.group_by)] for p in self.points]

    def client(self, env: Mapping[str, str] | None = None) -> WireClient:
        full = dict(self.env)
        full.update(env or {})
        return WireClient.for_udf(self.target, env=full)

    def init(self, c: WireClient, check: str, options=None) -> None:
        opts = self.options if options is None else options
        try:
            resp = c.request(init_request(opts), timeout=self.timeout)
        except (WireError, EOFError) as exc:
            c.kill()
            self.fail(check, f"no InitResponse: {exc} (stderr: {c.stderr_text()[-800:]})")
        if resp.WhichOneof("message") != "init":
            self.fail(check, f"expected an InitResponse, got {resp.WhichOneof('message')}")
        if not resp.init.success:
            self.fail(check, f"init with the given options failed: {resp.init.error}")

    def finish(self, c: WireClient, check: str) -> list[udf_pb2.Response]:
        c.close_input()
        try:
            out = c.recv_all(self.timeout)
        except WireError as exc:
            self.fail(check, f"{exc} (stderr: {c.stderr_text()[-800:]})")
        code = c.wait(self.timeout)
        if code != 0:
            self.fail(check, f"process exited with {code} at end of input, expected 0 "
                      f"(stderr: {c.stderr_text()[-800:]})")
        errors = [r.error.error for r in out if r.WhichOneof("message") == "error"]
        if errors:
            self.fail(check, f"the UDF sent an ErrorResponse, which kills the task: {errors[0]}")
        return out

    def run(self, units, check: str, options=None, env=None) -> tuple[list[str], WireClient]:
        with self.client(env) as c:
            self.init(c, check, options)
            c.send_many([r for u in units for r in u], timeout=self.timeout)
            out = self.finish(c, check)
            return data_output(out), c

    def _debug_flag(self) -> list:
        opt = {o.name: o for o in self.cls.all_options()}.get("debug")
        given = any(n == "debug" for n, _ in self.options)
        return [("debug", [])] if opt is not None and opt.type == "flag" and not given else []

    # --- checks -------------------------------------------------------------------------

    def check_declaration(self) -> None:
        from udfcollection.render import example_tick
        from udfcollection.spec import (
            BATCH,
            FLAG,
            ON_ERROR_CHOICES,
            STREAM,
            UDF,
            Option,
            UDFState,
            coerce_typed,
        )

        cls = self.cls
        c = "declaration"
        if not (isinstance(cls, type) and issubclass(cls, UDF)):
            self.fail(c, "not a subclass of udfcollection.spec.UDF")
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not _UDF_NAME.match(name):
            self.fail(c, f"name {name!r} must be a lower-case identifier (it is the TICKscript "
                      "@name and the kapacitor.conf section)")
        summary = getattr(cls, "summary", None)
        if not isinstance(summary, str) or not summary.strip() or "\n" in summary:
            self.fail(c, "summary must be one non-empty line")
        if not isinstance(cls.description, str) or not cls.description.strip():
            self.fail(c, "description is empty: say what is emitted when, per group, and what "
                      "happens on a missing field")
        if cls.wants not in (STREAM, BATCH) or cls.provides not in (STREAM, BATCH):
            self.fail(c, f"wants/provides must be 'stream' or 'batch', got {cls.wants!r}/"
                      f"{cls.provides!r}")
        if cls.wants == STREAM and cls.process is UDF.process and cls.process_many is None:
            self.fail(c, "wants stream but implements neither process nor process_many")
        if cls.wants == BATCH and cls.process_batch is UDF.process_batch:
            self.fail(c, "wants batch but does not implement process_batch")
        if cls.on_error_default not in ON_ERROR_CHOICES:
            self.fail(c, f"on_error_default {cls.on_error_default!r} is not one of "
                      f"{ON_ERROR_CHOICES}")
        seen_names: set[str] = set()
        seen_attrs: set[str] = set()
        for opt in cls.options:
            if not isinstance(opt, Option):
                self.fail(c, f"options must hold Option objects, got {opt!r}")
            if not _IDENT.match(opt.name):
                self.fail(c, f"option name {opt.name!r} is not a TICKscript identifier")
            if opt.name in seen_names:
                self.fail(c, f"option {opt.name} declared twice")
            if opt.attr in seen_attrs:
                self.fail(c, f"option {opt.name}: attribute {opt.attr!r} used twice")
            seen_names.add(opt.name)
            seen_attrs.add(opt.attr)
            if not opt.help or not opt.help.strip() or "\n" in opt.help:
                self.fail(c, f"option {opt.name}: help must be one non-empty line")
            if opt.type == FLAG:
                continue
            if opt.example is None:
                self.fail(c, f"option {opt.name}: no example value (shown by `kapudf info` and "
                          "used in the example TICKscript)")
            for what, value in (("example", opt.example),
                                ("default", None if opt.required else opt.default)):
                if value is None:
                    continue
                for v in (value if opt.repeatable and isinstance(value, list | tuple)
                          else [value]):
                    err = _value_error(opt, v, coerce_typed)
                    if err:
                        self.fail(c, f"option {opt.name}: {what} {v!r} is invalid: {err}")
        decl = {o.name for o in cls.all_options()}
        for key in cls.example_options:
            if key not in decl:
                self.fail(c, f"example_options names undeclared option {key!r}")
        if not isinstance(cls.state_version, int) or cls.state_version < 1:
            self.fail(c, "state_version must be an int >= 1")
        if cls.State is not None:
            if not (isinstance(cls.State, type) and issubclass(cls.State, UDFState)):
                self.fail(c, "State must subclass udfcollection.spec.UDFState")
            try:
                fresh = cls.State()
                doc = json.loads(json.dumps(fresh.to_json()))
                again = cls.State.from_json(doc).to_json()
            except Exception as exc:
                self.fail(c, f"a fresh State does not round-trip through JSON: "
                          f"{type(exc).__name__}: {exc}")
            if json.dumps(again, sort_keys=True) != json.dumps(doc, sort_keys=True):
                self.fail(c, "a fresh State changes when round-tripped through JSON")
        try:
            example_tick(cls)
        except Exception as exc:
            self.fail(c, f"the example TICKscript cannot be rendered: {type(exc).__name__}: "
                      f"{exc}")

    def check_info(self) -> None:
        from udfcollection.spec import FLAG

        c = "info"
        t0 = time.monotonic()
        with self.client() as cl:
            try:
                resp = cl.request(info_request(), timeout=self.timeout)
            except (WireError, EOFError) as exc:
                self.fail(c, f"no InfoResponse: {exc} (stderr: {cl.stderr_text()[-800:]})")
            self.report.info_seconds = time.monotonic() - t0
            if resp.WhichOneof("message") != "info":
                self.fail(c, f"expected an InfoResponse, got {resp.WhichOneof('message')}")
            # Kapacitor closes stdin after Info at daemon start; the process must then exit.
            self.finish(cl, c)
        info = resp.info
        edge = {udf_pb2.STREAM: "stream", udf_pb2.BATCH: "batch"}
        if edge[info.wants] != self.cls.wants or edge[info.provides] != self.cls.provides:
            self.fail(c, f"Info says {edge[info.wants]} -> {edge[info.provides]}, the "
                      f"declaration {self.cls.wants} -> {self.cls.provides}")
        pb_type = {"bool": udf_pb2.BOOL, "int": udf_pb2.INT, "double": udf_pb2.DOUBLE,
                   "string": udf_pb2.STRING, "duration": udf_pb2.DURATION}
        want = {o.name: [] if o.type == FLAG else [pb_type[o.type]]
                for o in self.cls.all_options()}
        got = {k: list(v.valueTypes) for k, v in info.options.items()}
        if got != want:
            missing = sorted(set(want) - set(got))
            extra = sorted(set(got) - set(want))
            typed = sorted(k for k in set(want) & set(got) if want[k] != got[k])
            self.fail(c, f"Info options differ from the declaration: missing {missing}, "
                      f"undeclared {extra}, wrong value types {typed}")

    def bad_inits(self) -> list[tuple[str, list[str], list]]:
        """(what, names the error must contain, options) for each kind of bad option."""
        from udfcollection.spec import FLAG

        cls = self.cls
        good = self.options
        decl = {o.name: o for o in cls.all_options()}
        cases: list[tuple[str, list[str], list]] = []
        cases.append(("unknown option", ["noSuchOption"],
                      [*good, ("noSuchOption", [("string", "x")])]))
        own = [o for o in cls.options if o.type != FLAG]
        if own:
            o = own[0]
            typo = o.name[:-1] if len(o.name) > 3 else o.name + "x"
            if typo not in decl:
                cases.append(("misspelt option", [typo, o.name],
                              [*good, (typo, [(o.type, _some_value(o))])]))
        for o in cls.all_options():
            if o.required:
                rest = [x for x in good if x[0] != o.name]
                cases.append((f"missing required {o.name}", [o.name], rest))
        for o in cls.all_options():
            rest = [x for x in good if x[0] != o.name]
            if o.type == FLAG:
                cases.append((f"flag {o.name} given a value", [o.name],
                              [*rest, (o.name, [("string", "x")])]))
                continue
            wrong = ("int", 1) if o.type == "string" else ("string", "x")
            cases.append((f"wrong type for {o.name}", [o.name], [*rest, (o.name, [wrong])]))
            for bad in _out_of_range(o):
                cases.append((f"out-of-range {o.name}={bad!r}", [o.name],
                              [*rest, (o.name, [(o.type, bad)])]))
            if not o.repeatable:
                v = _some_value(o)
                cases.append((f"{o.name} given twice", [o.name],
                              [*rest, (o.name, [(o.type, v)]), (o.name, [(o.type, v)])]))
        # Several problems at once: every one must be reported, not just the first.
        req = [o for o in cls.all_options() if o.required]
        typed = [o for o in cls.all_options() if o.type not in (FLAG,) and not o.required]
        combo = [x for x in good if not (req and x[0] == req[0].name)]
        names = ["noSuchOption"]
        combo.append(("noSuchOption", [("string", "x")]))
        if req:
            names.append(req[0].name)
        if typed:
            o = typed[0]
            combo = [x for x in combo if x[0] != o.name]
            combo.append((o.name, [("int", 1) if o.type == "string" else ("string", "x")]))
            names.append(o.name)
        cases.append(("several errors at once", names, combo))
        return cases

    def check_init_errors(self) -> None:
        c = "init_errors"
        with self.client() as cl:
            for what, names, opts in self.bad_inits():
                try:
                    resp = cl.request(init_request(opts), timeout=self.timeout)
                except (WireError, EOFError) as exc:
                    cl.kill()
                    self.fail(c, f"{what}: no InitResponse: {exc} (stderr: "
                              f"{cl.stderr_text()[-800:]})")
                if resp.WhichOneof("message") != "init":
                    self.fail(c, f"{what}: expected an InitResponse, got "
                              f"{resp.WhichOneof('message')}")
                if resp.init.success:
                    self.fail(c, f"{what}: init succeeded, expected a rejection")
                for n in names:
                    if n not in resp.init.error:
                        self.fail(c, f"{what}: the error does not name {n!r}: "
                                  f"{resp.init.error!r}")
            # (The good options are not tried here: every other check starts with them, and
            # skipping it saves one model load for heavy UDFs.)
            self.finish(cl, c)

    def check_snapshot_restore(self) -> None:
        c = "snapshot_restore"
        units = self.units()
        if len(units) < 2:
            units = units + units
        self._units = units
        whole, _ = self.run(units, c)
        self._whole = whole
        self.report.output_count = len(whole)
        half = len(units) // 2
        # Restores that cannot be read must not fail the task (Kapacitor would fail it at every
        # start, forever): they are answered with success=true and the UDF starts fresh, so
        # this run must still match the uninterrupted one.
        foreign = json.dumps({"format": "kapudf-snapshot", "version": 1,
                              "udf": self.name + "_other", "state_version": 1,
                              "groups": []}).encode()
        with self.client() as cl:
            self.init(cl, c)
            for label, data in (("corrupt", b"\x00\xffnot a snapshot"), ("foreign", foreign)):
                resp = cl.request(restore_request(data), timeout=self.timeout)
                if resp.WhichOneof("message") != "restore" or not resp.restore.success:
                    self.fail(c, f"a {label} snapshot must be answered with success=true (and a "
                              f"warning), got: {resp}")
            cl.send_many([r for u in units[:half] for r in u], timeout=self.timeout)
            cl.send(snapshot_request())
            before = cl.recv_until("snapshot", self.timeout)
            snap = before[-1].snapshot.snapshot
            first = data_output(before) + data_output(self.finish(cl, c))
        with self.client() as cl:
            self.init(cl, c)
            resp = cl.request(restore_request(snap), timeout=self.timeout)
            if resp.WhichOneof("message") != "restore" or not resp.restore.success:
                self.fail(c, f"restoring the UDF's own snapshot failed: {resp}")
            cl.send_many([r for u in units[half:] for r in u], timeout=self.timeout)
            second = data_output(self.finish(cl, c))
        if first + second != whole:
            self.fail(c, f"output with a snapshot and restore after input unit {half} of "
                      f"{len(units)} differs from an uninterrupted run ("
                      + _first_difference(whole, first + second) + ")")

    def check_deterministic(self) -> None:
        c = "deterministic"
        units = getattr(self, "_units", None) or self.units()
        one = getattr(self, "_whole", None)
        if one is None:
            one, _ = self.run(units, c)
        two, _ = self.run(units, c)
        if one != two:
            self.fail(c, "the same input gave different output in two runs ("
                      + _first_difference(one, two) + ")")
        self._plain = one

    def check_frames_only(self) -> None:
        c = "frames_only"
        units = getattr(self, "_units", None) or self.units()
        opts = [*self.options, *self._debug_flag()]
        with self.client({"KAPUDF_LOG_LEVEL": "debug"}) as cl:
            self.init(cl, c, opts)
            cl.send_many([r for u in units for r in u], timeout=self.timeout)
            # recv_all insists that stdout split into whole frames with nothing left over,
            # each a Response with a known message: any stray byte breaks that.
            out = self.finish(cl, c)
            self._debug_stderr = cl.stderr_text()
        plain = getattr(self, "_plain", None) or getattr(self, "_whole", None)
        if plain is None:
            plain, _ = self.run(units, c)
        if data_output(out) != plain:
            self.fail(c, "turning on .debug() changed the output ("
                      + _first_difference(plain, data_output(out)) + ")")

    def check_log_lines(self) -> None:
        c = "log_lines"
        text = getattr(self, "_debug_stderr", None)
        if text is None:
            units = self.units()
            with self.client({"KAPUDF_LOG_LEVEL": "debug"}) as cl:
                self.init(cl, c, [*self.options, *self._debug_flag()])
                cl.send_many([r for u in units for r in u], timeout=self.timeout)
                self.finish(cl, c)
                text = cl.stderr_text()
        for line in text.splitlines():
            if line.strip() and line.split(" ", 1)[0] not in LEVEL_WORDS:
                self.fail(c, f"stderr line without a level word (Kapacitor logs every line "
                          f"as its own entry): {line[:200]!r}")


def _value_error(opt, value, coerce_typed) -> str | None:
    vtype = {bool: "bool", int: "int", float: "double", str: "string"}.get(type(value))
    if opt.type == "duration" and vtype == "int":
        vtype = "duration"
    if vtype is None:
        return f"a {type(value).__name__} is not a TICKscript value"
    _, err = coerce_typed(opt, value, vtype)
    return err or opt.validate_value(value)


def _some_value(opt) -> Any:
    if opt.example is not None:
        ex = opt.example
        return ex[0] if isinstance(ex, list | tuple) else ex
    if opt.default is not None and not isinstance(opt.default, list | tuple):
        return opt.default
    return {"bool": True, "int": 1, "double": 1.0, "string": "x", "duration": 1_000_000_000
            }[opt.type]


def _out_of_range(opt) -> list[Any]:
    """Values of the right type that break the option's declared constraints."""
    out: list[Any] = []
    num = opt.type in ("int", "double", "duration")
    if opt.choices:
        if opt.type == "string":
            out.append("no-such-choice")
        elif num:
            out.append(max(opt.choices) + 1)
    if num and opt.min is not None:
        bad = opt.min if opt.min_exclusive else opt.min - (0.5 if opt.type == "double" else 1)
        out.append(int(bad) if opt.type != "double" else float(bad))
    if num and opt.max is not None:
        out.append(int(opt.max) + 1 if opt.type != "double" else float(opt.max) + 0.5)
    return out


def check_udf(udf_cls: type, points: Sequence[Any], options: WireOptions | Mapping[str, Any] = (),
              group_by: Sequence[str] = (), *, checks: Sequence[str] | None = None,
              env: Mapping[str, str] | None = None, timeout: float = 30.0
              ) -> ConformanceReport:
    """Run the conformance checks on a UDF class and raise `ConformanceError` (an
    AssertionError) naming the first check that fails.

    `points` is sample input (`udfcollection.lineprotocol.LPPoint`s, e.g. from `parse_lines`;
    a batch UDF gets one batch per group), `options` the options a task would give, in the wire
    form `[(name, [(type, value)])]` or as `{name: value}`, `group_by` the tags the TICKscript
    groups by. The checks (`CHECKS`, all by default, or those named in `checks`):

    - declaration: name, one-line summary, description, edges, options (identifier names,
      one-line help, an example value for each, defaults and examples that pass their own
      constraints), example_options, State (JSON round-trip of a fresh state), the example
      TICKscript renders;
    - info: `kapudf run` answers InfoRequest with exactly the declared edges, option names and
      value types, and exits 0 when its input closes;
    - init_errors: each kind of bad option (unknown, misspelt, missing required, wrong type, a
      flag given a value, out of range, a single-value option given twice, several at once) is
      rejected with a message naming every offending option;
    - snapshot_restore: a snapshot taken mid-stream and restored into a fresh process gives the
      same output as an uninterrupted run; corrupt and foreign snapshots are answered with
      success=true;
    - deterministic: the same input twice gives the same output;
    - frames_only: with `.debug()` and KAPUDF_LOG_LEVEL=debug, stdout is still nothing but
      whole Response frames and the output is unchanged;
    - log_lines: every stderr line starts with a level word (one line per record).

    Every run must end with exit code 0 and no ErrorResponse. The class must be importable by a
    fresh process (defined at module top level); it is started as `kapudf run NAME` when the
    registry maps its name to it, else as `kapudf run module:Class` with the module's root on
    PYTHONPATH.
    """
    selected = list(CHECKS if checks is None else checks)
    unknown = [c for c in selected if c not in CHECKS]
    if unknown:
        raise ValueError(f"unknown checks {unknown}; choose from {CHECKS}")
    checker = _Checker(udf_cls, points, options, group_by, env, timeout)
    if not checker.points and any(c in selected for c in ("snapshot_restore", "deterministic",
                                                           "frames_only")):
        raise ValueError("check_udf needs at least one input point")
    for name in CHECKS:
        if name in selected:
            getattr(checker, f"check_{name}")()
            checker.report.passed.append(name)
    return checker.report
