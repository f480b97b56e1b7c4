"""Checks of a kapacitor.conf's `[udf.functions.*]` entries, the way kapacitord will see them.

Facts about kapacitord (1.5 to 1.8) these checks rely on:
- The configuration is TOML. Unknown keys are ignored silently; a value of the wrong type
  (`args = "run x"`, `timeout = 10`, a non-string env value) is a decode error and stops the
  daemon. Durations use Go's syntax (`10s`, `1m30s`; no `d`, a unit is required).
- An entry must have `timeout` above 1 ms ("timeout is too small", missing means 0), and
  exactly one of `prog` or `socket`; `socket` together with `prog`, `args` or `env` is refused.
- At start-up every entry is started (or connected to) once: Info request, wait for the
  answer while sending a keepalive every timeout/2 and giving up when nothing at all came back
  for `timeout`, then stdin (the socket's write half) is closed and kapacitord waits, without a
  limit, for the process to exit (the connection to close). Any failure stops the daemon.
- A process gets kapacitord's environment plus the entry's `env`, kapacitord's user and working
  directory (under systemd: user `kapacitor`, a minimal PATH, `/`). A socket that cannot be
  connected to is retried with backoff for up to 5 minutes before the daemon gives up.

Each check yields a `Finding`: OK, WARN (works, but fragile) or FAIL (kapacitord would not
start). Running a handshake executes the configured program, as kapacitord itself would.
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import os
import pwd
import re
import selectors
import shutil
import socket
import stat
import subprocess
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

OK = "OK"
WARN = "WARN"
FAIL = "FAIL"

KNOWN_KEYS = ("prog", "args", "timeout", "env", "socket")
SERVICE_USER = "kapacitor"
SERVICE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""PATH systemd gives a service that sets none, as kapacitor's unit file does not."""
DEFAULT_CONF = "/etc/kapacitor/kapacitor.conf"
EXIT_PATIENCE = 10.0
"""Seconds doctor waits for a UDF to exit after its stdin is closed (kapacitord waits forever)."""


@dataclass
class Finding:
    udf: str  # the [udf.functions.NAME] entry, or "" for the file and the environment
    check: str
    status: str  # OK, WARN or FAIL
    detail: str
    fix: str = ""


@dataclass
class Report:
    path: str
    findings: list[Finding] = field(default_factory=list)
    entries: int = 0

    @property
    def failed(self) -> bool:
        return any(f.status == FAIL for f in self.findings)

    def count(self, status: str) -> int:
        return sum(f.status == status for f in self.findings)


# --- Go durations -------------------------------------------------------------------------

_GO_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000,
             "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_GO_PART = re.compile(r"(\d*\.?\d*)([^\d.]*)")


def parse_go_duration(text: str) -> int:
    """Nanoseconds for a duration in Go's `time.ParseDuration` syntax, which is what kapacitord
    reads: `10s`, `1m30s`, `1.5h`, `-2ms`, bare `0`. Raises ValueError with Go's complaint."""
    s = text
    if s in ("0", "+0", "-0"):
        return 0
    if not s:
        raise ValueError('time: invalid duration ""')
    neg = s[0] == "-"
    if s[0] in "+-":
        s = s[1:]
    if not s:
        raise ValueError(f"time: invalid duration {text!r}")
    total = 0.0
    pos = 0
    while pos < len(s):
        m = _GO_PART.match(s, pos)
        number, unit = m.group(1), m.group(2)
        if number in ("", "."):
            raise ValueError(f"time: invalid duration {text!r}")
        if not unit:
            raise ValueError(f"time: missing unit in duration {text!r}")
        if unit not in _GO_UNITS:
            raise ValueError(f"time: unknown unit {unit!r} in duration {text!r}")
        total += float(number) * _GO_UNITS[unit]
        pos = m.end()
    ns = round(total)
    return -ns if neg else ns


def format_seconds(seconds: float) -> str:
    """A measured time: `207 ms`, `3.25 s`."""
    if seconds < 0.01:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e3:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def go_duration(seconds: float) -> str:
    """A configured duration the way it is written in kapacitor.conf: `10s`, `1m30s`."""
    from udfcollection.durations import format_duration

    return format_duration(round(seconds * 1e9))


# --- who kapacitord runs as -----------------------------------------------------------------

@dataclass
class Account:
    """Whom permissions are checked for: a real user, or anybody (neither owner nor group)."""

    name: str
    uid: int | None  # None: "any other user"
    gids: frozenset[int] = frozenset()

    @property
    def described(self) -> str:
        return f"user {self.name}" if self.uid is not None else "other users"

    @classmethod
    def lookup(cls, name: str) -> Account | None:
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            return None
        gids = set(os.getgrouplist(name, pw.pw_gid))
        return cls(name, pw.pw_uid, frozenset(gids))


ANYBODY = Account("anybody", None)


def _allowed(st: os.stat_result, who: Account, want: int) -> bool:
    """Whether `who` has the permission bits `want` (4 read, 2 write, 1 execute) on a file."""
    mode = st.st_mode
    if who.uid == 0:
        # root reads and writes anything, and executes anything with at least one x bit.
        return not (want & 1) or stat.S_ISDIR(mode) or bool(mode & 0o111)
    if who.uid is not None and st.st_uid == who.uid:
        bits = (mode >> 6) & 7
    elif who.uid is not None and st.st_gid in who.gids:
        bits = (mode >> 3) & 7
    else:
        bits = mode & 7
    return bits & want == want


def path_problem(path: Path, who: Account, want: int) -> str | None:
    """Why `who` cannot use `path` with the permission bits `want` (every parent directory
    must be searchable too), or None when it can."""
    current = Path("/")
    for part in path.parts[1:-1]:
        current = current / part
        try:
            st = current.stat()
        except OSError as exc:
            return f"{current}: {exc.strerror}"
        if not _allowed(st, who, 1):
            return f"directory {current} (mode {stat.filemode(st.st_mode)}) is not searchable"
    try:
        st = path.stat()
    except OSError as exc:
        return f"{path}: {exc.strerror}"
    real = path.resolve()
    if real != path:
        # A symlink (a venv's python): the directories of its target must be searchable too.
        problem = path_problem(real, who, want)
        return f"it links to {real}, and {problem}" if problem else None
    if not _allowed(st, who, want):
        words = {4: "readable", 1: "executable", 5: "readable and executable", 2: "writable",
                 6: "readable and writable"}[want]
        return f"{path} (mode {stat.filemode(st.st_mode)}) is not {words}"
    return None


# --- handshakes -----------------------------------------------------------------------------

@dataclass
class Handshake:
    """What happened when the Info handshake ran."""

    ok: bool
    elapsed: float = 0.0  # seconds from start (or connect) to the InfoResponse
    error: str = ""
    wants: str = ""
    provides: str = ""
    options: int = 0
    keepalives: int = 0  # keepalive requests sent while waiting
    closed_after: float | None = None  # seconds from closing input to exit/close; None: never
    exit_code: int | None = None
    stderr: list[str] = field(default_factory=list)


class _Peer:
    """One end kapacitord talks to: a process (stdin/stdout) or a Unix socket connection."""

    read_fd: int
    extra_fds: tuple[int, ...] = ()

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def close_input(self) -> None:
        raise NotImplementedError

    def finished(self) -> bool:
        raise NotImplementedError

    def kill(self) -> None:
        raise NotImplementedError


class _ProcessPeer(_Peer):
    def __init__(self, argv: list[str], env: dict[str, str], user: str | None):
        kwargs = {}
        if user is not None:
            # The user's own primary and supplementary groups, not ours (root's).
            pw = pwd.getpwnam(user)
            kwargs.update(user=pw.pw_uid, group=pw.pw_gid,
                          extra_groups=os.getgrouplist(user, pw.pw_gid))
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env, cwd="/",
                                     start_new_session=True, **kwargs)
        self.read_fd = self.proc.stdout.fileno()
        self.extra_fds = (self.proc.stderr.fileno(),)

    def write(self, data: bytes) -> None:
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def close_input(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.stdin.close()

    def finished(self) -> bool:
        return self.proc.poll() is not None

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(self.proc.pid, 9)
            self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            with contextlib.suppress(OSError):
                f.close()


class _SocketPeer(_Peer):
    def __init__(self, path: str, timeout: float):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.sock.settimeout(None)
        self.read_fd = self.sock.fileno()
        self._eof = False

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close_input(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def finished(self) -> bool:
        return self._eof

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def _request_frame(kind: str, t: int = 0) -> bytes:
    from udfcollection.protocol import udf_pb2
    from udfcollection.protocol.framing import encode_frame

    req = udf_pb2.Request()
    if kind == "info":
        req.info.SetInParent()
    else:
        req.keepalive.time = t
    return encode_frame(req.SerializeToString())


def _converse(peer: _Peer, timeout: float, patience: float) -> Handshake:
    """Run kapacitord's start-up conversation with `peer` (already started or connected)."""
    from google.protobuf.message import DecodeError

    from udfcollection.protocol import udf_pb2
    from udfcollection.protocol.framing import FrameSplitter, ProtocolError

    hs = Handshake(ok=False)
    splitter = FrameSplitter()
    sel = selectors.DefaultSelector()
    fds = (peer.read_fd, *peer.extra_fds)
    for fd in fds:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    open_fds = set(fds)
    err_buf = bytearray()
    out_raw = bytearray()
    start = time.monotonic()
    last_response = start
    next_keepalive = start + timeout / 2
    got_info = False
    closed_at: float | None = None

    def fail(text: str) -> Handshake:
        hs.error = text
        return hs

    try:
        try:
            peer.write(_request_frame("info"))
        except OSError as exc:
            return fail(f"could not send the Info request: {exc.strerror or exc}")
        while open_fds:
            now = time.monotonic()
            if not got_info:
                if now - last_response >= timeout:
                    text = (f"no answer to Info within the {go_duration(timeout)} timeout "
                            "(kapacitord: keepalive timed out)")
                    if splitter.pending:
                        # A print read as a length prefix: kapacitord waits for that many bytes.
                        text += (f"; stdout holds {splitter.pending} bytes that are not a "
                                 "complete message, not the UDF protocol (a stray print?): "
                                 f"{bytes(out_raw[:40])!r}")
                    return fail(text)
                if now >= next_keepalive:
                    # kapacitord keeps sending keepalives while it waits; any answer counts.
                    with contextlib.suppress(OSError):
                        peer.write(_request_frame("keepalive", time.time_ns()))
                        hs.keepalives += 1
                    next_keepalive += timeout / 2
                wait = min(last_response + timeout, next_keepalive) - now
            else:
                if now - closed_at >= patience:
                    return hs  # closed_after stays None: it never went away
                wait = closed_at + patience - now
            for key, _ in sel.select(max(wait, 0.0)):
                fd = key.fd
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    if exc.errno != errno.ECONNRESET:
                        raise
                    data = b""
                if not data:
                    sel.unregister(fd)
                    open_fds.discard(fd)
                    if fd == peer.read_fd and not got_info:
                        _settle(peer, hs)
                        if isinstance(peer, _SocketPeer):
                            what = "closed the connection"
                        elif hs.exit_code is not None:
                            what = f"exited with status {hs.exit_code}"
                        else:
                            what = "closed its stdout"
                        hs.stderr = _lines(err_buf)
                        return fail(f"{what} before answering Info")
                    continue
                if fd != peer.read_fd:
                    err_buf += data
                    continue
                if got_info:
                    continue  # kapacitord only logs what arrives after the answer
                out_raw += data
                try:
                    frames, _ = splitter.feed(data)
                    responses = [udf_pb2.Response.FromString(f) for f in frames]
                except (ProtocolError, DecodeError):
                    hs.stderr = _lines(err_buf)
                    return fail("stdout is not the UDF protocol (a stray print?); it starts "
                                f"with {bytes(out_raw[:40])!r}")
                for resp in responses:
                    kind = resp.WhichOneof("message")
                    last_response = time.monotonic()
                    if kind == "keepalive":
                        continue
                    if kind == "error":
                        hs.stderr = _lines(err_buf)
                        return fail(f"answered with an error: {resp.error.error}")
                    if kind != "info":
                        return fail(f"answered Info with a {kind} message")
                    hs.elapsed = last_response - start
                    edge = {0: "stream", 1: "batch"}
                    hs.wants = edge.get(resp.info.wants, str(resp.info.wants))
                    hs.provides = edge.get(resp.info.provides, str(resp.info.provides))
                    hs.options = len(resp.info.options)
                    hs.ok = got_info = True
                    peer.close_input()
                    closed_at = time.monotonic()
                    break
        # Everything the peer had open has closed.
        if isinstance(peer, _SocketPeer):
            peer._eof = True
        _settle(peer, hs, wait=max(0.0, patience - (time.monotonic() - (closed_at or start))))
        if closed_at is not None and peer.finished():
            hs.closed_after = time.monotonic() - closed_at
        return hs
    finally:
        hs.stderr = hs.stderr or _lines(err_buf)
        sel.close()
        peer.kill()


def _settle(peer: _Peer, hs: Handshake, wait: float = 1.0) -> None:
    if isinstance(peer, _ProcessPeer):
        try:
            hs.exit_code = peer.proc.wait(wait)
        except subprocess.TimeoutExpired:
            hs.exit_code = None


def _lines(buf: bytearray) -> list[str]:
    return [ln for ln in buf.decode(errors="replace").splitlines() if ln.strip()]


def process_handshake(argv: list[str], env: dict[str, str], timeout: float,
                      user: str | None = None, patience: float = EXIT_PATIENCE) -> Handshake:
    """Start `argv` like kapacitord does at start-up and run the Info conversation."""
    try:
        peer = _ProcessPeer(argv, env, user)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.errno == errno.ENOEXEC:
            reason += " (a script needs a #! line naming its interpreter)"
        return Handshake(ok=False, error=f"cannot start {argv[0]}: {reason}")
    return _converse(peer, timeout, patience)


def socket_handshake(path: str, timeout: float,
                     patience: float = EXIT_PATIENCE) -> Handshake:
    """Connect to a UDF socket like kapacitord does at start-up and run the Info conversation."""
    try:
        peer = _SocketPeer(path, timeout)
    except OSError as exc:
        return Handshake(ok=False, error=f"cannot connect to {path}: {exc.strerror or exc}")
    return _converse(peer, timeout, patience)


# --- the checks ----------------------------------------------------------------------------

def protobuf_finding() -> Finding:
    """Which protobuf runtime this Python uses; the pure-Python one is several times slower."""
    try:
        import google.protobuf
        from google.protobuf.internal import api_implementation
    except ImportError:  # pragma: no cover - protobuf is a dependency
        return Finding("", "protobuf", FAIL, "protobuf is not installed",
                       "pip install 'protobuf>=4.21.6'")
    backend = api_implementation.Type()
    text = f"protobuf {google.protobuf.__version__}, {backend} backend"
    if backend == "python":
        return Finding("", "protobuf", WARN, text + " (pure Python: several times slower)",
                       "pip install --force-reinstall protobuf (a wheel for this platform)")
    return Finding("", "protobuf", OK, text)


def _type_problems(name: str, entry: dict) -> list[Finding]:
    out = []

    def bad(key: str, expected: str, example: str) -> None:
        out.append(Finding(name, key, FAIL,
                           f"{key} is {_toml_type(entry[key])}, kapacitord expects {expected}: "
                           "the configuration does not load",
                           f"write {key} = {example}"))

    for key in ("prog", "socket"):
        if key in entry and not isinstance(entry[key], str):
            bad(key, "a string", '"/usr/local/bin/kapudf"' if key == "prog"
                else '"/var/run/kapudf/NAME.sock"')
    if "args" in entry and not (isinstance(entry["args"], list)
                                and all(isinstance(a, str) for a in entry["args"])):
        bad("args", "an array of strings", '["run", "' + name + '"]')
    if "env" in entry and not (isinstance(entry["env"], dict)
                               and all(isinstance(v, str) for v in entry["env"].values())):
        bad("env", "a table of strings", "{ KAPUDF_LOG_LEVEL = \"info\" }")
    if "timeout" in entry and not isinstance(entry["timeout"], str):
        bad("timeout", 'a duration string such as "10s"', '"10s"')
    return out


def _toml_type(value: object) -> str:
    return {bool: "a boolean", int: "an integer", float: "a float", str: "a string",
            list: "an array", dict: "a table"}.get(type(value), type(value).__name__)


def check_timeout(name: str, entry: dict) -> tuple[Finding, float | None]:
    raw = entry.get("timeout")
    if raw is None:
        return Finding(name, "timeout", FAIL,
                       "no timeout: kapacitord refuses the entry (timeout is too small: 0s)",
                       'add timeout = "10s" (keepalives are sent every timeout/2)'), None
    if not isinstance(raw, str):
        return Finding(name, "timeout", FAIL, "not a duration string"), None
    try:
        ns = parse_go_duration(raw)
    except ValueError as exc:
        return Finding(name, "timeout", FAIL, f"{raw!r} is not a duration kapacitord reads "
                       f"({exc})", 'write it like "10s", "500ms" or "1m30s" (no d or w '
                       "units)"), None
    if ns <= 1_000_000:
        return Finding(name, "timeout", FAIL, f"{raw!r} is too small (must be over 1ms)",
                       'use timeout = "10s"'), None
    return Finding(name, "timeout", OK, f"{raw} (keepalive every {go_duration(ns / 2e9)})"
                   ), ns / 1e9


def _resolve_prog(prog: str, env_path: str) -> tuple[Path | None, str]:
    """Where kapacitord would find `prog`, and a note when that depends on its PATH/cwd."""
    if "/" not in prog:
        found = shutil.which(prog, path=env_path)
        note = (f"found through PATH={env_path}; use the absolute path, kapacitord's PATH "
                "is not your shell's")
        return (Path(found) if found else None), note
    p = Path(prog)
    if not p.is_absolute():
        return Path("/") / p, "a relative path is resolved from kapacitord's working directory (/)"
    return p, ""


def _interpreter(path: Path) -> list[str] | None:
    """The #! line of a script, split, or None for a binary (or unreadable) file."""
    try:
        with path.open("rb") as fh:
            head = fh.read(256)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None
    return head[2:].split(b"\n", 1)[0].decode(errors="replace").split()


def check_prog(name: str, entry: dict, who: Account, env_path: str) -> list[Finding]:
    prog = entry["prog"]
    path, note = _resolve_prog(prog, env_path)
    if path is None or not path.exists():
        shown = f"{path} does not exist" if path else f"{prog} is not on kapacitord's PATH " \
            f"({env_path})"
        guess = shutil.which(Path(prog).name)
        return [Finding(name, "prog", FAIL, shown,
                        f"set prog to the absolute path of the program (here: {guess})"
                        if guess else "set prog to the absolute path of an installed program")]
    out = []
    if path.is_dir():
        return [Finding(name, "prog", FAIL, f"{path} is a directory")]
    st = path.stat()
    if not st.st_mode & 0o111 or not os.access(path, os.X_OK):
        return [Finding(name, "prog", FAIL, f"{path} is not executable "
                        f"(mode {stat.filemode(st.st_mode)})", f"chmod 755 {path}")]
    out.append(Finding(name, "prog", WARN if note else OK,
                       f"{path} is executable" + (f" ({note})" if note else ""),
                       f"prog = \"{path}\"" if note and "PATH" in note else ""))
    interp = _interpreter(path)
    need = 5 if interp else 1  # a script must be readable as well
    problem = path_problem(path, who, need)
    checks = [(f"{path}", problem)]
    if interp:
        ipath, inote = _resolve_prog(interp[0], env_path)
        if interp[0] == "/usr/bin/env" and len(interp) > 1:
            ipath, inote = _resolve_prog(interp[1], env_path)
        if ipath is None or not ipath.exists():
            out.append(Finding(name, "interpreter", FAIL,
                               f"#! line of {path} names {' '.join(interp)}, which is not "
                               "there" + (f" ({inote})" if inote else ""),
                               "reinstall the program or fix its #! line"))
        else:
            real = ipath.resolve()
            shown = f"interpreter {ipath}" + (f" (-> {real})" if real != ipath else "")
            checks.append((shown, path_problem(real, who, 1)))
    problems = [(p, problem) for p, problem in checks if problem is not None]
    for p, problem in problems:
        fatal = who.uid is not None
        fix = ("give read and execute permission to it and search permission to its "
               f"directories, or install kapudf where {who.described} can reach it (not in a home "
               "directory, e.g. a venv under /opt)")
        out.append(Finding(name, "permissions", FAIL if fatal else WARN,
                           f"{who.described} cannot run {p}: {problem}"
                           + ("" if fatal else f" (no {SERVICE_USER} user here; kapacitord "
                              "usually runs as one)"), fix))
    if not problems:
        out.append(Finding(name, "permissions", OK, f"{who.described} can run {path}"
                           + (f" and its interpreter {checks[1][0]}" if len(checks) > 1 else "")))
    return out


def _handshake_findings(name: str, hs: Handshake, timeout: float, via: str) -> list[Finding]:
    out = []
    warn_lines = [ln for ln in hs.stderr
                  if re.match(r"(WARNING|WARN|ERROR|CRITICAL|Traceback)\b", ln)]
    if not hs.ok:
        tail = hs.stderr[-3:]
        detail = hs.error + (f"; stderr: {' | '.join(tail)}" if tail else "")
        if "timeout" in hs.error:
            fix = ("make Info fast: no model loading or heavy imports before the answer; or "
                   "raise timeout")
        else:
            fix = "start it by hand with the same arguments and read its error"
        return [Finding(name, "info", FAIL, f"{via}: {detail}", fix)]
    limit = go_duration(timeout)
    text = (f"{via}: answered in {format_seconds(hs.elapsed)} (limit {limit}): "
            f"{hs.wants} -> {hs.provides}, {hs.options} options")
    if hs.elapsed > timeout / 2:
        out.append(Finding(name, "info", WARN, text + "; over half the limit, a busy machine "
                           "at boot may miss it", "raise timeout or make start-up lighter"))
    else:
        out.append(Finding(name, "info", OK, text))
    for ln in warn_lines[:3]:
        out.append(Finding(name, "stderr", WARN, ln))
    if hs.closed_after is None:
        what = "close the connection" if via.startswith("socket") else "exit"
        out.append(Finding(name, "shutdown", FAIL,
                           f"did not {what} within {go_duration(EXIT_PATIENCE)} after its "
                           "input was closed: kapacitord waits for that, so start-up would hang",
                           "exit (or close the connection) when the input reaches EOF"))
    elif hs.exit_code not in (None, 0):
        out.append(Finding(name, "shutdown", WARN,
                           f"exited with status {hs.exit_code} after its input was closed"))
    else:
        out.append(Finding(name, "shutdown", OK,
                           f"closed {format_seconds(hs.closed_after)} after its input was"))
    return out


def check_socket(name: str, entry: dict, who: Account, timeout: float | None,
                 patience: float) -> list[Finding]:
    from udfcollection.agent.server import socket_state

    path = entry["socket"]
    if not Path(path).is_absolute():
        return [Finding(name, "socket", FAIL, f"{path!r} is not an absolute path",
                        "use an absolute path such as /var/run/kapudf/NAME.sock")]
    state = socket_state(path)
    start_fix = (f"start `kapudf serve --socket-dir {Path(path).parent} {Path(path).stem}` "
                 "before kapacitord (systemd: Before=kapacitor.service)")
    if state == "missing":
        return [Finding(name, "socket", FAIL, f"{path} does not exist: kapacitord retries for "
                        "5 minutes, then does not start", start_fix)]
    if state == "not-a-socket":
        return [Finding(name, "socket", FAIL, f"{path} exists but is not a socket",
                        "point socket at the file `kapudf serve` creates")]
    if state == "stale":
        return [Finding(name, "socket", FAIL, f"{path} is stale: the file is there but nobody "
                        "is listening (the server died); kapacitord retries for 5 minutes, then "
                        "does not start", start_fix + "; it removes the stale file")]
    out = [Finding(name, "socket", OK, f"{path}: a server is listening")]
    problem = path_problem(Path(path), who, 2)
    if problem:
        out.append(Finding(name, "permissions", FAIL if who.uid is not None else WARN,
                           f"{who.described} cannot connect: {problem}",
                           "kapudf serve --mode 0660 with kapacitor in the socket's group, or "
                           "--mode 0666"))
    if timeout is not None:
        out.extend(_handshake_findings(name, socket_handshake(path, timeout, patience),
                                       timeout, "socket"))
    return out


def service_env(entry_env: dict[str, str], inherit: bool) -> dict[str, str]:
    """The environment a UDF process gets: kapacitord's (a minimal service environment, or this
    shell's with `inherit`) plus the entry's `env`."""
    base = dict(os.environ) if inherit else {"PATH": SERVICE_PATH, "LANG": "C.UTF-8"}
    base.update(entry_env)
    return base


def check_entry(name: str, entry: object, who: Account, *, run_as: str | None,
                inherit_env: bool, patience: float) -> list[Finding]:
    if not isinstance(entry, dict):
        return [Finding(name, "entry", FAIL, f"[udf.functions.{name}] is not a table")]
    out: list[Finding] = []
    for key in entry:
        if key not in KNOWN_KEYS:
            match = difflib.get_close_matches(key, KNOWN_KEYS, n=1)
            out.append(Finding(name, "keys", WARN,
                               f"unknown key {key!r}: kapacitord ignores it silently",
                               f"did you mean {match[0]!r}?" if match else
                               f"valid keys: {', '.join(KNOWN_KEYS)}"))
    types = _type_problems(name, entry)
    out.extend(types)
    timeout_finding, timeout = check_timeout(name, entry)
    if not any(f.check == "timeout" for f in types):
        out.append(timeout_finding)
    has_proc = [k for k in ("prog", "args", "env") if k in entry]
    if "socket" in entry and has_proc:
        out.append(Finding(name, "mode", FAIL,
                           f"socket is combined with {', '.join(has_proc)}: kapacitord refuses "
                           "the entry (both socket and process config provided)",
                           "keep either socket (a running `kapudf serve`) or prog/args/env"))
        return out
    if "socket" not in entry and "prog" not in entry:
        out.append(Finding(name, "mode", FAIL, "neither prog nor socket: kapacitord refuses "
                           "the entry (must set either prog or socket)",
                           f'prog = "{shutil.which("kapudf") or "/usr/local/bin/kapudf"}" and '
                           f'args = ["run", "{name}"]'))
        return out
    if types:
        return out
    if "socket" in entry:
        out.extend(check_socket(name, entry, who, timeout, patience))
        return out
    env = service_env(entry.get("env", {}), inherit_env)
    prog_findings = check_prog(name, entry, who, env.get("PATH", SERVICE_PATH))
    out.extend(prog_findings)
    if timeout is None or any(f.status == FAIL and f.check in ("prog", "interpreter")
                              for f in prog_findings):
        return out
    path, _ = _resolve_prog(entry["prog"], env.get("PATH", SERVICE_PATH))
    argv = [str(path), *entry.get("args", [])]
    via = f"process ({'as ' + run_as if run_as else 'as ' + _current_user()})"
    out.extend(_handshake_findings(name, process_handshake(argv, env, timeout, run_as, patience),
                                   timeout, via))
    return out


def _current_user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def default_conf_path() -> str:
    return os.environ.get("KAPACITOR_CONFIG_PATH") or DEFAULT_CONF


def choose_account(user: str | None) -> tuple[Account, str | None]:
    """Whom to check permissions for and whom to run handshakes as.

    With `user` given, that user (it must exist). Otherwise the `kapacitor` user when it exists,
    and handshakes run as it only when we are root (anyone else cannot switch users)."""
    if user:
        acct = Account.lookup(user)
        if acct is None:
            raise LookupError(f"no user {user!r} on this machine")
        return acct, (user if os.geteuid() == 0 and acct.uid != os.geteuid() else None)
    acct = Account.lookup(SERVICE_USER)
    if acct is None:
        return ANYBODY, None
    return acct, (SERVICE_USER if os.geteuid() == 0 else None)


def functions_of(conf: dict) -> tuple[dict, list[Finding]]:
    udf = conf.get("udf", {})
    findings = []
    if not isinstance(udf, dict):
        return {}, [Finding("", "udf", FAIL, "[udf] is not a table")]
    for key in udf:
        if key != "functions":
            findings.append(Finding("", "keys", WARN, f"unknown key udf.{key!r}: ignored",
                                    "UDFs go under [udf.functions.NAME]"))
    functions = udf.get("functions", {})
    if not isinstance(functions, dict):
        return {}, [*findings, Finding("", "udf", FAIL, "udf.functions is not a table")]
    return functions, findings


def iter_checks(path: str, *, user: str | None = None, inherit_env: bool = False,
                patience: float = EXIT_PATIENCE) -> Iterator[Finding]:
    """Every finding for the configuration at `path`, entry by entry, as they are made."""
    yield protobuf_finding()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        yield Finding("", "file", FAIL, f"cannot read {path}: {exc.strerror}")
        return
    try:
        conf = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        yield Finding("", "toml", FAIL, f"not valid TOML: {exc}",
                      "fix the syntax; kapacitord does not start with a broken configuration")
        return
    functions, findings = functions_of(conf)
    yield from findings
    if not functions:
        yield Finding("", "udf", OK, "no [udf.functions.*] entries: nothing to check")
        return
    who, run_as = choose_account(user)
    for name, entry in functions.items():
        yield from check_entry(name, entry, who, run_as=run_as, inherit_env=inherit_env,
                               patience=patience)


def check_conf(path: str, **kwargs) -> Report:
    report = Report(path)
    for f in iter_checks(path, **kwargs):
        report.findings.append(f)
    report.entries = len({f.udf for f in report.findings if f.udf})
    return report


def render(report: Report, width: int | None = None) -> str:
    """The findings as a table: one row per check, the fix on the line below a problem. With
    `width`, details and fixes are wrapped to fit (a terminal); without, one line each (a pipe
    or a file, where grep works best)."""
    import textwrap

    rows = [(f.udf or "-", f.check, f.status, f.detail, f.fix) for f in report.findings]
    w_udf = max([3, *(len(r[0]) for r in rows)])
    w_check = max([5, *(len(r[1]) for r in rows)])
    indent = w_udf + w_check + 10
    pad = " " * indent

    def wrapped(text: str) -> list[str]:
        if width is None:
            return [text]
        return textwrap.wrap(text, max(30, width - indent), break_on_hyphens=False) or [""]

    lines = [f"{'UDF':<{w_udf}}  {'CHECK':<{w_check}}  {'':4}  DETAIL (and fix)"]
    for udf, check, status, detail, fix in rows:
        first, *rest = wrapped(detail)
        lines.append(f"{udf:<{w_udf}}  {check:<{w_check}}  {status:<4}  {first}")
        lines.extend(pad + ln for ln in rest)
        if fix and status != OK:
            lines.extend(pad + ln for ln in wrapped("fix: " + fix))
    fails, warns = report.count(FAIL), report.count(WARN)
    verdict = ("kapacitord would NOT start" if fails else "kapacitord would start")
    lines.append("")
    summary = (f"{report.path}: {report.entries} UDF entr{'y' if report.entries == 1 else 'ies'}"
               f", {fails} problem{'s' * (fails != 1)}, {warns} warning{'s' * (warns != 1)}: "
               f"{verdict}")
    lines.extend(textwrap.wrap(summary, width) if width else [summary])
    return "\n".join(lines)
