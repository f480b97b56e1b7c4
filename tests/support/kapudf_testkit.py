"""Helpers shared by the test modules (importable because tests/conftest.py puts this directory
on sys.path): paths, the subprocess environment for test-only UDFs, a CLI runner, and the
golden-case reader."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from udfcollection.testing import kapudf_command

REPO = Path(__file__).resolve().parents[2]
SUPPORT = REPO / "tests" / "support"
CASES = REPO / "tests" / "cases"


def support_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment additions for a subprocess that must import the test-only UDFs."""
    old = os.environ.get("PYTHONPATH")
    env = {"PYTHONPATH": str(SUPPORT) + (os.pathsep + old if old else "")}
    env.update(extra or {})
    return env


def run_cli(*args: str, env: dict[str, str] | None = None, input: str | None = None,
            timeout: float = 60.0, cwd: str | os.PathLike | None = None
            ) -> subprocess.CompletedProcess:
    """Run `python -m udfcollection ARGS` (the real CLI, in a subprocess); text output."""
    full = dict(os.environ)
    full.update(support_env(env))
    return subprocess.run(kapudf_command(*args), capture_output=True, text=True, env=full,
                          input=input, timeout=timeout, cwd=cwd)


@dataclass
class Case:
    """One golden case folder: tests/cases/<udf>/<case>/{options,input.lp,expected.lp}."""

    udf: str
    name: str
    path: Path
    options: list  # wire form: [(name, [(type, value)])]
    group_by: tuple[str, ...]
    points: list  # LPPoints of input.lp


def read_case(path: Path) -> Case:
    """Parse a case folder. `options` holds one `name=value` per line, each value parsed by the
    option's declared type exactly like `kapudf test -o` (a bare `name` is a flag); lines
    `group_by=TAG` set the grouping; blank lines and `#` comments are ignored."""
    from udfcollection import registry
    from udfcollection.lineprotocol import parse_lines
    from udfcollection.spec import FLAG, parse_cli_option

    udf = path.parent.name
    cls = registry.get(udf)
    decl = {o.name: o for o in cls.all_options()}
    options: list = []
    group_by: list[str] = []
    opt_file = path / "options"
    lines = opt_file.read_text(encoding="utf-8").splitlines() if opt_file.exists() else []
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, text = line.partition("=")
        name = name.strip()
        if name == "group_by":
            group_by.append(text.strip())
            continue
        opt = decl.get(name)
        if opt is None:
            raise ValueError(f"{opt_file}:{n}: {udf} has no option {name!r}")
        if opt.type == FLAG:
            options.append((name, []))
            continue
        if not sep:
            raise ValueError(f"{opt_file}:{n}: write {name}=VALUE")
        vtype, value = parse_cli_option(opt, text)
        options.append((name, [(vtype, value)]))
    with open(path / "input.lp", encoding="utf-8") as fh:
        points = list(parse_lines(fh, "ns", str(path / "input.lp")))
    return Case(udf, path.name, path, options, tuple(group_by), points)


def case_dirs(udf: str) -> list[Path]:
    d = CASES / udf
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if p.is_dir() and (p / "input.lp").exists())
