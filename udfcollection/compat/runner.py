"""`kapudf run path/to/script.py [args]`: run a stock-agent script, unchanged, on kapudf.

Order of events: stdout is claimed for protocol frames (fd 1 and `sys.stdout` now reach
stderr, so a stray `print` cannot corrupt the stream); the root logger is left unconfigured for
the script's own `logging.basicConfig` (kapudf's messages keep their one-line handler on the
`udfcollection` logger); then, with the stock module names provided (`imports`) and both
field styles available (`legacy_fields`), the script runs as `__main__` with `sys.argv` set to
`[script, *args]` and its directory first on `sys.path`, as `python script.py args` would.

When the script's main code returns, the runner waits for the agents it started: stdin/stdout
agents until the input ends, socket agents (whose `Server.serve()` has returned after a
signal) for at most `server.DRAIN_SECONDS`. Exit code: the script's own `sys.exit` code, else 1
if an agent stopped on an error (an ErrorResponse was sent) or the script raised, else 0.
"""

from __future__ import annotations

import io
import logging
import os
import runpy
import sys
import time
from pathlib import Path

import click

from udfcollection.agent.stdio import claim_stdout
from udfcollection.compat import agent as compat_agent
from udfcollection.compat.imports import script_dir_on_path, stock_agent_modules
from udfcollection.compat.legacy_fields import legacy_field_access
from udfcollection.compat.server import DRAIN_SECONDS

log = logging.getLogger("udfcollection.compat")


def _exit_code(code) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _give_root_logger_to_script() -> None:
    """Move kapudf's handler from the root logger to the `udfcollection` logger, so a script's
    `logging.basicConfig(...)` configures its own logging exactly as under the stock agent."""
    root = logging.getLogger()
    ours = logging.getLogger("udfcollection")
    handlers = list(root.handlers)
    if not handlers:
        return
    for h in handlers:
        root.removeHandler(h)
        ours.addHandler(h)
    ours.propagate = False
    root.setLevel(logging.WARNING)


def _redirect_stdout() -> int:
    """Claim fd 1 for frames; returns the protocol fd. `sys.stdout` becomes a text stream on the
    new fd 1 (stderr), so `print` still works and any file object whose fileno() is 1 is
    recognised by `Agent` as the script's stdout."""
    proto_fd = claim_stdout()
    sys.stdout = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)),
                                  line_buffering=True, write_through=True, encoding="utf-8",
                                  errors="backslashreplace")
    return proto_fd


def _wait_for_agents() -> int:
    """Join the agents the script started; returns 1 if any stopped on an error."""
    deadline: float | None = None
    code = 0
    for agent in list(compat_agent.started):
        thread = agent._thread
        if thread is not None and thread.is_alive():
            if agent.mode == "socket":
                if deadline is None:
                    deadline = time.monotonic() + DRAIN_SECONDS
                    log.info("waiting up to %.0fs for open connections", DRAIN_SECONDS)
                thread.join(max(0.0, deadline - time.monotonic()))
            else:
                thread.join()
        if agent.exit_code:
            code = 1
    return code


def run_script(path: str, args: list[str], strict: bool) -> int:
    """Run the agent script at `path` with `args`; returns the process exit code."""
    script = Path(path)
    if not script.is_file():
        raise click.UsageError(f"no such agent script: {path}")
    sys.setswitchinterval(0.001)  # keepalive answers wait for the GIL at most this long
    _give_root_logger_to_script()
    proto_fd = _redirect_stdout()
    compat_agent.settings.strict = strict
    compat_agent.settings.stdout_fd = proto_fd
    compat_agent.started.clear()
    compat_agent.settings.agents_started = 0
    saved_argv = sys.argv
    sys.argv = [path, *args]
    code: int | None = None
    agents_code = 0
    try:
        with stock_agent_modules(), legacy_field_access(), script_dir_on_path(script):
            try:
                runpy.run_path(str(script), run_name="__main__")
            except SystemExit as exc:
                code = _exit_code(exc.code)
            except KeyboardInterrupt:
                code = 130
            except Exception as exc:
                log.error("the script %s failed: %s: %s", path, type(exc).__name__, exc,
                          exc_info=True)
                code = 1
            if not compat_agent.settings.agents_started and code is None:
                log.warning("the script %s finished without starting an Agent; is it a "
                            "Kapacitor UDF script (does it call agent.start())?", path)
            agents_code = _wait_for_agents()
    finally:
        sys.argv = saved_argv
        sys.stdout.flush()
        os.close(proto_fd)
    if code is None or code == 0:
        code = agents_code
    return code
