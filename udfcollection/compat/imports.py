"""The import hook that lets an agent script import the stock agent's modules.

While `stock_agent_modules()` is active:

- `kapacitor.udf.agent` is kapudf's `udfcollection.compat.agent` and `kapacitor.udf.udf_pb2` is
  kapudf's generated `udfcollection.protocol.udf_pb2` (same message, field and enum names, and
  the very same classes, so messages pass between the script and kapudf's runtime as they are);
- `kapacitor` and `kapacitor.udf` come from a real installed package when there is one (so
  `import kapacitor.something_else` keeps working); only when there is none are they empty
  stand-in packages;
- the bare names the oldest examples use next to a vendored copy (`from agent import Agent`,
  `import udf_pb2`) resolve the same way: `udf_pb2` always (a second copy of Kapacitor's
  generated code cannot even be loaded next to kapudf's: both define `agent.Point`), `agent` only
  when no module of that name exists or the one found is a copy of the stock agent.

The aliases are fresh module objects holding the same names as their targets, so kapudf's own
modules are never renamed. On exit every module the hook created is removed from `sys.modules`
(and from its parent package), and the hook is uninstalled.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

log = logging.getLogger("udfcollection.compat")

AGENT_MODULE = "udfcollection.compat.agent"
PB2_MODULE = "udfcollection.protocol.udf_pb2"

ALIASES = {
    "kapacitor.udf.agent": AGENT_MODULE,
    "kapacitor.udf.udf_pb2": PB2_MODULE,
}
PARENTS = ("kapacitor", "kapacitor.udf")


def looks_like_stock_agent(path: str | None) -> bool:
    """True for a file that is a copy of Kapacitor's Python agent module (it defines the agent
    class and the protocol's varint reader under their stock names)."""
    if not path or not path.endswith(".py"):
        return False
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read(200_000)
    except OSError:
        return False
    return "class Agent" in text and "def decodeUvarint32" in text


class _AliasLoader(importlib.abc.Loader):
    """Fills a new module with the public names of an existing one."""

    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec):
        return None

    def exec_module(self, module: ModuleType) -> None:
        source = importlib.import_module(self.target)
        module.__dict__.update(
            {k: v for k, v in vars(source).items() if not (k.startswith("__") and
                                                            k.endswith("__"))})
        module.__doc__ = source.__doc__
        module.__kapudf_alias__ = self.target


class _EmptyPackageLoader(importlib.abc.Loader):
    def create_module(self, spec):
        return None

    def exec_module(self, module: ModuleType) -> None:
        module.__doc__ = "Stand-in package provided by kapudf while an agent script runs."
        module.__kapudf_alias__ = ""


class StockAgentFinder(importlib.abc.MetaPathFinder):
    def __init__(self) -> None:
        self.created: list[str] = []

    def _others(self, fullname: str, path, target):
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                return spec
        return None

    def _alias(self, fullname: str, target: str):
        self.created.append(fullname)
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(target),
                                              origin=f"kapudf alias of {target}")

    def find_spec(self, fullname: str, path=None, target=None):
        if fullname in ALIASES:
            return self._alias(fullname, ALIASES[fullname])
        if fullname in PARENTS:
            if self._others(fullname, path, target) is not None:
                return None  # a real package: use it, add only the two aliased submodules
            self.created.append(fullname)
            return importlib.machinery.ModuleSpec(fullname, _EmptyPackageLoader(),
                                                  is_package=True)
        if fullname == "udf_pb2":
            real = self._others(fullname, path, target)
            if real is not None and real.origin:
                log.info("using kapudf's udf_pb2 in place of %s", real.origin)
            return self._alias(fullname, PB2_MODULE)
        if fullname == "agent":
            real = self._others(fullname, path, target)
            if real is None or looks_like_stock_agent(real.origin):
                if real is not None:
                    log.info("using kapudf's agent in place of the stock agent copy %s",
                             real.origin)
                return self._alias(fullname, AGENT_MODULE)
        return None


@contextlib.contextmanager
def stock_agent_modules() -> Iterator[StockAgentFinder]:
    """Provide the stock agent's module names inside the block (see the module docstring)."""
    finder = StockAgentFinder()
    sys.meta_path.insert(0, finder)
    try:
        yield finder
    finally:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(finder)
        for name in reversed(finder.created):
            mod = sys.modules.get(name)
            if mod is None or not hasattr(mod, "__kapudf_alias__"):
                continue
            del sys.modules[name]
            parent, _, child = name.rpartition(".")
            if parent and getattr(sys.modules.get(parent), child, None) is mod:
                delattr(sys.modules[parent], child)


def script_dir_on_path(script: Path) -> contextlib.AbstractContextManager:
    """Put the script's directory first on sys.path, as `python script.py` does."""

    @contextlib.contextmanager
    def cm():
        entry = str(script.resolve().parent)
        sys.path.insert(0, entry)
        try:
            yield
        finally:
            with contextlib.suppress(ValueError):
                sys.path.remove(entry)

    return cm()
